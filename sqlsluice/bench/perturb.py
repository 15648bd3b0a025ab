"""The Spider perturbation study: does the verifier tell wrong predictions from right ones?

``sluice bench spider perturb`` takes Spider's dev gold SQL, makes predictions the way
text-to-SQL models err (:data:`KINDS`), labels each (gold, prediction) pair by executing both on
the real Spider SQLite database, and runs the verifier (``dialect="sqlite"``, bag semantics,
the database file's own schema) on the pair.  It reports:

- **wrong EQUIVALENT**: proved equivalent but different on the Spider database (must be 0);
- **refuted**: of the pairs that differ on the database, the share refuted with a
  counterexample that replays in sqlite3 (the INSERTs on the database's own DDL, and the two
  queries differ there in the same sense as the label);
- **decided**: of all pairs, the share EQUIVALENT or NOT_EQUIVALENT.

Labels: both queries run on the database; the pair is *same* when the rows are equal as bags,
or as lists when the gold SQL has a top-level ORDER BY, for some way of breaking each query's
ties (each run also with its ORDER BY extended by every output column, ascending and
descending); otherwise *different*.  A pair whose gold or prediction fails on the database is
left out (counted).  A refuted pair labelled *same* is not an error: the Spider rows do not
exercise the difference (a wrong join key that agrees on these rows).

    >>> import sqlglot
    >>> from sqlsluice.databases import Catalog
    >>> cat = Catalog.from_ddl("CREATE TABLE t (id INT PRIMARY KEY, a INT, b TEXT)", "sqlite")
    >>> perturb("SELECT b FROM t WHERE a > 3 AND b = 'x' ORDER BY a DESC", "order_direction", cat)
    "SELECT b FROM t WHERE a > 3 AND b = 'x' ORDER BY a"
    >>> perturb("SELECT b FROM t ORDER BY a DESC LIMIT 1", "limit_ties", cat)
    'SELECT b FROM t WHERE a = (SELECT MAX(a) FROM t)'
    >>> perturb("SELECT count(*) FROM t WHERE a > 3", "type_mixing", cat)
    "SELECT COUNT(*) FROM t WHERE a > '3'"
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import sqlglot
from sqlglot import exp

from sqlsluice.databases import Catalog, Table
from sqlsluice.verifiers.compare import compare_results
from sqlsluice.verifiers.differential import tie_break_variants
from sqlsluice.verifiers.sqlite_semantics import from_tables

KINDS = ("join_key", "distinct", "aggregate", "condition", "order_direction", "limit_ties", "type_mixing")
_AGG_SWAP: dict[type[exp.Expr], type[exp.Expr]] = {exp.Max: exp.Min, exp.Min: exp.Max, exp.Avg: exp.Sum,
                                                               exp.Sum: exp.Avg}


# -- perturbations ---------------------------------------------------------------------------------

def perturb(gold: str, kind: str, catalog: Catalog, rng: random.Random | None = None) -> str | None:
    """The gold SQL with one error of ``kind`` (SQLite SQL), or None when the kind does not apply."""
    rng = rng or random.Random(0)
    try:
        q = sqlglot.parse_one(gold, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return None
    if not isinstance(q, exp.Query):
        return None
    out = _PERTURB[kind](cast(exp.Expression, q.copy()), catalog, rng)
    if out is None:
        return None
    text = out.sql("sqlite")
    return text if text != q.sql("sqlite") else None


def _top(q: exp.Expression) -> exp.Select | None:
    return q if isinstance(q, exp.Select) else None


def _sources(sel: exp.Select, catalog: Catalog) -> dict[str, Table]:
    """The tables ``sel`` reads, by lower-cased alias."""
    return {alias.lower(): t for alias, t in from_tables(sel, catalog).items()}


def _join_key(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    """ON a.x = b.y -> ON a.x = b.z (another column of b's table of the same kind, ids first)."""
    for sel in q.find_all(exp.Select):
        srcs = _sources(sel, catalog)
        for join in sel.args.get("joins") or []:
            on = join.args.get("on")
            eqs = [e for e in (on.flatten() if isinstance(on, exp.And) else [on]) if isinstance(e, exp.EQ)] if on else []
            for eq in eqs:
                for col in (eq.expression, eq.this):
                    if not isinstance(col, exp.Column):
                        continue
                    table = srcs.get(col.table.lower()) if col.table else (next(iter(srcs.values())) if len(srcs) == 1
                                                                           else None)
                    own = table.column(col.name) if table is not None else None
                    if table is None or own is None:
                        continue
                    kind = _kind(own.type)
                    cands = [c.name for c in table.columns if c.name.lower() != col.name.lower() and _kind(c.type) == kind]
                    if not cands:
                        continue
                    ids = [c for c in cands if c.lower().endswith("id") or c in table.primary_key]
                    col.set("this", exp.to_identifier(rng.choice(ids or cands)))
                    return q
    return None


def _kind(t: str) -> str:
    from sqlsluice.verifiers.sqlite_semantics import affinity

    return affinity(t)


def _distinct(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    """SELECT DISTINCT -> SELECT; else COUNT(DISTINCT x) -> COUNT(x)."""
    for sel in q.find_all(exp.Select):
        if sel.args.get("distinct"):
            sel.set("distinct", None)
            return q
    for d in q.find_all(exp.Distinct):
        if isinstance(d.parent, exp.Count) and len(d.expressions) == 1:
            d.replace(d.expressions[0].copy())
            return q
    return None


def _aggregate(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    """MAX <-> MIN, AVG <-> SUM (the first such aggregate)."""
    for agg in q.find_all(exp.Max, exp.Min, exp.Avg, exp.Sum):
        if agg.expressions:  # multi-argument max(a, b): a scalar function
            continue
        agg.replace(_AGG_SWAP[type(agg)](this=agg.this.copy()))
        return q
    return None


def _condition(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    """Drop one conjunct of the top WHERE (the WHERE when it has one), else the HAVING."""
    sel = _top(q)
    if sel is None:
        return None
    where = sel.args.get("where")
    if where is not None:
        parts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        if len(parts) == 1:
            sel.set("where", None)
        else:
            parts.pop(rng.randrange(len(parts)))
            sel.set("where", exp.Where(this=exp.and_(*[p.copy() for p in parts])))
        return q
    if sel.args.get("having") is not None:
        sel.set("having", None)
        return q
    return None


def _order_direction(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    order = q.args.get("order")
    if not isinstance(order, exp.Order) or not order.expressions:
        return None
    key = order.expressions[0]
    desc = bool(key.args.get("desc"))
    key.set("desc", None if desc else True)
    key.set("nulls_first", desc)  # SQLite: NULLs first ascending, last descending
    return q


def _limit_ties(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    """``ORDER BY k DESC LIMIT 1`` -> ``WHERE k = (SELECT MAX(k) ...)`` (all the ties), or back."""
    sel = _top(q)
    if sel is None:
        return None
    order, limit = sel.args.get("order"), sel.args.get("limit")
    plain = not (sel.args.get("group") or sel.args.get("distinct") or sel.args.get("having") or sel.args.get("offset"))
    if (isinstance(order, exp.Order) and len(order.expressions) == 1 and limit is not None and plain
            and limit.expression is not None and limit.expression.sql() == "1"
            and not order.expressions[0].this.find(exp.AggFunc)):
        key = order.expressions[0]
        agg = exp.Min if not key.args.get("desc") else exp.Max
        sub = sel.copy()
        for k in ("order", "limit"):
            sub.set(k, None)
        sub.set("expressions", [agg(this=key.this.copy())])
        cond = exp.EQ(this=key.this.copy(), expression=exp.Subquery(this=sub))
        sel.set("order", None)
        sel.set("limit", None)
        where = sel.args.get("where")
        sel.set("where", exp.Where(this=exp.and_(where.this.copy(), cond) if where is not None else cond))
        return q
    where = sel.args.get("where")
    if where is None or not plain or order is not None or limit is not None:
        return None
    parts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    for i, p in enumerate(parts):
        if (isinstance(p, exp.EQ) and isinstance(p.this, exp.Column) and isinstance(p.expression, exp.Subquery)
                and isinstance(p.expression.this, exp.Select) and len(p.expression.this.selects) == 1
                and isinstance(p.expression.this.selects[0], exp.Max | exp.Min)):
            desc = isinstance(p.expression.this.selects[0], exp.Max)
            rest = parts[:i] + parts[i + 1:]
            sel.set("where", exp.Where(this=exp.and_(*[r.copy() for r in rest])) if rest else None)
            sel.set("order", exp.Order(expressions=[exp.Ordered(this=p.this.copy(), desc=desc or None, nulls_first=not desc)]))
            sel.set("limit", exp.Limit(expression=exp.Literal.number(1)))
            return q
    return None


def _type_mixing(q: exp.Expression, catalog: Catalog, rng: random.Random) -> exp.Expression | None:
    """A number compared as text (``a > 3`` -> ``a > '3'``) or a numeric string as a number."""
    for cmp in q.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE):
        lit = cmp.expression
        if isinstance(lit, exp.Literal):
            if not lit.is_string:
                lit.replace(exp.Literal.string(lit.this))
                return q
            if lit.this.strip().isdigit():
                lit.replace(exp.Literal.number(lit.this.strip()))
                return q
    return None


_PERTURB: dict[str, Callable[[exp.Expression, Catalog, random.Random], exp.Expression | None]] = {
    "join_key": _join_key, "distinct": _distinct, "aggregate": _aggregate, "condition": _condition,
    "order_direction": _order_direction, "limit_ties": _limit_ties, "type_mixing": _type_mixing}


# -- labels by execution ---------------------------------------------------------------------------

def _runs(con: sqlite3.Connection, sql: str) -> list[list[tuple[Any, ...]]]:
    """The query's rows, and its rows with its ties broken both ways (when it has an ORDER BY)."""
    rows = [tuple(r) for r in con.execute(sql).fetchall()]
    out = [rows]
    v = tie_break_variants(sql, len(rows[0]), "sqlite", need_limit=False) if rows else None
    for variant in v or ():
        try:
            out.append([tuple(r) for r in con.execute(variant).fetchall()])
        except sqlite3.Error:
            pass
    return out


def same_on(con: sqlite3.Connection, gold: str, pred: str) -> bool:
    """Whether ``pred`` returns ``gold``'s rows on the database (lists when the gold SQL sorts),
    for some way of breaking each query's ties.  Raises sqlite3.Error when either fails."""
    try:
        ordered = isinstance(sqlglot.parse_one(gold, read="sqlite").args.get("order"), exp.Order)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        ordered = False
    g, p = _runs(con, gold), _runs(con, pred)
    return any(compare_results(a, b, ordered=ordered) for a in g for b in p)


def replays(ddl: list[str], inserts: list[str], gold: str, pred: str) -> bool:
    """The counterexample, replayed in a fresh sqlite3 database with the schema's own DDL,
    separates the queries (in the sense of :func:`same_on`)."""
    con = sqlite3.connect(":memory:")
    try:
        for stmt in [*ddl, *inserts]:
            con.execute(stmt)
        return not same_on(con, gold, pred)
    except sqlite3.Error:
        return False
    finally:
        con.close()


# -- the study ---------------------------------------------------------------------------------------

@dataclass
class PerturbedPair:
    idx: int
    db_id: str
    kind: str
    gold: str
    pred: str
    label: str = ""  # same | different | error
    verdict: str = ""
    method: str = ""
    reason: str = ""
    replays: bool | None = None  # a NOT_EQUIVALENT's counterexample separates the queries in sqlite3
    seconds: float = 0.0
    counterexample: dict[str, Any] | None = None


def make_pairs(questions: list[dict[str, Any]], catalogs: Callable[[str], Catalog], *, per_kind: int, seed: int,
               kinds: tuple[str, ...] = KINDS) -> list[PerturbedPair]:
    """Up to ``per_kind`` pairs of each kind, from the questions in a seeded random order."""
    rng = random.Random(seed)
    order = list(range(len(questions)))
    rng.shuffle(order)
    out: list[PerturbedPair] = []
    for kind in kinds:
        n = 0
        for i in order:
            if n >= per_kind:
                break
            q = questions[i]
            gold = q.get("query") or q.get("SQL") or ""
            pred = perturb(gold, kind, catalogs(q["db_id"]), random.Random(f"{seed}:{i}:{kind}"))
            if pred is not None:
                out.append(PerturbedPair(idx=i, db_id=q["db_id"], kind=kind, gold=gold, pred=pred))
                n += 1
    return out


def run_study(data: Path, *, questions_file: Path | None = None, per_kind: int = 60, budget_s: float = 1.0,
              seed: int = 0, kinds: tuple[str, ...] = KINDS,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Make, label and verify the pairs over ``data`` (BIRD's layout: ``dev.json`` and
    ``dev_databases/<db>/<db>.sqlite``, as ``sluice data spider`` builds it)."""
    import json

    from sqlsluice.errors import ConfigError
    from sqlsluice.verifiers import load_schema
    from sqlsluice.verifiers.batch import verify_pair

    qpath = questions_file or data / "dev.json"
    if not qpath.is_file():
        raise ConfigError(f"no questions at {qpath}: build the databases with `sluice data spider --to {data}`")
    questions = json.loads(qpath.read_text(encoding="utf-8"))
    cats: dict[str, Catalog] = {}
    ddls: dict[str, list[str]] = {}

    def db_file(db: str) -> Path:
        return data / "dev_databases" / db / f"{db}.sqlite"

    def catalog(db: str) -> Catalog:
        if db not in cats:
            cats[db] = load_schema(db_file(db), "sqlite")
            con = sqlite3.connect(f"file:{db_file(db)}?mode=ro", uri=True)
            ddls[db] = [r[0] for r in con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")]
            con.close()
        return cats[db]

    pairs = make_pairs(questions, catalog, per_kind=per_kind, seed=seed, kinds=kinds)
    cons: dict[str, sqlite3.Connection] = {}
    start = time.monotonic()
    for n, p in enumerate(pairs):
        con = cons.get(p.db_id) or cons.setdefault(p.db_id, sqlite3.connect(f"file:{db_file(p.db_id)}?mode=ro",
                                                                           uri=True))
        con.text_factory = lambda b: b.decode(errors="replace")
        try:
            p.label = "same" if same_on(con, p.gold, p.pred) else "different"
        except sqlite3.Error as e:
            p.label, p.reason = "error", f"on the Spider database: {e}"
        if p.label != "error":
            v = verify_pair(p.pred, p.gold, catalog(p.db_id), "sqlite", semantics="bag", time_budget_s=budget_s,
                            seed=seed)
            p.verdict, p.method, p.reason, p.seconds = v.verdict, v.method, (v.reason or v.error)[:400], round(
                v.seconds, 3)
            if v.counterexample is not None:
                p.counterexample = v.counterexample.model_dump(mode="json")
                p.replays = replays(ddls[p.db_id], v.counterexample.inserts, p.gold, p.pred)
        if progress is not None:
            progress(n + 1, len(pairs))
    for con in cons.values():
        con.close()
    rep = summarize(pairs)
    rep.update({"data": str(data), "per_kind": per_kind, "budget_s": budget_s, "seed": seed,
                "wall_seconds": round(time.monotonic() - start, 1), "pairs": [asdict(p) for p in pairs]})
    return rep


def summarize(pairs: list[PerturbedPair]) -> dict[str, Any]:
    """The study's figures, overall and per kind."""

    def block(ps: list[PerturbedPair]) -> dict[str, Any]:
        lab = [p for p in ps if p.label != "error"]
        diff = [p for p in lab if p.label == "different"]
        refuted = [p for p in diff if p.verdict == "NOT_EQUIVALENT" and p.replays]
        decided = [p for p in lab if p.verdict in ("EQUIVALENT", "NOT_EQUIVALENT")]
        return {
            "pairs": len(ps), "label_errors": len(ps) - len(lab), "labelled": len(lab),
            "same": len(lab) - len(diff), "different": len(diff),
            "verdicts": {v: sum(1 for p in lab if p.verdict == v)
                         for v in ("EQUIVALENT", "NOT_EQUIVALENT", "UNKNOWN", "ERROR")},
            "wrong_equivalent": sum(1 for p in diff if p.verdict == "EQUIVALENT"),
            "refuted_replaying": len(refuted),
            "refuted_not_replaying": sum(1 for p in diff if p.verdict == "NOT_EQUIVALENT" and not p.replays),
            "refuted_share_of_different": round(100.0 * len(refuted) / len(diff), 1) if diff else None,
            "same_but_refuted": sum(1 for p in lab if p.label == "same" and p.verdict == "NOT_EQUIVALENT"),
            "same_proved": sum(1 for p in lab if p.label == "same" and p.verdict == "EQUIVALENT"),
            "decided_share": round(100.0 * len(decided) / len(lab), 1) if lab else None,
        }

    kinds = list(dict.fromkeys(p.kind for p in pairs))
    out = {"all": block(pairs), "by_kind": {k: block([p for p in pairs if p.kind == k]) for k in kinds},
           "goals": {"wrong_equivalent": 0, "refuted_share_of_different": 90.0, "decided_share": 85.0}}
    a = out["all"]
    out["goals_met"] = {"wrong_equivalent": a["wrong_equivalent"] == 0,
                        "refuted_share_of_different": (a["refuted_share_of_different"] or 0) >= 90.0,
                        "decided_share": (a["decided_share"] or 0) >= 85.0}
    return out


def format_report(rep: dict[str, Any]) -> str:
    """A Markdown table: one row per kind, then all."""
    lines = ["| kind | pairs (labelled) | different | EQ / NE / UNK / ERR | wrong EQ | refuted (replays) "
             "of different | decided |", "|---|---|---|---|---|---|---|"]
    for name, b in [*rep["by_kind"].items(), ("all", rep["all"])]:
        v = b["verdicts"]
        share = "-" if b["refuted_share_of_different"] is None else f"{b['refuted_share_of_different']:.1f}%"
        dec = "-" if b["decided_share"] is None else f"{b['decided_share']:.1f}%"
        lines.append(f"| {name} | {b['pairs']} ({b['labelled']}) | {b['different']} | {v['EQUIVALENT']} / "
                     f"{v['NOT_EQUIVALENT']} / {v['UNKNOWN']} / {v['ERROR']} | {b['wrong_equivalent']} | "
                     f"{b['refuted_replaying']} = {share} | {dec} |")
    return "\n".join(lines)
