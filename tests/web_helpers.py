"""Browser tests' plumbing: Debian's chromium driven by Playwright, a real server process.

Playwright's own browser download does not work here, so Chromium is the system one
(``apt-get install chromium``, done by ./scripts/test). The server is ``earwitness serve``
in a subprocess on a free port, with its own data dir (SQLite, inline worker, demo data).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.polling import wait_until

CHROMIUM = os.environ.get("EARWITNESS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
API_KEY = "web-test-admin-key-0123456789abcdef"
PASSWORD = "correct horse battery"
SHOTS_COPY = Path("/tmp/web_shots")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": API_KEY}, timeout=30)

    def add_user(self, name: str, role: str, **extra: Any) -> None:
        with self.api() as c:
            r = c.post(
                "/api/users", json={"username": name, "role": role, "password": PASSWORD, **extra}
            )
            assert r.status_code == 201, r.text


@contextmanager
def running_server(data_dir: Path, **env: str) -> Iterator[Server]:
    """``earwitness serve`` with the demo loaded (the default on an empty database)."""
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    environment = {
        **os.environ,
        "EARWITNESS_DATA_DIR": str(data_dir),
        "EARWITNESS_BOOTSTRAP_API_KEY": API_KEY,
        "EARWITNESS_WORKER_MODE": "inline",
        "EARWITNESS_DEMO": "auto",
        **env,
    }
    for name in ("EARWITNESS_DATABASE_URL", "EARWITNESS_AMI_HOST", "EARWITNESS_CONFIG"):
        environment.pop(name, None)
    exe = Path(sys.executable).with_name("earwitness")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(exe), "serve", "--port", str(port)], env=environment, stdout=out, stderr=out
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, process, log)
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(server.url + "/api/health", timeout=2).status_code < 600
            except httpx.HTTPError:
                return False

        wait_until(up, 120, "the server to start")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def log_in(page: Any, server: Server, username: str, password: str = PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    with page.expect_navigation():
        page.click('button[type="submit"]')
    page.wait_for_load_state("load")


def shoot(page: Any, folder: Path, name: str) -> Path:
    """A full-page screenshot kept as a test artefact (and a copy for people to look at)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    try:
        SHOTS_COPY.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS_COPY / path.name)
    except OSError:
        pass
    return path
