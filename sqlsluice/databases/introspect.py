"""Introspect any SQLAlchemy URL into the catalog model."""

from __future__ import annotations

from sqlsluice.databases.catalog import Catalog, Column, ForeignKey, Table
from sqlsluice.errors import BackendError


def introspect_sqlalchemy(url: str, *, row_counts: bool = True) -> Catalog:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        insp = sa.inspect(engine)
    except Exception as e:
        raise BackendError(f"cannot introspect {url}: {e}") from e
    tables = []
    with engine.connect() as conn:
        for name in insp.get_table_names():
            t = Table(name=name, schema_name=insp.default_schema_name or "main")
            for c in insp.get_columns(name):
                t.columns.append(Column(name=c["name"], type=str(c["type"]), nullable=bool(c.get("nullable", True))))
            pk = insp.get_pk_constraint(name) or {}
            t.primary_key = list(pk.get("constrained_columns") or [])
            for u in insp.get_unique_constraints(name):
                t.unique.append(list(u["column_names"]))
            for fk in insp.get_foreign_keys(name):
                t.foreign_keys.append(ForeignKey(columns=list(fk["constrained_columns"]),
                                                 ref_table=fk["referred_table"],
                                                 ref_columns=list(fk["referred_columns"])))
            if row_counts:
                t.row_count = int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one())
            tables.append(t)
    dialect = {"postgresql": "postgres", "sqlite": "sqlite", "mysql": "mysql"}.get(engine.dialect.name,
                                                                              engine.dialect.name)
    engine.dispose()
    return Catalog(tables=tables, dialect=dialect)
