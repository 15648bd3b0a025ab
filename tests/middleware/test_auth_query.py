"""``[auth]`` (PgBouncer's ``auth_query``): clients that are not in ``[[users]]`` are checked
against the secret PostgreSQL stores for them, and the proxy logs in upstream as them with
what that check left it (SCRAM pass-through, md5 hash), never with a plaintext password.

The shared throwaway cluster gets roles with passwords and ``pg_hba.conf`` lines (for these
roles only, so that other tests keep trust) that make PostgreSQL demand SCRAM or md5 from
them: a session as the client's role upstream proves the pass-through worked.  Real
clients: psycopg, asyncpg, psql; a real :class:`SluiceServer`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from sqlsluice.config import Config
from sqlsluice.databases.pgcluster import PgCluster
from sqlsluice.middleware.auth import ScramExchange, StoredSecret, parse_secret, scram_keys, scram_verifier
from sqlsluice.middleware.server import ServerThread, SluiceServer

AUTH_USER, AUTH_PW = "aq_auth", "auth pw'1"  # superuser: reads pg_shadow (PgBouncer's default query)
LOOKUP_USER, LOOKUP_PW = "aq_lookup", "lookup-pw"  # no superuser: a SECURITY DEFINER function
SCRAM_USER, SCRAM_PW = "aq_scram", "sc@ram pw"
MD5_USER, MD5_PW = "aq_md5", "md5:pw"


@pytest.fixture(scope="module")
def upstream(pg_cluster: PgCluster) -> str:
    """A database whose roles need passwords: SCRAM for all but ``aq_md5`` (md5)."""
    url = pg_cluster.create_database("aq_" + uuid.uuid4().hex[:8])
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as c:
        for role, pw, enc, extra in ((AUTH_USER, AUTH_PW, "scram-sha-256", "SUPERUSER"),
                                     (LOOKUP_USER, LOOKUP_PW, "scram-sha-256", ""),
                                     (SCRAM_USER, SCRAM_PW, "scram-sha-256", ""), (MD5_USER, MD5_PW, "md5", "")):
            c.execute(f"SET password_encryption = '{enc}'")
            c.execute(f"DROP ROLE IF EXISTS {role}")
            c.execute(f"CREATE ROLE {role} LOGIN {extra} PASSWORD '{pw.replace(chr(39), chr(39) * 2)}'")  # type: ignore[arg-type]
        c.execute(f'GRANT ALL ON DATABASE "{dbname}" TO PUBLIC')
        c.execute("CREATE TABLE items (k int PRIMARY KEY, v text)")
        c.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        c.execute("GRANT SELECT ON items TO PUBLIC")
        # PgBouncer's recommended setup for a role that is no superuser
        c.execute("CREATE FUNCTION public.lookup(u text, OUT usename name, OUT passwd text) RETURNS record "
                  "LANGUAGE sql SECURITY DEFINER AS "
                  "$$ SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = u $$")
        c.execute("REVOKE ALL ON FUNCTION public.lookup(text) FROM PUBLIC")
        c.execute(f"GRANT EXECUTE ON FUNCTION public.lookup(text) TO {LOOKUP_USER}")
    hba = pg_cluster.datadir / "pg_hba.conf"
    lines = "".join(f"host all {role} 127.0.0.1/32 {method}\n" for role, method in (
        (AUTH_USER, "scram-sha-256"), (LOOKUP_USER, "scram-sha-256"), (SCRAM_USER, "scram-sha-256"),
        (MD5_USER, "md5")))
    if lines not in hba.read_text():
        hba.write_text(lines + hba.read_text())
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT pg_reload_conf()")
    # PostgreSQL itself now refuses these roles without their password
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(_as(url, SCRAM_USER, "wrong")).close()
    return url


def _as(url: str, user: str, password: str) -> str:
    """``url`` with another user and password."""
    from urllib.parse import quote, urlsplit, urlunsplit

    p = urlsplit(url)
    host = p.netloc.rsplit("@", 1)[-1]
    return urlunsplit((p.scheme, f"{quote(user, safe='')}:{quote(password, safe='')}@{host}", p.path, p.query, ""))


def _server(upstream: str, **over: Any) -> SluiceServer:
    dbname = upstream.rsplit("/", 1)[1]
    data: dict[str, Any] = {"server": {"backend": upstream},
                            "auth": {"user": AUTH_USER, "password": AUTH_PW, "cache_s": 30},
                            "databases": {
                                dbname: upstream,
                                "tx": {"backend": upstream, "pool_mode": "transaction", "pool_size": 2},
                                "viafn": {"backend": upstream, "auth_user": LOOKUP_USER,
                                          "auth_query": "SELECT usename, passwd FROM public.lookup($1)"}}}
    for k, v in over.items():
        if isinstance(v, dict):
            data.setdefault(k, {}).update(v)
        else:
            data[k] = v
    return SluiceServer(Config.model_validate(data))


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[tuple[SluiceServer, int]]:
    # ``viafn``'s auth_user takes its password from its [[users]] entry (PgBouncer: auth_file)
    srv = _server(upstream, users=[{"name": LOOKUP_USER, "password": LOOKUP_PW}])
    with ServerThread(srv) as th:
        yield srv, th.port


def _dsn(port: int, user: str, password: str, database: str) -> str:
    return _as(f"postgresql://127.0.0.1:{port}/{database}", user, password)


def _db(upstream: str) -> str:
    return upstream.rsplit("/", 1)[1]


def test_scram_user_logs_in_upstream_as_itself(proxy: tuple[SluiceServer, int], upstream: str) -> None:
    _srv, port = proxy
    with psycopg.connect(_dsn(port, SCRAM_USER, SCRAM_PW, _db(upstream)), autocommit=True) as c:
        # PostgreSQL demanded SCRAM from aq_scram: the ClientKey from the client's proof answered it
        assert c.execute("SELECT current_user, session_user").fetchone() == (SCRAM_USER, SCRAM_USER)
        assert c.execute("SELECT v FROM items WHERE k = %s", [2]).fetchone() == ("two",)


def test_md5_user_logs_in_with_its_hash(proxy: tuple[SluiceServer, int], upstream: str) -> None:
    _srv, port = proxy
    with psycopg.connect(_dsn(port, MD5_USER, MD5_PW, _db(upstream)), autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == (MD5_USER,)


def test_asyncpg_and_psql_log_in_through_auth_query(proxy: tuple[SluiceServer, int], upstream: str) -> None:
    _srv, port = proxy

    async def go() -> Any:
        c = await asyncpg.connect(host="127.0.0.1", port=port, user=SCRAM_USER, password=SCRAM_PW,
                                  database=_db(upstream))
        try:
            return await c.fetchval("SELECT current_user || ':' || (SELECT v FROM items WHERE k = $1)", 1)
        finally:
            await c.close()

    assert asyncio.run(go()) == f"{SCRAM_USER}:one"
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql not installed")
    out = subprocess.run([psql, "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", MD5_USER, "-d",
                          _db(upstream), "-c", "SELECT current_user"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PGPASSWORD": MD5_PW})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == MD5_USER


def test_wrong_password_and_unknown_user_get_the_same_28p01(proxy: tuple[SluiceServer, int],
                                                           upstream: str) -> None:
    _srv, port = proxy
    errors = {}
    for user, pw in ((SCRAM_USER, "wrong"), (MD5_USER, "wrong"), ("aq_nobody_" + uuid.uuid4().hex[:6], "x")):
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(_dsn(port, user, pw, _db(upstream))).close()
        errors[user] = str(e.value).replace(user, "USER")
    # PostgreSQL's wording, and nothing that tells an unknown user from a wrong password
    texts = {v.split("FATAL:", 1)[-1].strip() for v in errors.values()}
    assert texts == {'password authentication failed for user "USER"'}

    async def sqlstate(user: str) -> str:
        try:
            c = await asyncpg.connect(host="127.0.0.1", port=port, user=user, password="wrong", database=_db(upstream))
        except asyncpg.PostgresError as e:
            return str(e.sqlstate)
        await c.close()
        return "connected"

    assert asyncio.run(sqlstate(SCRAM_USER)) == asyncio.run(sqlstate("aq_nobody")) == "28P01"


def test_transaction_pooling_opens_server_connections_as_the_client(proxy: tuple[SluiceServer, int]) -> None:
    srv, port = proxy
    with psycopg.connect(_dsn(port, SCRAM_USER, SCRAM_PW, "tx"), autocommit=True) as a, \
            psycopg.connect(_dsn(port, MD5_USER, MD5_PW, "tx"), autocommit=True) as b:
        for _ in range(3):
            assert a.execute("SELECT current_user").fetchone() == (SCRAM_USER,)
            assert b.execute("SELECT current_user").fetchone() == (MD5_USER,)
    users = {s["user"] for s in srv.pools.stats() if s["database"] == "tx"}
    assert users == {SCRAM_USER, MD5_USER}


def test_per_database_auth_user_and_query(proxy: tuple[SluiceServer, int]) -> None:
    """``viafn`` looks users up as a role that is no superuser, through a SECURITY DEFINER
    function (its password from its [[users]] entry, as PgBouncer takes it from auth_file)."""
    srv, port = proxy
    how = srv.auth_query("viafn", srv.config.databases["viafn"].backend)  # type: ignore[union-attr]
    assert how is not None and how[0].user == LOOKUP_USER and "lookup($1)" in how[1]
    with psycopg.connect(_dsn(port, SCRAM_USER, SCRAM_PW, "viafn"), autocommit=True) as c:
        assert c.execute("SELECT current_user").fetchone() == (SCRAM_USER,)


def test_lookups_are_cached(upstream: str) -> None:
    srv = _server(upstream)
    with ServerThread(srv) as th:
        for _ in range(3):
            with psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, _db(upstream))) as c:
                c.execute("SELECT 1")
        assert srv.secrets.lookups == 1
        srv.reload(srv.config.model_copy(update={"auth": srv.config.auth.model_copy(update={"cache_s": 0.0})}))
        for _ in range(2):
            with psycopg.connect(_dsn(th.port, MD5_USER, MD5_PW, _db(upstream))) as c:
                c.execute("SELECT 1")
        assert srv.secrets.lookups == 3


def test_server_auth_md5_still_takes_scram_for_a_scram_verifier(upstream: str) -> None:
    srv = _server(upstream, server={"auth": "md5"})
    with ServerThread(srv) as th:
        for user, pw in ((SCRAM_USER, SCRAM_PW), (MD5_USER, MD5_PW)):
            with psycopg.connect(_dsn(th.port, user, pw, _db(upstream)), autocommit=True) as c:
                assert c.execute("SELECT current_user").fetchone() == (user,)


def test_cleartext_auth_checks_the_stored_secret(upstream: str) -> None:
    srv = _server(upstream, server={"auth": "cleartext"})
    with ServerThread(srv) as th:
        with psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, _db(upstream)), autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone() == (SCRAM_USER,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(_dsn(th.port, MD5_USER, "nope", _db(upstream))).close()


def test_secrets_are_never_logged(upstream: str, caplog: pytest.LogCaptureFixture) -> None:
    with psycopg.connect(_as(upstream, AUTH_USER, AUTH_PW)) as c:
        row = c.execute("SELECT passwd FROM pg_shadow WHERE usename = %s", [SCRAM_USER]).fetchone()
    assert row is not None
    verifier = row[0]
    v = parse_secret(verifier)
    assert not isinstance(v, str) and v is not None
    client_key = base64.b64encode(scram_keys(SCRAM_PW, v.salt, v.iterations)[0]).decode()
    caplog.set_level(logging.DEBUG)
    srv = _server(upstream, pool={"pool_mode": "transaction"})
    with ServerThread(srv) as th:
        with psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, _db(upstream)), autocommit=True) as c:
            c.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(_dsn(th.port, SCRAM_USER, "wrong", _db(upstream))).close()
        srv.pools.stats()
    text = caplog.text + repr([r.args for r in caplog.records])
    for secret in (verifier, verifier.split("$")[-1], client_key, SCRAM_PW, AUTH_PW):
        assert secret not in text


# --- the SCRAM and md5 arithmetic, without a network ----------------------------------------
def test_scram_exchange_with_a_verifier_recovers_the_client_key() -> None:
    import scramp

    verifier = parse_secret(scram_verifier("pw 1"))
    assert verifier is not None and not isinstance(verifier, str)
    server = ScramExchange(verifier)
    client = scramp.ScramClient(["SCRAM-SHA-256"], "u", "pw 1")
    client.set_server_first(server.first(client.get_client_first().encode()).decode())
    client.set_server_final(server.final(client.get_client_final().encode()).decode())  # raises if wrong
    assert server.client_key == scram_keys("pw 1", verifier.salt, verifier.iterations)[0]
    s = StoredSecret("SCRAM-SHA-256$...", verifier=verifier, client_key=server.client_key)
    assert "SCRAM" not in repr(s) and "SCRAM" not in f"{s!s}" and "SCRAM" not in repr(verifier)
    wrong = ScramExchange(verifier)
    client = scramp.ScramClient(["SCRAM-SHA-256"], "u", "pw 2")
    client.set_server_first(wrong.first(client.get_client_first().encode()).decode())
    with pytest.raises(Exception, match="password authentication failed"):
        wrong.final(client.get_client_final().encode())
    assert wrong.client_key == b""


def test_md5_hash_parses_as_text() -> None:
    h = "md5" + hashlib.md5(b"pwuser").hexdigest()
    assert parse_secret(h) == h
    assert parse_secret(None) is None and parse_secret("SCRAM-SHA-256$bad") is None


def test_a_lookup_session_closed_upstream_is_replaced(upstream: str) -> None:
    srv = _server(upstream, auth={"cache_s": 0})
    with ServerThread(srv) as th:
        with psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, _db(upstream))) as c:
            c.execute("SELECT 1")
        with psycopg.connect(upstream, autocommit=True) as admin:  # the kept lookup sessions end
            n = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'sqlsluice auth_query' AND usename = %s", [AUTH_USER])
            row = n.fetchone()
            assert row is not None and row[0] >= 1  # this server's, and those of other tests' servers
        with psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, _db(upstream))) as c:
            assert c.execute("SELECT current_user").fetchone() == (SCRAM_USER,)
        assert srv.secrets.lookups == 2


def test_a_per_database_auth_user_alone_turns_authentication_on(upstream: str) -> None:
    """No [[users]], no [auth] user, no server.auth: one database's auth_user is enough, and
    its clients (on loopback) are not admins, as they would be under trust.  The auth_user's
    password comes from the backend URL, which names that role."""
    cfg = Config.model_validate({"server": {"backend": upstream}, "databases": {
        "only": {"backend": _as(upstream, AUTH_USER, AUTH_PW), "auth_user": AUTH_USER},
        "nopw": {"backend": upstream, "auth_user": AUTH_USER}}})
    assert cfg.auth_method == "scram-sha-256"
    with ServerThread(SluiceServer(cfg)) as th:
        with psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, "only"), autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone() == (SCRAM_USER,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SHOW sluice.pools")
        # no password for the auth_user: the lookup cannot run, and the client is told so
        with pytest.raises(psycopg.OperationalError, match=r"authentication lookup \(auth_query\) failed"):
            psycopg.connect(_dsn(th.port, SCRAM_USER, SCRAM_PW, "nopw")).close()


def _server_first(port: int, user: str, database: str) -> str:
    """The server-first SCRAM message the proxy sends ``user`` (a raw protocol exchange)."""
    import socket
    import struct

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        body = struct.pack("!i", 196608) + f"user\0{user}\0database\0{database}\0\0".encode()
        s.sendall(struct.pack("!i", len(body) + 4) + body)

        def read() -> tuple[bytes, bytes]:
            head = b""
            while len(head) < 5:
                head += s.recv(5 - len(head))
            n = struct.unpack("!i", head[1:])[0] - 4
            data = b""
            while len(data) < n:
                data += s.recv(n - len(data))
            return head[:1], data

        code, data = read()
        assert code == b"R" and struct.unpack("!i", data[:4])[0] == 10  # AuthenticationSASL
        first = b"n,,n=,r=abcdefghijklmnop"
        msg = b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first
        s.sendall(b"p" + struct.pack("!i", len(msg) + 4) + msg)
        code, data = read()
        assert code == b"R" and struct.unpack("!i", data[:4])[0] == 11  # SASLContinue
        return data[4:].decode()


def test_an_unknown_user_gets_the_same_salt_each_time(proxy: tuple[SluiceServer, int], upstream: str) -> None:
    """As a known user does: the salt does not tell an unknown user from a known one."""
    _srv, port = proxy

    def salt(user: str) -> str:
        return next(p for p in _server_first(port, user, _db(upstream)).split(",") if p.startswith("s="))

    assert salt("aq_nobody") == salt("aq_nobody") != salt("aq_nobody2")
    assert salt(SCRAM_USER) == salt(SCRAM_USER)


def test_the_auth_user_password_is_masked_in_logs() -> None:
    from sqlsluice.logs import mask, register_config_secrets

    cfg = Config.model_validate({"auth": {"user": "lookup", "password": "lookup-secret-9"}})
    register_config_secrets(cfg)
    assert "lookup-secret-9" not in mask("connecting as lookup with lookup-secret-9")


def test_a_changed_password_is_looked_up_again_after_one_failure(upstream: str) -> None:
    role = "aq_rot_" + uuid.uuid4().hex[:6]
    with psycopg.connect(upstream, autocommit=True) as admin:
        admin.execute("SET password_encryption = 'scram-sha-256'")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'old-pw'")  # type: ignore[arg-type]
        srv = _server(upstream, auth={"cache_s": 3600})
        with ServerThread(srv) as th:
            with psycopg.connect(_dsn(th.port, role, "old-pw", _db(upstream))) as c:
                c.execute("SELECT 1")
            admin.execute(f"ALTER ROLE {role} PASSWORD 'new-pw'")  # type: ignore[arg-type]
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(_dsn(th.port, role, "new-pw", _db(upstream))).close()  # the cached verifier
            with psycopg.connect(_dsn(th.port, role, "new-pw", _db(upstream)), autocommit=True) as c:
                assert c.execute("SELECT current_user").fetchone() == (role,)
        admin.execute(f"DROP ROLE {role}")  # type: ignore[arg-type]


def test_sluice_serve_reads_auth_from_its_config_file(upstream: str, tmp_path: Any) -> None:
    from sqlsluice.bench.proxy import ServeProcess

    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f"""[auth]
