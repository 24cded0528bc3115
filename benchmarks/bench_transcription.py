"""Stereo per-channel transcription vs the mono baseline, on the same synthetic calls.

Calls: the English and Mandarin espeak-ng dialogues of ``tests/speech_synth.py``
(8 kHz, agent and customer on separate channels, pauses, one overlap, -50 dBFS
noise) and the mono mix of each. *Ours* transcribes each channel separately
(roles exact by channel); the *baseline* runs the same faster-whisper model on the
mono mix and splits speakers with the default mono diarizer (silero VAD + GE2E
encoder + k-means). Same engine, same process per variant, best of ``ROUNDS``.

Each variant runs in its own process so its peak RSS (models included) is its own.
Reported: throughput (audio seconds per wall second), real-time factor, peak RSS,
and quality against the construction truth (WER en, CER zh, DER by role).

Run: ``python benchmarks/bench_transcription.py``; ``run()`` returns the lines.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 2


def _measure(variant: str, workdir: str, english_model: bool, queue: Any) -> None:
    sys.path.insert(0, str(ROOT))
    from earwitness.config import load_settings
    from earwitness.transcription import metrics
    from earwitness.transcription.engine import SpeechEngine, TranscribeOptions
    from earwitness.transcription.models import joined_base_dir
    from earwitness.transcription.pipeline import transcribe_audio
    from earwitness.transcription.types import Turn
    from tests.speech_synth import EN_DIALOGUE, ZH_DIALOGUE, build_call, model_cache_dir

    settings = load_settings(
        data_dir=Path(workdir) / "data",
        whisper_model_multilingual=str(joined_base_dir(model_cache_dir())),
    )
    engine = SpeechEngine(settings, TranscribeOptions(use_english_model=english_model))
    calls = [
        build_call(Path(workdir) / "en", EN_DIALOGUE, noise_dbfs=-50),
        build_call(Path(workdir) / "zh", ZH_DIALOGUE, language="zh", noise_dbfs=-50),
    ]
    files = [c.stereo if variant == "stereo" else c.mono for c in calls]
    transcribe_audio(files[0], engine)  # warm-up: model loads are not throughput
    best = float("inf")
    results = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        results = [transcribe_audio(f, engine) for f in files]
        best = min(best, time.perf_counter() - start)
    quality: dict[str, float] = {}
    for call, result in zip(calls, results, strict=True):
        ref = [Turn(t.start_s, t.end_s, t.role) for t in call.truth]
        hyp = [Turn(s.start, s.end, s.role) for s in result.segments]
        quality[f"der_{call.language}"] = metrics.der(ref, hyp)
        score = metrics.wer if call.language == "en" else metrics.cer
        for role in ("agent", "customer"):
            truth = " ".join(t.text for t in call.truth if t.role == role)
            said = " ".join(s.text for s in result.segments if s.role == role)
            quality[f"{'wer' if call.language == 'en' else 'cer'}_{call.language}_{role}"] = score(
                truth, said
            )
    audio_s = sum(c.duration_s for c in calls)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"audio_s": audio_s, "wall_s": best, "peak_mb": peak_mb, "quality": quality,
               "model": engine.label})  # fmt: skip


def measure(variant: str, english_model: bool = False) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="ew-bench-") as tmp:
        proc = ctx.Process(target=_measure, args=(variant, tmp, english_model, queue))
        proc.start()
        result: dict[str, Any] = queue.get(timeout=900)
        proc.join()
    return result


def _fmt_quality(q: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(q.items()))


def run() -> list[str]:
    ours = measure("stereo")
    base = measure("mono")
    ours_rate = ours["audio_s"] / ours["wall_s"]
    base_rate = base["audio_s"] / base["wall_s"]
    return [
        f"transcribe_stereo: ours {ours_rate:.1f} audio-s/s, baseline {base_rate:.1f} audio-s/s, "
        f"ratio {ours_rate / base_rate:.2f}",
        f"transcribe_stereo_rtf: ours {ours['wall_s'] / ours['audio_s']:.3f}, "
        f"baseline {base['wall_s'] / base['audio_s']:.3f} (model {ours['model']}, "
        f"{ours['audio_s']:.0f} s of calls)",
        f"transcribe_stereo_memory: ours peak {ours['peak_mb']:.0f} MB, "
        f"baseline peak {base['peak_mb']:.0f} MB",
        f"transcribe_stereo_quality: ours {_fmt_quality(ours['quality'])}",
        f"transcribe_mono_quality: baseline {_fmt_quality(base['quality'])}",
    ]


if __name__ == "__main__":
    for line in run():
        print(line)
    if "--english-model" in sys.argv:
        tiny = measure("stereo", english_model=True)
        print(
            f"transcribe_stereo_tiny_en: {tiny['audio_s'] / tiny['wall_s']:.1f} audio-s/s, "
            f"{_fmt_quality(tiny['quality'])} (model {tiny['model']})"
        )
