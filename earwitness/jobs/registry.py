"""Job handlers by kind. Handlers are plain functions so Celery tasks can wrap the same code."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.errors import ConfigError
from earwitness.evidence.store import BlobStore


@dataclass(frozen=True)
class JobEnv:
    """What handlers work with: the process's settings, database, blob store and a way to
    queue follow-up jobs. Built once per worker from the runtime."""

    settings: Settings
    db: Database
    blobs: BlobStore
    submit: Callable[..., int]


class JobContext(Protocol):
    """What a handler may do besides computing: report progress, reach the database."""

    @property
    def env(self) -> JobEnv: ...

    @property
    def job_id(self) -> int: ...

    @property
    def attempt(self) -> int: ...

    def progress(self, percent: float, message: str = "") -> None: ...


Handler = Callable[[JobContext, dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    func: Handler
    max_attempts: int
    backoff_s: float


_HANDLERS: dict[str, HandlerSpec] = {}

# Modules that register the product's own handlers; imported lazily by the worker so
# the api can enqueue without importing heavy speech code.
BUILTIN_MODULES: list[str] = [
    "earwitness.jobs.builtin",
    "earwitness.recordings.pbx",
    "earwitness.transcription.jobs",
    "earwitness.qa.jobs",
    "earwitness.search.jobs",
    "earwitness.evidence.timestamps",
    "earwitness.cases.followup_jobs",
]


def job_handler(
    kind: str, *, max_attempts: int = 3, backoff_s: float = 2.0
) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _HANDLERS[kind] = HandlerSpec(kind, func, max_attempts, backoff_s)
        return func

    return register


def load_handler_modules(extra: list[str]) -> None:
    for name in [*BUILTIN_MODULES, *extra]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import job handler module {name!r}: {exc}") from None


def get_handler(kind: str) -> HandlerSpec | None:
    return _HANDLERS.get(kind)


def known_kinds() -> list[str]:
    return sorted(_HANDLERS)
