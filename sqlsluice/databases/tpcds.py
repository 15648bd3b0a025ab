"""TPC-DS (and TPC-H) data and queries from DuckDB's extensions, shipped on PyPI
(``duckdb-extension-tpcds`` / ``duckdb-extension-tpch``): no network needed."""

from __future__ import annotations

import functools
import glob
import json
import os
import threading
from pathlib import Path

import duckdb

from sqlsluice.errors import ConfigError

_KEYS = Path(__file__).parent / "data" / "tpcds_keys.json"


def extension_path(name: str) -> str:
    """Path of the ``.duckdb_extension`` file inside the ``duckdb-extension-<name>`` wheel."""
    import importlib

    try:
        mod = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as e:
        raise ConfigError(f"duckdb-extension-{name} is not installed") from e
    files = glob.glob(os.path.join(os.path.dirname(mod.__file__ or ""), "extensions", "*", f"{name}.duckdb_extension"))
    if not files:
        raise ConfigError(f"no {name}.duckdb_extension in duckdb-extension-{name}")
    return files[0]


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.execute(f"LOAD {name}")
    except duckdb.Error:
        con.execute(f"INSTALL '{extension_path(name)}'")
        con.execute(f"LOAD {name}")


def tpcds_queries() -> dict[int, str]:
    """The 99 TPC-DS queries (DuckDB's dialect, which PostgreSQL also accepts for most)."""
    con = duckdb.connect()
    load_extension(con, "tpcds")
    rows = con.execute("SELECT query_nr, query FROM tpcds_queries() ORDER BY query_nr").fetchall()
    con.close()
    return {int(n): q for n, q in rows}


@functools.cache
def tpcds_keys() -> dict[str, list[str]]:
    """``{table: primary key columns}`` for the 24 TPC-DS tables (the specification's keys)."""
    d = json.loads(_KEYS.read_text())
    return {k: list(v) for k, v in d.items() if not k.startswith("_")}


def declare_tpcds_keys(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Declare TPC-DS's primary keys on the tables of a DuckDB database that have none
    (DuckDB's generator declares no keys).  DuckDB checks them as it builds each index, so a
    key that the data violates is not declared.  Returns the tables that got one.

    Keys are declared, never assumed: the rewriter and the verifier use only the keys a
    database enforces, since a key assumed on data that later gets a duplicate row would
    make a key-based rewrite change the answer."""
    have = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'").fetchall()}
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    done = []
    for t, pk in tpcds_keys().items():
        if t in tables and t not in have:
            try:
                con.execute(f'ALTER TABLE "{t}" ADD PRIMARY KEY ({", ".join(pk)})')
            except duckdb.Error:
                continue  # duplicate or NULL key values: the table stays without a key
            done.append(t)
    return done


def generate_tpcds_duckdb(path: str | Path, *, sf: float = 0.1, progress: bool = True) -> Path:
    """Generate TPC-DS at scale factor ``sf`` into a DuckDB file (skipped if it exists)."""
    path = Path(path)
    if path.exists():
        con = duckdb.connect(str(path), read_only=True)
        ok = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'store_sales'").fetchone()
        keyed = con.execute("SELECT count(*) FROM duckdb_constraints() "
                            "WHERE constraint_type = 'PRIMARY KEY'").fetchone()
        con.close()
        if ok and ok[0]:
            if not (keyed and keyed[0]):  # a file from before keys were declared
                con = duckdb.connect(str(path))
                declare_tpcds_keys(con)
                con.close()
            return path
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    con = duckdb.connect(str(tmp))
    load_extension(con, "tpcds")
    done = threading.Event()

    def run() -> None:
        try:
            con.execute(f"CALL dsdgen(sf={sf})")
        finally:
            done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]TPC-DS sf={task.fields[sf]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn()) as bar:
            task = bar.add_task("gen", total=100, sf=sf)
            while not done.wait(0.2):
                try:
                    pct = con.query_progress()
                except Exception:
                    pct = -1
                if pct is not None and pct >= 0:
                    bar.update(task, completed=pct)
            bar.update(task, completed=100)
    t.join()
    declare_tpcds_keys(con)
    con.close()
    tmp.rename(path)
    return path

