"""COPY FROM STDIN through ``sluice serve``: over DuckDB vs over a throwaway PostgreSQL.

The same rows of a TPC-DS ``store_sales``-like table (12 columns: integers, bigint,
NUMERIC(7,2), a date, a string; about 4% NULLs) are loaded through two ``sluice serve``
processes started here, one over an embedded DuckDB file and one passing through to a
throwaway PostgreSQL (PgCluster), in the same run (with ``--repeat`` N, N runs each,
alternating which goes first, the best of each kept), in each format (text, CSV, binary) and
with each client:

- ``file``: psycopg ``cursor.copy()`` sending the file in 64 KiB chunks;
- ``rows``: psycopg ``cursor.copy()`` with ``write_row`` (binary: ``set_types``), rows
  made on the fly from small pools of values (not for CSV);
- ``psql``: ``psql -c "\\copy ... FROM 'file' ..."``.

The text file is written here; the CSV and binary files are PostgreSQL's own ``COPY TO`` of
the loaded text, so every format carries the same rows. Prints the times and the ratio
DuckDB / passthrough.

    .venv/bin/python bench/copy_from.py --rows 2000000                 # every format and client
    .venv/bin/python bench/copy_from.py --rows 200000 --format binary --client file
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg

from sqlsluice.databases.pgcluster import PgCluster, free_port

DDL = ("CREATE TABLE copy_bench (ss_sold_date_sk INTEGER, ss_item_sk INTEGER, ss_customer_sk INTEGER, "
       "ss_ticket_number BIGINT, ss_quantity INTEGER, ss_wholesale_cost NUMERIC(7,2), ss_list_price NUMERIC(7,2), "
       "ss_sales_price NUMERIC(7,2), ss_net_paid NUMERIC(7,2), ss_net_profit NUMERIC(7,2), ss_sold_date DATE, "
       "ss_store_name VARCHAR)")
TYPES = ["int4", "int4", "int4", "int8", "int4", "numeric", "numeric", "numeric", "numeric", "numeric", "date",
         "text"]
NAMES = ["ought", "able", "pri", "ese", "anti", "cally", "ation", "eing", "bar", "n st"]
FORMATS = ("text", "csv", "binary")
CLIENTS = ("file", "rows", "psql")


def row(i: int, prices: list[Decimal], dates: list[dt.date]) -> tuple:
    def null(k: int, v: object) -> object:
        return None if (i * 7 + k * 13) % 25 == k else v  # about 4% per nullable column
    return (2450816 + i % 1823, 1 + i * 7 % 18000, null(1, 1 + i * 13 % 100000), i // 3 + 1, null(2, 1 + i % 100),
            null(3, prices[i % 997]), null(4, prices[i * 3 % 997]), null(5, prices[i * 5 % 997]),
            null(6, prices[i * 11 % 997]), null(7, -prices[i * 17 % 997] if i % 3 else prices[i * 17 % 997]),
            null(8, dates[i % 1823]), null(9, f"{NAMES[i % 10]}{NAMES[i // 10 % 10]}"))


def pools() -> tuple[list[Decimal], list[dt.date]]:
    return ([Decimal(f"{k * 7919 % 100000 / 100:.2f}") for k in range(997)],
            [dt.date(1998, 1, 2) + dt.timedelta(days=k) for k in range(1823)])


def rows(count: int) -> Iterator[tuple]:
    prices, dates = pools()
    return (row(i, prices, dates) for i in range(count))


def write_text(path: Path, count: int) -> None:
    prices, dates = pools()
    with path.open("w") as f:
        for start in range(0, count, 100_000):
            f.write("".join("\t".join("\\N" if v is None else str(v) for v in row(i, prices, dates)) + "\n"
                            for i in range(start, min(count, start + 100_000))))


def serve(backend: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    exe = Path(sys.executable).with_name("sluice")
    proc = subprocess.Popen([str(exe), "serve", "--plain", "--backend", backend, "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            raise SystemExit("sluice serve exited")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("sluice serve did not start listening")


def options(fmt: str) -> str:
    return {"csv": "(FORMAT csv, HEADER true)", "binary": "(FORMAT binary)"}.get(fmt, "")


def copy_in(port: int, dbname: str, files: dict[str, Path], fmt: str, client: str, count: int) -> float:
    """Seconds for one COPY FROM STDIN of ``count`` rows into a new copy_bench table."""
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS copy_bench")
        c.execute(DDL)
        t0 = time.perf_counter()
        if client == "psql":
            cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                   dbname, "-c", f"\\copy copy_bench FROM '{files[fmt]}' WITH {options(fmt) or '(FORMAT text)'}"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"psql failed: {r.stderr}")
        else:
            with c.cursor() as cur, cur.copy(f"COPY copy_bench FROM STDIN {options(fmt)}") as cp:
                if client == "file":
                    with files[fmt].open("rb") as f:
                        while chunk := f.read(1 << 16):
                            cp.write(chunk)
                else:
                    if fmt == "binary":
                        cp.set_types(TYPES)
                    for r in rows(count):
                        cp.write_row(r)
        elapsed = time.perf_counter() - t0
        (n,) = c.execute("SELECT count(*) FROM copy_bench").fetchone()  # type: ignore[misc]
        if n != count:
            raise SystemExit(f"{fmt}/{client}: the table holds {n} rows, not {count}")
        c.execute("DROP TABLE copy_bench")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--format", choices=(*FORMATS, "all"), default="all")
    ap.add_argument("--client", choices=(*CLIENTS, "all"), default="all")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each, alternating the order; the best counts")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    formats = FORMATS if a.format == "all" else (a.format,)
    clients = CLIENTS if a.client == "all" else (a.client,)
    tmp = Path(tempfile.mkdtemp(prefix="sluice-copy-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    results = []
    try:
        files = {"text": tmp / "rows.text", "csv": tmp / "rows.csv", "binary": tmp / "rows.binary"}
        write_text(files["text"], a.rows)
        with PgCluster() as pg:
            pg_url = pg.create_database("copybench")
            with psycopg.connect(pg_url, autocommit=True) as c:  # CSV and binary: PostgreSQL's COPY TO
                c.execute(DDL)
                with c.cursor() as cur, cur.copy("COPY copy_bench FROM STDIN") as cp, files["text"].open("rb") as f:
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
                for fmt in ("csv", "binary"):
                    with c.cursor() as cur, cur.copy(f"COPY copy_bench TO STDOUT {options(fmt)}") as cp, \
                            files[fmt].open("wb") as out:
                        for data in cp:
                            out.write(data)
                c.execute("DROP TABLE copy_bench")
            duck, dport = serve(f"duckdb:///{tmp / 'copy.duckdb'}")
            procs.append(duck)
            relay, pport = serve(pg_url)
            procs.append(relay)
            print(f"COPY FROM STDIN, {a.rows} rows of a store_sales-like table (12 columns)")
            print(f"  {'format':7} {'client':6} {'MB':>7} {'DuckDB s':>9} {'passthrough s':>14} {'ratio':>6}")
            for fmt in formats:
                for client in clients:
                    if client == "rows" and fmt == "csv":
                        continue
                    times: dict[str, list[float]] = {"duck": [], "pg": []}
                    for rep in range(a.repeat):  # alternating which goes first (the machine's load drifts)
                        order = ("duck", "pg") if rep % 2 == 0 else ("pg", "duck")
                        for target in order:
                            port, db = (dport, "copy") if target == "duck" else (pport, "copybench")
                            times[target].append(copy_in(port, db, files, fmt, client, a.rows))
                    t_duck, t_pg = min(times["duck"]), min(times["pg"])
                    mb = files[fmt].stat().st_size / 1e6
                    results.append({"format": fmt, "client": client, "rows": a.rows, "mb": round(mb, 1),
                                    "duckdb_s": round(t_duck, 2), "passthrough_s": round(t_pg, 2),
                                    "ratio": round(t_duck / t_pg, 2)})
                    print(f"  {fmt:7} {client:6} {mb:7.1f} {t_duck:9.2f} {t_pg:14.2f} {t_duck / t_pg:6.2f}",
                          flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PGCONNECT_TIMEOUT", "10")
    main()
