"""The statements PostgreSQL tools send (pgjdbc, SQLAlchemy, asyncpg, node-postgres captured on
PostgreSQL 15; Metabase, Grafana, DBeaver taken from their sources: tests/fixtures/<tool>/),
replayed on PostgreSQL 15 and on ``sluice serve`` over DuckDB holding the same TPC-DS SF 0.01
data (bench/compat_corpus.py): the same column names, type OIDs, command tag and row count.
Each tool's share is bounded below and the records that still differ are pinned (each with its
reason, docs/compat.md), so a regression and a fix both show. Then the clients themselves over
DuckDB next to PostgreSQL: metadata calls and typed parameters give the same answers."""

from __future__ import annotations

import asyncio
import decimal
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import compat_corpus as cc  # noqa: E402

# (tool, step, record number in the tool's corpus) -> why it still differs (docs/compat.md)
KNOWN: dict[tuple[str, str, int], str] = {
    ("pgjdbc", "getColumns", 6): "every schema: PostgreSQL's own catalogs have 2000 more columns than DuckDB's",
}
# the least share of same-shaped answers per tool (the figure docs/compat.md reports)
MIN_SHARE = {"pgjdbc": 0.98, "sqlalchemy": 1.0, "asyncpg": 1.0, "node-postgres": 1.0, "metabase": 1.0,
             "grafana": 1.0, "dbeaver": 1.0}


@pytest.fixture(scope="module")
def servers(pg_cluster, tmp_path_factory) -> Any:
    """(PostgreSQL port, sluice port, database name): the same data in both."""
    db = f"compat_{uuid.uuid4().hex[:6]}"
    _, duck = cc.prepare(pg_cluster, tmp_path_factory.mktemp("compat"), db)
    gen = cc.served(duck)
    port = next(gen)
    try:
        yield pg_cluster.port, port, db
    finally:
        gen.close()


@pytest.fixture(scope="module")
def outcomes(servers) -> dict[str, list[cc.Outcome]]:
    pg_port, sl_port, db = servers
    return cc.replay(pg_port, sl_port, cc.TOOLS, db)


def test_corpora_cite_their_source() -> None:
    for tool in cc.TOOLS:
        recs = cc.load(tool)
        assert len(recs) >= 5, tool
        for r in recs:
            if tool in cc.CAPTURED:
                assert r.source == "captured from the tool on PostgreSQL 15", (tool, r.step)
            else:  # a repository at a commit, and a file in it
                assert re.match(rf"{tool}/{tool}@[0-9a-f]{{40}} \S+", r.source), (tool, r.source)


@pytest.mark.parametrize("tool", cc.TOOLS)
def test_tool_corpus_same_shape_as_postgresql(outcomes, tool: str) -> None:
    res = outcomes[tool]
    differ = {(tool, o.record.step, i): o.diffs for i, o in enumerate(res) if o.diffs}
    known = {k for k in KNOWN if k[0] == tool}
    assert set(differ) - known == set(), {k: v for k, v in differ.items() if k not in known}  # regressions
    assert known - set(differ) == set()  # fixed: unpin them (and update docs/compat.md)
    share = sum(1 for o in res if not o.diffs) / len(res)
    assert share >= MIN_SHARE[tool], share


def test_overall_share(outcomes) -> None:
    same = sum(1 for res in outcomes.values() for o in res if not o.diffs)
    total = sum(len(res) for res in outcomes.values())
    assert total >= 200 and same / total >= 0.95, (same, total)  # issue #14's goal


