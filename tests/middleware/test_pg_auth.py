"""The proxy authenticates to an upstream that demands a password: cleartext, md5, SCRAM-SHA-256.

A dedicated cluster (so the shared one keeps trust auth) gets roles with passwords and
``pg_hba.conf`` lines that require each method; ``sluice serve`` is pointed at it with the
password in the backend URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.errors import ConfigError
from sqlsluice.middleware.upstream_auth import UpstreamTarget

ROLES = {"pw_clear": ("password", "clear-pw"), "pw_md5": ("md5", "md5 pw'x"),
         "pw_scram": ("scram-sha-256", "sc@ram:pw")}


@pytest.fixture(scope="module")
def locked_cluster() -> Iterator[PgCluster]:
    with PgCluster() as pg:
        with psycopg.connect(pg.url, autocommit=True) as c:
            for role, (method, pw) in ROLES.items():
                c.execute("SET password_encryption = " + ("'md5'" if method == "md5" else "'scram-sha-256'"))
                c.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{pw.replace(chr(39), chr(39) * 2)}'")  # type: ignore[arg-type]
            c.execute("CREATE DATABASE locked")
            c.execute("GRANT ALL ON DATABASE locked TO PUBLIC")
        hba = pg.datadir / "pg_hba.conf"
        lines = "".join(f"host all {role} 127.0.0.1/32 {method}\n" for role, (method, _pw) in ROLES.items())
        hba.write_text(lines + hba.read_text())
        with psycopg.connect(pg.url, autocommit=True) as c:
            c.execute("SELECT pg_reload_conf()")
        yield pg


def _url(pg: PgCluster, role: str, password: str) -> str:
    from urllib.parse import quote

    return f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:{pg.port}/locked"


def _backend_identity(tmp_path: Path) -> Path:
    """Everyone runs upstream as the backend URL's role (``upstream_identity = "backend"``)."""
    cfg = tmp_path / "sluice.toml"
    cfg.write_text('[server]\nupstream_identity = "backend"\n')
    return cfg


@pytest.mark.parametrize("role", sorted(ROLES))
def test_pg_upstream_password_auth(locked_cluster: PgCluster, role: str, tmp_path: Path) -> None:
    method, pw = ROLES[role]
    # the upstream really demands the password
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"postgresql://{role}:wrong@127.0.0.1:{locked_cluster.port}/locked").close()
    with ServeProcess(_url(locked_cluster, role, pw), config=_backend_identity(tmp_path)) as proxy:
        with psycopg.connect(proxy.dsn(user="app", database="locked")) as c:
            assert c.execute("SELECT current_user, current_database()").fetchone() == (role, "locked")
            c.execute("CREATE TEMP TABLE t (x int)")
            c.execute("INSERT INTO t VALUES (%s)", [7])
            assert c.execute("SELECT x FROM t").fetchone() == (7,)


def test_pg_upstream_wrong_password_is_reported(locked_cluster: PgCluster, tmp_path: Path) -> None:
    with ServeProcess(_url(locked_cluster, "pw_scram", "not-it"), config=_backend_identity(tmp_path)) as proxy:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed") as ei:
            psycopg.connect(proxy.dsn(database="locked")).close()
        assert "upstream" in str(ei.value)
        assert proxy.alive()
    with ServeProcess(f"postgresql://pw_md5@127.0.0.1:{locked_cluster.port}/locked",
                      config=_backend_identity(tmp_path)) as proxy:
        with pytest.raises(psycopg.OperationalError, match="has none"):
            psycopg.connect(proxy.dsn(database="locked")).close()


def test_pg_upstream_target_from_url() -> None:
    t = UpstreamTarget.from_url("postgresql://u%40x:p%3Aw@db.example:6000/sales?application_name=app")
    assert (t.host, t.port, t.user, t.password, t.database) == ("db.example", 6000, "u@x", "p:w", "sales")
    assert t.options == {"application_name": "app"}
    t = UpstreamTarget.from_url("postgresql://bob@127.0.0.1")
    assert (t.port, t.database, t.password) == (5432, "bob", None)
    with pytest.raises(ConfigError):
        UpstreamTarget.from_url("postgresql://u@h/db?sslmode=require")
