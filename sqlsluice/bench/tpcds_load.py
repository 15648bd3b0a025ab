"""Load TPC-DS into a benchmark target: DuckDB's dsdgen, then (for PostgreSQL) CSV + COPY + ANALYZE.

The standard TPC-DS primary keys (:func:`~sqlsluice.databases.tpcds.tpcds_keys`) are declared
in the database, DuckDB or PostgreSQL (one unique index per primary key and no other index):
the rewriter and the verifier trust declared, enforced keys only.  :func:`with_tpcds_keys`
adds them to a catalog for benchmarks that prove recorded pairs over TPC-DS's schema with no
database at hand (LLM-R2's pool).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlsluice.databases import Backend, Catalog, connect
from sqlsluice.databases.tpcds import declare_tpcds_keys, tpcds_keys
from sqlsluice.errors import BackendError


def is_tpcds(catalog: Catalog) -> bool:
    """True when the catalog holds the TPC-DS fact tables."""
    return all(catalog.table(t) is not None for t in ("store_sales", "date_dim", "item", "customer"))


def with_tpcds_keys(catalog: Catalog) -> Catalog:
    """A copy of ``catalog`` with TPC-DS primary keys filled in where none are declared."""
    if not is_tpcds(catalog):
        return catalog
    out = catalog.model_copy(deep=True)
    keys = tpcds_keys()
    for t in out.tables:
        pk = keys.get(t.name.lower())
        if pk and not t.primary_key and all(t.column(c) is not None for c in pk):
            t.primary_key = list(pk)
            for c in pk:
                col = t.column(c)
                if col is not None:
                    col.nullable = False
    return out


def has_tpcds(backend: Backend) -> bool:
    try:
        r = backend.execute("SELECT count(*) FROM store_sales")
    except BackendError:
        return False
    return bool(r.rows and r.rows[0][0])


def load_tpcds(url: str, *, sf: float, cache_dir: Path | None = None, primary_keys: bool = True,
               progress: bool = False) -> Backend:
    """Make sure TPC-DS at ``sf`` is in the database at ``url``; return its backend.

    DuckDB targets are generated in place.  PostgreSQL targets get the tables from a DuckDB
    file generated in ``cache_dir`` (CSV export, ``COPY FROM STDIN``, then ``ANALYZE``).
    """
    from sqlsluice.databases.tpcds import generate_tpcds_duckdb

    if url.startswith("duckdb://"):
        be = connect(url)
        if not has_tpcds(be):
            from sqlsluice.databases.duckdb_backend import DuckDBBackend
            from sqlsluice.databases.tpcds import load_extension

            assert isinstance(be, DuckDBBackend)
            con = be._db.cursor()
            load_extension(con, "tpcds")
            con.execute(f"CALL dsdgen(sf={sf})")
            declare_tpcds_keys(con)
            con.close()
        return be
    be = connect(url)
    if has_tpcds(be):
        return be
    cache_dir = cache_dir or Path(".sluice") / "data"
    src = generate_tpcds_duckdb(cache_dir / f"tpcds_sf{str(sf).replace('.', '_')}.duckdb", sf=sf, progress=progress)
    copy_duckdb_to_postgres(src, url, primary_keys=primary_keys)
    return be


def copy_duckdb_to_postgres(src: Path, url: str, *, primary_keys: bool = True) -> None:
    """Copy every table of a DuckDB file into PostgreSQL (CSV + COPY), declare TPC-DS keys, ANALYZE."""
    import duckdb
    import psycopg

    from sqlsluice.databases.duckdb_backend import DuckDBBackend

    dbe = DuckDBBackend(str(src), read_only=True)
    cat = dbe.catalog(row_counts=False)
    dbe.close()
    dcon = duckdb.connect(str(src), read_only=True)
    keys = tpcds_keys()
    with psycopg.connect(url, autocommit=True) as pg, tempfile.TemporaryDirectory() as tmp:
        for t in cat.tables:
            cols = ", ".join(f'"{c.name}" {c.type}' for c in t.columns)
            pg.execute(f'DROP TABLE IF EXISTS "{t.name}"')  # type: ignore[arg-type]
            pg.execute(f'CREATE TABLE "{t.name}" ({cols})')  # type: ignore[arg-type]
            csv = Path(tmp) / f"{t.name}.csv"
            dcon.execute(f"COPY \"{t.name}\" TO '{csv}' (HEADER false, DELIMITER '|', NULL '')")
            with pg.cursor() as cur, cur.copy(
                    f"COPY \"{t.name}\" FROM STDIN (FORMAT csv, DELIMITER '|', NULL '')") as cp, \
                    open(csv, "rb") as f:  # type: ignore[arg-type]
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
            csv.unlink()
            pk = keys.get(t.name)
            if primary_keys and pk:
                try:
                    pg.execute(f'ALTER TABLE "{t.name}" ADD PRIMARY KEY ({", ".join(pk)})')  # type: ignore[arg-type]
                except psycopg.Error:
                    pass  # duplicate key values in generated data: leave the table without a key
        from sqlsluice.databases.postgres_backend import settle_statistics

        settle_statistics(pg)  # VACUUM ANALYZE: no autovacuum run right after the load
    dcon.close()
