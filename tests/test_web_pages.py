"""The web UI's pages in-process (no browser): languages, error pages, form errors, the
demo history, and that pages show what the API would show the same user."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from earwitness.config import load_settings
from earwitness.demo.history import AGENTS, ANSWER_RINGS, QUEUES, load_history, week_of_calls
from earwitness.models import AgentAttempt, AgentStateSpan, Call, CallTransfer
from earwitness.runtime import Runtime
from earwitness.telephony.persist import SlaDefaults
from earwitness.web.i18n import ZH, pick_language
from tests.accounts_helpers import api_client

TEMPLATES = Path(__file__).parents[1] / "earwitness" / "web" / "templates"
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("web-pages"), demo="never", timezone="Asia/Shanghai"
    )
    rt = Runtime.open(settings)
    with rt.db.session() as session:
        load_history(session, SlaDefaults(), datetime.now(UTC), ZoneInfo("Asia/Shanghai"))
        session.commit()
    try:
        yield rt
    finally:
        rt.close()


def test_every_template_string_has_a_chinese_translation() -> None:
    used: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\('([^']+)'\)""", template.read_text()))
    assert len(used) > 100
    missing = sorted(s for s in used if s not in ZH)
    assert not missing, missing


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "fr-FR, zh-TW;q=0.5, en;q=0.4", "zh"),
        (None, "de", "en"),
        (None, None, "en"),
        ("en", "zh-CN", "en"),  # the switch wins over the browser
        ("xx", "zh-CN", "zh"),  # a cookie naming no language of ours is ignored
    ],
)
def test_language_from_cookie_then_accept_language(
    cookie: str | None, header: str | None, expected: str
) -> None:
    assert pick_language(cookie, header) == expected


def test_pages_are_refused_as_pages_and_the_api_stays_json(runtime: Runtime) -> None:
    with api_client(runtime, "agent", pbx_agent="Local/Lucy Zhao@demo") as agent:
        page = agent.get("/cases", headers=HTML)
        assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
        assert "<h1>403" in page.text and "may not GET /cases" in page.text
        api = agent.get("/api/cases", headers=HTML)
        assert api.status_code == 403
        assert api.headers["content-type"].startswith("application/problem+json")
        missing = agent.get("/calls/999999", headers=HTML)
        assert missing.status_code == 404 and "<h1>404" in missing.text
        spent = agent.get("/login", params={"token": "forged"}, headers=HTML)
        assert spent.status_code == 403 and "login link is invalid" in spent.text
        assert spent.headers["content-type"].startswith("text/html")
        # the agent's call list holds their own calls only, as /api/calls does
        # (the page shows 100 a page; how many calls the agent has depends on the time of day)
        own = agent.get("/api/calls", params={"limit": 100}).json()
        listed = agent.get("/calls", params={"from": "2020-01-01"}, headers=HTML).text
        shown = set(re.findall(r'<a href="/calls/(\d+)">', listed))
        assert shown and shown == {str(c["id"]) for c in own["items"]}


def test_forms_show_errors_next_to_their_fields(runtime: Runtime) -> None:
    with api_client(runtime, "qa") as qa:
        bad_date = qa.get("/calls", params={"from": "2026-13-01"}, headers=HTML)
        assert bad_date.status_code == 200
        assert re.search(r'data-for="from">not a date<', bad_date.text)
        backwards = qa.get("/qa", params={"from": "2026-11-20", "to": "2026-11-01"}, headers=HTML)
        assert re.search(r'data-for="to">the start must be before the end<', backwards.text)
        syntax = qa.get("/search", params={"q": "(refund"}, headers=HTML)
        assert syntax.status_code == 200
        api = qa.get("/api/search", params={"q": "(refund"})
        assert api.status_code == 422
        message = api.json()["detail"]
        assert f'data-for="q">{message}<' in syntax.text.replace("&#39;", "'").replace("&#34;", '"')
        empty = qa.get("/search", params={"q": ""}, headers=HTML)
        assert 'data-for="q">required<' in empty.text