# --- the clients themselves: metadata and typed parameters, sluice over DuckDB next to PostgreSQL ----
def test_pgjdbc_metadata_and_prepared_statements(servers, tmp_path) -> None:
    jar = Path("/usr/share/java/postgresql.jar")
    if shutil.which("java") is None or shutil.which("javac") is None or not jar.exists():
        pytest.skip("pgjdbc: java or Debian's libpostgresql-jdbc-java not installed (make system-deps)")
    pg_port, sl_port, db = servers
    subprocess.run(["javac", "-cp", str(jar), "-d", str(tmp_path), str(cc.TOOLS_DIR / "MetaCapture.java")],
                   check=True)
    out = {}
    for name, port in (("postgresql", pg_port), ("sluice", sl_port)):
        r = subprocess.run(["java", "-cp", f"{jar}:{tmp_path}", "MetaCapture", f"jdbc:postgresql://127.0.0.1:{port}/{db}"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        out[name] = r.stdout.splitlines()
    # getColumns over every schema differs by PostgreSQL's own catalogs' columns (KNOWN); getTypeInfo
    # lists as many types (PostgreSQL's, the enum, a row type per catalog, table and view, their arrays)
    differ = [(a, b) for a, b in zip(out["postgresql"], out["sluice"], strict=True) if a != b]
    assert [a.split()[0] for a, _ in differ] == ["getColumns"], differ
    assert "getColumns 6" in out["sluice"] and "getPrimaryKeys 1" in out["sluice"]  # cc_emp: 6 columns
    assert out["sluice"].count("getImportedKeys 1") == 1 and "getIndexInfo 2" in out["sluice"]
    assert out["sluice"][-3:] == ["prepared 5", "prepared 1", "rsmd 3"]


def test_node_postgres_typed_parameters_and_results(servers) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node-postgres: node/npm not installed")
    try:
        d = cc.node_pg_dir()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"node-postgres: `npm install pg` failed (no registry?): {e}")
    pg_port, sl_port, db = servers
    script = d / f"compat_{uuid.uuid4().hex[:6]}.js"
    shutil.copy(cc.TOOLS_DIR / "node_capture.js", script)
    try:
        out = {}
        for name, port in (("postgresql", pg_port), ("sluice", sl_port)):
            r = subprocess.run(["node", str(script), str(port), db], cwd=d, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0 and "error" not in r.stdout, r.stdout + r.stderr
            out[name] = [json.loads(line) for line in r.stdout.splitlines()]
    finally:
        script.unlink()
    assert len(out["sluice"]) == len(out["postgresql"]) == 14
    for pg, sl in zip(out["postgresql"], out["sluice"], strict=True):
        pg["fields"] = [[n, 25 if o == 1043 else o] for n, o in pg["fields"]]  # one string type in DuckDB
        assert sl == pg
    assert out["sluice"][2]["rows"] == [{"n": 42}]  # $1::int + 1 with 41: an int4, not text


def test_asyncpg_typed_parameters_and_introspection(servers) -> None:
    import asyncpg

    pg_port, sl_port, db = servers

    async def run(port: int) -> list[Any]:
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=db)
        try:
            st = await c.prepare("SELECT e_name FROM cc_emp WHERE e_id = $1 AND e_salary > $2")
            return [
                await c.fetchval("SELECT $1::int + 1", 41),
                [p.name for p in st.get_parameters()],
                [tuple(r) for r in await st.fetch(1, decimal.Decimal("10"))],
                await c.fetchval("SELECT $1::int[]", [1, 2]),
                sorted(tuple(r) for r in await c.fetch("SELECT e_id, e_tags FROM cc_emp WHERE e_id = ANY($1::int[])",
                                                       [1, 2])),
                await c.fetchval("SELECT count(*) FROM customer WHERE c_birth_year > $1", 1950),
            ]
        finally:
            await c.close()

    pg, sl = asyncio.run(run(pg_port)), asyncio.run(run(sl_port))
    assert sl == pg
    assert sl[0] == 42 and sl[1] == ["int4", "numeric"] and sl[3] == [1, 2]


def test_psycopg_typed_parameters_and_catalog_types(servers) -> None:
    pg_port, sl_port, db = servers
    q = [("SELECT e_name, e_salary FROM cc_emp WHERE e_id = %s", [1]),
         ("SELECT %s::int + 1 AS n", [41]),
         ("SELECT c.relname, c.relkind, a.attname, a.attnum, a.atttypid FROM pg_catalog.pg_class c "
          "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid WHERE c.relname = %s AND a.attnum > 0 "
          "AND a.attname <> 'e_mood' "  # an enum's oid is each server's own (test_enum_columns_...)

          "ORDER BY a.attnum", ["cc_emp"]),
         ("SELECT typname FROM pg_catalog.pg_type WHERE oid = %s", [1043])]

    def run(port: int) -> list[Any]:
        out = []
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db, autocommit=True) as c:
            for sql, params in q:
                cur = c.execute(sql, params, prepare=True)  # type: ignore[arg-type]
                assert cur.description is not None
                out.append(([(d.name, d.type_code) for d in cur.description], cur.fetchall()))
        return out

    pg, sl = run(pg_port), run(sl_port)
    assert sl[1:] == pg[1:]  # names, PostgreSQL's catalog types (name, "char", int2, oid), values
    assert [d for d, _ in sl[:1]] == [[("e_name", 25), ("e_salary", 1700)]] and sl[0][1] == pg[0][1]


