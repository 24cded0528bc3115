"""Speaker embeddings from resemblyzer's GE2E voice encoder — run in numpy.

Resemblyzer's GE2E voice encoder (3-layer LSTM, 40 mel bands, 256-d output,
Apache-2.0, Corentin Jemine / Resemble AI) is small enough to run without
PyTorch. Its weights ship *inside this package* as
``assets/ge2e_resemblyzer.npz`` (float16, 2.8 MB; the Apache notice sits
beside it), so the default mono diarization needs no torch, no download and no
third-party package: installing resemblyzer itself would pull torch through its
dependencies. The archive's SHA-256 is pinned here and checked on load, so a
damaged or swapped file fails loudly instead of producing plausible but wrong
speaker labels.

:func:`convert_legacy_weights` rebuilt the archive from resemblyzer 0.1.4's
``pretrained.pt`` (PyTorch's legacy pickle format, read with a restricted
unpickler: no code execution); it is kept so the conversion can be repeated:
``python -m earwitness.transcription.voice_encoder PRETRAINED_PT OUT_NPZ``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import sys
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from earwitness.errors import ServiceUnavailable

RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40  # 25 ms windows, 10 ms hop, as the encoder was trained
PARTIAL_FRAMES = 160  # 1.6 s per partial embedding
WEIGHTS_PATH = Path(__file__).resolve().parent / "assets" / "ge2e_resemblyzer.npz"
WEIGHTS_SHA256 = "90fedd4fc7cba8cff5663586906426ff030d0349c6ead377dd1c9290db3e5960"
_DTYPES = {
    "FloatStorage": np.float32,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "DoubleStorage": np.float64,
}


def load_weights(path: Path = WEIGHTS_PATH, sha256: str = WEIGHTS_SHA256) -> dict[str, np.ndarray]:
    """The encoder's arrays as float32, after checking the archive against its pinned hash."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServiceUnavailable(f"speaker encoder weights missing at {path}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ServiceUnavailable(
            f"speaker encoder weights at {path} fail their checksum (sha256 {digest}, "
            f"expected {sha256}): the file is damaged or not the shipped one; reinstall earwitness"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name].astype(np.float32) for name in archive.files}


def convert_legacy_weights(
    pretrained_pt: Path, out_npz: Path, dtype: type[np.floating[Any]] = np.float16
) -> str:
    """Write resemblyzer's ``pretrained.pt`` as a compressed ``.npz``; return its SHA-256."""
    weights = _read_legacy(pretrained_pt)
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: v.astype(dtype) for k, v in sorted(weights.items())}
    np.savez_compressed(buffer, **arrays)
    out_npz.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


class _LegacyUnpickler(pickle.Unpickler):
    """Only what a legacy state dict needs; anything else is refused (no code execution)."""

    def __init__(self, stream: BinaryIO, storages: dict[str, tuple[str, int]]) -> None:
        super().__init__(stream)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        _tag, storage_type, key, _location, size = pid[:5]
        self.storages[key] = (storage_type, size)
        return key


def _rebuild(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> Any:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    storages: dict[str, tuple[str, int]] = {}
    with path.open("rb") as stream:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(stream)
        result = _LegacyUnpickler(stream, storages).load()
        keys = pickle.load(stream)
        data: dict[str, np.ndarray] = {}
        for key in keys:
            storage_type, _ = storages[key]
            (count,) = struct.unpack("<q", stream.read(8))
            dtype = np.dtype(_DTYPES[storage_type])
            data[key] = np.frombuffer(stream.read(count * dtype.itemsize), dtype=dtype)
    state = result["model_state"]
    out = {}
    for name, (_tag, key, offset, size, stride) in state.items():
        flat = data[key]
        item = flat.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * item for s in stride]
        ).astype(np.float32)
    return out


def _mel_filters() -> np.ndarray:
    """Slaney-style mel filterbank, as librosa builds it by default."""
    fmax, n_freqs = RATE / 2, N_FFT // 2 + 1

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, mel)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        hz = m * (200.0 / 3)
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log_part, hz)

    fft_freqs = np.linspace(0, fmax, n_freqs)
    mel_pts = mel_to_hz(
        np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(fmax)), N_MELS + 2)
    )
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2 : N_MELS + 2] - mel_pts[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def mel_frames(audio: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram (no log: the encoder was trained on power)."""
    padded = np.pad(audio.astype(np.float32), N_FFT // 2)
    count = 1 + (len(padded) - N_FFT) // HOP
    if count < 1:
        return np.zeros((0, N_MELS), dtype=np.float32)
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(count)[:, None]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    power = np.abs(np.fft.rfft(padded[index] * window, axis=1)) ** 2
    return (power @ _mel_filters().T).astype(np.float32)


class VoiceEncoder:
    """GE2E encoder in numpy: ``embed(frames_batch)`` → unit-length 256-d vectors."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights

    def _lstm(self, x: np.ndarray) -> np.ndarray:
        batch = x.shape[0]
        for layer in range(3):
            w_ih, w_hh = self.w[f"lstm.weight_ih_l{layer}"], self.w[f"lstm.weight_hh_l{layer}"]
            bias = self.w[f"lstm.bias_ih_l{layer}"] + self.w[f"lstm.bias_hh_l{layer}"]
            gates_in = x @ w_ih.T + bias
            h = np.zeros((batch, 256), np.float32)
            c = np.zeros((batch, 256), np.float32)
            outputs = np.empty((batch, x.shape[1], 256), np.float32)
            for t in range(x.shape[1]):
                g = gates_in[:, t] + h @ w_hh.T
                i, f, gg, o = np.split(g, 4, axis=1)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
                h = _sigmoid(o) * np.tanh(c)
                outputs[:, t] = h
            x = outputs
        return h

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """frames: (batch, PARTIAL_FRAMES, 40) → (batch, 256), L2-normalised."""
        hidden = self._lstm(frames.astype(np.float32))
        emb = np.maximum(0, hidden @ self.w["linear.weight"].T + self.w["linear.bias"])
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@lru_cache(maxsize=1)
def load_encoder() -> VoiceEncoder:
    return VoiceEncoder(load_weights())


def normalise_volume(audio: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Resemblyzer's level normalisation (the encoder expects -30 dBFS speech)."""
    rms = float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
    if rms < 1e-6:
        return audio
    return audio * (10 ** (target_dbfs / 20) / rms)


if __name__ == "__main__":  # re-create the shipped archive from resemblyzer's pretrained.pt
    print(convert_legacy_weights(Path(sys.argv[1]), Path(sys.argv[2])))
