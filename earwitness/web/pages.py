"""Page routes: each one asks the JSON API's own view functions for its data and renders it.

Calling the API views (not re-querying) keeps one copy of every query, every row scope
(an agent's own calls, a lead's queues) and every masking rule: a page can show no more
than ``GET /api/...`` would return to the same user. Live parts (the wallboard, the SLA
charts, the player) fetch the same JSON API from the browser. Who may open a page is
decided by the permission matrix before the view runs (``earwitness/api/permissions.py``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from earwitness.api.deps import PrincipalDep, SessionDep
from earwitness.api.routes import accounts, calls, cases, evidence, qa, search, tracks
from earwitness.errors import EarwitnessError
from earwitness.models import User
from earwitness.runtime import Runtime
from earwitness.telephony.rings import CADENCES
from earwitness.web import admin
from earwitness.web.render import can, page, zone_of

router = APIRouter(include_in_schema=False)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _try(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """A view's answer, or its error message (shown on the page, never as JSON)."""
    try:
        return fn(*args, **kwargs), None
    except EarwitnessError as exc:
        return None, exc.detail


def _dates(
    request: Request, start: str | None, end: str | None, default_days: int
) -> tuple[str, str, dict[str, str]]:
    """A form's local days (``YYYY-MM-DD``, default: the last ``default_days`` days in the
    display zone) checked field by field; the API reads them as days in that zone."""
    errors: dict[str, str] = {}
    today = datetime.now(zone_of(request)).date()
    days = {"from": today - timedelta(days=default_days - 1), "to": today}
    for name, text in (("from", start), ("to", end)):
        if text:
            try:
                days[name] = date.fromisoformat(text)
            except ValueError:
                errors[name] = "not a date"
    if not errors and days["from"] > days["to"]:
        errors["to"] = "the start must be before the end"
    return days["from"].isoformat(), days["to"].isoformat(), errors


@router.get("/", response_model=None)
def home(request: Request, who: PrincipalDep, session: SessionDep) -> Response:
    """The wallboard for those who may see it; everyone else gets a start page of their
    pages (links from the permission matrix, as in the header)."""
    user = session.get(User, who.user_id)
    no_password = user is not None and user.password_hash is None
    if not can(who, "GET", "/api/live"):
        return page(request, "start.html", who, no_password=no_password)
    snapshot = calls._live_for(_runtime(request), who)
    return page(request, "wallboard.html", who, snapshot=snapshot, no_password=no_password)


@router.get("/reports/sla", response_model=None)
def sla_report(request: Request, who: PrincipalDep) -> HTMLResponse:
    """The form and the charts; the figures come from ``GET /api/sla`` in the browser."""
    return page(request, "sla.html", who)


