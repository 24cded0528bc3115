"""RFC 3161 timestamps of the signed custody head, against a local TSA (``openssl ts -reply``).

The test builds a throw-away CA and a TSA certificate (extendedKeyUsage critical,
timeStamping) with the openssl CLI and serves ``openssl ts -reply`` over HTTP on
127.0.0.1: no network, a real TSA protocol exchange.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from earwitness.config import load_settings
from earwitness.errors import ConfigError
from earwitness.evidence import signing, timestamps
from earwitness.evidence.intake import IntakeRequest, intake
from earwitness.evidence.signing import CustodyKeys
from earwitness.evidence.verify import VerifyReport, verify
from earwitness.jobs.registry import get_handler, load_handler_modules
from earwitness.models import Case, CustodyEntry
from earwitness.models.evidence import CustodyTimestamp
from earwitness.runtime import Runtime

TSA_CONF = """
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN={name} CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


def make_tsa(folder: Path) -> None:
    make_ca(folder, "Test TSA")
    (folder / "ext.cnf").write_text(
        "extendedKeyUsage=critical,timeStamping\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,nonRepudiation\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tsa.crt", "-days", "2", "-extfile", "ext.cnf",
        cwd=folder,
    )  # fmt: skip
    (folder / "tsaserial").write_text("01\n")
    (folder / "tsa.cnf").write_text(TSA_CONF.format(dir=folder))


@dataclass
class LocalTsa:
    url: str
    ca: Path
    requests: list[bytes]


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    folder = tmp_path / "tsa"
    make_tsa(folder)
    seen: list[bytes] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                seen.append(query)
                (folder / "q.tsq").write_bytes(query)
                done = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", "tsa.cnf", "-queryfile", "q.tsq"]
                    + ["-out", "r.tsr"],
                    cwd=folder,
                    capture_output=True,
                )
                reply = (folder / "r.tsr").read_bytes() if done.returncode == 0 else b""
            self.send_response(200 if reply else 500)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalTsa(f"http://127.0.0.1:{server.server_port}/tsa", folder / "ca.crt", seen)
    finally:
        server.shutdown()
        server.server_close()


def _runtime(tmp_path: Path, db_url: str, **extra: Any) -> Runtime:
    settings = load_settings(data_dir=tmp_path / "data", database_url=db_url, demo="never", **extra)
    rt = Runtime.open(settings)
    signing.attach(rt.db.engine, rt.settings)
    return rt


@pytest.fixture
def stamped_rt(tmp_path: Path, db_url: str, tsa: LocalTsa) -> Iterator[Runtime]:
    rt = _runtime(tmp_path, db_url, tsa_url=tsa.url, tsa_ca_path=tsa.ca)
    try:
        yield rt
    finally:
        rt.close()


def _file(rt: Runtime, data: bytes) -> int:
    with rt.db.session() as s:
        case = s.scalar(sa.select(Case)) or Case(number="C-1", complainant_phone="13800138000")
        s.add(case)
        s.flush()
        return intake(s, rt.blobs, IntakeRequest(case.id, "a.txt", "li"), io.BytesIO(data)).id


def _stamp(rt: Runtime) -> timestamps.StampResult:
    with rt.db.session() as s:
        return timestamps.timestamp_head(s, CustodyKeys(rt.settings))


def _verify(rt: Runtime) -> VerifyReport:
    with rt.db.session() as s:
        return verify(s, rt.blobs, full=True, keys=CustodyKeys(rt.settings))


