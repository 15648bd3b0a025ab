"""psql 15 in a real terminal (tmux) over ``sluice serve`` on TPC-DS SF 0.01 in DuckDB: tab
completion of tables, columns and settings, and the backslash commands (``\\d+`` on every
TPC-DS table, ``\\d``, ``\\dt``, ``\\di``, ``\\dv``, ``\\df``, ``\\dn``, ``\\du``, ``\\l``, ``\\x``).

The catalog queries psql sends were captured with ``log_statement = all`` on a real
PostgreSQL 15 (see ``docs/middleware-psql-catalog.md``); here psql itself sends them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from sqlsluice.config import Config
from sqlsluice.middleware.server import ServerThread, SluiceServer

TMUX = shutil.which("tmux")
PSQL = shutil.which("psql")
TPCDS_TABLES = ("call_center", "catalog_page", "catalog_returns", "catalog_sales", "customer", "customer_address",
                "customer_demographics", "date_dim", "household_demographics", "income_band", "inventory", "item",
                "promotion", "reason", "ship_mode", "store", "store_returns", "store_sales", "time_dim",
                "warehouse", "web_page", "web_returns", "web_sales", "web_site")


@pytest.fixture(scope="module")
def tpcds_server(tpcds_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, int]]]:
    """sluice serve over a copy of TPC-DS SF 0.01, plus a table with keys, an index and a view;
    (port, number of columns of each table in DuckDB's own catalog)."""
    db = tmp_path_factory.mktemp("psqlterm") / "tpcds.duckdb"
    shutil.copy(tpcds_tiny, db)
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE psql_keys (k_id INTEGER PRIMARY KEY, k_code VARCHAR NOT NULL UNIQUE, "
                    "k_store_sk BIGINT DEFAULT 7, k_amount DECIMAL(7,2))")
        con.execute("CREATE INDEX psql_keys_store_idx ON psql_keys (k_store_sk)")
        con.execute("CREATE VIEW psql_store_view AS SELECT s_store_sk, s_store_name FROM store")
        con.execute("CREATE TABLE psql_refs (r_key INTEGER REFERENCES psql_keys (k_id), r_n INTEGER CHECK (r_n > 0))")
        ncols = dict(con.execute("SELECT table_name, count(*) FROM duckdb_columns() WHERE schema_name = 'main' "
                                 "GROUP BY 1").fetchall())
    th = ServerThread(SluiceServer(Config(), backend_url=f"duckdb:///{db}")).start()
    try:
        yield th.port, ncols
    finally:
        th.stop()


def run_psql(port: int, *commands: str) -> subprocess.CompletedProcess[str]:
    if PSQL is None:
        pytest.fail("psql not found (install postgresql-client)")
    args = [PSQL, "-X", "-P", "pager=off", "-v", "ON_ERROR_STOP=0", "-h", "127.0.0.1", "-p", str(port),
            "-U", "sluice", "tpcds"]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "10"})


