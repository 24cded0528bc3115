"""The transcribe job primes Whisper with what the case already knows (plates, orders, places)."""

from __future__ import annotations

from datetime import UTC, datetime

from earwitness.models import Call, Case, Recording, case_calls
from earwitness.runtime import Runtime
from earwitness.transcription.jobs import case_vocabulary


def test_vocabulary_comes_from_linked_cases_and_skips_rejected_facts(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        call = Call(linkedid="v-1", entered_at=datetime.now(UTC))
        s.add(call)
        s.flush()
        extracted = Case(
            number="C-1",
            facts={
                "items": [
                    {"kind": "plate", "value": "粤B12345", "status": "confirmed"},
                    {"kind": "plate", "value": "粤B99999", "status": "rejected"},
                    {"kind": "money", "value": "200元", "status": "suggested"},
                    {"kind": "place", "value": "机场高速", "status": "suggested"},
                ]
            },
        )
        typed = Case(number="C-2", facts={"work_order": "WO-7", "plate": "粤B12345"})
        other = Case(number="C-3", facts={"plate": "沪A00000"})
        s.add_all([extracted, typed, other])
        s.flush()
        s.execute(case_calls.insert().values(case_id=extracted.id, call_id=call.id))
        rec = Recording(call_id=call.id, case_id=typed.id, state="ingested")
        lonely = Recording(state="ingested")
        s.add_all([rec, lonely])
        s.flush()
        terms = case_vocabulary(s, rec.id)
        assert sorted(terms) == sorted(["粤B12345", "机场高速", "WO-7"])
        assert case_vocabulary(s, lonely.id) == []
        assert case_vocabulary(s, 999_999) == []