def test_request_is_valid_der_that_openssl_reads(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"head").digest()
    (tmp_path / "q.tsq").write_bytes(timestamps.build_request(digest, 2**62 + 5))
    shown = subprocess.run(
        ["openssl", "ts", "-query", "-in", "q.tsq", "-text"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Hash Algorithm: sha256" in shown and "Certificate required: yes" in shown
    assert "0x4000000000000005" in shown
    assert digest.hex()[:8] in re.sub(r"[\s-]", "", shown).lower()


def test_head_is_stamped_stored_twice_and_verified(stamped_rt: Runtime, tsa: LocalTsa) -> None:
    _file(stamped_rt, b"first\n")
    result = _stamp(stamped_rt)
    assert result.status == "stamped" and len(tsa.requests) == 1
    assert _stamp(stamped_rt).status == "unchanged" and len(tsa.requests) == 1
    with stamped_rt.db.session() as s:
        row = s.scalars(sa.select(CustodyTimestamp)).one()
        head = s.scalars(sa.select(CustodyEntry).order_by(CustodyEntry.id.desc())).first()
        assert head is not None
        assert (row.entry_id, row.entry_hash, row.tsa_url) == (head.id, head.entry_hash, tsa.url)
    folder = stamped_rt.settings.custody_key_dir / "timestamps"
    assert (folder / f"{row.id:06d}.tsr").read_bytes() == row.token
    report = _verify(stamped_rt)
    assert report.ok, report.lines()
    assert any("1 token(s) checked" in note for note in report.notes)
    _file(stamped_rt, b"second\n")
    assert _stamp(stamped_rt).status == "stamped"
    assert _verify(stamped_rt).ok


def test_insider_deleting_token_row_or_entry_is_named(stamped_rt: Runtime) -> None:
    _file(stamped_rt, b"first\n")
    _stamp(stamped_rt)
    with stamped_rt.db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM custody_timestamps"))
    lines = _verify(stamped_rt).lines()
    assert lines == ["timestamp 1: database row was deleted (its token file remains)"]


def test_token_from_another_ca_fails(stamped_rt: Runtime, tmp_path: Path) -> None:
    _file(stamped_rt, b"first\n")
    _stamp(stamped_rt)
    other = tmp_path / "other"
    make_ca(other, "Someone Else")
    settings = stamped_rt.settings.model_copy(update={"tsa_ca_path": other / "ca.crt"})
    with stamped_rt.db.session() as s:
        report = verify(s, stamped_rt.blobs, keys=CustodyKeys(settings))
    assert len(report.problems) == 1
    assert report.lines()[0].startswith("timestamp 1: token does not verify")


def test_no_tsa_configured_is_skipped_with_one_note(tmp_path: Path, db_url: str) -> None:
    rt = _runtime(tmp_path, db_url)
    try:
        _file(rt, b"x\n")
        assert _stamp(rt).status == "skipped"
        report = _verify(rt)
        assert report.ok
        assert [n for n in report.notes if "timestamps" in n] == [
            "trusted timestamps: not configured (tsa_url unset), skipped"
        ]
    finally:
        rt.close()


def test_tsa_without_ca_is_a_config_error(tmp_path: Path, tsa: LocalTsa) -> None:
    rt = _runtime(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", tsa_url=tsa.url)
    try:
        _file(rt, b"x\n")
        with pytest.raises(ConfigError, match="tsa_ca_path"):
            _stamp(rt)
    finally:
        rt.close()


def test_job_handler_stamps(stamped_rt: Runtime) -> None:
    load_handler_modules([])
    spec = get_handler("custody.timestamp")
    assert spec is not None
    _file(stamped_rt, b"x\n")

    @dataclass
    class Ctx:
        env: Any
        job_id: int = 1
        attempt: int = 1

        def progress(self, percent: float, message: str = "") -> None:
            pass

    result = spec.func(Ctx(stamped_rt.job_env()), {})
    assert result is not None and result["status"] == "stamped"


def test_bundle_timestamps_verify_with_openssl_only(stamped_rt: Runtime, tmp_path: Path) -> None:
    _file(stamped_rt, b"x\n")
    _stamp(stamped_rt)
    with stamped_rt.db.session() as s:
        entries = list(s.scalars(sa.select(CustodyEntry).order_by(CustodyEntry.id)))
        members = signing.bundle_material(s, stamped_rt.settings, entries)
    assert {"timestamps/1.tsr", "timestamps/1.json", "timestamps/tsa-ca.pem"} <= members.keys()
    script = re.search(r"```sh\n(.*?)```", members["VERIFY.md"].decode(), re.S)
    assert script is not None
    for tamper in (None, "timestamps/1.json"):
        folder = tmp_path / f"b-{tamper is None}"
        for name, data in members.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        if tamper:
            (folder / tamper).write_bytes(members[tamper].replace(b'"entry_id":', b'"entry_id": '))
        done = subprocess.run(
            ["bash", "-c", script.group(1)],
            cwd=folder,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        if tamper is None:
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Verification: OK" in done.stdout
        else:
            assert done.returncode != 0 and "custody log verified" not in done.stdout
