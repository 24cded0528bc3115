"""Stereo per-channel transcription vs the mono mix + diarizer, on ~11 minutes of real calls.

Calls: the two-channel 8 kHz calls of the real-speech dev set (``bench_speech.speech_dir``:
AISHELL-1 / LibriSpeech / FLEURS voices, one speaker per channel, see its README), each
played ``REPEATS`` times end to end (1 s of silence between) into a call-centre-length call of
2–3 minutes (every channel keeps its one language, as a real call's does): 4 calls ≈ 11
minutes. Generated once into ``/tmp/ew-bench-transcription`` and reused.

Variants, each in its own process (peak RSS is its own, models included), the same
multilingual base model and decoding options (beam 5, temperature 0):

- ``stereo``: the default, ``transcribe_audio`` on the two-channel file (channel = speaker),
  both channels decoded at the same time on one model with 2 CTranslate2 workers
  (``whisper_num_workers=2``);
- ``stereo_sequential``: the same, one channel after the other (``whisper_num_workers=1``:
  the default before this change); its words must equal the default's;
- ``stereo_old``: sequential with ``language_window="speech"`` (the engine before issue 17:
  one more encoder pass per channel just to detect the language); not run unless named;
- ``stereo_batched``: ``batch_size=4`` (faster-whisper's ``BatchedInferencePipeline`` over a
  channel's chunks);
- ``mono`` (the baseline): ``force_mono=True``, the channels mixed and split by the default
  mono diarizer (silero VAD + GE2E encoder + k-means).

Quality beside speed: *text* (speaker-blind: all words of a call in time order against the
utterances in onset order; CER on the Mandarin and mixed calls, WER on the English one) and
*by speaker* (each channel's utterances against the words given to that channel, or for mono
to the role the diarizer gave; wrong attribution counts as errors). Scoring is
``bench_speech.score_text`` (numbers canonical, punctuation dropped).

The machine is shared, so the variants run interleaved (A B C D, A B C D, ...) for
``EARWITNESS_BENCH_ROUNDS`` rounds (default 3; ``EARWITNESS_BENCH_VARIANTS=stereo,mono`` picks
variants) and the figures are medians over rounds; the ratio is the median of the per-round
ratios, with their range. Beside wall time: the process's CPU seconds per audio second (less
sensitive to other load) and the 1-minute load average while it ran.

Run: ``python -m benchmarks transcription``; ``run()`` returns the lines.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = Path("/tmp/ew-bench-transcription")
REPEATS = 4
GAP_S = 1.0
#: TranscribeOptions of each variant; "settings" and "force_mono" are taken out first
VARIANTS: dict[str, dict[str, Any]] = {
    "stereo": {},
    "stereo_sequential": {"settings": {"whisper_num_workers": 1}},
    "stereo_old": {"language_window": "speech", "settings": {"whisper_num_workers": 1}},
    "stereo_batched": {"batch_size": 4},
    "mono": {"force_mono": True},
}
DEFAULT_VARIANTS = ("stereo", "stereo_sequential", "stereo_batched", "mono")


def build_calls(workdir: Path = WORKDIR) -> list[dict[str, Any]]:
    """Long two-channel calls from the dev set's calls, with their truth; built once."""
    import numpy as np
    import soundfile as sf

    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_speech import speech_dir

    manifest = workdir / "calls.json"
    if manifest.is_file():
        return list(json.loads(manifest.read_text()))
    data = speech_dir()
    items = json.loads((data / "calls.json").read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for number, call in enumerate(items, 1):
        pieces, utterances, offset, rate = [], [], 0.0, 0
        for item in [call] * REPEATS:
            audio, rate = sf.read(data / item["file"], dtype="float32", always_2d=True)
            roles = dict(p.split("=") for p in item["channels_layout"].split(", "))
            for ch in item["channels"]:
                for s in ch["segments"]:
                    utterances.append({
                        "onset_s": offset + float(s["onset_s"]), "text": s["text"],
                        "lang": s["lang"], "channel": int(ch["channel"]),
                        "role": roles[str(ch["channel"])],
                    })  # fmt: skip
            gap = np.zeros((int(GAP_S * rate), audio.shape[1]), dtype=np.float32)
            pieces += [audio, gap]
            offset += audio.shape[0] / rate + GAP_S
        path = workdir / f"long_{Path(call['file']).stem}_{number}.wav"
        sf.write(path, np.concatenate(pieces), rate, subtype="PCM_16")
        langs = {u["lang"] for u in utterances}
        out.append({"file": str(path), "duration_s": offset, "utterances": utterances,
                    "lang": "en" if langs == {"en"} else "zh"})  # fmt: skip
    manifest.write_text(json.dumps(out, ensure_ascii=False, indent=1))
    return out


def _measure(variant: str, workdir: str, queue: Any) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_speech import _model_dir, score_text
    from earwitness.config import load_settings
    from earwitness.transcription.engine import SpeechEngine, TranscribeOptions
    from earwitness.transcription.pipeline import transcribe_audio

    calls = build_calls()
    options = dict(VARIANTS[variant])
    force_mono = bool(options.pop("force_mono", False))
    settings = load_settings(
        data_dir=Path(workdir) / "data",
        whisper_model_multilingual=str(_model_dir()),
        **options.pop("settings", {}),
    )
    engine = SpeechEngine(settings, TranscribeOptions(**options))
    warm = Path(calls[0]["file"]).parent / "warm.wav"
    _warm_file(Path(calls[0]["file"]), warm)
    transcribe_audio(warm, engine, force_mono=force_mono)  # model loads are not throughput
    start, cpu, load = time.perf_counter(), _cpu_s(), os.getloadavg()[0]
    results = [transcribe_audio(Path(c["file"]), engine, force_mono=force_mono) for c in calls]
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
    load = max(load, os.getloadavg()[0])
    text = [0, 0]
    speaker = [0, 0]
    for call, result in zip(calls, results, strict=True):
        utts = sorted(call["utterances"], key=lambda u: u["onset_s"])
        segs = sorted(result.segments, key=lambda s: (s.start, s.end))
        score = score_text(
            " ".join(u["text"] for u in utts), " ".join(s.text for s in segs), call["lang"]
        )
        text = [text[0] + score.errors, text[1] + score.ref_tokens]
        for who in sorted({(u["channel"], u["role"]) for u in utts}):
            ref = " ".join(u["text"] for u in utts if (u["channel"], u["role"]) == who)
            mine = [
                s for s in segs if (s.channel == who[0] if not force_mono else s.role == who[1])
            ]
            langs = {u["lang"] for u in utts if u["channel"] == who[0]}
            lang = "en" if langs == {"en"} else "zh"
            score = score_text(ref, " ".join(s.text for s in mine), lang)
            speaker = [speaker[0] + score.errors, speaker[1] + score.ref_tokens]
    queue.put({
        "audio_s": sum(c["duration_s"] for c in calls), "wall_s": wall, "cpu_s": cpu,
        "load": load, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "text_er": text[0] / max(text[1], 1), "speaker_er": speaker[0] / max(speaker[1], 1),
        "segments": [
            [(s.channel, s.start, s.end, s.text, [(w.start, w.end, w.word, w.probability)
                                                  for w in s.words]) for s in r.segments]
            for r in results
        ],
    })  # fmt: skip


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm_file(source: Path, target: Path) -> None:
    """The first 20 s of a call: enough to load every model once."""
    import soundfile as sf

    if not target.is_file():
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
        sf.write(target, audio[: 20 * rate], rate, subtype="PCM_16")


def measure(variant: str) -> dict[str, Any]:
    import tempfile

    build_calls()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="ew-bench-") as tmp:
        proc = ctx.Process(target=_measure, args=(variant, tmp, queue))
        proc.start()
        result: dict[str, Any] = queue.get(timeout=1800)
        proc.join()
    return result


