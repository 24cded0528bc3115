"""The pyannote.audio backend, run for real on a small pipeline built here from local checkpoints.

pyannote's pretrained pipelines are gated downloads, so ``tiny_pipeline`` assembles one the way
``pyannote/speaker-diarization-community-1`` is laid out: a ``config.yaml`` naming
``$model/segmentation`` (a randomly initialised PyanNet, powerset output), ``$model/embedding``
(a randomly initialised WeSpeaker ResNet34) and ``$model/plda`` (a PLDA whose transforms are
identity-like), each checkpoint saved in the format ``Model.from_pretrained`` reads (a Lightning
checkpoint with pyannote's ``on_save_checkpoint`` metadata). Random weights diarize nothing
meaningful; the tests assert what holds by construction: our loader builds the pipeline offline,
``diarize`` runs pyannote's real inference and returns well-formed turns, broken set-ups fail
with ConfigError and a missing install with ServiceUnavailable.

Tests marked ``pyannote`` need torch + pyannote.audio 4: ``scripts/test`` runs them in the
separate venv that ``scripts/pyannote_venv.sh`` builds. The rest run in both venvs.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from earwitness.errors import ConfigError, ServiceUnavailable
from earwitness.transcription.diarization import Diarization, make_diarizer
from earwitness.transcription.pyannote_backend import PyannoteDiarizer, load_pipeline
from earwitness.transcription.timing import SAMPLE_RATE
from earwitness.transcription.types import Turn

# huggingface_hub reads this once, at import: set before pyannote is first imported.
os.environ["HF_HUB_OFFLINE"] = "1"

pyannote = pytest.mark.pyannote

SEGMENTATION_S = 5.0  # the segmentation model's chunk length
EMBEDDING_DIM = 256  # WeSpeaker ResNet34
LDA_DIM = 128  # pyannote's PLDA default lda_dimension

CONFIG_YAML = """\
dependencies:
  pyannote.audio: 4.0.0
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: {clustering}
    embedding: $model/embedding
    embedding_batch_size: 4
    embedding_exclude_overlap: true
    plda: $model/plda
    segmentation: $model/segmentation
    segmentation_batch_size: 4
    segmentation_step: 0.5
params:
{params}
"""
VBX_PARAMS = """\
  clustering:
    threshold: 0.6
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""


def _save_model(model: Any, folder: Path) -> None:
    """Save ``model`` as ``folder/pytorch_model.bin``, the checkpoint pyannote loads."""
    import lightning
    import torch

    checkpoint: dict[str, Any] = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)  # pyannote's versions/architecture/specifications
    folder.mkdir(parents=True)
    torch.save(checkpoint, folder / "pytorch_model.bin")


def build_tiny_pipeline(root: Path, clustering: str = "VBxClustering") -> Path:
    """A community-1-shaped pipeline directory with random weights; returns the directory."""
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(0)
    segmentation = PyanNet(
        sample_rate=SAMPLE_RATE,
        lstm={"hidden_size": 16, "num_layers": 1, "bidirectional": True},
        linear={"hidden_size": 16, "num_layers": 1},
    )
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=SEGMENTATION_S,
        min_duration=SEGMENTATION_S,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    segmentation.setup()  # builds the classifier for the specifications
    # Random features, but a classifier that ignores them: every frame's powerset class is
    # {speaker#1} (index 1; 0 is silence), so by construction one local speaker talks throughout.
    with torch.no_grad():
        segmentation.classifier.weight.zero_()
        segmentation.classifier.bias.fill_(-10.0)
        segmentation.classifier.bias[1] = 10.0
    _save_model(segmentation, root / "segmentation")

    embedding = WeSpeakerResNet34(sample_rate=SAMPLE_RATE)
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=SEGMENTATION_S
    )
    embedding.setup()
    _save_model(embedding, root / "embedding")

    # PLDA: centring + an orthonormal projection to LDA_DIM, then an identity PLDA space with
    # decreasing between-class variances (VBx sorts and uses them).
    rng = np.random.default_rng(0)
    lda = np.linalg.qr(rng.standard_normal((EMBEDDING_DIM, LDA_DIM)))[0]
    (root / "plda").mkdir()
    np.savez(
        root / "plda" / "xvec_transform.npz",
        mean1=np.zeros(EMBEDDING_DIM),
        mean2=np.zeros(LDA_DIM),
        lda=lda,
    )
    np.savez(
        root / "plda" / "plda.npz",
        mu=np.zeros(LDA_DIM),
        tr=np.eye(LDA_DIM),
        psi=np.linspace(2.0, 0.1, LDA_DIM),
    )

    params = VBX_PARAMS if clustering == "VBxClustering" else _agglomerative_params()
    (root / "config.yaml").write_text(CONFIG_YAML.format(clustering=clustering, params=params))
    return root