def test_wallboard_page_carries_the_live_snapshot_masked(runtime: Runtime) -> None:
    with api_client(runtime, "lead") as lead:
        page = lead.get("/", headers={**HTML, "Accept-Language": "zh-CN"})
        assert page.status_code == 200 and "监控大屏" in page.text
        assert 'src="/static/wallboard.js"' in page.text
        assert "https://" not in page.text  # no CDN: every asset is served locally
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            assert lead.get(asset).status_code == 200, asset
        members = lead.get("/api/live").json()["members"]
        assert {m["state"] for m in members} >= {"available", "paused", "logged_out"}
        assert {m["reason"] for m in members if m["state"] == "paused"} == {"lunch", "training"}


def test_demo_history_goes_through_the_tracker(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    again = week_of_calls(now, ZoneInfo("Asia/Shanghai"), 5.0)
    assert [c.linkedid for c in again] == [
        c.linkedid for c in week_of_calls(now, ZoneInfo("Asia/Shanghai"), 5.0)
    ]
    with runtime.db.session() as session:
        calls = session.scalars(select(Call)).all()
        assert len(calls) > 300 and {c.source for c in calls} == {"demo"}
        assert {c.queue.name for c in calls if c.queue} == set(QUEUES)
        answered = [c for c in calls if c.outcome == "answered"]
        abandoned = [c for c in calls if c.outcome == "abandoned"]
        assert 0.03 < len(abandoned) / len(calls) < 0.15
        # rings come from the tracker's waits: answers without a RONA fall in 1-6 rings
        rona_calls = set(
            session.scalars(select(AgentAttempt.call_id).where(AgentAttempt.result == "rona"))
        )
        plain = [c for c in answered if c.id not in rona_calls]
        assert {c.rings for c in plain} == set(ANSWER_RINGS)
        assert all(c.wait_s is not None and c.wait_s > 15 for c in answered if c.id in rona_calls)
        assert rona_calls and session.scalar(select(func.count()).select_from(CallTransfer))
        agents = {c.agent.name for c in answered if c.agent}
        assert agents == {a.name for a in AGENTS}
        hours = [c.entered_at.astimezone(ZoneInfo("Asia/Shanghai")).hour for c in calls]
        assert sum(9 <= h < 12 for h in hours) > 5 * sum(2 <= h < 5 for h in hours)
        assert session.scalar(select(func.count()).select_from(AgentStateSpan)) >= len(AGENTS)


def test_admin_settings_validate_before_saving(runtime: Runtime, tmp_path: Path) -> None:
    from earwitness.models import Queue, UiSetting

    with api_client(runtime, "admin") as root:
        bad = root.post("/admin/queues", data={"name": "complaints", "rings": "0", "seconds": "x"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
        assert re.search(r'data-for="rings">between 1 and 100<', bad.text)
        assert re.search(r'data-for="seconds">not a number<', bad.text)
        ok = root.post(
            "/admin/queues",
            data={"name": "complaints", "rings": "", "seconds": "20", "cadence": "us"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        tile = root.post("/admin/map", data={"tile_url": "javascript:alert(1)"})
        assert tile.status_code == 422 and "{z}, {x} and {y}" in tile.text
        rules = root.post("/admin/rules", data={"rules": "[[rule]]\nid = 'x'\nbogus = 1\n"})
        assert rules.status_code == 422 and 'data-for="rules">' in rules.text
        sla = root.get("/api/sla", params={"from": "2020-01-01", "queue": "complaints"}).json()
        target = next(g for g in sla["groups"] if g["key"] == "complaints")["target"]
        assert target["seconds"] == 20 and target["rings"] is None
    with runtime.db.session() as session:
        queue = session.query(Queue).filter_by(name="complaints").one()
        assert (queue.sla_rings, queue.sla_seconds, queue.cadence) == (None, 20.0, "us")
        assert session.get(UiSetting, "map_tile_url") is None  # the bad URL was not stored
        queue.sla_rings, queue.sla_seconds, queue.cadence = 3, None, "cn"
        session.commit()