def test_sqlalchemy_inspect_same_as_postgresql(servers) -> None:
    import sqlalchemy as sa

    pg_port, sl_port, db = servers

    def run(port: int) -> dict[str, Any]:
        eng = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/{db}", poolclass=sa.NullPool)
        try:
            i = sa.inspect(eng)
            cols = [(c["name"], str(c["type"]), c["nullable"], getattr(c["type"], "enums", None))
                    for c in i.get_columns("cc_emp")]
            return {"tables": sorted(i.get_table_names()), "views": i.get_view_names(), "columns": cols,
                    "pk": i.get_pk_constraint("cc_emp"), "fks": i.get_foreign_keys("cc_emp"),
                    "indexes": [(x["name"], x["column_names"], x["unique"]) for x in i.get_indexes("cc_emp")],
                    "unique": [(u["name"], u["column_names"]) for u in i.get_unique_constraints("cc_dept")]}
        finally:
            eng.dispose()

    pg, sl = run(pg_port), run(sl_port)
    # DuckDB keeps no VARCHAR length (an enum is reflected as the enum, with its labels)
    pg["columns"] = [(n, t if e else re.sub(r"VARCHAR\(\d+\)", "VARCHAR", t), z, e) for n, t, z, e in pg["columns"]]
    assert ("e_mood", "VARCHAR(5)", True, ["sad", "ok", "happy"]) in sl["columns"]
    assert sl == pg


def test_enum_columns_carry_the_enum_type(servers) -> None:
    """PostgreSQL sends an enum column with its enum type's OID (pg_type, pg_attribute agree);
    asyncpg introspects that OID and decodes the labels; each server numbers the type itself."""
    import asyncpg

    pg_port, sl_port, db = servers

    def catalog(port: int) -> tuple[Any, ...]:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db, autocommit=True) as c:
            oid, nsp = c.execute("SELECT t.oid, n.nspname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n "
                                 "ON n.oid = t.typnamespace WHERE t.typname = 'cc_mood'").fetchone()  # type: ignore[misc]
            cur = c.execute("SELECT e_mood FROM cc_emp ORDER BY e_id")
            assert cur.description is not None
            att = c.execute("SELECT a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM "
                            "pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid "
                            "WHERE r.relname = 'cc_emp' AND a.attname = 'e_mood'").fetchone()
            labels = c.execute("SELECT e.enumlabel FROM pg_catalog.pg_enum e WHERE e.enumtypid = %s "
                               "ORDER BY e.enumsortorder", [oid]).fetchall()
            return (nsp, cur.description[0].type_code == oid, att == (oid, "cc_mood"), labels, cur.fetchall())

    async def values(port: int) -> list[Any]:
        c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=db)
        try:
            return [[tuple(r) for r in await c.fetch("SELECT e_id, e_mood FROM cc_emp ORDER BY e_id")],
                    await c.fetchval("SELECT e_name FROM cc_emp WHERE e_mood = $1", "happy")]
        finally:
            await c.close()

    pg, sl = catalog(pg_port), catalog(sl_port)
    assert sl == pg == ("public", True, True, [("sad",), ("ok",), ("happy",)], [("happy",), ("ok",), (None,)])
    assert asyncio.run(values(sl_port)) == asyncio.run(values(pg_port)) == [[(1, "happy"), (2, "ok"), (3, None)],
                                                                              "ann"]
