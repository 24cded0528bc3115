"""Schema upgrades under a lock: three processes starting at once upgrade once (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from earwitness.db import Database
from earwitness.migrations import current_revision, head_revision

CHILD = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
    from earwitness.db import Database
    from earwitness.migrations import upgrade
    db = Database(sys.argv[1])
    db.ping()
    sys.stdin.readline()  # the starting gun: every process is connected and waiting
    upgrade(db.engine)
    print("UPGRADED", flush=True)
    """
)


def test_three_processes_migrating_at_once_upgrade_once(db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert all("UPGRADED" in out for out in outputs), outputs
    # Alembic logs each revision it applies; exactly one process applied any, and each once.
    ran = [
        [ln for ln in out.splitlines() if "Running upgrade" in ln and "-> 0001" not in ln]
        + [ln for ln in out.splitlines() if "Running upgrade  -> 0001" in ln]
        for out in outputs
    ]
    assert sorted(bool(r) for r in ran) == [False, False, True], outputs
    applied = next(r for r in ran if r)
    assert len(applied) == len(set(applied)) and any("-> 0014" in ln for ln in applied)
    db = Database(db_url)
    try:
        assert current_revision(db.engine) == head_revision(db.engine)
    finally:
        db.dispose()
