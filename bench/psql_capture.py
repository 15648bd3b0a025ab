"""Capture the catalog queries psql sends (backslash commands and tab completion).

Starts a throwaway PostgreSQL (PgCluster) with ``log_statement = all``, creates the schema
below, drives the real psql in a tmux terminal (typing, Tab) and writes every statement psql
sent, with table OIDs replaced by ``{oid:<table>}``, to
``tests/fixtures/psql/catalog_queries.sql`` (replayed by tests/middleware/test_psql_catalog_corpus.py
on PostgreSQL and on sluice over DuckDB).

    .venv/bin/python bench/psql_capture.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

from sqlsluice.databases.pgcluster import PgCluster

# runs on PostgreSQL and on DuckDB alike
SCHEMA = (
    "CREATE TABLE store (s_store_sk INTEGER PRIMARY KEY, s_store_id CHAR(16) NOT NULL, s_name VARCHAR(50))",
    "CREATE TABLE store_sales (ss_item_sk INTEGER NOT NULL, ss_ticket_number INTEGER NOT NULL, "
    "ss_store_sk INTEGER REFERENCES store (s_store_sk), ss_net_paid DECIMAL(7,2), "
    "PRIMARY KEY (ss_item_sk, ss_ticket_number))",
    "CREATE TABLE store_returns (sr_item_sk INTEGER, sr_code VARCHAR UNIQUE, sr_qty INTEGER CHECK (sr_qty > 0))",
    "CREATE INDEX ss_store_idx ON store_sales (ss_store_sk)",
    "CREATE VIEW v_store AS SELECT s_store_sk, s_name FROM store",
    "INSERT INTO store VALUES (1, 'AAAA', 'one'), (2, 'BBBB', 'two')",
    "INSERT INTO store_sales VALUES (1, 1, 1, 10.50), (2, 1, 2, 3.25)",
)
TABLES = ("store", "store_sales", "store_returns", "v_store", "store_pkey", "ss_store_idx")
# (label, keys): a key list is typed, "Tab" pressed; a command is typed and run
STEPS: tuple[tuple[str, list[str]], ...] = (
    ("tab: SELECT * FROM sto", ["SELECT * FROM sto", "Tab", "Tab", "Tab", "C-c"]),
    ("tab: ... WHERE ss_", ["SELECT * FROM store_sales WHERE ss_", "Tab", "Tab", "C-c"]),
    ("tab: SET sea", ["SET sea", "Tab", "C-c"]),
    ("tab: \\d sto", ["\\d sto", "Tab", "Tab", "C-c"]),
    *((c, [c + "\n"]) for c in ("\\d", "\\dt", "\\di", "\\dv", "\\df", "\\dn", "\\du", "\\l", "\\d+ store",
                                "\\d+ store_sales", "\\d+ store_returns", "\\d+ v_store", "\\dt+", "\\di+",
                                "\\l+", "\\df+", "\\db", "\\dc", "\\do", "\\d store_pkey", "\\d ss_store_idx",
                                "\\x")),
)
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "psql" / "catalog_queries.sql"


def drive(port: int) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        raise SystemExit("tmux not found")
    sock = f"sluice-capture-{uuid.uuid4().hex[:8]}"
    t = [tmux, "-L", sock, "-f", "/dev/null"]
    subprocess.run([*t, "new-session", "-d", "-x", "200", "-y", "50",
                    f"psql -X -P pager=off -h 127.0.0.1 -p {port} -U postgres tpcds"], check=True)
    try:
        time.sleep(1.5)
        for label, keys in STEPS:
            marker = "SELECT '-- psql: " + label.replace("\\", "\\\\").replace("'", "''") + "';\n"
            subprocess.run([*t, "send-keys", "-l", marker], check=True)
            time.sleep(0.5)
            for k in keys:
                if k in ("Tab", "C-c"):
                    subprocess.run([*t, "send-keys", k], check=True)
                else:
                    subprocess.run([*t, "send-keys", "-l", k], check=True)
                time.sleep(0.6)
        time.sleep(1)
    finally:
        subprocess.run([*t, "kill-server"], capture_output=True)


def statements(log: str, oids: dict[str, str]) -> list[tuple[str, str]]:
    """(label, statement) for each statement psql sent after the first marker."""
    out: list[tuple[str, str]] = []
    label = ""
    for part in re.split(r"^@@ ", log, flags=re.M):
        m = re.match(r"LOG:  statement: (.*)", part, re.S)
        if not m:
            continue
        sql = m.group(1).rstrip()
        mk = re.match(r"SELECT '-- psql: (.*)';$", sql, re.S)
        if mk:
            label = mk.group(1).replace("''", "'").replace("\\\\", "\\")
            continue
        if label:
            for oid, name in oids.items():
                sql = sql.replace(f"'{oid}'", f"'{{oid:{name}}}'")
            out.append((label, sql))
    return out


def main() -> None:
    with PgCluster(settings={"log_statement": "'all'", "log_line_prefix": "'@@ '"}) as pg:
        dsn = pg.create_database("tpcds")
        with psycopg.connect(dsn, autocommit=True) as c:
            for s in SCHEMA:
                c.execute(s)  # type: ignore[arg-type]
            oids = {str(o): n for o, n in c.execute(
                "SELECT oid, relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname = ANY(%s)",
                [list(TABLES)]).fetchall()}
        drive(pg.port)
        time.sleep(0.5)
        log = (pg.base / "log.txt").read_text()
    stmts = statements(log, oids)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as f:
        f.write("-- The catalog queries psql 15 sends, captured by bench/psql_capture.py on PostgreSQL 15\n"
                "-- (log_statement = all); {oid:<table>} stands for the table's oid. Do not edit by hand.\n")
        for sql in SCHEMA:
            f.write(f"\n-- schema\n{sql}\n;;\n")
        for label, sql in stmts:
            f.write(f"\n-- psql: {label}\n{sql}\n;;\n")
    print(f"{len(stmts)} statements from {len(STEPS)} psql steps -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
