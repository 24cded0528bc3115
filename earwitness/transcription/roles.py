"""Agent or customer: decide per speaker and record which rule decided.

Stereo is exact: the PBX's channel map says which side each channel carries
(DESIGN.md: channel 0 = the caller = customer, channel 1 = the agent; a trunk
or queue may configure another map). For a mono mix, in order of reliability:

1. ``enrolled-voice``: the speaker whose voice print is closest to an enrolled
   agent sample (and similar enough) is the agent;
2. ``greeting``: the speaker whose first words are an agent's greeting
   ("您好，这里是…", "thank you for calling…") is the agent;
3. ``first-speaker``: on an inbound complaint line the agent answers, so the
   first speaker is the agent.
Any further speakers stay ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from earwitness.transcription.types import AGENT, CUSTOMER, UNKNOWN, SegmentOut

DEFAULT_CHANNEL_MAP: dict[int, str] = {0: CUSTOMER, 1: AGENT}

GREETINGS = (
    r"这里是",
    r"这里是.*热线",
    r"请问有什么可以帮",
    r"有什么可以帮您",
    r"工号",
    r"很高兴为您服务",
    r"客服",
    r"thank you for calling",
    r"thanks for calling",
    r"how can i help",
    r"how may i help",
    r"my name is .* speaking",
    r"this is .* hotline",
    r"customer service",
)
ENROLLED_MIN_SIMILARITY = 0.7


@dataclass
class RoleDecision:
    rule: str
    roles: dict[str, str]
    detail: dict[str, Any] = field(default_factory=dict)


def assign_channel_roles(
    segments: list[SegmentOut], channel_map: Mapping[int, str] | None = None
) -> RoleDecision:
    cmap = dict(channel_map or DEFAULT_CHANNEL_MAP)
    roles = {}
    for seg in segments:
        seg.role = cmap.get(seg.channel if seg.channel is not None else -1, UNKNOWN)
        seg.speaker = seg.speaker or f"ch{seg.channel}"
        roles[seg.speaker] = seg.role
    return RoleDecision("channel-map", roles, {"channel_map": {str(k): v for k, v in cmap.items()}})


def _is_greeting(text: str) -> bool:
    low = text.lower()
    return any(re.search(p, low) for p in GREETINGS)


def decide_mono_agent(
    segments: list[SegmentOut],
    centroids: Mapping[str, np.ndarray] | None = None,
    agent_voices: list[np.ndarray] | None = None,
) -> tuple[str | None, str, dict[str, Any]]:
    """(agent speaker, rule, evidence) for a diarized mono transcript."""
    speakers = list(dict.fromkeys(s.speaker for s in segments if s.speaker))
    if not speakers:
        return None, "none", {}
    if agent_voices and centroids:
        scores = {
            spk: max(float(np.dot(centroids[spk], v)) for v in agent_voices)
            for spk in speakers
            if spk in centroids
        }
        if scores:
            best = max(scores, key=lambda s: scores[s])
            if scores[best] >= ENROLLED_MIN_SIMILARITY:
                return (
                    best,
                    "enrolled-voice",
                    {"similarity": {k: round(v, 3) for k, v in scores.items()}},
                )
    for spk in speakers:
        opening = " ".join(s.text for s in segments if s.speaker == spk)[:120]
        first_seg = next(s for s in segments if s.speaker == spk)
        if _is_greeting(first_seg.text) or _is_greeting(opening[:60]):
            return spk, "greeting", {"phrase": first_seg.text[:80]}
    first = min(segments, key=lambda s: s.start).speaker
    return first, "first-speaker", {}


def assign_mono_roles(
    segments: list[SegmentOut],
    centroids: Mapping[str, np.ndarray] | None = None,
    agent_voices: list[np.ndarray] | None = None,
) -> RoleDecision:
    agent, rule, detail = decide_mono_agent(segments, centroids, agent_voices)
    talk: dict[str, float] = {}
    for s in segments:
        if s.speaker and s.speaker != agent:
            talk[s.speaker] = talk.get(s.speaker, 0.0) + s.end - s.start
    customer = max(talk, key=lambda k: talk[k]) if talk else None
    roles = {}
    for seg in segments:
        seg.role = (
            AGENT if seg.speaker == agent else CUSTOMER if seg.speaker == customer else UNKNOWN
        )
        if seg.speaker:
            roles[seg.speaker] = seg.role
    return RoleDecision(rule, roles, detail)
