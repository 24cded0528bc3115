"""pyannote.audio as a mono diarization backend (extra ``[pyannote]``), loaded locally.

pyannote's pretrained pipelines are gated downloads, so this backend loads a
pipeline from a local directory (its ``config.yaml`` plus the checkpoints it
names) or, where the user has one, a Hugging Face token and pipeline name.
torch/pyannote are imported only here, so the default install never needs
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earwitness.errors import ConfigError, ServiceUnavailable
from earwitness.transcription.diarization import Diarization
from earwitness.transcription.timing import SAMPLE_RATE
from earwitness.transcription.types import Turn


def load_pipeline(source: str, token: str | None = None) -> Any:
    """A pyannote Pipeline from a local directory/config file, or a hub name with a token."""
    try:
        from pyannote.audio import Pipeline
    except ImportError:
        raise ServiceUnavailable(
            "pyannote backend needs the [pyannote] extra (pip install 'earwitness[pyannote]')"
        ) from None
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "config.yaml"
    if path.exists():
        pipeline = Pipeline.from_pretrained(path)
    elif token:
        pipeline = Pipeline.from_pretrained(source, token=token)
    else:
        raise ConfigError(f"pyannote pipeline {source!r}: no such directory and no token given")
    if pipeline is None:
        raise ConfigError(f"pyannote could not build a pipeline from {source!r}")
    return pipeline


@dataclass
class PyannoteDiarizer:
    """Runs a pyannote speaker-diarization pipeline on in-memory audio."""

    pipeline: str = ""
    token: str | None = None
    name: str = "pyannote"
    _loaded: Any = field(default=None, repr=False)

    def diarize(self, audio: np.ndarray, *, num_speakers: int | None = None) -> Diarization:
        import torch

        if self._loaded is None:
            if not self.pipeline:
                raise ConfigError("pyannote backend needs a pipeline directory")
            self._loaded = load_pipeline(self.pipeline, self.token)
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, :]
        kwargs = {"num_speakers": num_speakers} if num_speakers else {}
        output = self._loaded({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **kwargs)
        annotation = getattr(output, "speaker_diarization", output)  # 4.x wraps the annotation
        turns = [
            Turn(float(seg.start), float(seg.end), str(label))
            for seg, _track, label in annotation.itertracks(yield_label=True)
        ]
        turns.sort(key=lambda t: t.start)
        return Diarization(turns, self.name, {"pipeline": self.pipeline})
