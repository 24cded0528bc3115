"""Loudness of each transcript line, from the decoded channel it was spoken on.

Why: a customer who starts shouting is the clearest agitation cue that does not depend on
the words. The level is the RMS of the line's samples in dBFS; only relative levels (a
line against the same speaker's median) are used, so line gain and codec do not matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from earwitness.qa.audit import Line

#: Below this RMS a line is treated as silence (-100 dBFS) rather than taking log of ~0.
_FLOOR = 1e-5


def rms_dbfs(samples: npt.NDArray[np.float32]) -> float:
    if samples.size == 0:
        return -100.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * math.log10(max(rms, _FLOOR))


def line_loudness(
    lines: Sequence[Line],
    channels: Sequence[int | None],
    audio: npt.NDArray[np.float32],
    sample_rate: int,
) -> list[Line]:
    """``lines`` with ``loudness_db`` set where the line's channel exists in ``audio``.

    ``audio`` is ``(channels, n)`` as :func:`earwitness.recordings.decode_channels` returns;
    a line without a channel (mono mix) is measured on the mix.
    """
    from dataclasses import replace

    out = []
    for line, channel in zip(lines, channels, strict=True):
        if channel is not None and 0 <= channel < audio.shape[0]:
            track = audio[channel]
        else:
            track = audio.mean(axis=0)
        a, b = int(line.start_s * sample_rate), int(line.end_s * sample_rate)
        out.append(replace(line, loudness_db=round(rms_dbfs(track[a:b]), 2)))
    return out
