"""Fixtures of the verifier tests: the Calcite EMP/DEPT catalog and an empty TPC-DS catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlsluice.databases import Catalog


@pytest.fixture(scope="session")
def emp_dept() -> Catalog:
    from sqlsluice.verifiers.schema import calcite_catalog

    return calcite_catalog()


@pytest.fixture(scope="session")
def tpcds_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The 24 TPC-DS tables (no rows), read back through the DuckDB backend."""
    import duckdb

    from sqlsluice.databases import connect
    from sqlsluice.databases.tpcds import load_extension

    path: Path = tmp_path_factory.mktemp("tpcds_schema") / "schema.duckdb"
    con = duckdb.connect(str(path))
    load_extension(con, "tpcds")
    con.execute("CALL dsdgen(sf=0)")
    con.close()
    backend = connect(f"duckdb:///{path}")
    try:
        return backend.catalog(row_counts=False)
    finally:
        backend.close()
