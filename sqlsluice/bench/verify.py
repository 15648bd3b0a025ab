"""``sluice bench verify``: the verifier on public equivalence benchmarks and a mutation suite."""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from sqlsluice.databases import Catalog
from sqlsluice.errors import SluiceError
from sqlsluice.verifiers.api import verify
from sqlsluice.verifiers.schema import calcite_catalog, verieql_catalog

SPES = "equivalence/spes_calcite_232.json"
VERIEQL = "equivalence/verieql_calcite_397.jsonlines"


@dataclass
class Pair:
    id: str
    q1: str
    q2: str
    catalog: Catalog


_DOLLAR = re.compile(r'(?<!["\w])([A-Za-z_]\w*\$\w*|\$[A-Za-z_]\w*)')


def calcite_sql(sql: str) -> str:
    """Calcite's SQL in DuckDB's terms: quote ``EXPR$0`` / ``$f9`` identifiers, name VALUES columns
    ``EXPR$0, EXPR$1, ...`` as Calcite does, and make ``GROUP BY 4`` group by the constant 4
    (DuckDB reads an integer there as a column position)."""
    sql = _DOLLAR.sub(lambda m: f'"{m.group(1)}"', sql)
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return sql
    changed = False
    for v in tree.find_all(exp.Values):
        alias = v.args.get("alias")
        if alias is not None and not alias.columns and v.expressions:
            first = v.expressions[0]
            n = len(first.expressions) if isinstance(first, exp.Tuple) else 1
            alias.set("columns", [exp.to_identifier(f"EXPR${i}", quoted=True) for i in range(n)])
            changed = True
    for g in tree.find_all(exp.Group):
        for e in g.expressions:
            if isinstance(e, exp.Literal) and not e.is_string:
                e.replace(exp.Cast(this=e.copy(), to=exp.DataType.build("INT")))
                changed = True
    changed = _branch_sorts(tree) or changed
    return tree.sql("duckdb") if changed else sql


_SORT_ARGS = ("order", "limit", "offset", "fetch")


def _branch_sorts(tree: Any) -> bool:
    """Calcite prints a sorted input of a set operation as ``SELECT .. ORDER BY .. [FETCH ..] UNION
    ALL SELECT .. ORDER BY ..`` without parentheses, which no engine parses as meant (sqlglot hangs
    the last ORDER BY on the whole UNION).  Only when the FIRST branch has its own ORDER BY (never
    valid SQL otherwise): the trailing sort goes back to the last branch, and both branches get
    parentheses."""
    changed = False
    for u in list(tree.find_all(exp.Union, exp.Intersect, exp.Except)):
        left, right = u.this, u.expression
        if not (isinstance(left, exp.Select) and left.args.get("order") is not None and isinstance(right, exp.Select)):
            continue
        if any(right.args.get(k) is not None for k in _SORT_ARGS):
            continue
        for k in _SORT_ARGS:
            node = u.args.get(k)
            if node is not None:
                u.set(k, None)
                right.set(k, node)
        u.set("this", exp.Subquery(this=left.copy()))
        u.set("expression", exp.Subquery(this=right.copy()))
        changed = True
    return changed


def binds(p: Pair) -> bool:
    """Both queries of a pair run on the empty database of its schema."""
    con = duckdb.connect()
    try:
        for ddl in p.catalog.to_ddl("duckdb", foreign_keys=False):
            con.execute(ddl)
        for q in (p.q1, p.q2):
            con.execute(q).fetchall()
        return True
    except duckdb.Error:
        return False
    finally:
        con.close()


_EMPTY_VALUES = re.compile(r"^SELECT [\w.*, ]+ FROM \(VALUES\) AS \w+( ORDER BY [\w.]+( ASC| DESC)?)?$")
_VALUES_ITEM = re.compile(r"\(VALUES\) AS (\w+)")


def _typed_empty(q: str, cat: Catalog) -> str:
    """Calcite's empty relation ``(VALUES) AS t`` as a FROM item of a query that names its columns
    (``t.EMPNO``, no ``*``): an empty derived table with those columns, each typed as the schema
    types that column name (only when every table that has it agrees on the type)."""
    items = _VALUES_ITEM.findall(q)
    if not items or re.search(r"SELECT \*|\.\*", q):
        return q
    types: dict[str, set[str]] = {}
    for t in cat.tables:
        for c in t.columns:
            types.setdefault(c.name.upper(), set()).add(str(c.type).upper())
    for alias in items:
        cols = list(dict.fromkeys(m.upper() for m in re.findall(rf"\b{alias}\.(\w+)", q)))
        if any(len(types.get(c, ())) != 1 for c in cols):
            return q
        sel = ", ".join(f"CAST(NULL AS {next(iter(types[c]))}) AS {c}" for c in cols) or "NULL AS _none"
        q = q.replace(f"(VALUES) AS {alias}", f"(SELECT {sel} WHERE FALSE) AS {alias}", 1)
    return q


def _empty_values(q: str, other: str) -> str:
    """Calcite prints an empty relation as ``SELECT * FROM (VALUES) AS t``, which no engine parses:
    write it as the other query's columns with no rows."""
    if _EMPTY_VALUES.match(q.strip()):
        return f"SELECT * FROM ({other}) AS _empty WHERE FALSE"
    return q


