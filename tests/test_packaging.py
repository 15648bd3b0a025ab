"""The repo's own files: docker-compose names commands and ports that exist; every CLI
command documents itself with an example; the README leads with the two commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml
from typer.testing import CliRunner

from sqlsluice.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(cmd, "commands"):
            out.extend(_commands(cmd, path))
        else:
            out.append((path, cmd))
    return out


def all_commands() -> list[tuple[tuple[str, ...], Any]]:
    root = typer.main.get_command(app)
    assert hasattr(root, "commands")
    return _commands(root)


def test_every_command_has_help_with_an_example() -> None:
    cmds = all_commands()
    names = {" ".join(p) for p, _ in cmds}
    for required in ("serve", "demo", "query"):
        assert required in names, f"sluice {required} missing"
    for path, _cmd in cmds:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "sluice " + " ".join(path) in res.output.replace("\n", " ") or "Example" in res.output, \
            f"`sluice {' '.join(path)} --help` shows no example"


def test_docker_compose_names_real_commands_and_ports() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "sqlsluice"} <= set(services)
    svc = services["sqlsluice"]
    assert svc["build"] == "." and (ROOT / "Dockerfile").exists()
    cmd = svc["command"]
    assert cmd[0] == "sluice"
    # the command and its options exist in our CLI
    sub = cmd[1]
    res = runner.invoke(app, [sub, "--help"])
    assert res.exit_code == 0, res.output
    for opt in [c for c in cmd[2:] if c.startswith("--")]:
        assert opt in res.output, f"{opt} not an option of sluice {sub}"
    # the port sluice listens on is the one published
    listen = cmd[cmd.index("--listen") + 1]
    port = listen.rsplit(":", 1)[1]
    assert any(p.split(":")[-1] == port for p in svc["ports"]), (port, svc["ports"])
    # the backend URL points at the postgres service on the port postgres listens on
    backend = cmd[cmd.index("--backend") + 1]
    m = re.match(r"postgresql://[^@]+@([^:/]+):(\d+)/", backend)
    assert m and m.group(1) == "postgres" and m.group(2) == "5432"
    assert any(p.split(":")[-1] == "5432" for p in services["postgres"]["ports"])
    assert svc["environment"]["SLUICE_BACKEND"] == backend
    # the Dockerfile exposes the same port and installs the package that provides `sluice`
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile
    assert "pip install" in dockerfile
    assert (ROOT / "docker" / "sluice.toml").exists()


def test_readme_leads_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    head = text[:1500]
    assert "make demo" in head and "make test" in head
