"""Users map to upstream roles (issue 12, item 2): over PostgreSQL a client's session runs as
its own user name (or its ``[[users]]`` entry's ``upstream_role``), so ``current_user`` is the
client's role and PostgreSQL's own grants apply; ``upstream_identity = "backend"`` keeps the
first round's behaviour (everyone as the backend URL's role)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sqlsluice.bench.proxy import ServeProcess
from sqlsluice.databases.pgcluster import PgCluster


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    url = pg_cluster.create_database("roles_" + uuid.uuid4().hex[:8])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE secret (k int)")
        c.execute("INSERT INTO secret VALUES (1)")
        c.execute("CREATE TABLE open (k int)")
        for role in ("app", "reporter", "mapped_target"):
            c.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        c.execute("GRANT SELECT ON open TO app, reporter, mapped_target")
        c.execute("GRANT SELECT ON secret TO reporter")
    return url


def _proxy(upstream: str, tmp_path: Path, extra: str = "") -> ServeProcess:
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[server]\nbackend = "{upstream}"\nauth = "trust"\n{extra}\n'
                   '[[users]]\nname = "alias"\npassword = "pw"\nupstream_role = "mapped_target"\n')
    return ServeProcess(upstream, config=cfg)


@pytest.fixture()
def proxy(upstream: str, tmp_path: Path) -> Iterator[ServeProcess]:
    with _proxy(upstream, tmp_path) as p:
        yield p


def _db(upstream: str) -> str:
    return upstream.rsplit("/", 1)[1]


def test_current_user_is_the_clients_role(proxy: ServeProcess, upstream: str) -> None:
    with psycopg.connect(proxy.dsn(user="app", database=_db(upstream)), autocommit=True) as c:
        assert c.execute("SELECT current_user, session_user").fetchone() == ("app", "app")
        assert c.execute("SELECT count(*) FROM open").fetchone() == (0,)


def test_a_role_without_a_grant_gets_42501_from_postgresql(proxy: ServeProcess, upstream: str) -> None:
    with psycopg.connect(proxy.dsn(user="app", database=_db(upstream)), autocommit=True) as c, \
            pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        c.execute("SELECT * FROM secret")
    assert e.value.sqlstate == "42501" and "permission denied" in str(e.value)
    with psycopg.connect(proxy.dsn(user="reporter", database=_db(upstream)), autocommit=True) as c:
        assert c.execute("SELECT k FROM secret").fetchall() == [(1,)]


def test_a_user_entry_names_another_upstream_role(proxy: ServeProcess, upstream: str) -> None:
    with psycopg.connect(proxy.dsn(user="alias", database=_db(upstream)), autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == ("mapped_target",)


def test_an_unknown_role_is_postgresqls_own_28000(proxy: ServeProcess, upstream: str) -> None:
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(proxy.dsn(user="nobody_here", database=_db(upstream)), autocommit=True)
    assert 'role "nobody_here" does not exist' in str(e.value)


def test_backend_identity_is_the_old_behaviour(upstream: str, tmp_path: Path) -> None:
    with _proxy(upstream, tmp_path, 'upstream_identity = "backend"') as p, \
            psycopg.connect(p.dsn(user="app", database=_db(upstream)), autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == ("postgres",)
