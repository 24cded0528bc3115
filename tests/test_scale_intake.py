"""Shared blob store and isolated upload decoding (issue 16).

Blobs live on a path every host mounts: several processes storing the same bytes at once
must leave one intact file and exactly one "creator" (only it may remove the blob when its
transaction rolls back). Uploaded audio is decoded in a child with time and memory limits.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earwitness.errors import BadInput
from earwitness.evidence.store import BlobStore
from earwitness.recordings.probe import probe, probe_isolated
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from earwitness.evidence.store import BlobStore
    store = BlobStore(Path(sys.argv[1]))
    data = Path(sys.argv[2]).read_bytes()
    sys.stdin.readline()  # start together
    info = store.put_bytes(data)
    print(info.sha256, int(info.created), flush=True)
    """
)


def test_concurrent_writers_of_the_same_blob_leave_one_file_and_one_creator(
    tmp_path: Path,
) -> None:
    data = os.urandom(3 << 20)  # several chunks: the writes overlap in time
    source = tmp_path / "payload.bin"
    source.write_bytes(data)
    root = tmp_path / "blobs"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(source)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(6)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=120)[0].split() for p in procs]
    sha = hashlib.sha256(data).hexdigest()
    assert all(r[0] == sha for r in results), results
    assert sorted(int(r[1]) for r in results) == [0, 0, 0, 0, 0, 1]
    blob = BlobStore(root).path(sha)
    assert blob.read_bytes() == data
    assert list((root / "tmp").iterdir()) == []  # no temp file left behind


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    rate = 8000
    t = np.arange(rate * 2) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    right = 0.2 * np.sin(2 * np.pi * 660 * t) * (t > 0.5)
    path = tmp_path / "call.wav"
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")
    return path


def test_isolated_probe_gives_the_same_answer_as_in_process(speech_wav: Path) -> None:
    assert probe_isolated(speech_wav, name="call.wav") == probe(speech_wav, name="call.wav")


def test_isolated_probe_limits_time_and_memory(speech_wav: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"'call.wav': decoding needed more than 64 MB"):
        probe_isolated(speech_wav, name="call.wav", memory_mb=64)
    with pytest.raises(BadInput, match=r"decoding took longer than 0.001 s and was stopped"):
        probe_isolated(speech_wav, name="call.wav", timeout_s=0.001)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + os.urandom(2000))
    with pytest.raises(BadInput, match="looks like WAV but is corrupt"):
        probe_isolated(junk, name="junk.wav")


def test_upload_route_refuses_an_over_limit_decode_and_stores_nothing(
    runtime: Runtime, speech_wav: Path
) -> None:
    from earwitness.models import Recording

    with api_client(runtime) as api:
        ok = api.post(
            "/api/recordings",
            files={"file": ("call.wav", speech_wav.read_bytes(), "audio/wav")},
            data={"transcribe": "false"},
        )
        assert ok.status_code == 201, ok.text
        runtime.settings.upload_decode_timeout_s = 0.001
        refused = api.post(
            "/api/recordings",
            files={"file": ("other.wav", speech_wav.read_bytes()[:-2000], "audio/wav")},
            data={"transcribe": "false"},
        )
    assert refused.status_code == 422 and "took longer than" in refused.text
    with runtime.db.session() as s:
        assert s.query(Recording).count() == 1