class Terminal:
    """psql in a tmux pane of its own tmux server: type keys, read the screen."""

    def __init__(self, port: int) -> None:
        if TMUX is None:
            pytest.fail("tmux not found (make system-deps installs it)")
        self.sock = f"sluice-test-{uuid.uuid4().hex[:8]}"
        cmd = f"env PGCONNECT_TIMEOUT=10 {PSQL} -X -P pager=off -h 127.0.0.1 -p {port} -U sluice tpcds"
        self.tmux("new-session", "-d", "-x", "160", "-y", "50", cmd)
        self.wait_for("tpcds=#")

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run([TMUX, "-L", self.sock, "-f", "/dev/null", *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J")

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)

    def key(self, name: str) -> None:
        self.tmux("send-keys", name)

    def wait_for(self, text: str, deadline_s: float = 30.0) -> str:
        """The screen once it shows ``text`` (polled; the deadline only bounds a hang)."""
        end = time.monotonic() + deadline_s
        screen = ""
        while time.monotonic() < end:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{screen}")

    def cancel(self) -> None:
        """Ctrl-C, then wait for the empty prompt (keys typed before it would be lost)."""
        self.key("C-c")
        end = time.monotonic() + 30
        while last_input_line(self.screen()).strip() != "tpcds=#":
            assert time.monotonic() < end, self.screen()
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([TMUX or "tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture()
def term(tpcds_server: tuple[int, dict[str, int]]) -> Iterator[Terminal]:
    t = Terminal(tpcds_server[0])
    try:
        yield t
    finally:
        t.close()


def last_input_line(screen: str) -> str:
    return [line for line in screen.splitlines() if line.strip()][-1]


def test_tab_completes_tables_columns_and_settings(term: Terminal) -> None:
    term.type("SELECT * FROM sto")
    term.key("Tab")  # the three tables share the prefix "store": completed to it
    screen = term.wait_for("FROM store")
    assert last_input_line(screen).endswith("SELECT * FROM store")
    term.key("Tab")  # readline: a Tab that changes nothing rings the bell, the next one lists
    term.key("Tab")
    screen = term.wait_for("store_returns")
    listed = screen.split("SELECT * FROM store", 1)[1].split()
    assert {"store", "store_returns", "store_sales"} <= set(listed)
    assert "store_sales" in screen and "customer" not in screen

    term.type("_sales WHERE ss_ti")
    term.key("Tab")  # one column starts so: ss_ticket_number
    screen = term.wait_for("ss_ticket_number")
    assert last_input_line(screen).endswith("SELECT * FROM store_sales WHERE ss_ticket_number ")
    term.cancel()

    term.type("SET search_pa")
    term.key("Tab")
    screen = term.wait_for("SET search_path")
    assert last_input_line(screen).rstrip().endswith("SET search_path")
    term.cancel()

    term.type("\\d store_s")
    term.key("Tab")
    screen = term.wait_for("\\d store_sales")
    term.key("Enter")
    screen = term.wait_for("ss_sold_date_sk")
    assert 'Table "public.store_sales"' in screen and "ERROR" not in screen


def test_backslash_d_plus_on_every_tpcds_table(tpcds_server: tuple[int, dict[str, int]]) -> None:
    port, ncols = tpcds_server
    out = run_psql(port, *(f"\\d+ {t}" for t in TPCDS_TABLES))
    assert out.returncode == 0 and "ERROR" not in out.stderr, out.stderr
    blocks = out.stdout.split('Table "public.')[1:]
    assert [b.split('"', 1)[0] for b in blocks] == list(TPCDS_TABLES)
    for table, block in zip(TPCDS_TABLES, blocks, strict=True):
        lines = block.splitlines()
        header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("Column"))
        names = [h.strip() for h in lines[header].split("|")]
        assert names == ["Column", "Type", "Collation", "Nullable", "Default", "Storage", "Compression",
                         "Stats target", "Description"]  # psql 15's \d+ layout for a table
        rows = [[v.strip() for v in line.split("|")] for line in lines[header + 2:] if "|" in line]
        assert len(rows) == ncols[table], (table, rows)
        assert all(r[5] in ("plain", "main", "extended") and r[7] == "" for r in rows), rows
        assert "Access method: heap" in block


def test_backslash_commands(tpcds_server: tuple[int, dict[str, int]]) -> None:
    port, _ = tpcds_server
    out = run_psql(port, "\\d", "\\dt", "\\di", "\\dv", "\\df", "\\dn", "\\du", "\\l", "\\d+ psql_keys",
                   "\\d psql_refs", "\\d psql_keys_pkey", "\\d psql_keys_store_idx", "\\d+ psql_store_view", "\\dt+", "\\di+", "\\l+", "\\df+", "\\db", "\\dc", "\\do",
                   "\\x", "SELECT 1 AS one")
    assert out.returncode == 0 and "ERROR" not in out.stderr, out.stderr
    text = out.stdout
    assert text.count("List of relations") == 6  # \d, \dt, \di, \dv, \dt+, \di+
    assert "psql_keys_store_idx" in text and "psql_store_view" in text
    assert "List of functions" in text and "List of schemas" in text and "List of roles" in text
    assert "List of databases" in text and "Superuser" in text
    assert 'Table "public.psql_keys"' in text and "k_code" in text and "not null" in text
    for line in ('    "psql_keys_pkey" PRIMARY KEY, btree (k_id)',  # as PostgreSQL 15 prints them
                 '    "psql_keys_k_code_key" UNIQUE CONSTRAINT, btree (k_code)',
                 '    "psql_keys_store_idx" btree (k_store_sk)',
                 "Referenced by:",
                 '    TABLE "psql_refs" CONSTRAINT "psql_refs_r_key_fkey" FOREIGN KEY (r_key) REFERENCES psql_keys(k_id)',
                 "Access method: heap"):
        assert line in text.splitlines(), line
    pkey = text.split('Index "public.psql_keys_pkey"')[1].splitlines()
    assert [c.strip() for c in pkey[3].split("|")] == ["k_id", "integer", "yes", "k_id"]
    assert pkey[4] == 'primary key, btree, for table "public.psql_keys"'
    idx = text.split('Index "public.psql_keys_store_idx"')[1].splitlines()
    assert [c.strip() for c in idx[3].split("|")] == ["k_store_sk", "bigint", "yes", "k_store_sk"]
    assert "psql_keys_pkey" in text.split("List of relations")[3]  # \di lists constraint indexes
    refs = text.split('Table "public.psql_refs"')[1]
    assert 'Check constraints:\n    "psql_refs_r_n_check" CHECK (r_n > 0)\nForeign-key constraints:\n' \
           '    "psql_refs_r_key_fkey" FOREIGN KEY (r_key) REFERENCES psql_keys(k_id)' in refs
    assert 'View "public.psql_store_view"' in text
    assert "View definition:\n SELECT s_store_sk, s_store_name FROM store;" in text
    assert "Expanded display is on." in text and "-[ RECORD 1 ]" in text
