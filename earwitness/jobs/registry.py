"""Job handlers by kind. Handlers are plain functions so Celery tasks can wrap the same code."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.errors import BadInput, ConfigError
from earwitness.evidence.store import BlobStore


class NotYet(Exception):
    """Raised by a handler that must wait for something (a file still being written): the
    job is requeued after ``retry_in_s`` without using up an attempt. The handler itself
    decides when waiting has become pointless (by time, not by attempt count)."""

    def __init__(self, reason: str, retry_in_s: float) -> None:
        super().__init__(reason)
        self.reason, self.retry_in_s = reason, retry_in_s


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
    #: Optional shape of the payload, checked at enqueue (a 4xx, nothing queued) and again
    #: before running (a permanent failure naming the field, never a retry loop).
    payload_model: type[BaseModel] | None = None

    def check_payload(self, payload: dict[str, Any]) -> None:
        if self.payload_model is None:
            return
        try:
            self.payload_model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise BadInput(
                f"invalid payload for job kind {self.kind!r}: {where}: {first['msg']}"
            ) from None


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
    "earwitness.evidence.track_jobs",
]


def job_handler(
    kind: str,
    *,
    max_attempts: int = 3,
    backoff_s: float = 2.0,
    payload: type[BaseModel] | None = None,
) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _HANDLERS[kind] = HandlerSpec(kind, func, max_attempts, backoff_s, payload)
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


def require_handler(kind: str) -> HandlerSpec:
    """The handler of ``kind``, importing the built-in modules first if it is not known yet.

    An unknown kind is refused at enqueue time (a job no worker can run would wait forever).
    """
    spec = _HANDLERS.get(kind)
    if spec is None:
        load_handler_modules([])
        spec = _HANDLERS.get(kind)
    if spec is None:
        raise BadInput(f"unknown job kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    return spec


def known_kinds() -> list[str]:
    return sorted(_HANDLERS)
