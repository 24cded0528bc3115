"""The CLI turns bad configuration and unreachable storage into one clear line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from earwitness import migrations


def run_cli(
    args: list[str], env_extra: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "earwitness.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_malformed_config_value_is_one_line(tmp_path: Path) -> None:
    res = run_cli(["db", "upgrade"], {"EARWITNESS_PORT": "eighty"}, tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "port" in lines[0] and "Traceback" not in res.stderr


def test_broken_toml_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "earwitness.toml").write_text("data_dir = [unclosed\n")
    res = run_cli(["db", "upgrade"], {}, tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "configuration" in res.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    res = run_cli(
        ["db", "upgrade"],
        {"EARWITNESS_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
        tmp_path,
    )
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "database unreachable" in res.stderr and "Traceback" not in res.stderr


def test_toml_file_configures_and_upgrade_reports_revision(tmp_path: Path) -> None:
    (tmp_path / "earwitness.toml").write_text(f'data_dir = "{tmp_path / "fromtoml"}"\n')
    res = run_cli(["db", "upgrade"], {}, tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "fromtoml" / "earwitness.db").is_file()
    head = ScriptDirectory(str(Path(migrations.__file__).parent)).get_heads()
    head = ",".join(sorted(head))
    assert f"schema at revision {head}" in res.stdout
