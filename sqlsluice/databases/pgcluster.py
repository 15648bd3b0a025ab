"""Throwaway PostgreSQL clusters (``initdb`` in a temp dir, a free port) for tests and benchmarks.

PostgreSQL refuses to run as root; when we are root the cluster is created and run as the
``postgres`` system user (which Debian's package creates).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlsluice.errors import ConfigError


def pg_bindir() -> Path:
    """Directory of the PostgreSQL server binaries (``pg_config --bindir``, then Debian's layout)."""
    cands: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            cands.append(Path(out.stdout.strip()))
    cands.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for c in cands:
        if (c / "initdb").exists() and (c / "postgres").exists():
            return c
    raise ConfigError("PostgreSQL server binaries not found (install the 'postgresql' package)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A running throwaway cluster.  ``url`` connects as superuser ``postgres`` (trust auth)."""

    def __init__(self, *, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.bindir = pg_bindir()
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        self.datadir = self.base / "data"
        self.settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "work_mem": "64MB",
            "max_parallel_workers_per_gather": "0",
        }
        self.settings.update(settings or {})
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError as e:
                raise ConfigError("running as root and no 'postgres' user exists") from e
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        def demote() -> None:
            if self._user is not None:
                os.setgid(self._user.pw_gid)
                os.setuid(self._user.pw_uid)

        env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
        return subprocess.run(args, capture_output=True, text=True, preexec_fn=demote, env=env,
                              check=False, **kw)  # type: ignore[call-overload]

    def start(self) -> PgCluster:
        r = self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", "--no-sync"])
        if r.returncode != 0:
            raise ConfigError(f"initdb failed: {r.stderr.strip()}")
        with open(self.datadir / "postgresql.conf", "a") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")
            f.write(f"port = {self.port}\n")
        r = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                       str(self.base / "log.txt"), "-w", "-t", "60", "start"])
        if r.returncode != 0:
            log = (self.base / "log.txt").read_text() if (self.base / "log.txt").exists() else ""
            raise ConfigError(f"pg_ctl start failed: {r.stderr.strip()} {log[-2000:]}")
        self.started = True
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise ConfigError("PostgreSQL did not start listening")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.dsn(name)

    def stop(self) -> None:
        if self.started:
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
