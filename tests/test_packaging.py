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


def _compose_sluice() -> dict[str, Any]:
    svc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["sqlsluice"]
    return svc


def test_docker_image_runs_as_a_user_with_its_state_on_a_volume_and_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0"), users
    home = re.search(r"SLUICE_HOME=(\S+)", dockerfile)
    assert home, "the Dockerfile sets SLUICE_HOME"
    assert re.search(rf'^VOLUME \["{re.escape(home.group(1))}"\]', dockerfile, re.M)
    assert f"chown {users[-1]}:{users[-1]} {home.group(1)}" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD python -c .*http://127\.0\.0\.1:6544/healthz", dockerfile, re.M)
    assert re.search(r"^EXPOSE 6543 6544$", dockerfile, re.M)
    svc = _compose_sluice()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volume, _, mount = svc["volumes"][0].partition(":")
    assert volume in compose["volumes"] and mount == svc["environment"]["SLUICE_HOME"] == home.group(1)
    hc = svc["healthcheck"]["test"]
    assert hc[:3] == ["CMD", "python", "-c"] and "http://127.0.0.1:6544/healthz" in hc[3]
    assert "127.0.0.1:6544:6544" in svc["ports"]  # metrics, health and the web console: this host only


def test_docker_compose_takes_the_llm_from_the_environment() -> None:
    env = _compose_sluice()["environment"]
    # a model by default, so that OPENAI_API_KEY alone makes ASK work
    assert re.fullmatch(r"\$\{SLUICE_LLM_MODEL:-[\w.\-/]+\}", env["SLUICE_LLM_MODEL"])
    # key and endpoint passed through, never as "" (an empty OPENAI_BASE_URL breaks the client)
    assert env["OPENAI_API_KEY"] is None and env["OPENAI_BASE_URL"] is None
    # ... and these are the names the code reads
    llm_client = (ROOT / "sqlsluice" / "llm" / "client.py").read_text()
    for name in ("SLUICE_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        assert name in llm_client, name
    config_py = (ROOT / "sqlsluice" / "config.py").read_text()
    for name in ("SLUICE_LOG_LEVEL", "SLUICE_LOG_FORMAT"):
        assert name in env and name in config_py, name


def test_docker_config_is_valid_and_its_healthcheck_answers(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    from sqlsluice.config import load_config

    cfg = load_config(ROOT / "docker" / "sluice.toml")
    assert cfg.server.auth == "scram-sha-256" and cfg.users
    assert cfg.http.listen == "0.0.0.0:6544" and any(u.admin for u in cfg.users)  # healthcheck, console
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    port, http_port = ports
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    proc = subprocess.Popen([sys.executable, "-m", "sqlsluice", "serve", "--config", str(ROOT / "docker" / "sluice.toml"),
                             "--backend", f"duckdb:///{tmp_path / 'hc.duckdb'}", "--listen", f"127.0.0.1:{port}",
                             "--http-listen", f"127.0.0.1:{http_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        hc = _compose_sluice()["healthcheck"]["test"][1:]
        hc[0] = sys.executable
        hc[2] = hc[2].replace(":6544/", f":{http_port}/")
        deadline = time.monotonic() + 60
        while subprocess.run(hc, timeout=60, capture_output=True).returncode != 0:  # (polled: a loaded machine)
            assert time.monotonic() < deadline, "the healthcheck never passed"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)
    # and it fails once the proxy is gone
    assert subprocess.run(hc, timeout=60, capture_output=True).returncode != 0


def test_makefile_installs_system_packages_lean() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"apt-get install[^;\n]*", makefile) + re.findall(r"APT_INSTALL\s*:?=.*", makefile)
    assert installs
    for line in installs:
        assert "apt-get install" not in line or "--no-install-recommends" in line, line
    assert "$(APT_INSTALL) chromium" in makefile and "command -v chromium" in makefile


def test_readme_says_what_shared_data_is_and_the_right_demo_database() -> None:
    text = (ROOT / "README.md").read_text()
    assert "../shared/data" in text and "benchmark data folder" in text
    for folder in ("bird/", "spider/", "equivalence/", "rewrite/"):
        assert f"`{folder}`" in text, folder
    assert "-U sluice tpcds_sf0_1" in text and not re.search(r"-U sluice tpcds\b(?!_)", text)
