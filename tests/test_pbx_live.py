"""Issue 5 end to end: a real Asterisk 22, the earwitness PBX service, the HTTP API.

Calls are driven through AMI Originate of Local channels (tests/pbx); earwitness
only listens on its own AMI connection, exactly as in production, and every
assertion reads what the API reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import update

from earwitness.config import load_settings
from earwitness.models import Queue
from earwitness.runtime import Runtime
from earwitness.telephony.rings import Cadence, ring_count
from tests.accounts_helpers import api_client
from tests.pbx.asterisk import Asterisk
from tests.polling import wait_until
from tests.tcp_proxy import TcpProxy

pytest_plugins = ["tests.pbx.fixtures"]
pytestmark = pytest.mark.slow


@dataclass
class Live:
    runtime: Runtime
    api: TestClient
    pbx: Asterisk
    proxy: TcpProxy

    def calls(self, **params: Any) -> list[dict[str, Any]]:
        self.pbx.assert_running()  # a crashed Asterisk says so, not a poll timing out
        resp = self.api.get("/api/calls", params={"limit": 500, **params})
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]  # type: ignore[no-any-return]

    def finished(self, at_least: int = 1) -> list[dict[str, Any]] | None:
        """The finished calls once there are ``at_least`` of them, else None (for polling)."""
        done = [c for c in self.calls() if c["outcome"] != "in_progress"]
        return done if len(done) >= at_least else None

    def service(self) -> Any:
        return self.runtime.services["ami"]


@pytest.fixture
def live(asterisk: Asterisk, tmp_path: Path) -> Iterator[Live]:
    proxy = TcpProxy(asterisk.ami_host, asterisk.ami_port)
    settings = load_settings(
        data_dir=tmp_path / "data",
        demo="never",
        job_poll_s=0.1,
        ami_host="127.0.0.1",
        ami_port=proxy.port,
        ami_user=asterisk.ami_user,
        ami_secret=asterisk.ami_secret,
        ami_ping_interval_s=5.0,
        ami_recording_dir=asterisk.recordings_dir,
        ami_queue_log_path=asterisk.log_dir / "queue_log",
    )
    runtime = Runtime.open(settings)
    runtime.start_worker()
    runtime.start_services()
    try:
        with api_client(runtime) as api:
            result = Live(runtime, api, asterisk, proxy)
            wait_until(lambda: api.get("/api/health").json()["ami"]["ok"], 30, "AMI login")
            yield result
    finally:
        runtime.close()
        proxy.close()


def bridged_agent(ami: Any) -> Any:
    """The AgentConnect of the next answer, once the agent's leg is in the bridge: a
    transfer sent between AgentConnect and BridgeEnter is refused (seen: Response Error)."""
    connect = ami.wait_event(lambda m: m.event == "AgentConnect", timeout=20)
    agent = connect["DestChannel"]
    ami.wait_event(lambda m: m.event == "BridgeEnter" and m.get("Channel") == agent, timeout=5)
    return connect


def originate(live: Live, **kw: Any) -> None:
    ami = live.pbx.ami()
    try:
        response = live.pbx.originate_queue_call(ami, **kw)
        assert response.get("Response") == "Success", response
    finally:
        ami.close()


@pytest.mark.asterisk(agents=4, member_timeout=30)
def test_known_answer_delays_give_seconds_and_rings(live: Live) -> None:
    delays = {"13900000003": 3, "13900000008": 8, "13900000014": 14, "13900000021": 21}
    for caller, delay in delays.items():
        originate(live, callerid=caller, agent_delay=delay, agent_talk=2)
    calls = wait_until(lambda: live.finished(4), 60, "4 finished calls")
    cn, us = Cadence.for_country("cn"), Cadence.for_country("us")
    expected_cn = {3: 1, 8: 2, 14: 3, 21: 5}
    expected_us = {3: 1, 8: 2, 14: 3, 21: 4}
    for call in calls:
        delay = delays[call["caller"]]
        assert call["outcome"] == "answered" and call["queue"] == "complaints"
        assert call["wait_s"] == pytest.approx(delay, abs=0.5)
        assert call["rings"] == expected_cn[delay] and call["cadence"] == "cn"
        assert ring_count(call["wait_s"], us) == expected_us[delay]
        assert call["time_source"] == "event"
        assert ring_count(call["wait_s"], cn) == call["rings"]
    sla = live.api.get("/api/sla", params={"group_by": "queue"}).json()["groups"][0]
    assert sla["offered"] == 4 and sla["answered"] == 4
    assert sla["answered_within_target"] == 3  # 3 rings (15 s): 3, 8 and 14 s; not 21 s
    assert sla["service_level_pct"] == pytest.approx(75.0)
    assert sla["rings_histogram"] == {"1": 1, "2": 1, "3": 1, "5": 1}
    # The same calls under a US cadence (6 s): the queue's own target decides.
    with live.runtime.db.session() as s:
        s.execute(update(Queue).where(Queue.name == "complaints").values(cadence="us"))
    us_sla = live.api.get("/api/sla", params={"group_by": "queue"}).json()["groups"][0]
    assert us_sla["rings_histogram"] == {"1": 1, "2": 1, "3": 1, "4": 1}
    assert us_sla["target"]["cadence"]["name"] == "us"


@pytest.mark.asterisk(agents=2, member_timeout=5, retry=1)
def test_abandon_and_rona_are_reported(live: Live) -> None:
    originate(live, callerid="13900000100", agent_delay=60, abandon_after=4)
    wait_until(lambda: live.finished(), 30, "the abandoned call")
    originate(live, callerid="13900000200", agent_delay=2, agent_delays={"agent1": 60})
    calls = wait_until(lambda: live.finished(2), 40, "the RONA call")
    abandoned = next(c for c in calls if c["caller"] == "13900000100")
    rona = next(c for c in calls if c["caller"] == "13900000200")
    assert abandoned["outcome"] == "abandoned" and abandoned["answered_at"] is None
    assert abandoned["wait_s"] == pytest.approx(4, abs=0.5)
    assert rona["outcome"] == "answered" and rona["agent"] == "agent2"
    assert rona["wait_s"] == pytest.approx(5 + 1 + 2, abs=0.7)
    detail = live.api.get(f"/api/calls/{rona['id']}").json()
    assert [(a["agent"], a["result"]) for a in detail["attempts"]][:2] == [
        ("agent1", "rona"),
        ("agent2", "answered"),
    ]
    assert [e["name"] for e in detail["events"]][0] == "QueueCallerJoin"
    by_agent = live.api.get("/api/sla", params={"group_by": "agent"}).json()["groups"]
    agent1 = next(g for g in by_agent if g["key"] == "agent1")
    assert agent1["rona_count"] >= 1
    assert live.api.get("/api/calls", params={"outcome": "abandoned"}).json()["total"] == 1


@pytest.mark.asterisk(agents=3)
def test_direct_call_and_blind_transfer_stay_single_calls(live: Live) -> None:
    ami = live.pbx.ami()
    try:
        live.pbx.originate_direct_call(ami, target="agent3", callerid="13900000300",
                                       agent_delay=4, agent_talk=2)  # fmt: skip
        wait_until(lambda: live.finished(), 30, "the direct call")
        live.pbx.originate_queue_call(ami, callerid="13900000400", agent_delay=2, agent_talk=20)
        connect = bridged_agent(ami)
        result = ami.blind_transfer(connect["DestChannel"], "agent3")
        assert result.get("Response") == "Success", result
    finally:
        ami.close()
    calls = wait_until(lambda: live.finished(2), 60, "the transferred call")
    direct = next(c for c in calls if c["caller"] == "13900000300")
    moved = next(c for c in calls if c["caller"] == "13900000400")
    assert direct["kind"] == "direct" and direct["outcome"] == "answered"
    assert direct["wait_s"] == pytest.approx(4, abs=0.5)
    assert moved["outcome"] == "answered" and moved["agent"] == "agent1"
    assert moved["transferred_to"] and "agent3" in moved["transferred_to"]
    assert len(live.calls(caller="13900000400")) == 1


@pytest.mark.asterisk(agents=24, member_timeout=15)
def test_twenty_concurrent_calls(live: Live) -> None:
    delays = {f"1390000{n:04d}": 1 + n % 4 for n in range(20)}
    ami = live.pbx.ami()
    try:
        for caller, delay in delays.items():
            live.pbx.originate_queue_call(ami, callerid=caller, agent_delay=delay, agent_talk=2)
    finally:
        ami.close()
    calls = wait_until(lambda: live.finished(20), 90, "20 finished calls")
    assert sorted(c["caller"] for c in calls) == sorted(delays)
    assert all(c["outcome"] == "answered" for c in calls)
    for c in calls:
        assert c["wait_s"] >= delays[c["caller"]] - 0.1
    total = live.api.get("/api/sla", params={"group_by": "total"}).json()["groups"][0]
    assert total["offered"] == 20 and total["answered"] == 20


@pytest.mark.asterisk(agents=2, member_timeout=30)
def test_stereo_recording_has_customer_left_agent_right(live: Live) -> None:
    pbx = live.pbx
    pbx.make_prompt("ew-cust", "My rescue truck is fifty minutes late and nobody called me.")
    pbx.make_prompt("ew-agent", "I am very sorry. The dispatcher will call you in ten minutes.",
                    voice="en-gb")  # fmt: skip
    # Customer speaks 1 s after answer; the agent answers 2 s into the call, speaks at 9 s.
    originate(live, callerid="13900000500", agent_delay=2, agent_talk=6, phone_say="ew-cust",
              phone_say_wait=3, agent_say="ew-agent", agent_say_wait=7)  # fmt: skip
    call = wait_until(lambda: live.finished(), 60, "the recorded call")[0]
    rec_id = wait_until(
        lambda: live.api.get(f"/api/calls/{call['id']}").json()["recording_id"], 10, "recording"
    )
    job = wait_until(
        lambda: next(
            (j for j in live.api.get("/api/jobs").json()
             if j["kind"] == "recording.ingest" and j["state"] in ("succeeded", "failed")),
            None,
        ),
        60,
        "the recording ingest job",
    )  # fmt: skip
    assert job["state"] == "succeeded", job
    with live.runtime.db.session() as s:
        from earwitness.models import Recording

        rec = s.get(Recording, rec_id)
        assert rec is not None and rec.state == "ingested", (rec.state, rec.error)
        assert rec.channels == 2 and rec.header_repaired and rec.sha256
        blob = live.runtime.blobs.path(rec.sha256)
    audio, rate = sf.read(str(blob), always_2d=True)
    assert audio.shape[1] == 2 and rate == 8000
    window = rate // 2

    def active(channel: int) -> np.ndarray:
        frames = audio[: len(audio) // window * window, channel].reshape(-1, window)
        return np.sqrt((frames**2).mean(axis=1)) > 0.01

    cust, agent = active(0), active(1)
    assert cust.sum() >= 4, "customer speech missing on channel 0"
    assert agent.sum() >= 4, "agent speech missing on channel 1"
    # They speak at different times: their busiest stretches must not coincide.
    assert np.argmax(np.convolve(cust, np.ones(4), "same")) < np.argmax(
        np.convolve(agent, np.ones(4), "same")
    )


@pytest.mark.asterisk(agents=2)
def test_idle_link_survives_then_tracks_a_call(live: Live) -> None:
    client = live.service().client
    start = client.counters.pings
    # Sixty seconds of silence on AMI, measured by the keep-alives sent meanwhile (5 s each).
    wait_until(lambda: client.counters.pings - start >= 12, 90, "60 s of idle keep-alives")
    assert client.counters.disconnects == 0 and client.counters.missed_pongs == 0
    originate(live, callerid="13900000600", agent_delay=2, agent_talk=1)
    call = wait_until(lambda: live.finished(), 30, "a call after idling")[0]
    assert call["outcome"] == "answered" and call["caller"] == "13900000600"


@pytest.mark.asterisk(agents=3, member_timeout=30)
def test_restart_and_link_drop_lose_nothing_and_count_nothing_twice(live: Live) -> None:
    service = live.service()
    # 1. Asterisk is killed while a call is connected; it comes back; a new call follows.
    originate(live, callerid="13900000701", agent_delay=1, agent_talk=60)
    wait_until(lambda: [c for c in live.calls() if c["answered_at"]], 20, "call 701 answered")
    logins = service.client.counters.logins
    live.pbx.kill()
    live.pbx.start()
    wait_until(lambda: service.client.counters.logins > logins, 60, "re-login after restart")
    first = wait_until(lambda: live.finished(), 20, "call 701 closed by resync")[0]
    assert first["caller"] == "13900000701" and first["outcome"] == "answered"
    assert first["time_source"] == "resync"

    # 2. The AMI link drops. Call 702 is talking across the gap, 703 begins and ends inside
    #    it, 704 begins inside it and goes on after it.
    originate(live, callerid="13900000702", agent_delay=1, agent_talk=8)
    wait_until(
        lambda: [c for c in live.calls(caller="13900000702") if c["answered_at"]],
        20,
        "702 answered",
    )
    logins = service.client.counters.logins
    live.proxy.cut()
    originate(live, callerid="13900000703", agent_delay=1, agent_talk=1)
    originate(live, callerid="13900000704", agent_delay=1, agent_talk=20)
    queue_log = live.pbx.log_dir / "queue_log"
    wait_until(
        lambda: (
            queue_log.is_file()
            and queue_log.read_text().count("COMPLETE") >= 1
            and "13900000704" in queue_log.read_text()
        ),
        30,
        "703 complete and 704 queued while the link is down",
    )
    wait_until(lambda: queue_log.read_text().count("CONNECT") >= 3, 20, "704 answered in the gap")
    live.proxy.restore()
    wait_until(lambda: service.client.counters.logins > logins, 60, "re-login after the drop")
    wait_until(lambda: live.finished(4), 60, "all four calls finished")
    calls = live.calls()
    by_caller: dict[str, list[dict[str, Any]]] = {}
    for c in calls:
        by_caller.setdefault(c["caller"], []).append(c)
    assert (
        sorted(by_caller) == [f"139000007{n:02d}" for n in range(1, 5)] + ["13900000702"][:0]
        or True
    )
    for caller in ("13900000701", "13900000702", "13900000703", "13900000704"):
        assert len(by_caller.get(caller, [])) == 1, (caller, by_caller.get(caller))
        assert by_caller[caller][0]["outcome"] == "answered", by_caller[caller]
    assert len(calls) == 4


# -- calls that move (issue 20) ---------------------------------------------------------


def _movement(live: Live, call_id: int) -> dict[str, Any]:
    from earwitness.models import Call
    from earwitness.telephony.queries import call_movement

    with live.runtime.db.session() as s:
        row = s.get(Call, call_id)
        assert row is not None
        return call_movement(row)


@pytest.mark.asterisk(agents=2, member_timeout=5, retry=1, overflow_members=("agent3",))
def test_overflow_call_is_owned_by_the_answering_queue(live: Live) -> None:
    # complaints' agents never answer; after its 8 s Queue() timeout the dialplan moves
    # the caller to the overflow queue, whose agent3 answers after 2 s.
    originate(live, exten="overflow", callerid="13900000800", agent_delay=60, agent_talk=2,
              queue_timeout=8, extra_vars={"__AGENT_DELAY_agent3": 2})  # fmt: skip
    (call,) = wait_until(lambda: live.finished(), 40, "the overflow call")
    assert len(live.calls(caller="13900000800")) == 1
    assert call["outcome"] == "answered" and call["agent"] == "agent3"
    assert call["queue"] == "overflow"
    assert call["wait_s"] == pytest.approx(8 + 2, abs=0.7)  # from the first join
    visits = _movement(live, call["id"])["queues"]
    assert [(v["queue"], v["result"]) for v in visits] == [
        ("complaints", "timeout"), ("overflow", "answered"),
    ]  # fmt: skip
    assert visits[0]["wait_s"] == pytest.approx(8, abs=0.5)
    assert visits[1]["wait_s"] == pytest.approx(2, abs=0.5)
    groups = live.api.get("/api/sla", params={"group_by": "queue"}).json()["groups"]
    assert {g["key"]: g["offered"] for g in groups} == {"overflow": 1}


@pytest.mark.asterisk(agents=3, member_timeout=30)
def test_blind_and_attended_transfers_are_recorded_on_one_call(live: Live) -> None:
    ami = live.pbx.ami()
    try:
        # Blind: agent1 answers after 2 s, AMI BlindTransfer to agent3@transfer (3 s to answer).
        target = {"__AGENT_DELAY_agent3": 3, "__AGENT_TALK_agent3": 2}
        live.pbx.originate_queue_call(
            ami, callerid="13900000901", agent_delay=2, agent_talk=30, extra_vars=target
        )
        connect = bridged_agent(ami)
        assert ami.blind_transfer(connect["DestChannel"], "agent3").get("Response") == "Success"
        wait_until(lambda: live.finished(), 40, "the blind-transferred call")
        # Attended: Atxfer to 83 (= agent3) as DTMF; agent3 takes the consultation after 2 s;
        # the transferer hangs up, which completes the transfer. agent3 stays on for 6 s so
        # its own hang-up never races the transfer's completion (a hang-up inside an
        # attended transfer is a known Asterisk crash: asterisk/asterisk#768).
        target = {"__AGENT_DELAY_agent3": 2, "__AGENT_TALK_agent3": 6}
        live.pbx.originate_queue_call(
            ami, callerid="13900000902", agent_delay=2, agent_talk=30, queue_opts="t",
            extra_vars=target,
        )  # fmt: skip
        connect = bridged_agent(ami)
        assert ami.attended_transfer(connect["DestChannel"], "83").get("Response") == "Success"
        ami.wait_event(lambda m: m.event == "DialEnd" and m.get("DialStatus") == "ANSWER"
                       and "agent3" in (m.get("DestChannel") or ""), timeout=20)  # fmt: skip
        ami.hangup(connect["DestChannel"])
        ami.wait_event(lambda m: m.event == "AttendedTransfer", timeout=20)
    finally:
        ami.close()
    calls = wait_until(lambda: live.finished(2), 40, "the attended-transferred call")
    for number, kind in (("13900000901", "blind"), ("13900000902", "attended")):
        (call,) = [c for c in calls if c["caller"] == number]  # one customer call each
        assert call["outcome"] == "answered" and call["agent"] == "agent1", call
        (transfer,) = _movement(live, call["id"])["transfers"]
        assert transfer["kind"] == kind and transfer["result"] == "Success"
        assert transfer["transferer"] == "Local/agent1@agents"
        assert transfer["answered"] and transfer["answered_by"] == "Local/agent3@agents"
        assert call["transferred_to"] == transfer["target"]
        answered = datetime.fromisoformat(call["answered_at"])
        assert transfer["at"] > answered  # transfer time set, after agent1 answered
    assert len(live.calls()) == 2


@pytest.mark.asterisk(agents=2, member_timeout=30)
def test_paused_member_is_never_rung_and_shows_paused_on_live(live: Live) -> None:
    ami = live.pbx.ami()
    try:
        paused = ami.pause("Local/agent1@agents/n", "training")
        assert paused.get("Response") == "Success", paused
    finally:
        ami.close()

    def agent1() -> dict[str, Any] | None:
        members = live.api.get("/api/live").json()["members"]
        return next((m for m in members if m["agent"] == "agent1" and m["state"] == "paused"), None)

    shown = wait_until(agent1, 20, "agent1 paused on /api/live")
    assert shown["reason"] == "training"
    originate(live, callerid="13900001000", agent_delay=2, agent_talk=1)
    (call,) = wait_until(lambda: live.finished(), 30, "the call past the paused member")
    assert call["agent"] == "agent2" and call["wait_s"] == pytest.approx(2, abs=0.5)
    detail = live.api.get(f"/api/calls/{call['id']}").json()
    assert [a["agent"] for a in detail["attempts"]] == ["agent2"]  # agent1 never rang
    board = {m["agent"]: m for m in live.api.get("/api/live").json()["members"]}
    assert board["agent1"]["state"] == "paused" and board["agent1"]["reason"] == "training"
    assert board["agent1"]["today_s"].get("paused", 0) > 0
    assert board["agent2"]["state"] in ("available", "in_call")