def _agglomerative_params() -> str:
    return (
        "  clustering:\n    method: centroid\n    min_cluster_size: 1\n    threshold: 0.7\n"
        "  segmentation:\n    min_duration_off: 0.0\n"
    )


def _two_voices(duration_s: float) -> np.ndarray:
    """Alternating 'speakers' (different pitch, harmonics and noise) with pauses, 16 kHz."""
    rng = np.random.default_rng(1)
    t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.003 * rng.standard_normal(len(t))
    for k, start in enumerate(np.arange(0.5, duration_s - 1.5, 2.5)):
        f0 = 120.0 if k % 2 == 0 else 230.0
        span = (t >= start) & (t < start + 2.0)
        voice = sum(np.sin(2 * np.pi * f0 * h * t[span]) / h for h in range(1, 6))
        audio[span] += 0.2 * voice * (1 + 0.5 * np.sin(2 * np.pi * 4 * t[span]))
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("pyannote") / "pipeline")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any outbound connection (hub download, telemetry) and record the attempt."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"test forbids network access ({address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def _assert_well_formed(result: Diarization, duration_s: float) -> None:
    assert isinstance(result, Diarization)
    assert result.backend == "pyannote"
    assert all(isinstance(turn, Turn) for turn in result.turns)
    for turn in result.turns:
        assert 0.0 <= turn.start < turn.end <= duration_s, turn
        assert isinstance(turn.speaker, str) and turn.speaker
    assert [t.start for t in result.turns] == sorted(t.start for t in result.turns)


def _covered(turns: list[Turn]) -> float:
    """Seconds during which at least one turn is active."""
    total, reach = 0.0, 0.0
    for turn in sorted(turns, key=lambda t: t.start):
        if turn.end > reach:
            total += turn.end - max(turn.start, reach)
            reach = turn.end
    return total


@pyannote
def test_pipeline_loads_from_local_directory_offline(
    tiny_pipeline: Path, no_network: list[Any]
) -> None:
    from pyannote.audio import Pipeline
    from pyannote.audio.pipelines import SpeakerDiarization

    pipeline = load_pipeline(str(tiny_pipeline))
    assert isinstance(pipeline, Pipeline)
    assert isinstance(pipeline, SpeakerDiarization)
    # the $model/... entries resolved inside the directory, to our random checkpoints
    assert pipeline._segmentation.model.specifications.powerset
    assert pipeline._embedding.dimension == EMBEDDING_DIM
    # the config.yaml path itself works too
    assert isinstance(load_pipeline(str(tiny_pipeline / "config.yaml")), SpeakerDiarization)
    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "false"  # no telemetry to pyannote.ai
    assert no_network == []


@pyannote
def test_diarize_runs_real_inference_through_make_diarizer(
    tiny_pipeline: Path, no_network: list[Any]
) -> None:
    audio = _two_voices(8.0)
    duration = 8.0
    diarizer = make_diarizer("pyannote", pipeline=str(tiny_pipeline))
    assert isinstance(diarizer, PyannoteDiarizer)

    result = diarizer.diarize(audio)
    _assert_well_formed(result, duration)
    assert result.params == {"pipeline": str(tiny_pipeline)}
    # the segmentation model says "one speaker, every frame": turns cover the whole call
    assert _covered(result.turns) > 0.95 * duration

    one = diarizer.diarize(audio, num_speakers=1)
    _assert_well_formed(one, duration)
    assert len({t.speaker for t in one.turns}) == 1
    assert _covered(one.turns) > 0.95 * duration

    two = diarizer.diarize(audio, num_speakers=2)
    _assert_well_formed(two, duration)
    assert 1 <= len({t.speaker for t in two.turns}) <= 2
    assert isinstance(diarizer, PyannoteDiarizer)
    assert diarizer.load() is diarizer.load()  # loaded once, reused
    assert no_network == []


@pyannote
def test_diarize_with_agglomerative_clustering(tmp_path: Path, no_network: list[Any]) -> None:
    root = build_tiny_pipeline(tmp_path / "agg", clustering="AgglomerativeClustering")
    result = PyannoteDiarizer(pipeline=str(root)).diarize(_two_voices(6.0))
    _assert_well_formed(result, 6.0)
    assert _covered(result.turns) > 0.95 * 6.0


@pyannote
def test_diarize_short_and_empty_audio(tiny_pipeline: Path) -> None:
    diarizer = PyannoteDiarizer(pipeline=str(tiny_pipeline))
    # Shorter than one 5 s segmentation chunk: pyannote 4.0 pads it and reports speech up to
    # 4.975 s; the backend clips turns to the audio.
    short = _two_voices(12.0)[: int(1.5 * SAMPLE_RATE)]
    result = diarizer.diarize(short)
    _assert_well_formed(result, 1.5)
    assert _covered(result.turns) > 0.9 * 1.5
    assert diarizer.diarize(np.zeros(0, np.float32)).turns == []


@pyannote
def test_pipeline_from_environment(tiny_pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARWITNESS_PYANNOTE_PIPELINE", str(tiny_pipeline))
    diarizer = make_diarizer("pyannote")
    assert isinstance(diarizer, PyannoteDiarizer)
    assert diarizer.pipeline == str(tiny_pipeline)
    _assert_well_formed(diarizer.diarize(_two_voices(4.0)), 4.0)


@pyannote
def test_missing_or_broken_pipeline_is_a_config_error(
    tiny_pipeline: Path, tmp_path: Path, no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EARWITNESS_PYANNOTE_PIPELINE", raising=False)
    with pytest.raises(ConfigError, match="no such directory"):
        load_pipeline(str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="no config.yaml"):
        load_pipeline(str(tmp_path))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match="could not build a pipeline"):
        load_pipeline(str(broken))

    (broken / "config.yaml").write_text("pipeline:\n  name: no.such.Pipeline\n")
    with pytest.raises(ConfigError, match="could not build a pipeline"):
        load_pipeline(str(broken))

    # a config naming checkpoints that are not there (and may not be downloaded)
    (broken / "config.yaml").write_text((tiny_pipeline / "config.yaml").read_text())
    with pytest.raises(ConfigError, match="could not build a pipeline"):
        load_pipeline(str(broken))

    # a hub name needs a token; with one, the (here offline) download fails cleanly
    with pytest.raises(ConfigError, match="no token given"):
        load_pipeline("pyannote/speaker-diarization-community-1")
    with pytest.raises(ConfigError, match="pyannote could not"):
        load_pipeline("pyannote/speaker-diarization-community-1", token="hf_not_a_token")

    with pytest.raises(ConfigError, match="needs a pipeline directory"):
        PyannoteDiarizer(pipeline="").diarize(_two_voices(3.0))
    assert no_network == []


def test_missing_pyannote_is_service_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs in both venvs: the main one lacks pyannote, the other hides it."""
    if importlib.util.find_spec("pyannote") is not None:
        monkeypatch.setitem(sys.modules, "pyannote.audio", None)  # import → ImportError
    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    diarizer = make_diarizer("pyannote", pipeline=str(tmp_path))
    with pytest.raises(ServiceUnavailable, match=r"\[pyannote\] extra"):
        diarizer.diarize(np.zeros(SAMPLE_RATE, np.float32))
    with pytest.raises(ServiceUnavailable):
        load_pipeline(str(tmp_path))
