"""Mono diarization on real speech: the default encoder diarizer vs the old k-means behaviour.

Files: the two-speaker mono mixes of the speech dev set (``../shared/data/speech/mono`` when
present, else the copies in ``tests/data/speech/mono``) with their exact RTTM, plus a one-speaker
and a three-speaker mix built from the clips as ``tests/test_diarization_real.py`` builds them.
*Ours* is :class:`EncoderDiarizer` (average-linkage clustering that finds the speaker count);
the *baseline* is the previous behaviour, reimplemented here: the same VAD and GE2E partials,
spherical k-means with k=2, one speaker kept when the two centroids are more alike than 0.85,
3-partial majority smoothing. Both run in the same process on the same audio.

Reported per file: DER (frame-based, optimal mapping, no collar; lower is better) and the number
of speakers found (the true count is in the name). Run: ``python benchmarks/bench_diarization.py``
(or ``python -m benchmarks diarization`` once listed there); ``run()`` returns the lines.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from earwitness.transcription.types import Turn

ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    shared = ROOT.parent / "shared" / "data" / "speech"
    return shared if (shared / "mono").is_dir() else ROOT / "tests" / "data" / "speech"


def _baseline_turns(audio: np.ndarray) -> list[Turn]:
    from earwitness.transcription.diarization import (
        EncoderDiarizer,
        _smooth,
        _turns_from_partials,
        spherical_kmeans,
    )
    from earwitness.transcription.timing import SAMPLE_RATE, speech_regions
    from earwitness.transcription.voice_encoder import load_encoder

    regions = speech_regions(audio)
    centres: list[float] = []
    batches: list[np.ndarray] = []
    for region in regions:
        chunk = audio[int(region.start * SAMPLE_RATE) : int(region.end * SAMPLE_RATE)]
        c, frames = EncoderDiarizer()._partials(chunk, region.start)
        centres.extend(c)
        batches.append(frames)
    if not centres:
        return []
    emb = np.concatenate([load_encoder().embed(b) for b in batches if len(b)])
    labels, centroids = spherical_kmeans(emb, 2, seed=0)
    if float(centroids[0] @ centroids[1]) > 0.85:
        labels = np.zeros(len(emb), int)
    return _turns_from_partials(regions, np.array(centres), _smooth(labels, 3))


def _cases(data: Path) -> list[tuple[str, np.ndarray, list[Turn]]]:
    import soundfile as sf

    from tests import test_diarization_real as real

    cases = []
    for wav in sorted((data / "mono").glob("mono_*.wav")):
        audio, _ = sf.read(wav, dtype="float32")
        cases.append((f"{wav.stem} (2 spk)", audio, real._rttm(wav.with_suffix(".rttm"))))
    one = real._mix(["zh_aishell1_S0002_W0122", "zh_aishell1_S0002_W0123"])
    three = real._mix(
        [
            "zh_aishell1_S0002_W0122",
            "en_ljspeech_LJ001-0004",
            "zh_aishell1_S0765_W0124",
            "zh_aishell1_S0002_W0123",
        ]
    )
    cases.append(("built S0002 (1 spk)", *one))
    cases.append(("built zh+en (3 spk)", *three))
    return cases


def run() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from earwitness.transcription import metrics
    from earwitness.transcription.diarization import EncoderDiarizer

    lines = []
    for name, audio, truth in _cases(_data_dir()):
        ours = EncoderDiarizer().diarize(audio).turns
        base = _baseline_turns(audio)
        d_ours, d_base = metrics.der(truth, ours), metrics.der(truth, base)
        n_ours, n_base = len({t.speaker for t in ours}), len({t.speaker for t in base})
        lines.append(
            f"diarization DER {name}: ours {d_ours:.3f}, baseline {d_base:.3f}, "
            f"ratio {d_ours / max(d_base, 1e-9):.2f}"
        )
        lines.append(
            f"diarization speakers {name}: ours {n_ours}, baseline {n_base}, "
            f"ratio {n_ours / max(n_base, 1):.2f}"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
