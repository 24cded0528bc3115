"""All tables. Importing this package registers every model on ``Base.metadata``."""

from earwitness.models.base import Base, utcnow
from earwitness.models.cases import Case, CaseAction, case_calls
from earwitness.models.evidence import CustodyEntry, CustodyTimestamp, Evidence
from earwitness.models.jobs import Job
from earwitness.models.qa import QaOverride, QaResult
from earwitness.models.recordings import Recording
from earwitness.models.search import SearchSegment
from earwitness.models.telephony import Agent, AgentAttempt, Call, CallEvent, Queue
from earwitness.models.tracks import Track, TrackPoint
from earwitness.models.transcripts import Segment, Transcript, Word
from earwitness.models.users import ROLES, ApiKey, User

__all__ = [
    "ROLES",
    "Agent",
    "AgentAttempt",
    "ApiKey",
    "Base",
    "Call",
    "CallEvent",
    "Case",
    "CaseAction",
    "CustodyEntry",
    "CustodyTimestamp",
    "Evidence",
    "Job",
    "QaOverride",
    "QaResult",
    "Queue",
    "Recording",
    "SearchSegment",
    "Segment",
    "Track",
    "TrackPoint",
    "Transcript",
    "User",
    "Word",
    "case_calls",
    "utcnow",
]
