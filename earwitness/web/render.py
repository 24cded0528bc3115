"""Rendering pages: one Jinja2 environment, the chrome every page shares, and filters.

Templates only format: times in the configured zone, durations, translations. What a
page shows comes from the same service and view functions the JSON API uses; which
links a user sees comes from the permission matrix (:func:`can`), never from a role
name in a template.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from earwitness.accounts.principal import Principal
from earwitness.accounts.sessions import csrf_token
from earwitness.api.permissions import rule_for
from earwitness.timezones import show, zone_named
from earwitness.web.i18n import COOKIE, pick_language, translator

HERE = Path(__file__).parent
STATIC = HERE / "static"
ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)

#: (label, page path, the API route whose permission decides whether the link shows)
NAV: tuple[tuple[str, str, str], ...] = (
    ("Wallboard", "/", "/api/live"),
    ("SLA reports", "/reports/sla", "/api/sla"),
    ("Calls", "/calls", "/api/calls"),
    ("Cases", "/cases", "/api/cases"),
    ("Search", "/search", "/api/search"),
    ("QA", "/qa", "/api/qa/agents"),
    ("Weekly review", "/reports/weekly", "/api/review/weekly"),
    ("Admin", "/admin", "/api/users"),
)


def can(who: Principal | None, method: str, path: str) -> bool:
    """Whether the matrix lets this user call a declared route (pages ask, never check roles)."""
    rule = rule_for(method, path)
    return rule is not None and rule.permits(who.role if who else None)


def nav_for(who: Principal) -> list[tuple[str, str]]:
    return [(label, page) for label, page, api in NAV if can(who, "GET", api)]


def zone_of(request: Request) -> ZoneInfo:
    """The configured display zone (``settings.timezone``, issue 18)."""
    return zone_named(request.app.state.runtime.settings.timezone)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration(seconds: Any) -> str:
    """``1 h 05 min``, ``4 min 20 s``, ``12 s``: waits and talk times for people."""
    if seconds is None:
        return "–"
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def language_of(request: Request) -> str:
    return pick_language(request.cookies.get(COOKIE), request.headers.get("accept-language"))


def page(
    request: Request,
    template: str,
    who: Principal | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` inside the shared chrome (navigation, language, CSRF token)."""
    language = language_of(request)
    zone = zone_of(request)
    session_token = request.cookies.get("ew_session")
    token = csrf_token(session_token) if who is not None and session_token else ""

    def when(value: Any) -> str:
        shown = show(_as_datetime(value), zone)
        return shown or "–"

    def clock(value: Any) -> str:
        at = _as_datetime(value)
        return at.astimezone(zone).strftime("%H:%M:%S") if at else "–"

    def to_json(value: Any) -> Markup:
        # Safe inside <script type="application/json">: no "</" can end the element.
        text = json.dumps(value, default=str, ensure_ascii=False).replace("</", "<\\/")
        return Markup(text)  # noqa: S704 - escaped above for the script context

    html = ENV.get_template(template).render(
        request=request,
        who=who,
        nav=nav_for(who) if who else [],
        current=request.url.path,
        lang=language,
        t=translator(language),
        csrf=token,
        tz=zone.key,
        when=when,
        clock=clock,
        duration=duration,
        to_json=to_json,
        can=lambda method, path: can(who, method, path),
        **context,
    )
    return HTMLResponse(html, status_code=status)
