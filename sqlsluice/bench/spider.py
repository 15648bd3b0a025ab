"""Spider: hardness levels, the evaluation's query normalisation, and building its databases.

``build_spider`` turns ``../shared/data/spider/databases/<db>/schema.sql`` (MySQL-flavoured
DDL) and ``data/*.csv`` into SQLite files in BIRD's layout (``dev_databases/<db>/<db>.sqlite``),
optionally DuckDB files beside them and one PostgreSQL schema per database, and writes the
dev questions as BIRD's ``dev.json``.

    >>> remove_distinct("SELECT DISTINCT a, count(DISTINCT b) FROM t")
    'SELECT  a, count( b) FROM t'
    >>> spider_hardness({"select": [False, [[0, [0, [0, 1, False], None]]]], "from": {"table_units":
    ...     [["table_unit", 0]], "conds": []}, "where": [], "groupBy": [], "having": [], "orderBy": [],
    ...     "limit": None, "intersect": None, "union": None, "except": None})
    'easy'
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from sqlsluice.config import shared_data_dir
from sqlsluice.errors import BackendError, ConfigError, InvalidParameterValue

HARDNESS_TO_BIRD = {"easy": "simple", "medium": "simple", "hard": "moderate", "extra": "challenging"}
_LIKE = 9  # WHERE_OPS.index("like") in Spider's process_sql




# -- evaluation normalisation ----------------------------------------------------------------

_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def spider_postprocess(sql: str) -> str:
    """test-suite-sql-eval's normalisation: join ``> =``, ``< =``, ``! =``; ``YEAR(CURDATE())`` -> 2020.

    >>> spider_postprocess("SELECT * FROM t WHERE y > = YEAR(CURDATE()) - 5")
    'SELECT * FROM t WHERE y >= 2020- 5'
    """
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    return _CUR_YEAR.sub("2020", sql)


def remove_distinct(sql: str) -> str:
    """Drop every DISTINCT keyword (Spider's default, ``keep_distinct=False``), keeping the rest verbatim."""
    try:
        tokens = sqlglot.Tokenizer().tokenize(sql)
    except sqlglot.errors.TokenError:
        return sql
    out, pos = [], 0
    for tok in tokens:
        if tok.token_type == TokenType.DISTINCT:
            out.append(sql[pos:tok.start])
            pos = tok.end + 1
    out.append(sql[pos:])
    return "".join(out)


# -- hardness (Spider's evaluation.py, on the parsed ``sql`` of dev.json) ----------------------

def _has_agg(unit: Any) -> bool:
    # Spider applies this to select units, condition units and even the 'and'/'or' strings of
    # HAVING (whose first character is never 0): we keep that behaviour to get its levels.
    return bool(unit[0] != 0)


def _count_agg(units: Sequence[Any]) -> int:
    return sum(1 for u in units if _has_agg(u))


def _nested(sql: dict[str, Any]) -> list[Any]:
    out = []
    for cond in sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]:
        if isinstance(cond[3], dict):
            out.append(cond[3])
        if isinstance(cond[4], dict):
            out.append(cond[4])
    for key in ("intersect", "except", "union"):
        if sql[key] is not None:
            out.append(sql[key])
    return out


def _component1(sql: dict[str, Any]) -> int:
    count = sum(1 for k in ("where", "groupBy", "orderBy") if len(sql[k]) > 0)
    count += sql["limit"] is not None
    if len(sql["from"]["table_units"]) > 0:
        count += len(sql["from"]["table_units"]) - 1
    ao = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    count += sum(1 for t in ao if t == "or")
    conds = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    count += sum(1 for c in conds if c[1] == _LIKE)
    return count


def _others(sql: dict[str, Any]) -> int:
    agg = _count_agg(sql["select"][1]) + _count_agg(sql["where"][::2]) + _count_agg(sql["groupBy"])
    if len(sql["orderBy"]) > 0:
        agg += _count_agg([u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]])
    agg += _count_agg(sql["having"])
    count = int(agg > 1)
    count += len(sql["select"][1]) > 1
    count += len(sql["where"]) > 1
    count += len(sql["groupBy"]) > 1
    return count


