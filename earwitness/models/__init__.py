"""All tables. Importing this package registers every model on ``Base.metadata``."""

from earwitness.models.base import Base, utcnow
from earwitness.models.cases import Case, CaseAction, case_calls
from earwitness.models.evidence import CustodyEntry, CustodyTimestamp, Evidence
from earwitness.models.followups import FollowUp
from earwitness.models.identities import AgentIdentity
from earwitness.models.jobs import Job
from earwitness.models.qa import QaOverride, QaResult
from earwitness.models.queue_log import QueueLogCursor
from earwitness.models.recordings import Recording
from earwitness.models.search import SearchSegment
from earwitness.models.sla_rollups import (
    SlaAgentInterval,
    SlaAgentRollup,
    SlaAgentRollupProfile,
    SlaDirtyInterval,
    SlaInterval,
    SlaRollupProfile,
)
from earwitness.models.telephony import (
    Agent,
    AgentAttempt,
    AgentStateSpan,
    Call,
    CallEvent,
    CallTransfer,
    Queue,
    QueueVisit,
)
from earwitness.models.tracks import Track, TrackPoint
from earwitness.models.transcripts import Segment, Transcript, Word
from earwitness.models.ui import UiSetting
from earwitness.models.users import ROLES, ApiKey, LoginToken, User, UserSession

__all__ = [
    "ROLES",
    "Agent",
    "AgentAttempt",
    "AgentIdentity",
    "AgentStateSpan",
    "ApiKey",
    "Base",
    "Call",
    "CallEvent",
    "CallTransfer",
    "Case",
    "CaseAction",
    "CustodyEntry",
    "CustodyTimestamp",
    "Evidence",
    "FollowUp",
    "Job",
    "LoginToken",
    "QaOverride",
    "QaResult",
    "Queue",
    "QueueLogCursor",
    "QueueVisit",
    "Recording",
    "SearchSegment",
    "Segment",
    "SlaAgentInterval",
    "SlaAgentRollup",
    "SlaAgentRollupProfile",
    "SlaDirtyInterval",
    "SlaInterval",
    "SlaRollupProfile",
    "Track",
    "TrackPoint",
    "Transcript",
    "UiSetting",
    "User",
    "UserSession",
    "Word",
    "case_calls",
    "utcnow",
]
