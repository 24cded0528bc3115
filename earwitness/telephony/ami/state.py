"""What the AMI client reports: its errors, its connection state and its counters.

Split from ``client.py`` so health reporting and callers catching errors need not
import the connection machinery.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from earwitness.telephony.ami.protocol import AmiError, AmiMessage, ParserStats


class AmiConnectionError(AmiError):
    """No usable connection: refused, dropped, EOF, or lost while an action was pending."""


class AmiAuthError(AmiError):
    """Asterisk rejected the username/secret (the client keeps retrying with back-off)."""


class AmiTimeoutError(AmiError):
    """No answer in time: connect, banner, an action's response, or a keep-alive Ping."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``; the response is kept on ``.response``."""

    def __init__(self, detail: str, response: AmiMessage) -> None:
        super().__init__(detail)
        self.response = response


class AmiState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"  # TCP, banner, login and the on_connected resync
    CONNECTED = "connected"
    AUTH_FAILED = "auth_failed"


@dataclass
class AmiCounters:
    """Monotonic counters for the health endpoint and for tests."""

    connect_attempts: int = 0
    logins: int = 0  # successful (re)logins; on_connected ran after each
    disconnects: int = 0
    auth_failures: int = 0
    events: int = 0
    callback_errors: int = 0
    actions: int = 0
    action_timeouts: int = 0
    pings: int = 0
    missed_pongs: int = 0
    parser: ParserStats = field(default_factory=ParserStats)
