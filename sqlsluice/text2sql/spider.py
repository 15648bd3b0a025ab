"""Build a DuckDB database from a Spider database folder (``schema.sql`` + ``data/*.csv``).

``schema.sql`` is MySQL-flavoured (backticks, ``db.table`` names); it is translated with
sqlglot, tables are created in foreign-key order and the CSVs loaded with DuckDB's reader
(typed by the declared columns).
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlglot
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.errors import InvalidParameterValue


def spider_catalog(db_dir: str | os.PathLike[str]) -> Catalog:
    d = Path(db_dir)
    ddl = (d / "schema.sql").read_text()
    stmts = []
    for s in sqlglot.parse(ddl, read="mysql"):
        if s is None:
            continue
        for t in s.find_all(exp.Table):
            t.set("db", None)
            t.set("catalog", None)
        stmts.append(s.sql("duckdb"))
    return Catalog.from_ddl(";\n".join(stmts), "duckdb")


def build_spider_duckdb(db_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Create (or replace) the DuckDB file ``path`` with the Spider database in ``db_dir``."""
    import duckdb

    d = Path(db_dir)
    if not (d / "schema.sql").exists():
        raise InvalidParameterValue(f"{d}: not a Spider database folder (no schema.sql)")
    cat = spider_catalog(d)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    con = duckdb.connect(str(out))
    try:
        for stmt in cat.to_ddl("duckdb"):
            con.execute(stmt)
        for t in cat.tables:
            csv = d / "data" / f"{t.name}.csv"
            if not csv.exists():
                continue
            cols = ", ".join(f"'{c.name}': '{c.type}'" for c in t.columns)
            qt = exp.to_identifier(t.name, quoted=True).sql("duckdb")
            con.execute(f"INSERT INTO {qt} SELECT * FROM read_csv(?, header = true, columns = {{{cols}}}, "
                        "nullstr = ['', 'NULL'])", [str(csv)])
    finally:
        con.close()
    return out
