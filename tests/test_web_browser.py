"""The web UI end to end: Debian's chromium (headless, Playwright) against a real
``earwitness serve`` on a free port with the demo data (SQLite, inline worker).

One server and one browser for the module; tests that need transcripts (search, QA)
come last, so the demo's transcription runs while the others do. Every page is
screenshotted into the test's artefact folder (``$EARWITNESS_ARTIFACTS`` or pytest's
tmp dir) and copied to /tmp/web_shots/ for people to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api

from earwitness.config import load_settings
from earwitness.runtime import Runtime
from earwitness.telephony.ami.protocol import AmiMessage
from earwitness.telephony.persist import SlaDefaults, save_tracked
from earwitness.telephony.tracker import CallTracker
from tests.polling import wait_until
from tests.web_helpers import Server, launch_browser, log_in, running_server, shoot

pytestmark = pytest.mark.slow

ROLES = {"lead1": "lead", "inv1": "investigator", "qa1": "qa", "admin1": "admin"}
AGENT = ("agent1", "agent", "Local/Lucy Zhao@demo")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("EARWITNESS_ARTIFACTS")
    return Path(base) / "web" if base else tmp_path_factory.mktemp("web_shots")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("web") / "data"
    with running_server(data, EARWITNESS_TIMEZONE="Asia/Shanghai") as srv:
        for name, role in ROLES.items():
            srv.add_user(name, role)
        srv.add_user(AGENT[0], AGENT[1], pbx_agent=AGENT[2])
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = launch_browser(p)
        yield chromium
        chromium.close()


def session_as(browser: Any, server: Server, user: str, **context: Any) -> Any:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    log_in(page, server, user)
    return page


def test_login_per_role_lands_on_its_page(browser: Any, server: Server, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "/")
    assert page.url.startswith(server.url + "/login?next=")
    page.click('button[type="submit"]')  # empty form: checked in the browser, next to the fields
    assert page.locator('.field-error[data-for="username"]').inner_text() == "required"
    page.fill('input[name="username"]', "lead1")
    page.fill('input[name="password"]', "wrong password")
    page.click('button[type="submit"]')
    assert "wrong username or password" in page.locator(".message.error").inner_text()
    shoot(page, shots, "login")
    page.close()
    for user in [*ROLES, AGENT[0]]:
        page = session_as(browser, server, user)
        assert page.url == server.url + "/", (user, page.url)
        wallboard = page.locator("#live-dot").count() == 1
        assert wallboard == (user in ("lead1", "admin1")), user
        nav = page.locator("header nav a").all_inner_texts()
        assert ("Wallboard" in nav) == (user in ("lead1", "admin1")), (user, nav)
        assert ("Admin" in nav) == (user == "admin1"), (user, nav)
        assert ("Cases" in nav) == (user in ("inv1", "admin1")), (user, nav)
        page.context.close()


def _event(name: str, **fields: str) -> AmiMessage:
    return AmiMessage([("Event", name), *fields.items()], "event", name, 0.0)


def test_wallboard_updates_when_a_call_event_arrives(
    browser: Any, server: Server, shots: Path
) -> None:
    page = session_as(browser, server, "lead1")
    page.wait_for_selector("#live-dot:not(.off)")
    waiting = page.locator('[data-k="calls_waiting"]')
    assert waiting.inner_text() == "0"
    page.wait_for_selector(".queue-sl, #queues p")
    shoot(page, shots, "wallboard")
    # A caller joins the queue: the event goes through the live tracker into the database
    # the server reads, exactly as the AMI service would write it.
    tracker = CallTracker()
    runtime = Runtime.open(load_settings(data_dir=server.data_dir, demo="never"))
    joined = datetime.now(UTC) - timedelta(seconds=20)  # already past 3 rings (15 s)
    base = {"Linkedid": "web-live-1", "Channel": "PJSIP/trunk-web1", "Queue": "complaints"}
    try:
        with runtime.db.session() as session:
            for call in tracker.handle(
                _event("QueueCallerJoin", **base, Uniqueid="web-live-1",
                       CallerIDNum="13912345670", Position="1"),
                joined, "event",
            ):  # fmt: skip
                save_tracked(session, call, SlaDefaults())
            session.commit()
        page.wait_for_function(
            "document.querySelector('[data-k=\"calls_waiting\"]').textContent === '1'",
            timeout=15000,
        )
        row = page.locator("#waiting tbody tr").first
        assert "139****5670" in row.inner_text()  # a lead sees the number masked
        assert "13912345670" not in page.content()
        assert page.locator("#tile-over.alert").count() == 1  # past the ring target
        assert int(page.locator('[data-k="longest_rings"]').inner_text().split()[0]) >= 5
        shoot(page, shots, "wallboard-alert")
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        small = phone.new_page()
        log_in(small, server, "lead1")
        small.wait_for_function(
            "document.querySelector('[data-k=\"calls_waiting\"]').textContent === '1'"
        )
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"wallboard scrolls sideways on a phone ({width} px)"
        shoot(small, shots, "wallboard-phone")
        phone.close()
        answered = datetime.now(UTC)
        with runtime.db.session() as session:
            for name, extra in (
                ("AgentConnect", {"Interface": "PJSIP/8004", "MemberName": "王芳",
                                  "HoldTime": "20"}),
                ("Hangup", {}),
            ):  # fmt: skip
                for call in tracker.handle(_event(name, **base, **extra), answered, "event"):
                    save_tracked(session, call, SlaDefaults())
            session.commit()
        page.wait_for_function(
            "document.querySelector('[data-k=\"calls_waiting\"]').textContent === '0'",
            timeout=15000,
        )
        assert page.locator("#tile-over.alert").count() == 0
    finally:
        runtime.close()
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_wallboard_in_chinese_from_the_browser_language(
    browser: Any, server: Server, shots: Path
) -> None:
    page = session_as(browser, server, "lead1", locale="zh-CN")
    assert "监控大屏" in page.locator("h1").first.inner_text(), page.inner_text("main")
    page.wait_for_selector(".queue-sl, #queues p")
    shoot(page, shots, "wallboard-zh")
    page.click('a[data-lang="en"]')  # the switch wins over the browser's language
    page.wait_for_load_state("load")
    assert "Wallboard" in page.locator("h1").first.inner_text()
    page.context.close()


def test_sla_report_charts_and_field_errors(browser: Any, server: Server, shots: Path) -> None:
    page = session_as(browser, server, "lead1")
    page.goto(server.url + "/reports/sla")
    page.wait_for_selector("#sla-table tbody tr td.num")
    queues = page.locator("#sla-table tbody tr td:first-child").all_inner_texts()
    assert {"complaints", "road-rescue", "installation"} <= set(queues)
    assert page.locator("#chart-sl canvas").count() == 1
    assert "format=xlsx" in (page.locator("#xlsx").get_attribute("href") or "")
    shoot(page, shots, "sla")
    page.fill('input[name="from"]', "2026-12-31")
    page.fill('input[name="to"]', "2026-01-01")
    page.click('#sla-form button[type="submit"]')
    assert "before" in page.locator('.field-error[data-for="to"]').inner_text()
    page.context.close()


def test_case_page_shows_the_track_map_and_timeline(
    browser: Any, server: Server, shots: Path
) -> None:
    page = session_as(browser, server, "inv1")
    page.goto(server.url + "/cases")
    assert page.locator("#cases tbody tr.over").count() >= 1  # demo case: breached first
    shoot(page, shots, "cases")
    page.click("#cases tbody tr >> nth=0 >> a")
    page.wait_for_selector("#trackmap")
    drawn = page.evaluate(
        """() => { const c = document.getElementById('trackmap');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let blue = 0, amber = 0, green = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i] === 31 && d[i+1] === 95 && d[i+2] === 174) blue++;
          if (d[i] === 217 && d[i+1] === 140 && d[i+2] === 0) amber++;
          if (d[i] === 46 && d[i+1] === 125 && d[i+2] === 50) green++;
        } return {blue, amber, green}; }"""
    )
    assert drawn["blue"] > 500 and drawn["amber"] > 50 and drawn["green"] > 20, drawn
    kinds = page.locator("#timeline li .badge").all_inner_texts()
    assert {"stop", "arrival", "call"} <= set(kinds), kinds
    page.locator("button.verify").first.click()
    page.wait_for_selector(".verdict .badge.green")
    shoot(page, shots, "case")
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_agent_is_refused_a_case_page(browser: Any, server: Server, shots: Path) -> None:
    page = session_as(browser, server, AGENT[0])
    response = page.goto(server.url + "/cases/1")
    assert response is not None and response.status == 403
    assert "text/html" in (response.headers.get("content-type") or "")
    assert page.locator("h1").inner_text().startswith("403")
    assert not page.locator("body").inner_text().lstrip().startswith("{")
    shoot(page, shots, "forbidden")
    page.goto(server.url + "/calls")
    agents = set(page.locator("table tbody tr td:nth-child(5)").all_inner_texts())
    assert agents == {"Lucy Zhao"}, agents  # an agent's own calls only
    shoot(page, shots, "calls-agent")
    page.context.close()


def test_admin_form_errors_sit_next_to_the_field(browser: Any, server: Server, shots: Path) -> None:
    page = session_as(browser, server, "admin1")
    page.goto(server.url + "/admin")
    page.fill('#add-user input[name="username"]', "lead1")  # exists: the API says 409
    page.fill('#add-user input[name="password"]', "short")
    page.click('#add-user button[type="submit"]')
    assert page.locator('#add-user .field-error[data-for="password"]').inner_text() != ""
    page.fill('#add-user input[name="password"]', "long enough password")
    page.click('#add-user button[type="submit"]')
    page.wait_for_selector("#message:not([hidden])")
    assert "lead1" in page.locator("#message").inner_text()
    assert not page.locator("#message").inner_text().lstrip().startswith("{")
    shoot(page, shots, "admin")
    # an admin sets a tile server: the case page switches from the canvas to Leaflet
    page.fill('#map-form input[name="tile_url"]', "http://127.0.0.1:9/{z}/{x}/{y}.png")
    with page.expect_navigation():
        page.click('#map-form button[type="submit"]')
    assert "Saved" in page.locator("p[role=status].message.ok").inner_text()
    inv = session_as(browser, server, "inv1")
    inv.goto(server.url + "/cases/1")
    inv.wait_for_selector("#tilemap.leaflet-container .leaflet-overlay-pane path")
    assert inv.locator("#trackmap").count() == 0
    shoot(inv, shots, "case-leaflet")
    inv.context.close()
    page.fill('#map-form input[name="tile_url"]', "")
    with page.expect_navigation():
        page.click('#map-form button[type="submit"]')
    page.context.close()


def _transcribed(server: Server) -> bool:
    with server.api() as api:
        found = api.get("/api/search", params={"q": "refund"}).json()
        audited = api.get("/api/qa/calls/1")
    return found.get("total", 0) > 0 and audited.status_code == 200


def test_search_and_play_from_a_hit(browser: Any, server: Server, shots: Path) -> None:
    wait_until(lambda: _transcribed(server), 300, "the demo transcripts to be indexed")
    page = session_as(browser, server, "qa1")
    page.goto(server.url + "/search?q=refund")
    hit = page.locator(".hit").first
    assert "refund" in hit.locator("mark").first.inner_text().lower()
    start = float(hit.locator("button.play-hit").get_attribute("data-t") or "nan")
    hit.locator("button.play-hit").click()
    page.wait_for_function(
        f"(() => {{ const a = document.getElementById('hit-audio');"
        f" return a && !a.paused && a.currentTime >= {start - 0.5}; }})()",
        timeout=20000,
    )
    shoot(page, shots, "search")
    page.fill('input[name="q"]', '"unclosed')
    page.click('#search-form button[type="submit"]')
    error = page.locator('.field-error[data-for="q"]').inner_text()
    assert error and not error.startswith("{"), error
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_call_page_player_follows_the_transcript_and_qa_override(
    browser: Any, server: Server, shots: Path
) -> None:
    wait_until(lambda: _transcribed(server), 300, "the demo audit")
    page = session_as(browser, server, "qa1")
    page.goto(server.url + "/calls/1")
    page.wait_for_selector("#transcript .line")
    lines = page.locator("#transcript .line")
    assert lines.count() >= 5
    third = lines.nth(2)
    at = float(third.get_attribute("data-start") or "nan")
    third.click()
    page.wait_for_function(
        f"(() => {{ const a = document.getElementById('audio'); return !a.paused &&"
        f" a.currentTime >= {at - 0.2}; }})()",
        timeout=20000,
    )
    page.wait_for_selector("#transcript .line.current")
    page.evaluate("document.getElementById('audio').pause()")
    roles = set(page.locator("#transcript .line .who").all_inner_texts())
    assert roles == {"agent", "customer"}, roles
    failed = page.locator("#findings tr", has=page.locator(".badge.red")).first
    rule = failed.get_attribute("data-rule")
    form = page.locator(f'form.override[data-rule="{rule}"]')
    form.locator("button").click()  # no reason: refused in the page, next to the field
    assert form.locator('.field-error[data-for="reason"]').inner_text() == "required"
    form.locator('select[name="status"]').select_option("passed")
    form.locator('input[name="reason"]').fill("checked by ear; the recogniser missed it")
    form.locator("button").click()
    page.wait_for_selector(f'#findings tr[data-rule="{rule}"] >> text=Overridden')
    row = page.locator(f'#findings tr[data-rule="{rule}"]').inner_text()
    assert "checked by ear" in row and "qa1" in row
    page.wait_for_selector("#transcript .line")
    page.wait_for_function("window.ewWaveDrawn === true")  # both channels decoded and drawn
    shoot(page, shots, "call")
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_case_facts_are_extracted_then_confirmed(browser: Any, server: Server, shots: Path) -> None:
    wait_until(lambda: _transcribed(server), 300, "the demo transcripts")
    page = session_as(browser, server, "inv1")
    page.goto(server.url + "/cases/1")
    with page.expect_navigation():
        page.click("#facts-refresh")  # suggestions from the case's transcripts
    rows = page.locator("#facts tr[data-fact]")
    assert rows.count() >= 1
    first = rows.first
    fact_id = first.get_attribute("data-fact")
    with page.expect_navigation():
        first.locator('button[value="confirmed"]').click()
    row = page.locator(f'#facts tr[data-fact="{fact_id}"]')
    assert "confirmed" in row.locator(".badge").inner_text()
    form = page.locator(f'#facts tr[data-fact="{fact_id}"] form')
    form.locator('input[name="value"]').fill("")
    form.locator('button[value="edited"]').click()  # an edit needs a value: said at the field
    assert form.locator('.field-error[data-for="value"]').inner_text() == "required"
    shoot(page, shots, "case-facts")
    page.context.close()


def test_every_page_renders_and_is_screenshotted(browser: Any, server: Server, shots: Path) -> None:
    page = session_as(browser, server, "qa1")
    page.goto(server.url + "/calls")
    page.evaluate("window.stillHere = true")
    first = page.locator("table tbody tr td:first-child").first.inner_text()
    page.click("#next-page")  # htmx swaps the list in place: no full page load
    page.wait_for_function("document.querySelector('#calls-page p').textContent.trim()"
                           ".startsWith('101')")  # fmt: skip
    assert page.evaluate("window.stillHere") is True
    assert page.locator("table tbody tr td:first-child").first.inner_text() != first
    page.context.close()
    pages = {
        "qa1": ["/qa", "/reports/weekly", "/calls"],
        "lead1": ["/reports/weekly", "/calls"],
        "admin1": ["/", "/reports/sla", "/cases", "/search", "/qa"],
    }
    for user, paths in pages.items():
        page = session_as(browser, server, user)
        for path in paths:
            response = page.goto(server.url + path)
            assert response is not None and response.status == 200, (user, path)
            page.wait_for_load_state("networkidle") if path != "/" else None
            name = re.sub(r"[^a-z0-9]+", "-", f"{user}{path}").strip("-")
            shoot(page, shots, name)
        assert not page.js_errors, (user, page.js_errors)
        page.context.close()
