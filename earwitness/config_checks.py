"""Checks the settings run at load, so a wrong value is one line naming it, not a traceback later.

Pure checks over values plus the few file-system and installed-package questions a setting
raises (does the file exist, can the data dir be created, is psycopg installed for a
PostgreSQL URL). Each raises ``ValueError`` with a message that says what is wrong and what
would be right; :func:`earwitness.config.load_settings` prefixes the setting's name.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
# (setting value prefix, module that must import, extra that installs it)
_DATABASE_EXTRAS = (("postgresql", "psycopg", "postgres"),)
_BROKER_EXTRAS = (
    ("redis", "redis", "scale"),
    ("amqp", "kombu", "scale"),
    ("pyamqp", "kombu", "scale"),
)


def url(value: str, schemes: Iterable[str]) -> str:
    """An absolute URL with one of ``schemes`` and a host."""
    allowed = tuple(schemes)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in allowed:
        raise ValueError(f"URL scheme must be one of {', '.join(allowed)}, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {value!r}")
    return value


def _expand(path: Path) -> Path:
    """``~`` and ``~user`` expanded; an unknown user is a bad value, not a crash."""
    try:
        return path.expanduser()
    except RuntimeError:
        raise ValueError(f"cannot expand {str(path)!r}: no such user's home directory") from None


def readable_file(path: Path) -> Path:
    path = _expand(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not an existing file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{str(path)!r} is not readable")
    return path


def existing_dir(path: Path) -> Path:
    path = _expand(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not an existing directory")
    return path


def creatable_dir(path: Path) -> Path:
    """A directory that exists or can be made: its nearest existing ancestor is a writable dir."""
    path = _expand(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{str(path)!r} exists and is not a directory")
        return path
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{str(path)!r} cannot be created: {str(ancestor)!r} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{str(path)!r} cannot be created: {str(ancestor)!r} is not writable")
    return path


def creatable_file(path: Path) -> Path:
    path = _expand(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory, not a file")
    creatable_dir(path.parent)
    return path


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def extras_installed(database_url: str | None, worker_mode: str, broker_url: str) -> None:
    """The packages the chosen database and worker need are importable."""
    for prefix, module, extra in _DATABASE_EXTRAS:
        if database_url and database_url.startswith(prefix) and _missing(module):
            raise ValueError(
                f"database_url: a {prefix} URL needs {module}: pip install 'earwitness[{extra}]'"
            )
    if worker_mode != "celery":
        return
    if _missing("celery"):
        raise ValueError("worker_mode: celery needs celery: pip install 'earwitness[scale]'")
    for prefix, module, extra in _BROKER_EXTRAS:
        if broker_url.startswith(prefix) and _missing(module):
            raise ValueError(
                f"celery_broker_url: a {prefix} broker needs {module}: "
                f"pip install 'earwitness[{extra}]'"
            )