def spider_hardness(sql: dict[str, Any]) -> str:
    """easy / medium / hard / extra, from Spider's parsed SQL, as its evaluation.py decides."""
    c1, c2, o = _component1(sql), len(_nested(sql)), _others(sql)
    if c1 <= 1 and o == 0 and c2 == 0:
        return "easy"
    if (o <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and o < 2 and c2 == 0):
        return "medium"
    if (o > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and o <= 2 and c2 == 0) or \
            (c1 <= 1 and o == 0 and c2 <= 1):
        return "hard"
    return "extra"


# -- building databases ----------------------------------------------------------------------

@dataclass
class BuildReport:
    databases: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    skipped_rows: dict[str, int] = field(default_factory=dict)
    missing_csv: list[str] = field(default_factory=list)
    questions: int = 0


def _tables_ddl(schema_sql: str) -> list[exp.Create]:
    """Parse the MySQL DDL and strip the database qualifier from every table reference."""
    out = []
    for stmt in sqlglot.parse(schema_sql, read="mysql"):
        if not isinstance(stmt, exp.Create):
            continue
        for t in stmt.find_all(exp.Table):
            t.set("db", None)
            t.set("catalog", None)
        # MySQL's inline ``INDEX name (col)`` has no SQLite/PostgreSQL spelling; indexes do not change results.
        for idx in list(stmt.find_all(exp.IndexColumnConstraint)):
            idx.pop()
        stmt.comments = None
        out.append(stmt)
    return out


def _table_name(create: exp.Create) -> str:
    t = create.find(exp.Table)
    assert t is not None
    return t.name


def _columns(create: exp.Create) -> list[tuple[str, bool]]:
    """``(name, not_null)`` per column."""
    schema = create.this
    cols = []
    for c in schema.expressions if isinstance(schema, exp.Schema) else []:
        if isinstance(c, exp.ColumnDef):
            not_null = any(isinstance(k.args.get("kind"), exp.NotNullColumnConstraint) and not k.args["kind"].args.get("allow_null")
                           for k in c.args.get("constraints") or [])
            cols.append((c.name, not_null))
    return cols


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    return header, rows


def build_sqlite(db_dir: Path, target: Path, report: BuildReport) -> None:
    """One Spider database -> one SQLite file (rows typed by SQLite's column affinity)."""
    db = db_dir.name
    creates = _tables_ddl((db_dir / "schema.sql").read_text(encoding="utf-8"))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".sqlite.tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        for create in creates:
            conn.execute(create.sql("sqlite"))
        for create in creates:
            name = _table_name(create)
            col_defs = _columns(create)
            cols = [c for c, _ in col_defs]
            not_null = {c.lower() for c, nn in col_defs if nn}
            csv_path = db_dir / "data" / f"{name}.csv"
            if not csv_path.is_file():
                report.missing_csv.append(f"{db}/{name}")
                continue
            header, rows = _read_csv(csv_path)
            lower = {c.lower(): c for c in cols}
            names = [lower.get(h.lower(), h) for h in header]
            placeholders = ", ".join("?" for _ in names)
            quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
            ok = skipped = 0
            stmt = f'INSERT INTO "{name}" ({quoted}) VALUES ({placeholders})'
            # An empty field is NULL (the CSV export does not tell NULL from ''), but '' in a NOT NULL column.
            keep_empty = [n.lower() in not_null for n in names]
            good = [[None if v == "" and not k else v for v, k in zip(r, keep_empty, strict=True)]
                    for r in rows if len(r) == len(names)]
            skipped += len(rows) - len(good)
            try:
                conn.executemany(stmt, good)
                ok = len(good)
            except sqlite3.IntegrityError:  # a duplicate key in the export: keep the first copy
                for r in good:
                    try:
                        conn.execute(stmt, r)
                        ok += 1
                    except sqlite3.IntegrityError:
                        skipped += 1
            report.rows[f"{db}.{name}"] = ok
            if skipped:
                report.skipped_rows[f"{db}.{name}"] = skipped
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, target)


