"""One catalog model for every backend: tables, typed columns, keys, row counts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp


class Column(BaseModel):
    name: str
    type: str
    nullable: bool = True


class ForeignKey(BaseModel):
    columns: list[str]
    ref_table: str
    ref_columns: list[str]
    ref_schema: str | None = None


class Table(BaseModel):
    name: str
    schema_name: str = "main"
    columns: list[Column] = Field(default_factory=list)
    primary_key: list[str] = Field(default_factory=list)
    unique: list[list[str]] = Field(default_factory=list)
    foreign_keys: list[ForeignKey] = Field(default_factory=list)
    row_count: int | None = None

    def column(self, name: str) -> Column | None:
        low = name.lower()
        for c in self.columns:
            if c.name.lower() == low:
                return c
        return None

    @property
    def keys(self) -> list[list[str]]:
        """Every known unique key: the primary key first, then UNIQUE constraints."""
        out = [self.primary_key] if self.primary_key else []
        out.extend(u for u in self.unique if u)
        return out


class Catalog(BaseModel):
    """Tables of one database.  Names are matched case-insensitively."""

    tables: list[Table] = Field(default_factory=list)
    dialect: str = "duckdb"

    def table(self, name: str, schema: str | None = None) -> Table | None:
        low = name.lower()
        for t in self.tables:
            if t.name.lower() == low and (schema is None or t.schema_name.lower() == schema.lower()):
                return t
        return None

    def mapping(self) -> dict[str, dict[str, str]]:
        """``{table: {column: type}}`` as sqlglot's optimizer expects (no schema level)."""
        return {t.name: {c.name: c.type for c in t.columns} for t in self.tables}

    def fingerprint(self) -> str:
        """Changes whenever tables, columns, keys or row counts change."""
        blob = json.dumps(self.model_dump(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def schema_fingerprint(self) -> str:
        """Like :meth:`fingerprint` but blind to row counts (structure only)."""
        d = self.model_dump()
        for t in d["tables"]:
            t.pop("row_count", None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def to_ddl(self, dialect: str = "duckdb", *, foreign_keys: bool = True) -> list[str]:
        """CREATE TABLE statements, referenced tables first where possible."""
        ordered = _topo(self.tables) if foreign_keys else list(self.tables)
        out = []
        for t in ordered:
            cols = []
            for c in t.columns:
                cols.append(f"{_q(c.name, dialect)} {c.type}{'' if c.nullable else ' NOT NULL'}")
            if t.primary_key:
                cols.append("PRIMARY KEY (" + ", ".join(_q(c, dialect) for c in t.primary_key) + ")")
            for u in t.unique:
                cols.append("UNIQUE (" + ", ".join(_q(c, dialect) for c in u) + ")")
            if foreign_keys:
                for fk in t.foreign_keys:
                    if self.table(fk.ref_table) is None:
                        continue
                    cols.append(
                        "FOREIGN KEY (" + ", ".join(_q(c, dialect) for c in fk.columns) + ") REFERENCES "
                        + _q(fk.ref_table, dialect) + " (" + ", ".join(_q(c, dialect) for c in fk.ref_columns) + ")"
                    )
            out.append(f"CREATE TABLE {_q(t.name, dialect)} (" + ", ".join(cols) + ")")
        return out

    @classmethod
    def from_ddl(cls, ddl: str, dialect: str | None = None) -> Catalog:
        """Parse CREATE TABLE statements (any dialect sqlglot reads) into a catalog."""
        tables: dict[str, Table] = {}
        for stmt in sqlglot.parse(ddl, read=dialect):
            if not isinstance(stmt, exp.Create) or stmt.kind != "TABLE":
                if isinstance(stmt, exp.Alter):
                    _apply_alter(stmt, tables)
                continue
            schema = stmt.this
            if not isinstance(schema, exp.Schema):
                continue
            tname = schema.this.name
            t = Table(name=tname)
            for e in schema.expressions:
                if isinstance(e, exp.ColumnDef):
                    ctype = e.args.get("kind")
                    col = Column(name=e.name, type=ctype.sql("duckdb") if ctype else "VARCHAR")
                    for cc in e.args.get("constraints") or []:
                        k = cc.args.get("kind")
                        if isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null"):
                            col.nullable = False
                        elif isinstance(k, exp.PrimaryKeyColumnConstraint):
                            t.primary_key = [e.name]
                            col.nullable = False
                        elif isinstance(k, exp.UniqueColumnConstraint):
                            t.unique.append([e.name])
                        elif isinstance(k, exp.Reference):
                            ref = k.this
                            if isinstance(ref, exp.Schema):
                                t.foreign_keys.append(ForeignKey(
                                    columns=[e.name], ref_table=ref.this.name,
                                    ref_columns=[x.name for x in ref.expressions] or [e.name]))
                            elif isinstance(ref, exp.Table):
                                t.foreign_keys.append(ForeignKey(columns=[e.name], ref_table=ref.name,
                                                                 ref_columns=[e.name]))
                    t.columns.append(col)
                else:
                    _apply_table_constraint(e, t)
            for pk in t.primary_key:
                c = t.column(pk)
                if c is not None:
                    c.nullable = False
            tables[tname.lower()] = t
        return cls(tables=list(tables.values()), dialect=dialect or "duckdb")


def _apply_table_constraint(e: exp.Expression, t: Table) -> None:
    node = e.this if isinstance(e, exp.Constraint) and len(e.expressions) == 1 else e
    if isinstance(e, exp.Constraint):
        for sub in e.expressions:
            _apply_table_constraint(sub, t)
        return
    if isinstance(node, exp.PrimaryKey):
        t.primary_key = [_ident(x) for x in node.expressions]
    elif isinstance(node, exp.UniqueColumnConstraint) or type(node).__name__ == "Unique":
        inner = node.this
        cols = [_ident(x) for x in inner.expressions] if isinstance(inner, exp.Schema) else []
        if cols:
            t.unique.append(cols)
    elif isinstance(node, exp.ForeignKey):
        ref = node.args.get("reference")
        if ref is not None:
            target = ref.this
            if isinstance(target, exp.Schema):
                t.foreign_keys.append(ForeignKey(
                    columns=[_ident(x) for x in node.expressions],
                    ref_table=target.this.name,
                    ref_columns=[_ident(x) for x in target.expressions]))
            elif isinstance(target, exp.Table):
                t.foreign_keys.append(ForeignKey(columns=[_ident(x) for x in node.expressions],
                                                 ref_table=target.name,
                                                 ref_columns=[_ident(x) for x in node.expressions]))


def _apply_alter(stmt: exp.Expression, tables: dict[str, Table]) -> None:
    target = stmt.this
    if not isinstance(target, exp.Table):
        return
    t = tables.get(target.name.lower())
    if t is None:
        return
    for action in stmt.args.get("actions") or []:
        for node in action.find_all(exp.PrimaryKey, exp.ForeignKey):
            _apply_table_constraint(node, t)


def _ident(x: exp.Expression) -> str:
    return x.name if hasattr(x, "name") and x.name else x.sql()


def _q(name: str, dialect: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect)


def _topo(tables: Iterable[Table]) -> list[Table]:
    tabs = list(tables)
    by = {t.name.lower(): t for t in tabs}
    done: dict[str, Table] = {}
    visiting: set[str] = set()

    def visit(t: Table) -> None:
        k = t.name.lower()
        if k in done or k in visiting:
            return
        visiting.add(k)
        for fk in t.foreign_keys:
            r = by.get(fk.ref_table.lower())
            if r is not None and r is not t:
                visit(r)
        visiting.discard(k)
        done[k] = t

    for t in tabs:
        visit(t)
    return list(done.values())
