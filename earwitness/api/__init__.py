"""HTTP API (FastAPI) and the server-rendered web UI."""

from earwitness.api.app import create_app

__all__ = ["create_app"]
