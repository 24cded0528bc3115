"""Stereo per-channel transcription vs the mono mix + diarizer, on ~11 minutes of real calls.

Calls: the two-channel 8 kHz calls of the real-speech dev set (``bench_speech.speech_dir``:
AISHELL-1 / LibriSpeech / FLEURS voices, one speaker per channel, see its README), each
played ``REPEATS`` times end to end (1 s of silence between) into a call-centre-length call of
2–3 minutes (every channel keeps its one language, as a real call's does): 4 calls ≈ 11
minutes. Generated once into ``/tmp/ew-bench-transcription`` and reused.

Variants, each in its own process (peak RSS is its own, models included), the same
multilingual base model and decoding options (beam 5, temperature 0):

- ``stereo``: the default, ``transcribe_audio`` on the two-channel file (channel = speaker);
- ``stereo_old``: the same with ``language_window="speech"`` (the engine before issue 17:
  one more encoder pass per channel just to detect the language);
- ``stereo_batched``: ``batch_size=4`` (faster-whisper's ``BatchedInferencePipeline`` over a
  channel's chunks);
- ``mono`` (the baseline): ``force_mono=True``, the channels mixed and split by the default
  mono diarizer (silero VAD + GE2E encoder + k-means).

Quality beside speed: *text* (speaker-blind: all words of a call in time order against the
utterances in onset order; CER on the Mandarin and mixed calls, WER on the English one) and
*by speaker* (each channel's utterances against the words given to that channel, or for mono
to the role the diarizer gave; wrong attribution counts as errors). Scoring is
``bench_speech.score_text`` (numbers canonical, punctuation dropped).

Run: ``python -m benchmarks transcription``; ``run()`` returns the lines.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = Path("/tmp/ew-bench-transcription")
REPEATS = 4
GAP_S = 1.0
VARIANTS: dict[str, dict[str, Any]] = {
    "stereo": {},
    "stereo_old": {"language_window": "speech"},
    "stereo_batched": {"batch_size": 4},
    "mono": {"force_mono": True},
}


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
    settings = load_settings(
        data_dir=Path(workdir) / "data", whisper_model_multilingual=str(_model_dir())
    )
    options = dict(VARIANTS[variant])
    force_mono = bool(options.pop("force_mono", False))
    engine = SpeechEngine(settings, TranscribeOptions(**options))
    warm = Path(calls[0]["file"]).parent / "warm.wav"
    _warm_file(Path(calls[0]["file"]), warm)
    transcribe_audio(warm, engine, force_mono=force_mono)  # model loads are not throughput
    start = time.perf_counter()
    results = [transcribe_audio(Path(c["file"]), engine, force_mono=force_mono) for c in calls]
    wall = time.perf_counter() - start
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
        "audio_s": sum(c["duration_s"] for c in calls), "wall_s": wall,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "text_er": text[0] / max(text[1], 1), "speaker_er": speaker[0] / max(speaker[1], 1),
        "segments": [[(s.channel, s.text) for s in r.segments] for r in results],
    })  # fmt: skip


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
    """How many calls decode to exactly the same segments (channel, text) in both."""
    same = sum(x == y for x, y in zip(a["segments"], b["segments"], strict=True))
    return f"{same}/{len(a['segments'])} calls identical"


def run() -> list[str]:
    got = {name: measure(name) for name in VARIANTS}
    base = got["mono"]
    base_rate = base["audio_s"] / base["wall_s"]
    lines = []
    for name in ("stereo", "stereo_old", "stereo_batched"):
        ours = got[name]
        rate = ours["audio_s"] / ours["wall_s"]
        lines.append(
            f"transcribe_{name}: ours {rate:.1f} audio-s/s, baseline {base_rate:.1f} audio-s/s "
            f"(mono mix + diarizer), ratio {rate / base_rate:.2f}"
        )
    for name, r in got.items():
        lines.append(
            f"transcribe_{name}_detail: RTF {r['wall_s'] / r['audio_s']:.3f}, "
            f"{r['audio_s']:.0f} s of calls in {r['wall_s']:.1f} s, "
            f"peak RSS {r['peak_mb']:.0f} MB, "
            f"text CER/WER {r['text_er']:.3f}, by speaker {r['speaker_er']:.3f}"
        )
    lines.append(
        f"transcribe_stereo_vs_old: {_same_text(got['stereo'], got['stereo_old'])}; "
        f"batched vs default: {_same_text(got['stereo_batched'], got['stereo'])}"
    )
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
