"""``pip install .`` alone gives a working install: a clean venv, no setup script, no extras.

The mono diarizer once needed the speaker-encoder weights from a package the setup script
installed with ``--no-deps``, and PyAV arrived only through faster-whisper. This test builds
the wheel into a fresh virtualenv and diarizes a real two-speaker recording with it, from a
directory outside the checkout, so only what the package declares and ships is used.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MONO = ROOT / "tests" / "data" / "speech" / "mono" / "mono_03.wav"

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
import numpy as np, soundfile as sf
import earwitness
from earwitness.transcription.diarization import make_diarizer
audio, rate = sf.read(sys.argv[1], dtype="float32")
assert rate == 16000
result = make_diarizer().diarize(audio)
print(json.dumps({"file": earwitness.__file__, "speakers": len({t.speaker for t in result.turns})}))
"""


def test_a_clean_pip_install_diarizes_a_real_mono_recording(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run(
        [str(python), "-c", PROBE, str(MONO)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(env_dir)), (
        "must run the installed package, not the checkout"
    )
    assert found["speakers"] == 2
    assert sys.prefix != str(env_dir)