def load_spes(data: Path) -> list[Pair]:
    cat = calcite_catalog()
    rows = json.loads((data / SPES).read_text())
    out = []
    for r in rows:
        q1, q2 = _typed_empty(calcite_sql(r["q1"]), cat), _typed_empty(calcite_sql(r["q2"]), cat)
        out.append(Pair(r["name"], _empty_values(q1, q2), _empty_values(q2, q1), cat))
    return out


def load_verieql(data: Path) -> list[Pair]:
    out = []
    cache: dict[str, Catalog] = {}
    for line in (data / VERIEQL).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        key = json.dumps([r["schema"], r["constraint"]], sort_keys=True)
        if key not in cache:
            cache[key] = verieql_catalog(r["schema"], r["constraint"])
        out.append(Pair(str(r["index"]), calcite_sql(r["pair"][0]), calcite_sql(r["pair"][1]), cache[key]))
    return out


@dataclass
class Stats:
    counts: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)
        self.counts[rec["verdict"]] += 1
        if rec["verdict"] != "errors":
            self.seconds.append(rec["seconds"])

    def summary(self) -> dict[str, Any]:
        s = sorted(self.seconds)
        return {
            "EQUIVALENT": self.counts["EQUIVALENT"], "NOT_EQUIVALENT": self.counts["NOT_EQUIVALENT"],
            "UNKNOWN": self.counts["UNKNOWN"], "errors": self.counts["errors"],
            "median_s": round(statistics.median(s), 4) if s else None,
            "p95_s": round(s[min(len(s) - 1, int(0.95 * len(s)))], 4) if s else None,
        }


def run_pairs(pairs: list[Pair], budget_s: float, progress: Callable[[str], None] | None = None) -> Stats:
    st = Stats()
    for p in pairs:
        st.add(_run_one(p.id, p.q1, p.q2, p.catalog, budget_s))
        if progress:
            progress(f"{p.id}: {st.records[-1]['verdict']} {st.records[-1].get('method', '')}")
    return st


def _run_one(pid: str, q1: str, q2: str, cat: Catalog, budget_s: float, seed: int = 0,
             proofs: bool = True) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        v = verify(q1, q2, cat, "duckdb", time_budget_s=budget_s, seed=seed, proofs=proofs)
    except SluiceError as e:
        return {"id": pid, "verdict": "errors", "error": e.message[:200], "seconds": time.monotonic() - t0}
    return {"id": pid, "verdict": v.verdict, "method": v.method, "seconds": v.seconds,
            "counterexample": v.counterexample.model_dump(mode="json") if v.counterexample else None}


def mutation_suite(pairs: list[Pair], *, sample: int, seed: int = 7) -> Iterator[tuple[str, str, str, str, Catalog]]:
    """(id, kind, q1, mutated q2, catalog) for a seeded sample of mutants of the pairs."""
    from sqlsluice.verifiers.mutations import mutants
    from sqlsluice.verifiers.sqlparse import parse_query

    rng = random.Random(seed)
    allm = []
    for p in pairs:
        if not binds(p):
            continue
        try:
            q2 = parse_query(p.q2, "duckdb")
        except SluiceError:
            continue
        for kind, sql in mutants(q2, "duckdb", rng):
            allm.append((f"{p.id}~{kind}", kind, p.q1, sql, p.catalog))
    rng.shuffle(allm)
    yield from allm[:sample]


def run_mutations(pairs: list[Pair], *, sample: int, budget_s: float, oracle_s: float,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Verify each mutant against the original; an independent, longer differential run with another
    seed (the oracle) decides whether a mutant the verifier did not refute really differs."""
    st = Stats()
    semantic = refuted = proved_wrong = unconfirmed = proved = 0
    by_kind: dict[str, Counter[str]] = {}
    missed: list[str] = []
    for mid, kind, q1, q2, cat in mutation_suite(pairs, sample=sample):
        rec = _run_one(mid, q1, q2, cat, budget_s)
        rec["kind"] = kind
        st.add(rec)
        k = by_kind.setdefault(kind, Counter())
        if rec["verdict"] == "errors":
            k["errors"] += 1
            continue
        if rec["verdict"] == "NOT_EQUIVALENT":
            semantic += 1
            refuted += 1
            k["refuted"] += 1
        else:
            o = _run_one(mid, q1, q2, cat, oracle_s, seed=1234, proofs=False)
            if o["verdict"] == "NOT_EQUIVALENT":
                semantic += 1
                k["missed"] += 1
                missed.append(mid)
                if rec["verdict"] == "EQUIVALENT":
                    proved_wrong += 1
            else:
                unconfirmed += 1
                k["no_difference_found"] += 1
                if rec["verdict"] == "EQUIVALENT":
                    proved += 1
        if progress:
            progress(f"{mid}: {rec['verdict']}")
    out = st.summary()
    out.update({
        "mutants": len(st.records), "semantic_mutants": semantic, "refuted": refuted,
        "refuted_pct": round(100.0 * refuted / semantic, 1) if semantic else None,
        "wrong_equivalent": proved_wrong, "no_difference_found": unconfirmed,
        "proved_equivalent_no_difference": proved, "missed_ids": missed[:50],
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
    })
    return out