def _target_type(declared: str, values_kinds: set[str], dialect: str) -> str:
    """The column type for DuckDB/PostgreSQL: the declared type unless the data does not fit it."""
    try:
        dt = exp.DataType.build(declared or "TEXT", dialect="sqlite")
    except (sqlglot.errors.ParseError, ValueError):
        return "TEXT"
    kinds = values_kinds - {"null"}
    if dt.is_type(*exp.DataType.INTEGER_TYPES):
        # BIGINT whatever the declared width (MySQL's INT(11) is not DuckDB/PostgreSQL syntax)
        return "BIGINT" if kinds <= {"integer"} else ("DOUBLE PRECISION" if kinds <= {"integer", "real"} else "TEXT")
    if dt.is_type(*exp.DataType.REAL_TYPES) or dt.is_type(exp.DataType.Type.DECIMAL):
        return "DOUBLE PRECISION" if kinds <= {"integer", "real"} else "TEXT"
    if dt.is_type(*exp.DataType.TEXT_TYPES):
        return "TEXT"
    return "TEXT"  # dates, booleans and the like stay text: the CSV spells them freely


def _sqlite_tables(conn: sqlite3.Connection) -> list[tuple[str, list[tuple[str, str, set[str]]]]]:
    out = []
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"):
        cols = []
        for _cid, col, decl, *_ in conn.execute(f'PRAGMA table_info("{name}")'):
            kinds = {k for (k,) in conn.execute(f'SELECT DISTINCT typeof("{col}") FROM "{name}"')}
            cols.append((col, decl, kinds))
        out.append((name, cols))
    return out


