"""Config validation, session-setting validation and logging, as a user meets them.

Config mistakes go through the real ``sluice serve`` (a subprocess); logging is checked on
a real ``sluice serve`` in front of a real PostgreSQL, with real psycopg clients.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlglot

from sqlsluice.config import Config
from sqlsluice.logs import configure_logging, mask, register_secret, statement
from sqlsluice.middleware.pipeline import Pipeline, Reply, SessionContext
from sqlsluice.middleware.server import ServerThread, SluiceServer

SLUICE = [sys.executable, "-m", "sqlsluice"]


def _serve_fails(tmp_path: Path, toml: str, *args: str, env: dict[str, str] | None = None,
                 ) -> list[str]:
    """Run ``sluice serve --config`` on ``toml``; assert exit 2; return its stderr lines."""
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(toml)
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SLUICE_CONFIG", None)
    r = subprocess.run([*SLUICE, "serve", "--config", str(cfg), "--backend", "duckdb:///:memory:", *args],
                       capture_output=True, text=True, timeout=120, env=full_env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), r.stderr
    return lines


MISTAKES = [
    # (file, extra args, env, what the one line must say)
    ('[server]\nlisten = "127.0.0.1:99999"\n', [], {}, r"server\.listen: port 99999 is out of range 1-65535"),
    ("", ["--listen", "127.0.0.1:99999"], {}, r"--listen: port 99999 is out of range 1-65535"),
    ("", [], {"SLUICE_LISTEN": "127.0.0.1:70000"}, r"\$SLUICE_LISTEN: port 70000 is out of range"),
    ('[server]\nlisten = "nonsense"\n', [], {}, r"server\.listen: bad listen address 'nonsense': use HOST:PORT"),
    ('[server]\nauth = "scram-sha-256"\n', [], {}, r"server\.auth: .*needs at least one \[\[users\]\]"),
    ('[server]\nauth = "md5"\n', [], {}, r"server\.auth: auth = 'md5' needs at least one \[\[users\]\]"),
    ('[ask]\nrouter = "bogus"\n', [], {}, r"ask\.router: unknown router 'bogus': valid routers are tables, cascade"),
    ('[ask]\nrouter = "always:magic"\n', [], {}, r"ask\.router: unknown router 'always:magic'"),
    ("[ask]\nrow_limit = -1\n", [], {}, r"ask\.row_limit: Input should be greater than 0 \(got -1\)"),
    ("[ask]\nstatement_timeout_s = 0\n", [], {}, r"ask\.statement_timeout_s: Input should be greater than 0"),
    ("[server]\nstatement_timeout_s = -3\n", [], {}, r"server\.statement_timeout_s: Input should be greater"),
    ("[rewrite]\nmin_speedup = 0.5\n", [], {}, r"rewrite\.min_speedup: Input should be greater than or equal to 1"),
    ("[rewrite]\ntoken_budget = -1\n", [], {}, r"rewrite\.token_budget: Input should be greater than or equal to 0"),
    ("[llm]\nconcurrency = 0\n", [], {}, r"llm\.concurrency: Input should be greater than or equal to 1"),
    ('[log]\nlevel = "loud"\n', [], {}, r"log\.level: Input should be 'debug', 'info', 'warning' or 'error'"),
    ("[ask]\nrow_limt = 5\n", [], {}, r"ask\.row_limt: unknown setting"),
]


@pytest.mark.parametrize(("toml", "args", "env", "expected"), MISTAKES,
                         ids=[re.sub(r"\W+", "_", m[3])[:40] for m in MISTAKES])
def test_each_config_mistake_is_one_clear_line_and_exit_2(tmp_path, toml, args, env, expected):
    lines = _serve_fails(tmp_path, toml, *args, env=env)
    assert len(lines) == 1, lines
    assert re.search(expected, lines[0]), lines[0]


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path):
    toml = """
