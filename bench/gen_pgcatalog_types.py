"""Write sqlsluice/middleware/pgcatalog_types.py from a real PostgreSQL 15's catalog.

    .venv/bin/python bench/gen_pgcatalog_types.py            # a throwaway PgCluster
    .venv/bin/python bench/gen_pgcatalog_types.py --dsn postgresql://...  # a running server
    .venv/bin/python bench/gen_pgcatalog_types.py --check    # differ from the module: exit 1

What it reads:

- ``_TYPES``: for every table and view of ``pg_catalog`` and every view of
  ``information_schema`` (not the ``_pg_*`` helper views), its columns in ``attnum`` order with
  the type OID RowDescription reports for them (a domain as its base type:
  ``sql_identifier`` -> ``name``); the statistics views (``pg_stat_*``, ``pg_statio_*``) are left
  out but for the four tools read (:data:`STAT_VIEWS`, listed last, in that order).
- ``PG_TYPES``: PostgreSQL's types of ``pg_catalog`` and ``information_schema`` that are not
  composite (nor arrays of a composite type), by OID:
  ``oid:typname:typlen:typtype:typcategory:typelem:typarray:typinput:typbasetype:schema`` with
  schema ``p`` (pg_catalog) or ``i`` (information_schema).
- ``PG_ROW_TYPES``: the composite (row) types of the relations of ``pg_catalog`` and
  ``information_schema``, by OID: ``oid:typname:typarray:typrelid:schema``.
- ``PG_OPCLASSES``: PostgreSQL's operator classes, by OID:
  ``oid:opcmethod:opcname:opcfamily:opcintype:opcdefault:opckeytype`` (opcdefault ``t`` / ``f``).

The text is wrapped as ruff format would leave it: an entry on one line when it fits in
:data:`ONE_LINE` columns, else in parentheses, strings of at most :data:`WRAP` characters.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "sqlsluice" / "middleware" / "pgcatalog_types.py"
STAT_VIEWS = ("pg_stat_activity", "pg_stat_all_tables", "pg_stat_user_tables", "pg_statio_user_tables")
ONE_LINE = 117  # an entry `    "key": "value",` at most this long stays on one line (the longest kept)
WRAP = 100  # the longest run of words in one string literal (a space follows all but the last)

HEADER = '''"""The column types of PostgreSQL 15's catalogs (pg_catalog tables and views,
information_schema views), as RowDescription reports them (domains as their base type).

Generated from a PostgreSQL 15 server by bench/gen_pgcatalog_types.py; sluice over DuckDB
types a catalog query's result columns from it (:func:`column_oid`)."""

from __future__ import annotations

