"""Transcript search and caller history for investigators.

Thin: parameters are validated here (bad values → 422 problem+json), the query
language and everything below it live in :mod:`earwitness.search`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt, period
from earwitness.api.permissions import sees_full_numbers
from earwitness.masking import mask_phone, redact
from earwitness.search import CallerHistory, SearchFilter, SearchOptions, SearchResult, search
from earwitness.search.history import caller_history
from earwitness.search.query import MAX_QUERY_CHARS
from earwitness.timezones import EXAMPLES

router = APIRouter(prefix="/api/search", tags=["search"])


@router.get("", response_model=SearchResult)
def search_transcripts(
    runtime: RuntimeDep,
    session: SessionDep,
    who: PrincipalDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description='words, "phrases", AND/OR/NOT or -word, (groups), prefix*, fuzzy~',
        ),
    ],
    role: Annotated[Literal["agent", "customer", "unknown"] | None, Query()] = None,
    from_: Annotated[
        str | None, Query(alias="from", description=f"call time ≥; {EXAMPLES}")
    ] = None,
    to: Annotated[str | None, Query(description="call time < (a day: its end)")] = None,
    tz: Annotated[str | None, Query(description="IANA zone; default EARWITNESS_TIMEZONE")] = None,
    agent: Annotated[str | None, Query(max_length=120)] = None,
    queue: Annotated[str | None, Query(max_length=80)] = None,
    caller: Annotated[str | None, Query(max_length=80)] = None,
    case: Annotated[str | None, Query(max_length=40, description="case id or number")] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    language: Annotated[str | None, Query(max_length=10)] = None,
    outcome: Annotated[str | None, Query(max_length=20)] = None,
    min_wait_s: Annotated[float | None, Query(ge=0)] = None,
    min_rings: Annotated[DbInt | None, Query(ge=0)] = None,
    sort: Annotated[Literal["relevance", "newest", "oldest"], Query()] = "relevance",
    group: Annotated[Literal["segment", "call"], Query()] = "segment",
    fuzzy: Annotated[bool, Query(description="treat every term as fuzzy (term~)")] = False,
    limit: Annotated[DbInt, Query(ge=1, le=200)] = 20,
    offset: Annotated[DbInt, Query(ge=0, le=10_000)] = 0,
) -> SearchResult:
    """Segments matching the query, with highlights and a link playing the audio from there."""
    when = period(runtime, from_, to, tz)  # days and times without offset: local to tz
    filters = SearchFilter(
        start=when.start,
        end=when.end,
        role=role,
        agent=agent,
        queue=queue,
        caller=caller,
        case=case,
        category=category,
        language=language,
        outcome=outcome,
        min_wait_s=min_wait_s,
        min_rings=min_rings,
    )
    options = SearchOptions(
        sort=sort, limit=limit, offset=offset, group_by_call=group == "call", fuzzy=fuzzy
    )
    result = search(session, q, filters, options)
    if not sees_full_numbers(who):
        hits = [*result.hits, *(h for g in result.groups or [] for h in g.hits)]
        for hit in hits:
            # the same masking in the spoken text (same length, so highlights still fit)
            hit.text, hit.html = redact((hit.text, hit.html), [hit.caller])
            hit.caller = mask_phone(hit.caller)
    return result


@router.get("/callers/{number}", response_model=CallerHistory)
def caller_calls(number: str, session: SessionDep, _: PrincipalDep) -> CallerHistory:
    """Every call and case of one phone number, newest first."""
    return caller_history(session, number)
