"""The documented deployment (deploy/) is consistent with the code (issue 16).

Docker cannot run on this machine, so the Compose file is not started here. Instead it is
loaded as YAML and every process it describes is checked against the real settings class
and the real CLI: the settings load, the commands exist, the queues named are the queues
the job kinds route to, and every earwitness process shares one data volume.
"""

from __future__ import annotations

import configparser
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from earwitness.cli import app
from earwitness.config import Settings
from earwitness.jobs.celery_app import queue_for
from earwitness.jobs.registry import get_handler, known_kinds, load_handler_modules

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


#: Settings naming directories that must exist: checked as mounts, then pointed at a tmp dir.
MOUNTED = ("EARWITNESS_AMI_RECORDING_DIR",)


def _settings_of(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp: Path, mounts: list[str]
) -> Settings:
    for key in [k for k in os.environ if k.startswith("EARWITNESS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key in MOUNTED:
            assert any(m.split(":")[1] == value for m in mounts), (key, value, mounts)
            value = str(tmp)
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("EARWITNESS_DATA_DIR", str(tmp / "data"))
    return Settings()


def product_queues(settings: Settings) -> set[str]:
    """Queues of the product's own job kinds (other tests register kinds of their own)."""
    load_handler_modules([])
    kinds = [k for k in known_kinds() if get_handler(k).func.__module__.startswith("earwitness.")]  # type: ignore[union-attr]
    return {queue_for(settings, kind) for kind in kinds}


def earwitness_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("command") and svc["command"][0] == "earwitness"
    }


def test_compose_has_the_documented_processes(compose: dict[str, Any]) -> None:
    services = earwitness_services(compose)
    commands = {name: svc["command"][1] for name, svc in services.items()}
    assert sorted(commands.values()) == ["serve", "serve", "tracker", "worker", "worker"]
    assert {"postgres", "redis", "proxy"} <= set(compose["services"])
    for name, svc in services.items():  # one shared blob/data volume everywhere
        assert "earwitness-data:/var/lib/earwitness" in svc["volumes"], name


def test_compose_settings_load_and_workers_cover_every_queue(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    consumed: set[str] = set()
    for name, svc in earwitness_services(compose).items():
        settings = _settings_of(svc["environment"], monkeypatch, tmp_path, svc["volumes"])
        assert settings.worker_mode == "celery", name
        assert settings.resolved_database_url.startswith("postgresql+psycopg://"), name
        if svc["command"][1] == "worker":
            args = svc["command"]
            consumed |= set(args[args.index("--queues") + 1].split(","))
        if svc["command"][1] == "tracker":
            assert settings.ami_enabled and settings.ami_recording_dir is not None
    # Every job kind's queue has a worker (else health would report it degraded).
    assert consumed == product_queues(settings)


def test_commands_in_compose_and_systemd_exist(compose: dict[str, Any]) -> None:
    runner = CliRunner()
    lines = [svc["command"][1:] for svc in earwitness_services(compose).values()]
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(unit.read_text())
        exec_start = shlex.split(parser["Service"]["ExecStart"])
        assert exec_start[0].endswith("/earwitness"), unit.name
        lines.append([a for a in exec_start[1:] if "%" not in a and "${" not in a])
    for args in lines:
        options = [a for a in args if a.startswith("--")]
        result = runner.invoke(app, [args[0], "--help"])
        assert result.exit_code == 0, (args, result.output)
        for option in options:
            assert option in result.output, (args, option)


def test_systemd_env_file_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {}
    for line in (DEPLOY / "systemd" / "earwitness.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    settings = _settings_of(env, monkeypatch, tmp_path, ["/mnt:/mnt/pbx-monitor"])
    assert settings.worker_mode == "celery" and settings.ami_enabled
    queue_files = sorted((DEPLOY / "systemd").glob("queues-*.env"))
    named = set()
    for path in queue_files:
        named |= set(path.read_text().strip().split("=", 1)[1].split(","))
    assert named == product_queues(settings)