# "<schema>.<table>": "<column>:<oid> ..."
'''
TYPES_COMMENT = ("# PostgreSQL 15's types (not composite): "
                 "oid:typname:typlen:typtype:typcategory:typelem:typarray:typinput:typbasetype:schema (p / i)\n")

_RELATIONS = """
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname = 'pg_catalog' AND c.relkind IN ('r', 'v') AND c.relname !~ '^pg_stat(io)?_')
   OR (n.nspname = 'information_schema' AND c.relkind = 'v' AND c.relname !~ '^_pg_')
"""
_COLUMNS = """
SELECT a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PG_TYPES = """
SELECT t.oid, t.typname, t.typlen, t.typtype, t.typcategory, t.typelem, t.typarray, t.typinput::text,
       t.typbasetype, CASE n.nspname WHEN 'pg_catalog' THEN 'p' ELSE 'i' END
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname IN ('pg_catalog', 'information_schema') AND t.typtype <> 'c'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typtype = 'c')
ORDER BY t.oid
"""
_ROW_TYPES = """
SELECT t.oid, t.typname, t.typarray, t.typrelid, CASE n.nspname WHEN 'pg_catalog' THEN 'p' ELSE 'i' END
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname IN ('pg_catalog', 'information_schema') AND t.typtype = 'c'
ORDER BY t.oid
"""
ROW_TYPES_COMMENT = "# the row types of PostgreSQL 15's catalog relations: oid:typname:typarray:typrelid:schema (p / i)\n"
_OPCLASSES = """
SELECT oid, opcmethod, opcname, opcfamily, opcintype, CASE WHEN opcdefault THEN 't' ELSE 'f' END, opckeytype
FROM pg_catalog.pg_opclass ORDER BY oid
"""
OPCLASSES_COMMENT = ("# PostgreSQL 15's operator classes: oid:opcmethod:opcname:opcfamily:opcintype:opcdefault:opckeytype\n")


def read_catalog(conn: Any) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """({"<schema>.<table>": "<column>:<oid> ..."}, ["oid:typname:...", ...], ["oid:opcmethod:...", ...],
    [row types "oid:typname:..."]) from a PostgreSQL 15."""
    version = int(conn.execute("SHOW server_version_num").fetchone()[0])
    if version // 10000 != 15:
        raise SystemExit(f"PostgreSQL 15 expected, the server is {version}")
    rels = sorted(f"{s}.{r}" for s, r in conn.execute(_RELATIONS).fetchall())
    rels += [f"pg_catalog.{v}" for v in STAT_VIEWS]
    cols: dict[str, str] = {}
    for rel in rels:
        schema, name = rel.split(".", 1)
        rows = conn.execute(_COLUMNS, [schema, name]).fetchall()
        cols[rel] = " ".join(f"{a}:{o}" for a, o in rows)
    types = [":".join(str(v) for v in row) for row in conn.execute(_PG_TYPES).fetchall()]
    opclasses = [":".join(str(v) for v in row) for row in conn.execute(_OPCLASSES).fetchall()]
    rowtypes = [":".join(str(v) for v in row) for row in conn.execute(_ROW_TYPES).fetchall()]
    return cols, types, opclasses, rowtypes


def _chunks(words: Sequence[str]) -> list[str]:
    """Words in runs of at most WRAP characters (greedy), each but the last ending with a space."""
    runs: list[str] = []
    line = ""
    for w in words:
        if line and len(line) + 1 + len(w) > WRAP:
            runs.append(line + " ")
            line = w
        else:
            line = f"{line} {w}" if line else w
    runs.append(line)
    return runs


def render(cols: dict[str, str], types: Sequence[str], opclasses: Sequence[str], rowtypes: Sequence[str]) -> str:
    out = [HEADER, "_TYPES: dict[str, str] = {\n"]
    for key, value in cols.items():
        one = f'    "{key}": "{value}",'
        if len(one) <= ONE_LINE:
            out.append(one + "\n")
            continue
        out.append(f'    "{key}": (\n')
        out.extend(f'        "{run}"\n' for run in _chunks(value.split()))
        out.append("    ),\n")
    out.append("}\n\n")
    out.append(TYPES_COMMENT)
    out.append("PG_TYPES = (\n")
    out.extend(f'    "{run}"\n' for run in _chunks(types))
    out.append(")\n\n")
    out.append(OPCLASSES_COMMENT)
    out.append("PG_OPCLASSES = (\n")
    out.extend(f'    "{run}"\n' for run in _chunks(opclasses))
    out.append(")\n\n")
    out.append(ROW_TYPES_COMMENT)
    out.append("PG_ROW_TYPES = (\n")
    out.extend(f'    "{run}"\n' for run in _chunks(rowtypes))
    out.append(")\n")
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", help="a PostgreSQL 15 to read (default: a throwaway PgCluster)")
    ap.add_argument("--out", type=Path, default=MODULE, help=f"where to write (default {MODULE.relative_to(ROOT)})")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when the module differs")
    a = ap.parse_args(argv)
    import psycopg

    if a.dsn:
        with psycopg.connect(a.dsn, autocommit=True) as c:
            text = render(*read_catalog(c))
    else:
        from sqlsluice.databases.pgcluster import PgCluster

        with PgCluster() as pg, psycopg.connect(pg.dsn(), autocommit=True) as c:
            text = render(*read_catalog(c))
    if a.check:
        same = a.out.read_text() == text
        print(f"{a.out}: {'up to date' if same else 'differs'}")
        return 0 if same else 1
    a.out.write_text(text)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