user = "{AUTH_USER}"
password = {json.dumps(AUTH_PW)}

[pool]
pool_mode = "transaction"
server_lifetime = 60
""")
    with ServeProcess(upstream, config=cfg) as proxy:
        with psycopg.connect(_dsn(proxy.port, SCRAM_USER, SCRAM_PW, _db(upstream)), autocommit=True) as c:
            assert c.execute("SELECT current_user").fetchone() == (SCRAM_USER,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(_dsn(proxy.port, SCRAM_USER, "wrong", _db(upstream))).close()


def test_config_checks_auth_and_pool_timeouts(tmp_path: Any) -> None:
    from sqlsluice.config import ConfigInvalid, load_config

    ok = tmp_path / "ok.toml"
    ok.write_text('[server]\nauth = "scram-sha-256"\n[auth]\nuser = "lookup"\n')
    assert load_config(ok).auth.query == "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"
    per_db = tmp_path / "db.toml"
    per_db.write_text('[server]\nauth = "md5"\n[databases]\na = {backend = "postgresql://h/a", auth_user = "l"}\n')
    assert load_config(per_db).auth_query_enabled
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nauth = "md5"\n[auth]\nquery = "SELECT 1"\ncache = 3\n[pool]\nserver_idle_timeout = -1\n')
    with pytest.raises(ConfigInvalid) as e:
        load_config(bad)
    text = "\n".join(e.value.errors)
    assert "auth.cache: unknown setting" in text
    assert "pool.server_idle_timeout" in text
    assert "or [auth] user (auth_query): nobody could log in" in text
