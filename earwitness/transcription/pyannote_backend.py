"""pyannote.audio as a mono diarization backend (extra ``[pyannote]``), loaded locally.

pyannote's pretrained pipelines are gated downloads, so this backend loads a
pipeline from a local directory (its ``config.yaml`` plus the checkpoints it
names, e.g. a snapshot of ``pyannote/speaker-diarization-community-1`` whose
``$model/segmentation``-style entries resolve inside that directory) or, where
the user has one, a Hugging Face token and pipeline name. Without explicit
arguments the pipeline and token come from the settings ``pyannote_pipeline`` and
``pyannote_token`` (``EARWITNESS_PYANNOTE_*`` or the TOML file; the token else ``HF_TOKEN``).

pyannote.audio 4 sends usage telemetry (audio durations, session ids) to
otel.pyannote.ai by default (``PYANNOTE_METRICS_ENABLED``, read on every call);
evidence stays offline, so this module switches it off before each load.
torch/pyannote are imported only here, so the default install never needs
them. Written against pyannote.audio 4 (``Pipeline.from_pretrained(..., token=)``,
output ``DiarizeOutput.speaker_diarization``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earwitness.errors import ConfigError, ServiceUnavailable
from earwitness.transcription.diarization import Diarization
from earwitness.transcription.timing import SAMPLE_RATE
from earwitness.transcription.types import Turn

PIPELINE_ENV = "EARWITNESS_PYANNOTE_PIPELINE"
TOKEN_ENV = "EARWITNESS_PYANNOTE_TOKEN"
CONFIG_FILE = "config.yaml"
_EXTRA_HINT = "pyannote backend needs the [pyannote] extra (pip install 'earwitness[pyannote]')"


def _pipeline_class() -> Any:
    """pyannote's ``Pipeline``, with its telemetry off; ServiceUnavailable when not installed."""
    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    try:
        from pyannote.audio import Pipeline
    except ImportError as exc:
        raise ServiceUnavailable(f"{_EXTRA_HINT}: {exc}") from None
    except OSError as exc:  # a torch/torchaudio build whose native libraries do not pair
        raise ServiceUnavailable(f"pyannote.audio is installed but does not load: {exc}") from None
    return Pipeline


def load_pipeline(source: str, token: str | None = None) -> Any:
    """A pyannote Pipeline from a local directory/config file, or a hub name with a token."""
    pipeline_class = _pipeline_class()
    path = Path(source).expanduser()
    config = path / CONFIG_FILE if path.is_dir() else path
    if config.is_file():
        origin: str | Path = config
        kwargs: dict[str, Any] = {}
    elif path.is_dir():
        raise ConfigError(f"pyannote pipeline directory {str(path)!r} has no {CONFIG_FILE}")
    elif token and not path.is_absolute() and not source.startswith((".", "~")):
        origin, kwargs = source, {"token": token}
    else:
        raise ConfigError(
            f"pyannote pipeline {source!r}: no such directory or {CONFIG_FILE}"
            + ("" if token else " (and no token given for a hub download)")
        )
    try:
        pipeline = pipeline_class.from_pretrained(origin, **kwargs)
    except Exception as exc:  # broken YAML, a missing or unreadable checkpoint, wrong classes
        raise ConfigError(
            f"pyannote could not build a pipeline from {source!r}: {type(exc).__name__}: {exc}"
        ) from exc
    if pipeline is None:  # from_pretrained's answer for a hub download that failed
        raise ConfigError(f"pyannote could not download pipeline {source!r}")
    return pipeline


@dataclass
class PyannoteDiarizer:
    """Runs a pyannote speaker-diarization pipeline on in-memory 16 kHz mono audio."""

    pipeline: str = ""
    token: str | None = None
    name: str = "pyannote"
    _loaded: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (self.pipeline and self.token):  # the settings object: env vars or the TOML file
            from earwitness.config import load_settings

            settings = load_settings()
            secret = settings.pyannote_token
            self.pipeline = self.pipeline or settings.pyannote_pipeline or ""
            self.token = (
                self.token
                or (secret.get_secret_value() if secret is not None else None)
                or os.environ.get("HF_TOKEN")
            )

    def load(self) -> Any:
        """The pipeline, loaded once (ConfigError/ServiceUnavailable when it cannot be)."""
        if self._loaded is None:
            if not self.pipeline:
                raise ConfigError(
                    f"pyannote backend needs a pipeline directory (set {PIPELINE_ENV})"
                )
            self._loaded = load_pipeline(self.pipeline, self.token)
        return self._loaded

    def diarize(self, audio: np.ndarray, *, num_speakers: int | None = None) -> Diarization:
        pipeline = self.load()
        import torch

        samples = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
        params: dict[str, Any] = {"pipeline": self.pipeline}
        if len(samples) == 0:
            return Diarization([], self.name, params)
        waveform = torch.from_numpy(samples)[None, :]
        kwargs = {"num_speakers": num_speakers} if num_speakers else {}
        output = pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **kwargs)
        annotation = getattr(output, "speaker_diarization", output)  # 4.x: DiarizeOutput
        duration = len(samples) / SAMPLE_RATE
        turns = [
            Turn(max(0.0, float(seg.start)), min(duration, float(seg.end)), str(label))
            for seg, _track, label in annotation.itertracks(yield_label=True)
            if float(seg.end) > float(seg.start)
        ]
        turns.sort(key=lambda t: (t.start, t.end))
        return Diarization(turns, self.name, params)
