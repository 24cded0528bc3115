"""pytest fixtures for a real Asterisk.

Use from a conftest.py or test module::

    pytest_plugins = ["tests.pbx.fixtures"]

``asterisk_root`` builds (once, cached under ~/.cache/earwitness/asterisk-root or
$EARWITNESS_PBX_ROOT) the Debian sid root with Asterisk 22; if that fails the fixture
*fails* the test - it never skips.  ``asterisk`` gives a started :class:`Asterisk`
(function scope, fresh configs and a free AMI port); ``asterisk_module`` shares one per
module.  ``ami`` is a logged-in tiny AMI client on ``asterisk``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pbx.asterisk import AMI, Asterisk, build_root


@pytest.fixture(scope="session")
def asterisk_root() -> Path:
    if os.geteuid() != 0:
        pytest.fail(
            "the Asterisk test root needs root (debootstrap/chroot); run the tests as root",
            pytrace=False,
        )
    t0 = time.monotonic()
    try:
        root = build_root()
    except Exception as e:  # noqa: BLE001 - report loudly, never skip
        pytest.fail(f"could not build the Asterisk root: {e}", pytrace=False)
    print(f"[pbx] asterisk root ready in {time.monotonic() - t0:.1f}s: {root}")
    return root


def _instance(root: Path, **kw: object) -> Iterator[Asterisk]:
    pbx = Asterisk(root, **kw)  # type: ignore[arg-type]
    try:
        pbx.start()
    except Exception as e:  # noqa: BLE001
        pbx.kill()
        pytest.fail(f"Asterisk did not start: {e}", pytrace=False)
    try:
        yield pbx
    finally:
        pbx.stop()
        if not os.environ.get("EARWITNESS_PBX_KEEP"):
            pbx.cleanup()


@pytest.fixture
def asterisk(asterisk_root: Path, request: pytest.FixtureRequest) -> Iterator[Asterisk]:
    """A started Asterisk; parametrise with ``@pytest.mark.asterisk(agents=5, member_timeout=3)``."""
    marker = request.node.get_closest_marker("asterisk")
    kw = dict(marker.kwargs) if marker else {}
    yield from _instance(asterisk_root, **kw)


@pytest.fixture(scope="module")
def asterisk_module(asterisk_root: Path) -> Iterator[Asterisk]:
    yield from _instance(asterisk_root)


@pytest.fixture
def ami(asterisk: Asterisk) -> Iterator[AMI]:
    client = asterisk.ami()
    try:
        yield client
    finally:
        client.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "asterisk(**kwargs): options for the asterisk fixture (Asterisk(...) kwargs)"
    )