[server]
listen = "127.0.0.1:99999"
auth = "scram-sha-256"
[ask]
router = "bogus"
row_limit = 0
[rewrite]
min_speedup = 0.9
[llm]
concurrency = -2
"""
    lines = _serve_fails(tmp_path, toml, "--listen", "0.0.0.0:123456")
    keys = ["server.listen", "server.auth", "ask.router", "ask.row_limit", "rewrite.min_speedup",
            "llm.concurrency", "--listen"]
    assert len(lines) == len(keys), lines
    for key in keys:
        assert sum(f" {key}: " in line or f": {key}: " in line for line in lines) == 1, (key, lines)


def test_a_valid_file_with_users_and_a_known_router_loads(tmp_path):
    from sqlsluice.config import load_config

    p = tmp_path / "ok.toml"
    p.write_text('[server]\nlisten = "127.0.0.1:0"\nauth = "scram-sha-256"\n[[users]]\nname = "a"\n'
                 'password = "pw-123456"\n[ask]\nrouter = "always:basic"\nrow_limit = 5\n'
                 '[log]\nlevel = "debug"\nformat = "json"\n')
    cfg = load_config(p, listen="127.0.0.1:6000")
    assert (cfg.server.listen, cfg.ask.router, cfg.log.level, cfg.log.format) == \
        ("127.0.0.1:6000", "always:basic", "debug", "json")


# -- session settings ----------------------------------------------------------------------------

@pytest.fixture()
def duck_server(tmp_path) -> Iterator[int]:
    with ServerThread(SluiceServer(Config(), backend_url=f"duckdb:///{tmp_path / 's.duckdb'}")) as st:
        yield st.port


def test_set_sluice_router_bogus_is_22023_with_the_valid_values(duck_server):
    with psycopg.connect(host="127.0.0.1", port=duck_server, user="u", dbname="s", autocommit=True) as c:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
            c.execute("SET sluice.router = 'bogus'")
        assert e.value.sqlstate == "22023"
        msg = e.value.diag.message_primary or ""
        assert "unknown router 'bogus'" in msg and "always:<cache|basic|decompose|ensemble>" in msg, msg
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            c.execute("SET sluice.router = 'always:magic'")
        assert c.execute("SHOW sluice.router").fetchone() == ("tables",)  # unchanged
        c.execute("SET sluice.router = 'always:basic'")
        assert c.execute("SHOW sluice.router").fetchone() == ("always:basic",)
        with pytest.raises(psycopg.errors.InvalidParameterValue) as e2:
            c.execute("SET sluice.rewrite = sideways")
        assert "valid values: on, off, shadow" in (e2.value.diag.message_primary or "")
        assert c.execute("SELECT 1").fetchone() == (1,)  # the session goes on


# -- masking and third-party warnings ------------------------------------------------------------

def test_mask_hides_passwords_in_urls_conninfo_sql_and_registered_secrets():
    register_secret("Regist3red-Secret")
    text = ("postgresql://app:s3cret@db:5432/x; host=db password=s3cret user=app; "
            "ALTER ROLE r PASSWORD 'hunter22'; {'password': 'pw'}; key Regist3red-Secret; api_key=sk-abc")
    out = mask(text)
    for secret in ("s3cret", "hunter22", "'pw'", "Regist3red-Secret", "sk-abc"):
        assert secret not in out, out
    assert "postgresql://app:***@db:5432/x" in out and "password=*** user=app" in out
    # words that only look like it stay
    assert mask('password authentication failed for user "app"') == \
        'password authentication failed for user "app"'


@pytest.fixture()
def captured_log() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    handler = configure_logging("debug", "json", stream=buf)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.getLogger("sqlglot").setLevel(logging.NOTSET)
        logging.captureWarnings(False)


async def _parse_stage(ctx: SessionContext, sql: str, extended: bool) -> Reply:
    sqlglot.parse_one(sql, read="postgres")  # sqlglot warns: unsupported syntax, parsed as a Command
    return Reply([], [], "OK")


def test_sqlglot_warnings_are_debug_once_with_the_statement(captured_log):
    ctx = SessionContext(user="u", database="d")
    p = Pipeline([_parse_stage])
    for _ in range(3):
        asyncio.run(p.handle(ctx, "ALTER SYSTEM SET work_mem = '64MB'", extended=False))
    records = [json.loads(line) for line in captured_log.getvalue().splitlines()]
    sqlglot_records = [r for r in records if r["logger"] == "sqlglot"]
    assert len(sqlglot_records) == 1, records
    r = sqlglot_records[0]
    assert r["level"] == "debug" and "Falling back to parsing as a 'Command'" in r["message"]
    assert r["statement"] == "ALTER SYSTEM SET work_mem = '64MB'"
    assert {"ts", "level", "logger", "message"} <= set(r)


def test_sqlglot_warnings_stay_out_of_an_info_log():
    buf = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    handler = configure_logging("info", "text", stream=buf)
    try:
        with statement("ALTER SYSTEM SET x = 2"):
            sqlglot.parse_one("ALTER SYSTEM SET x = 2", read="postgres")
        logging.getLogger("sqlsluice.test").warning("our own warning")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.getLogger("sqlglot").setLevel(logging.NOTSET)
        logging.captureWarnings(False)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and "WARNING sqlsluice.test: our own warning" in lines[0], lines


# -- a real serve in front of PostgreSQL --------------------------------------------------------

BACKEND_PW = "Backend-Pw-4417"
USER_PW = "User-Pw-8812"
API_KEY = "sk-test-Key-55190"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_serve_with_a_password_in_the_url_never_logs_it(pg_db, tmp_path, fmt):
    with psycopg.connect(pg_db, autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS sluice_app")
        c.execute(f"CREATE ROLE sluice_app LOGIN SUPERUSER PASSWORD '{BACKEND_PW}'")
        c.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2), (3)")
    url = pg_db.replace("postgresql://postgres@", f"postgresql://sluice_app:{BACKEND_PW}@")
    assert BACKEND_PW in url
    dbname = url.rsplit("/", 1)[1]
    cfg = tmp_path / "sluice.toml"
    cfg.write_text(f'[server]\nauth = "scram-sha-256"\n[[users]]\nname = "app"\npassword = "{USER_PW}"\n'
                   'upstream_role = "sluice_app"\n')
    env = {**os.environ, "OPENAI_API_KEY": API_KEY}
    proc = subprocess.Popen([*SLUICE, "serve", "--config", str(cfg), "--backend", url, "--listen", "127.0.0.1:0",
                             "--log-level", "debug", "--log-format", fmt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = [proc.stdout.readline(), proc.stdout.readline()]  # type: ignore[union-attr]
        m = re.search(r"psql -h 127\.0\.0\.1 -p (\d+) -U app (\S+)", first[1])
        assert m and m.group(2) == dbname, first  # the hint fits a PostgreSQL backend
        port = int(m.group(1))
        with psycopg.connect(host="127.0.0.1", port=port, user="app", password=USER_PW, dbname=dbname,
                             autocommit=True) as c:
            assert c.execute("SELECT sum(a) FROM t").fetchone() == (6,)
            assert c.execute("SELECT a FROM t WHERE a > %s ORDER BY a", [1]).fetchall() == [(2,), (3,)]
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                c.execute("SET sluice.router = 'bogus'")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    text = "".join(first) + out + err
    for secret in (BACKEND_PW, USER_PW, API_KEY):
        assert secret not in text, (secret, text)
    assert "postgresql://sluice_app:***@" in first[0]
    log_lines = [line for line in err.splitlines() if line.strip()]
    assert any("SELECT sum(a) FROM t" in line for line in log_lines), err  # debug: statements logged
    if fmt == "json":
        records = [json.loads(line) for line in log_lines]  # every line is one JSON object
        assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
        assert any(r["level"] == "debug" and r["logger"] == "sqlsluice.pipeline" for r in records)
        assert any(r["level"] == "info" and "***" in r["message"] for r in records)


def test_error_messages_to_clients_are_masked(duck_server):
    with psycopg.connect(host="127.0.0.1", port=duck_server, user="u", dbname="s", autocommit=True) as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT * FROM read_csv('postgresql://u:TopSecret99@h/x.csv')")
        msg = str(e.value)
        assert "TopSecret99" not in msg and "u:***@h" in msg, msg


# -- the connect hint -----------------------------------------------------------------------------

def test_connect_hint_fits_the_backend():
    from sqlsluice.serving.demo import connect_hint

    assert connect_hint("duckdb:///.sluice/tpcds_sf0_1.duckdb", "127.0.0.1", 6543) == \
        "psql -h 127.0.0.1 -p 6543 -U sluice tpcds_sf0_1"
    pg = connect_hint("postgresql://app:Secret-77@db.example:5432/shop", "0.0.0.0", 6543)
    assert pg == "psql -h 127.0.0.1 -p 6543 -U app shop"  # no DuckDB demo name, no password
    assert connect_hint("postgresql://app:x@db/shop", "127.0.0.1", 1, user="u1").endswith("-U u1 shop")


def test_serve_of_the_demo_database_names_tpcds_sf0_1(tmp_path):
    import duckdb

    duckdb.connect(str(tmp_path / "tpcds_sf0_1.duckdb")).close()  # stands where `sluice demo` builds it
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_HOME"] = str(tmp_path)
    proc = subprocess.Popen([*SLUICE, "serve", "--listen", "127.0.0.1:0"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # type: ignore[union-attr]
        m = re.search(r"psql -h 127\.0\.0\.1 -p (\d+) -U sluice tpcds_sf0_1$", lines[1].strip())
        assert m, lines
        with psycopg.connect(host="127.0.0.1", port=int(m.group(1)), user="sluice", dbname="tpcds_sf0_1",
                             autocommit=True) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        proc.terminate()
        proc.wait(30)


def test_set_sluice_setting_to_default_resets_it(duck_server):
    with psycopg.connect(host="127.0.0.1", port=duck_server, user="u", dbname="s", autocommit=True) as c:
        c.execute("SET sluice.router = 'cascade'")
        c.execute("SET sluice.router TO DEFAULT")
        assert c.execute("SHOW sluice.router").fetchone() == ("tables",)
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            c.execute("SET sluice.router = 'DEFAULT'")  # quoted: a value, and not a router
