"""COPY FROM STDIN through ``sluice serve``: over DuckDB vs over a throwaway PostgreSQL.

The same file (``--rows`` rows of a 5-column table, text or CSV format) is sent with
psycopg's ``cursor.copy`` to two ``sluice serve`` processes started here, one over an
embedded DuckDB file and one passing through to a throwaway PostgreSQL (PgCluster), in
the same run; prints both times and the ratio DuckDB / passthrough.

    .venv/bin/python bench/copy_from.py                    # 2 million rows, text format
    .venv/bin/python bench/copy_from.py --rows 200000 --format csv   # or binary
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from sqlsluice.databases.pgcluster import PgCluster, free_port

DDL = "CREATE TABLE copy_bench (id INTEGER, amount NUMERIC(12,2), name VARCHAR, day DATE, qty BIGINT)"


def write_binary(path: Path, rows: int) -> None:
    """The same rows in PostgreSQL's binary COPY format (what asyncpg/psycopg binary copies send)."""
    import datetime as dt
    from decimal import Decimal

    from sqlsluice.middleware import types
    from sqlsluice.middleware.copy import BINARY_TRAILER, binary_header, binary_row

    encs = [types.encode_binary(o) for o in (types.INT4, types.NUMERIC, types.TEXT, types.DATE, types.INT8)]
    with path.open("wb") as f:
        f.write(binary_header())
        for start in range(0, rows, 100_000):
            f.write(b"".join(binary_row((i, Decimal(f"{i % 10000}.{i % 100:02d}"),
                                          None if i % 97 == 0 else f"name {i % 1000}",
                                          dt.date(2020, 1 + i % 12, 1 + i % 28), i * 7), encs)
                             for i in range(start, min(rows, start + 100_000))))
        f.write(BINARY_TRAILER)


def write_file(path: Path, rows: int, fmt: str) -> None:
    if fmt == "binary":
        write_binary(path, rows)
        return
    sep = "," if fmt == "csv" else "\t"
    with path.open("w") as f:
        if fmt == "csv":
            f.write("id,amount,name,day,qty\n")
        for start in range(0, rows, 100_000):
            lines = []
            for i in range(start, min(rows, start + 100_000)):
                null = "" if fmt == "csv" else "\\N"
                name = null if i % 97 == 0 else f"name {i % 1000}"
                lines.append(f"{i}{sep}{i % 10000}.{i % 100:02d}{sep}{name}{sep}"
                             f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}{sep}{i * 7}\n")
            f.write("".join(lines))


def serve(backend: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    exe = Path(sys.executable).with_name("sluice")
    proc = subprocess.Popen([str(exe), "serve", "--plain", "--backend", backend, "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            raise SystemExit(f"sluice serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("sluice serve did not start listening")


def copy_in(port: int, dbname: str, path: Path, fmt: str) -> tuple[float, int]:
    opts = {"csv": "(FORMAT csv, HEADER true)", "binary": "(FORMAT binary)"}.get(fmt, "")
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS copy_bench")
        c.execute(DDL)
        t0 = time.perf_counter()
        with c.cursor() as cur:
            with cur.copy(f"COPY copy_bench FROM STDIN {opts}") as cp, path.open("rb") as f:
                while chunk := f.read(1 << 16):
                    cp.write(chunk)
            n = cur.rowcount
        elapsed = time.perf_counter() - t0
        (count,) = c.execute("SELECT count(*) FROM copy_bench").fetchone()  # type: ignore[misc]
        if count != n:
            raise SystemExit(f"COPY reported {n} rows, the table holds {count}")
    return elapsed, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--format", choices=("text", "csv", "binary"), default="text")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sluice-copy-bench-"))
    data = tmp / f"rows.{a.format}"
    write_file(data, a.rows, a.format)
    procs: list[subprocess.Popen[bytes]] = []
    with PgCluster() as pg:
        try:
            pg_url = pg.create_database("copybench")
            duck, dport = serve(f"duckdb:///{tmp / 'copy.duckdb'}")
            procs.append(duck)
            relay, pport = serve(pg_url)
            procs.append(relay)
            t_duck, n_duck = copy_in(dport, "copy", data, a.format)
            t_pg, n_pg = copy_in(pport, "copybench", data, a.format)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
    figures = {"rows": a.rows, "format": a.format, "bytes": data.stat().st_size,
               "duckdb_s": round(t_duck, 3), "passthrough_s": round(t_pg, 3),
               "ratio": round(t_duck / t_pg, 2), "rows_duckdb": n_duck, "rows_passthrough": n_pg}
    print(f"COPY FROM STDIN, {a.rows} rows ({a.format}, {figures['bytes'] / 1e6:.1f} MB)")
    print(f"  sluice serve over DuckDB:      {t_duck:8.2f} s")
    print(f"  sluice serve over PostgreSQL:  {t_pg:8.2f} s")
    print(f"  ratio DuckDB / passthrough:    {t_duck / t_pg:8.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n")
    os.remove(data)


if __name__ == "__main__":
    main()
