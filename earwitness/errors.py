"""One exception tree for everything a user of earwitness can hit.

The API maps each class once to an RFC 9457 problem (status + type) and the CLI
prints it as one clean line, so no caller ever needs to know about SQLAlchemy,
pydantic or socket errors underneath.

    EarwitnessError
    ├── ConfigError            bad setting value or unreadable config file
    ├── StorageError           database or blob store unusable
    │   └── DatabaseUnavailable
    ├── BadInput               the caller's data is wrong (400/422)
    │   ├── UnsafePath         a path that escapes where it must stay
    │   └── PayloadTooLarge    upload over the configured limit (413)
    ├── NotFound               no such object (404)
    ├── Conflict               state forbids the request (409)
    ├── AuthError              missing/invalid credentials (401)
    │   └── Forbidden          wrong role, missing CSRF token, expired/forged session (403)
    ├── TooManyRequests        login attempts over the limit (429)
    └── ServiceUnavailable     a dependency (PBX, model, broker) is down (503)
"""

from __future__ import annotations


class EarwitnessError(Exception):
    """Base class; ``status`` and ``title`` drive the problem+json mapping."""

    status: int = 500
    title: str = "Internal error"
    slug: str = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigError(EarwitnessError):
    status, title, slug = 500, "Configuration error", "config"


class StorageError(EarwitnessError):
    status, title, slug = 503, "Storage unavailable", "storage"


class DatabaseUnavailable(StorageError):
    title, slug = "Database unavailable", "database-unavailable"


class BadInput(EarwitnessError):
    status, title, slug = 422, "Invalid input", "bad-input"


class UnsafePath(BadInput):
    status, title, slug = 400, "Unsafe path", "unsafe-path"


class PayloadTooLarge(BadInput):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class NotFound(EarwitnessError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(EarwitnessError):
    status, title, slug = 409, "Conflict", "conflict"


class AuthError(EarwitnessError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(AuthError):
    status, title, slug = 403, "Forbidden", "forbidden"


class TooManyRequests(EarwitnessError):
    status, title, slug = 429, "Too many requests", "too-many-requests"


class TamperedEvidence(Conflict):
    """Stored bytes no longer match the hash recorded at intake; they are not handed out."""

    title, slug = "Stored evidence no longer matches its intake hash", "evidence-tampered"


class ServiceUnavailable(EarwitnessError):
    status, title, slug = 503, "Service unavailable", "service-unavailable"
