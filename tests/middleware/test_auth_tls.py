"""Authentication (cleartext, md5, SCRAM-SHA-256 against config users) and TLS, with real clients."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import asyncpg
import psycopg
import pytest

from sqlsluice.config import Config, ServerConfig, User

from .conftest import start

USERS = [User(name="app", password="s3cret pw"), User(name="other", password="x")]


@pytest.fixture(scope="module", params=["cleartext", "md5", "scram-sha-256"])
def auth_server(request, tmp_path_factory):
    cfg = Config(server=ServerConfig(auth=request.param), users=USERS)
    th, running = start(tmp_path_factory.mktemp("auth"), cfg)
    try:
        yield request.param, running
    finally:
        th.stop()


def test_right_password_connects_with_psycopg(auth_server):
    _method, srv = auth_server
    with psycopg.connect(srv.dsn(user="app", password="s3cret pw"), autocommit=True) as c:
        assert c.execute("SELECT current_user IS NOT NULL").fetchone() == (True,)


def test_right_password_connects_with_asyncpg(auth_server):
    _method, srv = auth_server

    async def go():
        c = await asyncpg.connect(host=srv.host, port=srv.port, user="app", password="s3cret pw", database="db")
        try:
            return await c.fetchval("SELECT 1")
        finally:
            await c.close()

    assert asyncio.run(go()) == 1


@pytest.mark.parametrize(("user", "password"), [("app", "wrong"), ("nobody", "s3cret pw"), ("other", "s3cret pw")])
def test_wrong_password_is_28P01(auth_server, user, password):
    _method, srv = auth_server
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(srv.dsn(user=user, password=password), connect_timeout=10)
    assert "password authentication failed" in str(ei.value)
    # libpq reports the server's SQLSTATE on the failed connection attempt
    diag = getattr(ei.value, "sqlstate", None)
    assert diag in (None, "28P01")
    with psycopg.connect(srv.dsn(user="app", password="s3cret pw")) as c:  # the server still serves
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_wrong_password_sqlstate_with_asyncpg(auth_server):
    _method, srv = auth_server

    async def go():
        with pytest.raises(asyncpg.InvalidPasswordError) as ei:
            await asyncpg.connect(host=srv.host, port=srv.port, user="app", password="nope", database="db")
        return ei.value.sqlstate

    assert asyncio.run(go()) == "28P01"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl CLI not found")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "server.crt", d / "server.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_with_sslmode_require(tls_files, tmp_path):
    cert, key = tls_files
    cfg = Config(server=ServerConfig(tls_cert=str(cert), tls_key=str(key), auth="scram-sha-256"), users=USERS)
    th, srv = start(tmp_path, cfg)
    try:
        with psycopg.connect(srv.dsn(user="app", password="s3cret pw", sslmode="require"), autocommit=True) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT 'over tls'").fetchone() == ("over tls",)
    finally:
        th.stop()


def test_no_tls_configured_answers_N(server):
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(server.dsn(sslmode="require"), connect_timeout=10)
    assert "SSL" in str(ei.value) or "ssl" in str(ei.value)
    with psycopg.connect(server.dsn(sslmode="prefer")) as c:
        assert not c.pgconn.ssl_in_use
