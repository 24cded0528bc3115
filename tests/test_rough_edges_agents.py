"""Issue 18, one agent identity: ``PJSIP/2001`` (queue_log) and ``Lucy Zhao`` (AMI) are one
agent in the SLA, QA and the call filters that search shares; the mapping is learned from
ADDMEMBER lines and AMI member names, and editable (a manual name always wins)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from earwitness.models import QaResult
from earwitness.qa.store import audit_recording
from earwitness.runtime import Runtime
from earwitness.telephony.identities import learn
from earwitness.telephony.persist import SlaDefaults, agent_row, save_imported
from earwitness.telephony.queue_log import parse_queue_log
from tests.accounts_helpers import api_client
from tests.qa_calls import EN_MODEL
from tests.test_qa_store import add_call

# Two calls from queue_log: one answered by PJSIP/2001 (named by its ADDMEMBER line), one by
# PJSIP/2002 (no name anywhere in the log).
QUEUE_LOG = b"""\
1764403200|NONE|complaints|PJSIP/2001|ADDMEMBER|Lucy Zhao
1764437467|1764437467.5|complaints|NONE|ENTERQUEUE||13900000001|1
1764437475|1764437467.5|complaints|PJSIP/2001|CONNECT|8|1764437467.6|8
1764437600|1764437467.5|complaints|PJSIP/2001|COMPLETECALLER|8|125|1
1764437700|1764437700.5|complaints|NONE|ENTERQUEUE||13900000002|1
1764437706|1764437700.5|complaints|PJSIP/2002|CONNECT|6|1764437700.6|6
1764437800|1764437700.5|complaints|PJSIP/2002|COMPLETECALLER|6|94|1
"""


def _agents(api: object) -> dict[str, int]:
    sla = api.get("/api/sla", params={"group_by": "agent", "tz": "UTC"}).json()  # type: ignore[attr-defined]
    return {g["key"]: g["answered"] for g in sla["groups"]}


def test_queue_log_and_ami_names_of_one_agent_join(runtime: Runtime) -> None:
    imported = parse_queue_log(QUEUE_LOG.splitlines())
    assert imported.members == [("PJSIP/2001", "Lucy Zhao")]
    with runtime.db.session() as session:
        save_imported(session, imported.calls, SlaDefaults(), members=imported.members)
    # the live tracker names the same person through a Local channel and her member name
    recording = add_call(runtime, "Lucy", datetime(2025, 11, 29, 18, tzinfo=UTC), EN_MODEL, "en")
    with runtime.db.session() as session:
        agent_row(session, "Local/Lucy@qa", "Lucy Zhao")
        audit_recording(session, recording)
    with api_client(runtime, "admin") as api:
        assert _agents(api) == {"Lucy Zhao": 2, "PJSIP/2002": 1}  # one row for Lucy
        by_interface = api.get("/api/calls", params={"agent": "PJSIP/2001"}).json()
        by_name = api.get("/api/calls", params={"agent": "Lucy Zhao"}).json()
        assert by_interface["total"] == by_name["total"] == 2
        people = {
            p["name"]: {i["identifier"] for i in p["identifiers"]}
            for p in api.get("/api/agents/identities").json()
        }
        assert people["Lucy Zhao"] == {"PJSIP/2001", "Local/Lucy@qa"}
        qa = api.get("/api/qa/agents", params={"from": "2025-11-29", "to": "2025-11-30"}).json()
        assert [a["agent"] for a in qa["agents"]] == ["Lucy Zhao"]


def test_identity_is_editable_and_a_manual_name_wins(runtime: Runtime) -> None:
    imported = parse_queue_log(QUEUE_LOG.splitlines())
    with runtime.db.session() as session:
        save_imported(session, imported.calls, SlaDefaults(), members=imported.members)
    with api_client(runtime, "lead") as lead:
        assert _agents(lead)["PJSIP/2002"] == 1
        res = lead.put(
            "/api/agents/identities", json={"identifier": "PJSIP/2002", "name": "Chen Jing"}
        )
        assert res.status_code == 200, res.text
        assert res.json() == {"identifier": "PJSIP/2002", "name": "Chen Jing", "source": "manual"}
        assert _agents(lead) == {"Lucy Zhao": 1, "Chen Jing": 1}  # past figures follow
        assert lead.put("/api/agents/identities", json={"identifier": "x"}).status_code == 422
    with runtime.db.session() as session:
        assert not learn(session, "PJSIP/2002", "Somebody Else", "ami")  # learned ≠ override
        assert agent_row(session, "PJSIP/2002", "Somebody Else").name == "Chen Jing"
    with api_client(runtime, "agent", pbx_agent="PJSIP/2002") as agent:
        refused = agent.put("/api/agents/identities", json={"identifier": "a/b", "name": "c"})
        assert refused.status_code == 403


def test_renaming_updates_stored_qa_labels(runtime: Runtime) -> None:
    at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    recording = add_call(runtime, "Wang", at, EN_MODEL, "en")  # agent Local/Wang@qa, "Wang"
    with runtime.db.session() as session:
        audit_recording(session, recording)
    with api_client(runtime, "lead") as lead:
        lead.put(
            "/api/agents/identities", json={"identifier": "Local/Wang@qa", "name": "Wang Fang"}
        )
    with runtime.db.session() as session:
        labels = session.scalars(select(QaResult.agent)).all()
    assert labels == ["Wang Fang"]
    with api_client(runtime, "qa") as qa:
        period = {"from": at.isoformat(), "to": (at + timedelta(days=1)).isoformat()}
        agents = qa.get("/api/qa/agents", params=period).json()["agents"]
        assert [a["agent"] for a in agents] == ["Wang Fang"]