def _same_text(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How many calls decode to exactly the same segments in both (channel, times, text,
    and every word's times and probability)."""
    same = sum(x == y for x, y in zip(a["segments"], b["segments"], strict=True))
    return f"{same}/{len(a['segments'])} calls identical"


def _rate(r: dict[str, Any]) -> float:
    return float(r["audio_s"] / r["wall_s"])


def run() -> list[str]:
    names = os.environ.get("EARWITNESS_BENCH_VARIANTS", ",".join(DEFAULT_VARIANTS)).split(",")
    rounds = int(os.environ.get("EARWITNESS_BENCH_ROUNDS", "3"))
    if "mono" not in names:
        names.append("mono")  # the baseline is always measured in the same run
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):  # interleaved: every variant once per round
        for name in names:
            got[name].append(measure(name))
            r = got[name][-1]
            print(
                f"round {round_ + 1} {name}: {_rate(r):.1f} audio-s/s, CPU {r['cpu_s']:.0f} s, "
                f"load {r['load']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    base = got["mono"]
    lines = []
    for name in (n for n in names if n != "mono"):
        ratios = [_rate(o) / _rate(b) for o, b in zip(got[name], base, strict=True)]
        each = " ".join(f"{x:.2f}" for x in ratios)
        lines.append(
            f"transcribe_{name}: ours {statistics.median(map(_rate, got[name])):.1f} audio-s/s, "
            f"baseline {statistics.median(map(_rate, base)):.1f} audio-s/s (mono mix + "
            f"diarizer), ratio {statistics.median(ratios):.2f} (median of {rounds} rounds, "
            f"{min(ratios):.2f}-{max(ratios):.2f}; per round {each})"
        )
    for name, runs in got.items():
        first = runs[0]
        rtfs = [r["wall_s"] / r["audio_s"] for r in runs]
        lines.append(
            f"transcribe_{name}_detail: RTF {statistics.median(rtfs):.3f}"
            f" (runs {' '.join(f'{x:.3f}' for x in rtfs)}), "
            f"{first['audio_s']:.0f} s of calls, CPU s per audio s "
            f"{statistics.median(r['cpu_s'] / r['audio_s'] for r in runs):.3f}, "
            f"peak RSS {max(r['peak_mb'] for r in runs):.0f} MB, load "
            f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}, "
            f"text CER/WER {first['text_er']:.3f}, by speaker {first['speaker_er']:.3f}"
            + ("" if all(r["segments"] == first["segments"] for r in runs) else ", RUNS DIFFER")
        )
    same = [
        f"{a} vs {b}: {_same_text(got[a][0], got[b][0])}"
        for a, b in (("stereo", "stereo_sequential"), ("stereo", "stereo_old"),
                     ("stereo_batched", "stereo"))
        if a in got and b in got
    ]  # fmt: skip
    lines.append(f"transcribe_identical: {'; '.join(same)}")
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
