"""``celery -A earwitness.jobs.celery worker``: the Celery app built from the environment.

Settings come from ``EARWITNESS_*`` variables / the TOML file as for every other process.
This module is imported only by the celery command; earwitness itself uses
:mod:`earwitness.jobs.celery_app`.
"""

from __future__ import annotations

from earwitness.config import load_settings
from earwitness.jobs.celery_app import EwCelery, make_app

app: EwCelery = make_app(load_settings())
celery = app

__all__ = ["app", "celery"]
