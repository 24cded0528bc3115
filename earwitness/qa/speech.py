"""Per-role speech timing straight from the audio: voice activity on each stereo channel.

Why not the transcript's segments: the recogniser may drop a stretch it could not
understand — typically the very words an agent says *over* a shouting customer — and
then the interruption disappears from the timing too. On a stereo recording each channel
is one speaker, so voice activity per channel is the speech timing, whatever was
understood. Mono recordings fall back to the diarized segments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from earwitness.qa.timing import Interval
from earwitness.transcription.timing import SAMPLE_RATE, speech_regions


def channel_roles(roles: Sequence[str], channels: Sequence[int | None]) -> dict[int, str]:
    """Each channel's role, by the majority of its segments; only agent/customer count."""
    votes: dict[int, Counter[str]] = {}
    for role, channel in zip(roles, channels, strict=True):
        if channel is not None and role in ("agent", "customer"):
            votes.setdefault(channel, Counter())[role] += 1
    return {ch: c.most_common(1)[0][0] for ch, c in votes.items()}


def speech_by_role(
    audio: npt.NDArray[np.float32], sample_rate: int, roles: dict[int, str]
) -> dict[str, list[Interval]] | None:
    """Voice-activity intervals per role, or None unless both roles have their own channel."""
    if sample_rate != SAMPLE_RATE or sorted(set(roles.values())) != ["agent", "customer"]:
        return None
    if len(roles) != 2 or audio.ndim != 2 or max(roles) >= audio.shape[0]:
        return None
    out: dict[str, list[Interval]] = {"agent": [], "customer": []}
    for channel, role in roles.items():
        out[role] += [(r.start, r.end) for r in speech_regions(audio[channel])]
    return out
