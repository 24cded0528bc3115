"""Hostile uploads against a real uvicorn server: chunked bodies over the limit, bodies trickled
byte by byte, wrong content types, archive bombs, and names built to confuse a reader.

Every refusal is a problem+json 4xx with nothing stored: no evidence row, no recording row,
no blob (the blob store's files are counted before and after).
"""

from __future__ import annotations

import io
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from earwitness.api import create_app
from earwitness.config import load_settings
from earwitness.models import Case, Evidence, Recording
from earwitness.runtime import Runtime
from tests.accounts_helpers import user_with_key

LIMIT_MB = 0.25
LIMIT = int(LIMIT_MB * 1024 * 1024)
IDLE_S = 1.0
MIN_RATE = 2000.0


@dataclass
class Server:
    runtime: Runtime
    url: str
    key: str
    case_id: int

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=30)

    def stored(self) -> tuple[int, int, int]:
        """(evidence rows, recording rows, blob files): what a refusal must leave unchanged."""
        with self.runtime.db.session() as session:
            evidence = session.scalar(select(func.count()).select_from(Evidence)) or 0
            recordings = session.scalar(select(func.count()).select_from(Recording)) or 0
        blobs = sum(1 for p in self.runtime.settings.blob_dir.rglob("*") if p.is_file())
        return evidence, recordings, blobs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("uploads")
    runtime = Runtime.open(
        load_settings(
            data_dir=root / "data",
            demo="never",
            worker_mode="off",
            max_upload_mb=LIMIT_MB,
            upload_idle_timeout_s=IDLE_S,
            upload_min_bytes_per_s=MIN_RATE,
        )
    )
    port = _free_port()
    config = uvicorn.Config(
        create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "uvicorn did not start"
    _, key = user_with_key(runtime, "admin")
    with runtime.db.session() as session:
        case = Case(number=f"CASE-UP-{uuid.uuid4().hex[:6]}", complainant_phone="13800138000")
        session.add(case)
        session.flush()
        case_id = case.id
    try:
        yield Server(runtime, f"http://127.0.0.1:{port}", key, case_id)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        runtime.close()


def _multipart(filename: str, content: bytes, boundary: str = "hardening") -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode()


def _problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return str(body["detail"])


def test_chunked_body_over_the_limit_is_413_and_nothing_stored(server: Server) -> None:
    before = server.stored()
    body = _multipart("big.bin", b"\x07" * (LIMIT + 100_000))

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    with server.client() as client:
        response = client.post(
            f"/api/cases/{server.case_id}/evidence",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=hardening"},
        )
    assert "exceeds the limit" in _problem(response, 413)
    assert server.stored() == before


def test_declared_length_over_the_limit_is_413(server: Server) -> None:
    with server.client() as client:
        response = client.post(
            "/api/recordings",
            files={"file": ("big.wav", b"\0" * (LIMIT + 1), "audio/wav")},
        )
    _problem(response, 413)


def test_body_trickled_byte_by_byte_times_out(server: Server) -> None:
    """A client that sends one byte every 50 ms (20 B/s) is cut off with 408 after the grace."""
    before = server.stored()
    body = _multipart("slow.txt", b"x" * 5000)
    head = (
        f"POST /api/cases/{server.case_id}/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {server.key}\r\nContent-Type: multipart/form-data; boundary=hardening\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    reply = b""
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                reply += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # the server closed the connection on us
                break
            if reply or time.monotonic() - started > 30:
                break
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except OSError:
            pass
    elapsed = time.monotonic() - started
    status_line = reply.split(b"\r\n", 1)[0]
    assert b" 408 " in status_line, reply[:300]
    assert b"arrived too slowly" in reply
    assert elapsed < IDLE_S + 10  # cut off within the grace, not after the whole body
    assert server.stored() == before


def test_idle_client_mid_body_times_out(server: Server) -> None:
    body = _multipart("idle.txt", b"y" * 100)
    head = (
        f"POST /api/cases/{server.case_id}/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-API-Key: {server.key}\r\nContent-Type: multipart/form-data; boundary=hardening\r\n"
        f"Content-Length: {len(body) + 50}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(head + body)  # 50 bytes short: the server waits for them
        sock.settimeout(IDLE_S + 10)
        reply = sock.recv(65536)
    assert b" 408 " in reply.split(b"\r\n", 1)[0], reply[:300]


def test_wrong_content_types_are_refused_with_4xx(server: Server) -> None:
    before = server.stored()
    with server.client() as client:
        as_json = client.post(f"/api/cases/{server.case_id}/evidence", json={"file": "x"})
        as_text = client.post(
            "/api/tracks/analyze", content=b"lat,lon\n1,2\n", headers={"Content-Type": "text/plain"}
        )
        not_audio = client.post(
            "/api/recordings", files={"file": ("photo.wav", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)}
        )
        not_a_track = client.post(
            "/api/tracks/analyze", files={"file": ("t.gpx", b"\xff\xd8\xff\xe0 a jpeg")}
        )
    assert as_json.status_code == 422 and "file" in as_json.text
    assert as_text.status_code == 422
    assert 400 <= not_audio.status_code < 500, not_audio.text
    assert not_a_track.status_code == 422
    for response in (as_json, as_text, not_audio, not_a_track):
        assert response.headers["content-type"].startswith("application/problem+json")
    assert server.stored() == before


def _zip_bomb(levels: int = 6, fanout: int = 8) -> bytes:
    """A nested zip: 1 MiB of zeros, zipped, then ``fanout`` copies zipped, ``levels`` deep
    (expanding it fully would write fanout**levels MiB = 256 GiB). Built in memory in ms."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (1 << 20))
    data = inner.getvalue()
    for level in range(levels - 1):
        outer = io.BytesIO()
        with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(fanout):
                z.writestr(f"l{level}-{i}.zip", data)
        data = outer.getvalue()
    return data


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<gpx version="1.1"><trk><trkseg><trkpt lat="1" lon="2"><name>&lol4;</name></trkpt>
</trkseg></trk></gpx>"""


def test_archive_bombs_are_never_expanded(server: Server) -> None:
    bomb = _zip_bomb()
    assert len(bomb) < LIMIT
    before = server.stored()
    with server.client() as client:
        as_track = client.post("/api/tracks/analyze", files={"file": ("t.kmz", bomb)})
        as_recording = client.post("/api/recordings", files={"file": ("call.wav", bomb)})
        laughs = client.post("/api/tracks/analyze", files={"file": ("t.gpx", BILLION_LAUGHS)})
        assert server.stored() == before
        as_evidence = client.post(
            f"/api/cases/{server.case_id}/evidence", files={"file": ("bomb.zip", bomb)}
        )
        assert as_evidence.status_code == 201, as_evidence.text
        evidence = as_evidence.json()
        content = client.get(f"/api/evidence/{evidence['id']}/content")
    assert as_track.status_code == 422 and "cannot tell the track format" in as_track.text
    assert 400 <= as_recording.status_code < 500, as_recording.text
    assert laughs.status_code == 422, laughs.text
    # filed as the opaque bytes it is: the stored file is the upload, byte for byte
    assert evidence["size_bytes"] == len(bomb) and content.content == bomb
    assert server.stored()[2] == before[2] + 1


def _post_named(server: Server, name: str, content: bytes) -> httpx.Response:
    """The name goes into the multipart header as raw UTF-8 (httpx would percent-encode
    control characters, hiding them from the server)."""
    boundary = "hardening"
    body = _multipart(name, content, boundary)
    with server.client() as client:
        return client.post(
            f"/api/cases/{server.case_id}/evidence",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("evil\x1b[31mred\x07.txt", "evil\ufffd[31mred\ufffd.txt"),
        ("invoice_\u202egnp.exe", "invoice_\ufffdgnp.exe"),  # RTL override: "invoiceexe.png"
        ("\u2067\u05d0.pdf\u2069", "\ufffd\u05d0.pdf\ufffd"),  # isolates around Hebrew
        ("b" * 1000 + ".txt", "b" * 255),
    ],
)
def test_hostile_file_names_are_shown_harmlessly(server: Server, name: str, shown: str) -> None:
    response = _post_named(server, name, f"content of {name[:40]!r} {uuid.uuid4()}".encode())
    assert response.status_code == 201, response.text
    evidence = response.json()
    with server.client() as client:
        download = client.get(f"/api/evidence/{evidence['id']}/content")
    assert evidence["original_name"] == shown
    disposition = download.headers["content-disposition"]
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition


def test_ten_thousand_character_name_is_a_clean_400(server: Server) -> None:
    before = server.stored()
    response = _post_named(server, "c" * 10_000 + ".txt", b"ten thousand")
    assert "multipart" in _problem(response, 400)
    assert server.stored() == before


def test_nul_in_a_file_name_is_refused(server: Server) -> None:
    before = server.stored()
    response = _post_named(server, "a\x00.txt", b"data")
    assert "NUL" in _problem(response, 422)
    assert server.stored() == before


def test_large_uploads_within_limits_still_work(server: Server, tmp_path: Path) -> None:
    """The timeouts do not cut off an ordinary client sending at network speed."""
    payload = uuid.uuid4().bytes * (LIMIT // 20)
    with server.client() as client:
        response = client.post(
            f"/api/cases/{server.case_id}/evidence", files={"file": ("ok.bin", payload)}
        )
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == len(payload)
