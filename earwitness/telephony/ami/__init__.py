"""Asterisk Manager Interface: wire protocol (pure) and the asyncio connection (I/O).

AmiError (earwitness.errors.ServiceUnavailable)
├── AmiProtocolError     something AMI cannot carry (a newline in a header value)
├── AmiConnectionError   refused, dropped, EOF, or lost while an action was pending
├── AmiAuthError         username/secret rejected
├── AmiTimeoutError      no banner, response or Pong in time
└── AmiActionError       Asterisk answered ``Response: Error`` (``.response``)
"""

from earwitness.telephony.ami.client import AmiClient
from earwitness.telephony.ami.protocol import (
    AmiError,
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    ParserStats,
    encode_action,
    event_time,
)
from earwitness.telephony.ami.state import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionError,
    AmiCounters,
    AmiState,
    AmiTimeoutError,
)

__all__ = [
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiConnectionError",
    "AmiCounters",
    "AmiError",
    "AmiMessage",
    "AmiParser",
    "AmiProtocolError",
    "AmiState",
    "AmiTimeoutError",
    "ParserStats",
    "encode_action",
    "event_time",
]
