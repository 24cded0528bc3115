"""Who a request acts as: resolved once from a key or a session, then only read."""

from __future__ import annotations

from dataclasses import dataclass, field

from earwitness.models import User


@dataclass(frozen=True)
class Principal:
    """An authenticated user as the authorisation checks need it (no ORM object leaks out).

    ``via`` says how the request authenticated: ``"key"`` (X-API-Key / Bearer, not an
    ambient credential, so no CSRF check) or ``"session"`` (browser cookie, so unsafe
    requests must carry the session's CSRF token).
    """

    user_id: int
    username: str
    role: str
    pbx_agent: str | None = None
    queues: tuple[str, ...] = field(default_factory=tuple)
    via: str = "key"

    @classmethod
    def of(cls, user: User, via: str) -> Principal:
        return cls(
            user_id=user.id,
            username=user.username,
            role=user.role,
            pbx_agent=user.pbx_agent,
            queues=tuple(str(q) for q in (user.queues or [])),
            via=via,
        )