def copy_sqlite_to_duckdb(sqlite_file: Path, duckdb_file: Path) -> None:
    """A DuckDB copy of a SQLite database (types from the declarations, text where data disagrees)."""
    import tempfile

    import duckdb

    duckdb_file.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode(errors="ignore")
    dst = duckdb.connect(str(duckdb_file))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, cols in _sqlite_tables(src):
                defs = ", ".join(f'"{c}" {_target_type(d, k, "duckdb")}' for c, d, k in cols)
                dst.execute(f'CREATE TABLE "{name}" ({defs})')
                # Through a CSV file: DuckDB's COPY is orders of magnitude faster than executemany.
                path = Path(tmp) / "rows.csv"
                with open(path, "w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f, lineterminator="\n")
                    for r in src.execute(f'SELECT * FROM "{name}"'):
                        w.writerow([_NULL if v is None else v for v in r])
                dst.execute(f"COPY \"{name}\" FROM '{path}' (HEADER false, DELIM ',', NULL '{_NULL}', "
                            f"QUOTE '\"', ESCAPE '\"', NEW_LINE '\\n', AUTO_DETECT false)")
    finally:
        src.close()
        dst.close()


_NULL = "\\N"


def copy_sqlite_to_postgres(sqlite_file: Path, url: str, schema: str) -> None:
    """Load a SQLite database into PostgreSQL schema ``schema`` (dropped and recreated)."""
    import psycopg

    src = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode(errors="ignore")
    try:
        with psycopg.connect(url, autocommit=False) as pg, pg.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cur.execute(f'CREATE SCHEMA "{schema}"')
            for name, cols in _sqlite_tables(src):
                # Lower-case names, as BIRD's PostgreSQL release does: unquoted SQL then finds them.
                types = [_target_type(d, k, "postgres") for _, d, k in cols]
                defs = ", ".join(f'"{c.lower()}" {t}' for (c, _, _), t in zip(cols, types, strict=True))
                cur.execute(f'CREATE TABLE "{schema}"."{name.lower()}" ({defs})')
                with cur.copy(f'COPY "{schema}"."{name.lower()}" FROM STDIN') as cp:
                    for r in src.execute(f'SELECT * FROM "{name}"'):
                        cp.write_row([str(v) if t == "TEXT" and v is not None else v
                                      for v, t in zip(r, types, strict=True)])
            pg.commit()
    finally:
        src.close()


def spider_questions(spider_dir: Path, dbs: set[str] | None = None) -> list[dict[str, Any]]:
    """Spider's dev questions in BIRD's JSON format (evidence empty, difficulty from hardness)."""
    data = json.loads((spider_dir / "dev.json").read_text(encoding="utf-8"))
    out = []
    for i, q in enumerate(data):
        if dbs is not None and q["db_id"] not in dbs:
            continue
        hardness = spider_hardness(q["sql"])
        out.append({"question_id": i, "db_id": q["db_id"], "question": q["question"], "evidence": "",
                    "SQL": q["query"], "difficulty": HARDNESS_TO_BIRD[hardness], "hardness": hardness})
    return out


def build_spider(to: Path, *, spider_dir: Path | None = None, dbs: Sequence[str] | None = None,
                 duckdb: bool = False, postgres: str | None = None, all_databases: bool = False,
                 progress: Callable[[str], None] | None = None) -> BuildReport:
    """Build Spider's dev databases (or ``dbs``, or all 157 with ``all_databases``) in BIRD's layout."""
    spider_dir = spider_dir or shared_data_dir() / "spider"
    src = spider_dir / "databases"
    if not src.is_dir():
        raise ConfigError(f"Spider data not found at {spider_dir} (set $SLUICE_SHARED)")
    dev = json.loads((spider_dir / "dev.json").read_text(encoding="utf-8"))
    dev_dbs = sorted({q["db_id"] for q in dev})
    if dbs:
        unknown = [d for d in dbs if not (src / d / "schema.sql").is_file()]
        if unknown:
            raise InvalidParameterValue(f"unknown Spider database(s): {', '.join(unknown)}")
        chosen = list(dict.fromkeys(dbs))
    else:
        chosen = sorted(p.name for p in src.iterdir() if (p / "schema.sql").is_file()) if all_databases else dev_dbs
    report = BuildReport()
    for db in chosen:
        if progress is not None:
            progress(db)
        sqlite_file = to / "dev_databases" / db / f"{db}.sqlite"
        try:
            build_sqlite(src / db, sqlite_file, report)
            if duckdb:
                copy_sqlite_to_duckdb(sqlite_file, sqlite_file.with_suffix(".duckdb"))
            if postgres:
                copy_sqlite_to_postgres(sqlite_file, postgres, db)
        except (sqlite3.Error, sqlglot.errors.SqlglotError) as e:
            raise BackendError(f"building {db}: {e}") from e
        except Exception as e:  # duckdb.Error / psycopg.Error: imported lazily, so matched by module
            if type(e).__module__.split(".")[0].lstrip("_") in ("duckdb", "psycopg"):
                raise BackendError(f"building {db}: {str(e).splitlines()[0]}") from e
            raise
        report.databases.append(db)
    questions = spider_questions(spider_dir, set(chosen))
    (to / "dev.json").write_text(json.dumps(questions, indent=1, ensure_ascii=False), encoding="utf-8")
    (to / "dev_gold.sql").write_text("".join(f"{q['SQL']}\t{q['db_id']}\n" for q in questions), encoding="utf-8")
    missing = spider_dir / "MISSING.txt"
    notes = missing.read_text(encoding="utf-8") if missing.is_file() else ""
    (to / "MISSING.txt").write_text(
        notes + "".join(f"no CSV for table: {m}\n" for m in report.missing_csv), encoding="utf-8")
    report.questions = len(questions)
    return report