@router.get("/calls", response_model=None)
def call_list(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    queue: str | None = None,
    agent: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    begin, finish, errors = _dates(request, start, end, 7)
    data, error = (None, None)
    if not errors:
        data, error = _try(
            calls.list_calls,
            runtime=_runtime(request),
            session=session,
            who=who,
            start=begin,
            end=finish,
            queue=queue or None,
            agent=agent or None,
            limit=100,
            offset=offset,
        )
    form = {
        "from": (start if "from" in errors else begin),
        "to": (end if "to" in errors else finish),
        "queue": queue or "",
        "agent": agent or "",
    }
    return page(request, "calls.html", who, data=data, error=error, errors=errors, form=form)


@router.get("/calls/{call_id}", response_model=None)
def call_page(request: Request, call_id: int, who: PrincipalDep, session: SessionDep) -> Response:
    call = calls.read_call(call_id=call_id, session=session, who=who)  # 404/403 as the API answers
    scorecard = None
    recording_id = call.get("recording_id")
    if recording_id and can(who, "GET", "/api/qa/calls/{recording_id}"):
        scorecard, _ = _try(
            qa.call_scorecard,
            recording_id=recording_id,
            runtime=_runtime(request),
            session=session,
            who=who,
        )
    history = None
    if call.get("caller") and can(who, "GET", "/api/search/callers/{number}"):
        history, _ = _try(search.caller_calls, number=call["caller"], session=session, _=who)
    history = jsonable_encoder(history) if history is not None else None
    linked = []
    for item in history["calls"] if history else []:
        if item["id"] == call_id:
            linked = item["cases"]
    return page(
        request,
        "call.html",
        who,
        call=call,
        scorecard=scorecard,
        linked_cases=linked,
        history=history,
        plays=recording_id is not None and can(who, "GET", "/api/recordings/{recording_id}/audio"),
    )


@router.get("/cases", response_model=None)
def case_list(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    status: str | None = None,
    urgency: str | None = None,
    owner: str | None = None,
) -> HTMLResponse:
    """Cases with a breached deadline first, then the newest."""
    runtime = _runtime(request)
    rows = cases.list_cases(
        session=session, _=who, status=status or None, urgency=urgency or None,
        owner=owner or None, limit=500, offset=0,
    )  # fmt: skip
    breaches: dict[int, list[dict[str, Any]]] = {}
    for row in cases.deadlines(runtime=runtime, session=session, _=who, breached_only=True):
        breaches.setdefault(row["case_id"], []).append(row)
    rows.sort(key=lambda c: (c["id"] not in breaches, -c["id"]))
    form = {"status": status or "", "urgency": urgency or "", "owner": owner or ""}
    return page(request, "cases.html", who, cases=rows, breaches=breaches, form=form)


@router.get("/cases/{case_id}", response_model=None)
def case_page(request: Request, case_id: int, who: PrincipalDep, session: SessionDep) -> Response:
    runtime = _runtime(request)
    case = cases.read_case(case_id=case_id, runtime=runtime, session=session, who=who)
    timeline = cases.timeline(case_id=case_id, runtime=runtime, session=session, who=who)
    items = jsonable_encoder(evidence.list_case_evidence(case_id=case_id, session=session, _=who))
    track_ids = sorted({e["track_id"] for e in timeline["events"] if e.get("track_id")})
    tracks_out = []
    for track_id in track_ids:
        row = tracks.read_track(track_id=track_id, session=session, _=who)
        points = [[p.lat, p.lon, p.at.isoformat() if p.at else None] for p in row.points]
        tracks_out.append({"id": row.id, "name": row.name, "analysis": row.analysis,
                           "points": points})  # fmt: skip
    linked = cases.case_calls_list(case_id=case_id, session=session, who=who)
    history = None
    if case.get("complainant_phone") and can(who, "GET", "/api/search/callers/{number}"):
        history, _ = _try(
            search.caller_calls, number=case["complainant_phone"], session=session, _=who
        )
    linked_ids = {c["id"] for c in linked}
    earlier = [
        c for c in (jsonable_encoder(history)["calls"] if history is not None else [])
        if c["id"] not in linked_ids
    ]  # fmt: skip
    return page(
        request,
        "case.html",
        who,
        case=case,
        timeline=timeline,
        evidence=items,
        tracks=tracks_out,
        linked_calls=linked,
        earlier_calls=earlier,
        tile_url=admin.tile_url(session),
    )


@router.get("/search", response_model=None)
def search_page(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    q: str = "",
    role: str = "",
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    agent: str = "",
    case: str = "",
    sort: str = "relevance",
) -> HTMLResponse:
    form = {"q": q, "role": role, "from": start or "", "to": end or "", "agent": agent,
            "case": case, "sort": sort}  # fmt: skip
    errors: dict[str, str] = {}
    result = None
    if q.strip() or request.query_params:
        if not q.strip():
            errors["q"] = "required"
        begin = finish = None
        if start or end:
            begin, finish, errors_dates = _dates(request, start, end, 3650)
            errors |= errors_dates
        if role not in ("", "agent", "customer"):
            errors["role"] = "agent or customer"
        if sort not in ("relevance", "newest", "oldest"):
            errors["sort"] = "relevance, newest or oldest"
        if not errors:
            found, message = _try(
                search.search_transcripts,
                runtime=_runtime(request),
                session=session,
                who=who,
                q=q,
                role=role or None,
                from_=begin,
                to=finish,
                agent=agent or None,
                case=case or None,
                sort=sort,
                group="call",
                limit=50,
            )
            if message:
                errors["q"] = message
            else:
                result = jsonable_encoder(found)
    return page(request, "search.html", who, form=form, errors=errors, result=result)


@router.get("/qa", response_model=None)
def qa_page(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    agent: str = "",
) -> HTMLResponse:
    begin, finish, errors = _dates(request, start, end, 7)
    data, error = None, None
    if not errors:
        data, error = _try(
            qa.agents,
            runtime=_runtime(request),
            session=session,
            who=who,
            start=begin,
            end=finish,
            agent=agent or None,
            format="json",
        )
    form = {
        "from": (start if "from" in errors else begin),
        "to": (end if "to" in errors else finish),
        "agent": agent,
    }
    return page(request, "qa.html", who, data=data, error=error, errors=errors, form=form)


@router.get("/reports/weekly", response_model=None)
def weekly_page(
    request: Request, who: PrincipalDep, session: SessionDep, week: str | None = None
) -> HTMLResponse:
    errors: dict[str, str] = {}
    monday = None
    if week:
        try:
            monday = date.fromisoformat(week)
        except ValueError:
            errors["week"] = "not a date"
    data, error = _try(
        cases.review, runtime=_runtime(request), session=session, _=who, week=monday, format="json"
    )
    return page(request, "weekly.html", who, data=data, error=error, errors=errors, week=week)


def _admin_page(
    request: Request,
    who: Any,
    session: Any,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    settings = _runtime(request).settings
    rules_path = settings.qa_rules_file
    shipped = Path(__file__).parents[1] / "qa" / "rules" / "zh.toml"
    rules_text = (form or {}).get("rules") or (
        rules_path.read_text(encoding="utf-8")
        if rules_path and rules_path.exists()
        else shipped.read_text(encoding="utf-8")
    )
    return page(
        request,
        "admin.html",
        who,
        status,
        users=accounts.list_users(session=session),
        keys=accounts.list_keys(session=session),
        queues=admin.queue_targets(session),
        cadences=sorted(CADENCES),
        tile_url=admin.tile_url(session) or "",
        rules_path=str(rules_path) if rules_path else None,
        rules_text=rules_text,
        errors=errors or {},
        form=form or {},
        saved=request.query_params.get("saved"),
    )


@router.get("/admin", response_model=None)
def admin_page(request: Request, who: PrincipalDep, session: SessionDep) -> HTMLResponse:
    return _admin_page(request, who, session)


def _saved(what: str) -> RedirectResponse:
    return RedirectResponse(f"/admin?saved={what}", 303)


@router.post("/admin/queues", response_model=None)
def admin_queue_target(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    name: Annotated[str, Form(max_length=80)],
    rings: Annotated[str, Form(max_length=20)] = "",
    seconds: Annotated[str, Form(max_length=20)] = "",
    cadence: Annotated[str, Form(max_length=40)] = "cn",
) -> Response:
    """A queue's SLA target (rings and/or seconds, ring cadence); errors next to fields."""
    try:
        admin.set_queue_target(session, name, rings, seconds, cadence)
    except admin.FieldErrors as exc:
        form = {"name": name, "rings": rings, "seconds": seconds, "cadence": cadence}
        return _admin_page(request, who, session, exc.fields, form, 422)
    session.commit()
    return _saved("queue")


@router.post("/admin/map", response_model=None)
def admin_map(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    tile_url: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The case page's tile server (empty: tracks are drawn offline)."""
    try:
        admin.set_tile_url(session, tile_url, who.username)
    except admin.FieldErrors as exc:
        return _admin_page(request, who, session, exc.fields, {"tile_url": tile_url}, 422)
    session.commit()
    return _saved("map")


@router.post("/admin/rules", response_model=None)
def admin_rules(
    request: Request,
    who: PrincipalDep,
    session: SessionDep,
    rules: Annotated[str, Form(max_length=200_000)],
) -> Response:
    """Validate QA rules (as the auditor loads them) and save them to the configured file."""
    try:
        written = admin.save_rules(_runtime(request).settings.qa_rules_file, rules)
    except admin.FieldErrors as exc:
        return _admin_page(request, who, session, exc.fields, {"rules": rules}, 422)
    return _saved("rules" if written else "rules-valid-not-saved-set-EARWITNESS_QA_RULES_FILE")
