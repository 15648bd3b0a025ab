"""LITHE-style rewriting: ask an LLM for a faster equivalent query, several ways.

After LITHE (Dharwada et al., "Query Rewriting via LLMs", 2025):

1. An ensemble of prompts (``sqlsluice/llm/prompts/lithe_*.toml``): a basic prompt, one with
   rewrite strategies, and a *database-sensitive* prompt carrying the sizes of the tables the
   query reads, the selectivities of its filter predicates (sampled on DuckDB, EXPLAIN row
   estimates on PostgreSQL) and redundant parts found from the catalog (CTEs or subqueries
   computed twice, fact tables scanned several times, joins that only touch a key, DISTINCT
   over a key, repeated predicates).
2. A Monte-Carlo tree search over successive rewrite steps (``lithe_step``).  Each node is a
   query; expanding a node asks the LLM for one more step.  The prior of a child is the
   model's confidence in it, ``exp(mean token log-probability)``, when the server returns
   log-probabilities (a flat prior otherwise); its value is the planner's cost reduction,
   ``log(cost(original) / cost(child))``.  Selection is PUCT.  The search stops when the
   per-query token budget is spent or after ``mcts_iterations`` expansions.

Every reply is read robustly (fenced or plain SQL) and must parse; what comes back are
:class:`~sqlsluice.rewriters.candidates.Candidate` objects.  None is trusted: the caller
(:func:`sqlsluice.rewriters.api.rewrite`) verifies each one for equivalence, then compares
cost and timing, and serves a rewrite only when it passes all three.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from sqlsluice.databases import Backend, Catalog
from sqlsluice.errors import LLMError, SluiceError
from sqlsluice.llm.base import Completion, Options
from sqlsluice.llm.budget import TokenBudget
from sqlsluice.llm.client import LLM, current_tag, get_llm, usage_tag
from sqlsluice.llm.sqltext import extract_sql, extract_step, parse_query
from sqlsluice.rewriters.candidates import Candidate
from sqlsluice.state import StateStore

log = logging.getLogger(__name__)

VARIANTS: tuple[str, ...] = ("lithe_basic", "lithe_hints", "lithe_db_sensitive")
STEP_TEMPLATE = "lithe_step"


# -- database-sensitive context --------------------------------------------------------------

@dataclass
class Selectivity:
    table: str
    predicate: str
    fraction: float
    method: str  # "sample(N)" | "explain"


@dataclass
class DbContext:
    """What the database-sensitive prompt tells the LLM about this query."""

    tables: list[str]
    schema_ddl: str
    table_sizes: dict[str, int | None]
    selectivities: list[Selectivity] = field(default_factory=list)
    redundancies: list[str] = field(default_factory=list)

    def variables(self) -> dict[str, str]:
        sizes = "\n".join(f"- {t}: {n:,}" if n is not None else f"- {t}: unknown"
                          for t, n in sorted(self.table_sizes.items(), key=lambda kv: -(kv[1] or 0)))
        sels = "\n".join(f"- {s.table}: {s.predicate}  ->  {s.fraction:.2%} ({s.method})"
                         for s in self.selectivities) or "- (no single-table filter predicates)"
        reds = "\n".join(f"- {r}" for r in self.redundancies) or "- none found"
        return {"schema": self.schema_ddl, "table_sizes": sizes or "- (none)", "selectivities": sels,
                "redundancies": reds}


def _cte_names(q: exp.Expr) -> set[str]:
    return {c.alias_or_name.lower() for c in q.find_all(exp.CTE)}


def referenced_tables(q: exp.Expr) -> list[str]:
    ctes = _cte_names(q)
    seen: dict[str, None] = {}
    for t in q.find_all(exp.Table):
        if t.name and t.name.lower() not in ctes:
            seen.setdefault(t.name.lower(), None)
    return list(seen)


def _alias_map(q: exp.Expr, catalog: Catalog) -> dict[str, str]:
    ctes = _cte_names(q)
    out: dict[str, str] = {}
    for t in q.find_all(exp.Table):
        if t.name and t.name.lower() not in ctes and catalog.table(t.name) is not None:
            out[t.alias_or_name.lower()] = t.name.lower()
    return out


def _column_table(col: exp.Column, aliases: dict[str, str], tables: list[str], catalog: Catalog) -> str | None:
    if col.table:
        return aliases.get(col.table.lower())
    owners = [t for t in tables if (tb := catalog.table(t)) is not None and tb.column(col.name) is not None]
    return owners[0] if len(owners) == 1 else None


def _conjuncts(e: exp.Expression | None) -> list[exp.Expression]:
    if e is None:
        return []
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return _conjuncts(e.this) + _conjuncts(e.expression)
    return [e]


def _filter_predicates(q: exp.Expr, catalog: Catalog, tables: list[str]) -> list[tuple[str, exp.Expression]]:
    """Single-table predicates with a literal (``col op literal``, BETWEEN, IN list, LIKE, OR of those)."""
    aliases = _alias_map(q, catalog)
    out: list[tuple[str, exp.Expression]] = []
    seen: set[str] = set()
    for sel in q.find_all(exp.Select):
        where = sel.args.get("where")
        for c in _conjuncts(where.this if where is not None else None):
            if c.find(exp.Select) is not None or c.find(exp.Literal) is None:
                continue
            cols = list(c.find_all(exp.Column))
            owners = {_column_table(col, aliases, tables, catalog) for col in cols}
            if not cols or len(owners) != 1 or None in owners:
                continue
            table = owners.pop()
            assert table is not None
            bare = c.copy()
            for col in bare.find_all(exp.Column):
                col.set("table", None)
            key = f"{table}:{bare.sql()}"
            if key not in seen:
                seen.add(key)
                out.append((table, bare))
    return out


def _selectivity(backend: Backend, table: str, pred: exp.Expression, rows: int | None, *,
                 sample_rows: int, timeout: float) -> Selectivity | None:
    d = backend.dialect
    p = pred.sql(dialect=d)
    methods = ["sample", "explain"] if d == "duckdb" else ["explain", "sample"]
    for m in methods:
        try:
            if m == "sample":
                sample = (f"(SELECT * FROM {table} USING SAMPLE {sample_rows} ROWS)" if d == "duckdb"
                          else f"(SELECT * FROM {table} LIMIT {sample_rows})")
                r = backend.execute(f"SELECT COUNT(*), SUM(CASE WHEN {p} THEN 1 ELSE 0 END) FROM {sample} AS s",
                                    timeout=timeout).rows
                n, k = int(r[0][0] or 0), int(r[0][1] or 0)
                if n:
                    return Selectivity(table, p, k / n, f"sample of {n:,} rows")
            else:
                if not rows:
                    continue
                plan = backend.explain(f"SELECT * FROM {table} WHERE {p}")
                if plan.rows is not None:
                    return Selectivity(table, p, min(1.0, plan.rows / rows), "planner estimate")
        except SluiceError as e:
            log.debug("selectivity of %s on %s by %s failed: %s", p, table, m, e)
    return None


def _redundancies(q: exp.Expr, catalog: Catalog, sizes: dict[str, int | None]) -> list[str]:
    out: list[str] = []
    # CTEs referenced several times
    ctes = _cte_names(q)
    for name in sorted(ctes):
        n = sum(1 for t in q.find_all(exp.Table) if t.name.lower() == name)
        if n > 1:
            out.append(f"CTE {name} is referenced {n} times (it may be computed {n} times)")
    # identical subqueries
    counts: dict[str, int] = {}
    for s in q.find_all(exp.Subquery, exp.Exists):
        key = s.this.sql() if isinstance(s, exp.Subquery | exp.Exists) else s.sql()
        counts[key] = counts.get(key, 0) + 1
    for key, n in counts.items():
        if n > 1:
            out.append(f"the same subquery appears {n} times: {key[:160]}{'...' if len(key) > 160 else ''}")
    # base tables scanned several times
    scans: dict[str, int] = {}
    for t in q.find_all(exp.Table):
        if t.name and t.name.lower() not in ctes:
            scans[t.name.lower()] = scans.get(t.name.lower(), 0) + 1
    for name, n in sorted(scans.items()):
        size = sizes.get(name) or 0
        if n > 1:
            out.append(f"table {name} ({size:,} rows) is scanned {n} times")
    # joins that only use a table's key, and DISTINCT over a key; repeated predicates
    aliases = _alias_map(q, catalog)
    for sel in q.find_all(exp.Select):
        used: dict[str, set[str]] = {}
        for col in sel.find_all(exp.Column):
            if col.table:
                used.setdefault(col.table.lower(), set()).add(col.name.lower())
        sources = [t for t in sel.find_all(exp.Table) if t.find_ancestor(exp.Select) is sel]
        for t in sources:
            tb = catalog.table(t.name)
            if tb is None or not tb.primary_key or len(sources) < 2:
                continue
            cols = used.get(t.alias_or_name.lower(), set())
            if cols and cols <= {c.lower() for c in tb.primary_key}:
                out.append(f"{tb.name} is joined but only its key ({', '.join(tb.primary_key)}) is used:"
                           " the join may be removable if the referencing foreign key is NOT NULL")
        if sel.args.get("distinct") is not None and len(sources) == 1:
            tb = catalog.table(sources[0].name)
            names = {e.alias_or_name.lower() for e in sel.expressions}
            for key in (tb.keys if tb is not None else []):
                if key and {k.lower() for k in key} <= names:
                    out.append(f"DISTINCT over {tb.name if tb else ''} includes its key ({', '.join(key)})")
                    break
        where = sel.args.get("where")
        seen: set[str] = set()
        for c in _conjuncts(where.this if where is not None else None):
            k = c.sql()
            if k in seen:
                out.append(f"predicate repeated: {k[:120]}")
            seen.add(k)
    del aliases
    return out


def _table_rows(backend: Backend, catalog: Catalog, table: str, timeout: float) -> int | None:
    """The catalog's row count, else the planner's statistics (PostgreSQL) or a count (DuckDB)."""
    tb = catalog.table(table)
    if tb is None:
        return None
    if tb.row_count is not None:
        return tb.row_count
    try:
        if backend.dialect == "postgres":
            r = backend.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)", [tb.name],
                                timeout=timeout).rows
            if r and r[0][0] is not None and int(r[0][0]) >= 0:
                return int(r[0][0])
        r = backend.execute(f"SELECT COUNT(*) FROM {tb.name}", timeout=timeout).rows
        return int(r[0][0])
    except SluiceError as e:
        log.debug("row count of %s failed: %s", table, e)
        return None


_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")


def _ident(name: str) -> str:
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def compact_ddl(catalog: Catalog, tables: list[str]) -> str:
    """CREATE TABLE statements for ``tables`` with keys, identifiers quoted only where needed
    (prompts pay per token)."""
    out = []
    for name in tables:
        t = catalog.table(name)
        if t is None:
            continue
        parts = [f"{_ident(c.name)} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in t.columns]
        if t.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(map(_ident, t.primary_key))})")
        for u in t.unique:
            parts.append(f"UNIQUE ({', '.join(map(_ident, u))})")
        for fk in t.foreign_keys:
            if fk.ref_table.lower() in tables:
                parts.append(f"FOREIGN KEY ({', '.join(map(_ident, fk.columns))}) REFERENCES "
                             f"{_ident(fk.ref_table)} ({', '.join(map(_ident, fk.ref_columns))})")
        out.append(f"CREATE TABLE {_ident(t.name)} ({', '.join(parts)});")
    return "\n".join(out)


def build_context(sql: str, catalog: Catalog, backend: Backend, *, max_predicates: int = 12,
                  sample_rows: int = 10000, timeout: float = 5.0) -> DbContext:
    """Schema of the referenced tables, their sizes, predicate selectivities and redundant parts."""
    d = backend.dialect
    q = parse_query(sql, d)
    if q is None:
        return DbContext(tables=[], schema_ddl=compact_ddl(catalog, [t.name.lower() for t in catalog.tables]),
                         table_sizes={})
    tables = referenced_tables(q)
    sizes = {t: _table_rows(backend, catalog, t, timeout) for t in tables}
    sels: list[Selectivity] = []
    for table, pred in _filter_predicates(q, catalog, tables)[:max_predicates]:
        s = _selectivity(backend, table, pred, sizes.get(table), sample_rows=sample_rows, timeout=timeout)
        if s is not None:
            sels.append(s)
    return DbContext(tables=tables, schema_ddl=compact_ddl(catalog, tables), table_sizes=sizes,
                     selectivities=sels, redundancies=_redundancies(q, catalog, sizes))


# -- search ---------------------------------------------------------------------------------

@dataclass
class _Node:
    sql: str
    steps: list[str]
    parent: _Node | None = None
    prior: float = 1.0
    cost: float | None = None
    reward: float = 0.0
    visits: int = 0
    value: float = 0.0
    tries: int = 0
    dead: bool = False
    tokens: int = 0
    cost_usd: float = 0.0
    logprob: float | None = None
    children: list[_Node] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return len(self.steps)

    def q(self) -> float:
        return self.value / self.visits if self.visits else 0.0


@dataclass
class LitheReport:
    """What one ``propose`` call did (for logs, benchmarks and ``SHOW sluice.last``)."""

    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    malformed: int = 0
    unchanged: int = 0
    invalid: int = 0
    rejected: int = 0  # refuted by the verifier guard
    expansions: int = 0
    errors: list[str] = field(default_factory=list)
    base_cost: float | None = None
    stopped: str = ""


def _confidence(c: Completion) -> tuple[float, float | None]:
    """(prior, mean logprob): exp(mean token log-probability), or a flat 0.5 without logprobs."""
    lps = c.choices[0].logprobs if c.choices else None
    if not lps:
        return 0.5, None
    mean = sum(t.logprob for t in lps) / len(lps)
    return math.exp(mean), mean


def _norm(sql: str, dialect: str) -> str:
    q = parse_query(sql, dialect)
    return q.sql(dialect=dialect, normalize=True) if q is not None else sql


class _Search:
    def __init__(self, sql: str, catalog: Catalog, backend: Backend, llm: LLM, budget: TokenBudget,
                 ctx: DbContext, report: LitheReport, *, c_puct: float, max_children: int, max_depth: int) -> None:
        self.sql, self.catalog, self.backend, self.llm, self.budget = sql, catalog, backend, llm, budget
        self.ctx, self.report = ctx, report
        self.d = backend.dialect
        self.c_puct, self.max_children, self.max_depth = c_puct, max_children, max_depth
        self.seen: set[str] = {_norm(sql, self.d)}
        self.root = _Node(sql=sql, steps=[])
        try:
            self.root.cost = backend.explain(sql).cost
        except SluiceError as e:
            report.errors.append(f"EXPLAIN of the original failed: {e}")
        report.base_cost = self.root.cost
        self.nodes: list[_Node] = []
        self.variants: tuple[str, ...] = ()

    def _call(self, template: str, variables: dict[str, Any], options: Options) -> Completion | None:
        if self.budget.exhausted:
            self.report.stopped = "token budget spent"
            return None
        try:
            c = self.llm.complete(template, variables, options=options)
        except LLMError as e:
            self.report.errors.append(f"{template}: {e.message}")
            log.warning("LITHE: %s failed: %s", template, e.message)
            return None
        self.budget.charge(c)
        self.report.calls += 1
        self.report.tokens += c.usage.total
        self.report.cost_usd += c.cost_usd
        return c

    def _child(self, parent: _Node, step: str, comp: Completion) -> _Node | None:
        text = comp.text
        sql = extract_sql(text, self.d)
        prior, mean_lp = _confidence(comp)
        node = _Node(sql=sql or "", steps=[*parent.steps, step], parent=parent, prior=prior,
                     tokens=comp.usage.total, cost_usd=comp.cost_usd, logprob=mean_lp)
        if sql is None:
            self.report.malformed += 1
            log.info("LITHE: %s: no parseable SQL in the reply (%d chars)", step, len(text))
            node.dead, node.reward = True, -1.0
        elif _norm(sql, self.d) in self.seen:
            self.report.unchanged += 1
            node.dead, node.reward = True, 0.0
        else:
            self.seen.add(_norm(sql, self.d))
            try:
                node.cost = self.backend.explain(sql).cost
            except SluiceError as e:  # references a missing column, type error, ...
                self.report.invalid += 1
                log.info("LITHE: %s: the rewrite does not plan: %s", step, e)
                node.dead, node.reward = True, -1.0
            else:
                base = self.root.cost
                if base and node.cost is not None and node.cost > 0:
                    node.reward = max(-2.0, min(2.0, math.log(base / node.cost)))
                self.nodes.append(node)
        parent.children.append(node)
        self._backprop(node, node.reward)
        return node

    def _backprop(self, node: _Node | None, reward: float) -> None:
        while node is not None:
            node.visits += 1
            node.value += reward
            node = node.parent

    def ensemble(self, variants: tuple[str, ...], options: Options) -> None:
        self.variants = variants
        base_vars = {"query": self.sql, "dialect": self.d, **self.ctx.variables()}
        for v in variants:
            comp = self._call(v, base_vars, options)
            if comp is None:
                if self.budget.exhausted or self.report.errors:
                    break
                continue
            self._child(self.root, v, comp)
            self.root.tries += 1

    def _limit(self, node: _Node) -> int:
        # the root's first children are the prompt ensemble's answers; plus one search step of its own
        return len(self.variants) + 1 if node is self.root else self.max_children

    def _puct_of(self, parent: _Node) -> Callable[[_Node], float]:
        root_n = math.sqrt(max(1, parent.visits))

        def score(c: _Node) -> float:
            return c.q() + self.c_puct * c.prior * root_n / (1 + c.visits)

        return score

    def _select(self) -> _Node | None:
        """Descend by PUCT to the first node that may still be expanded (None: nothing left)."""
        while True:
            node = self.root
            while True:
                if node.depth < self.max_depth and node.tries < self._limit(node):
                    return node
                live = [c for c in node.children if not c.dead]
                if not live:
                    if node is self.root:
                        return None
                    node.dead = True  # fully explored; look elsewhere
                    break
                node = max(live, key=self._puct_of(node))

    def mcts(self, iterations: int, options: Options) -> None:
        for _ in range(iterations):
            if self.budget.exhausted:
                self.report.stopped = "token budget spent"
                return
            node = self._select()
            if node is None:
                self.report.stopped = "search space exhausted"
                return
            attempt = node.tries
            opts = options.model_copy(update={"temperature": 0.0 if attempt == 0 else 0.8,
                                              "seed": None if attempt == 0 else attempt})
            variables = {"dialect": self.d, "schema": self.ctx.schema_ddl,
                         "table_sizes": ", ".join(f"{t}={n}" for t, n in self.ctx.table_sizes.items()),
                         "original": self.sql, "query": node.sql, "depth": node.depth,
                         "steps": "; ".join(node.steps) or "none"}
            comp = self._call(STEP_TEMPLATE, variables, opts)
            node.tries += 1
            if comp is None:
                if self.report.errors:
                    return
                continue
            self.report.expansions += 1
            step = extract_step(comp.text) or "step"
            if step.lower() == "none":
                node.tries = self.max_children  # the model sees nothing more to do here
            self._child(node, step, comp)
        self.report.stopped = self.report.stopped or "iteration limit"


REJECTIONS_DDL = """CREATE TABLE IF NOT EXISTS sluice_llm_rejections (
    ts DOUBLE PRECISION, source TEXT, original TEXT, candidate TEXT, verdict TEXT, method TEXT,
    reason TEXT, counterexample TEXT)"""


def record_rejection(store: StateStore, *, source: str, original: str, candidate: str, verdict: str,
                     method: str, reason: str, counterexample: str | None) -> None:
    store.ensure(REJECTIONS_DDL)
    store.execute("INSERT INTO sluice_llm_rejections (ts, source, original, candidate, verdict, method, reason,"
                  " counterexample) VALUES (?,?,?,?,?,?,?,?)",
                  (time.time(), source, original, candidate, verdict, method, reason, counterexample))


def rejections(store: StateStore) -> list[dict[str, Any]]:
    """Rejected LLM rewrites, newest first (with the counterexample that refuted each)."""
    store.ensure(REJECTIONS_DDL)
    cols = ["ts", "source", "original", "candidate", "verdict", "method", "reason", "counterexample"]
    rows = store.execute(f"SELECT {', '.join(cols)} FROM sluice_llm_rejections ORDER BY ts DESC")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def guard(candidates: list[Candidate], original: str, catalog: Catalog, dialect: str, *,
          store: StateStore | None = None, time_budget_s: float = 1.0) -> list[Candidate]:
    """Drop candidates the verifier refutes; log and store each refutation with its counterexample.

    This is LITHE's first line of defence; the rewrite gate verifies again before anything is
    served (and also checks cost, timing and the live result).
    """
    from sqlsluice.verifiers import verify

    kept: list[Candidate] = []
    for c in candidates:
        try:
            v = verify(original, c.sql, catalog, dialect=dialect, time_budget_s=time_budget_s)
        except SluiceError as e:  # e.g. the rewrite names a table the catalog lacks
            log.warning("LITHE guard: rejected %s: %s", c.rules, e.message)
            if store is not None:
                record_rejection(store, source=c.source, original=original, candidate=c.sql, verdict="ERROR",
                                 method="none", reason=e.message, counterexample=None)
            continue
        if v.verdict == "NOT_EQUIVALENT":
            cex = v.counterexample.model_dump_json() if v.counterexample is not None else None
            log.warning("LITHE guard: rejected a wrong rewrite %s (%s): %s\n  rewrite: %s\n  counterexample: %s",
                        c.rules, v.method, v.reason, c.sql, cex)
            if store is not None:
                record_rejection(store, source=c.source, original=original, candidate=c.sql, verdict=v.verdict,
                                 method=v.method, reason=v.reason, counterexample=cex)
            continue
        c.notes += f"; guard: {v.verdict} ({v.method})"
        kept.append(c)
    return kept


def query_tag(sql: str) -> str:
    """A stable ledger tag for one query text (used when the caller set none)."""
    return "q:" + hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()[:16]


def propose_with_report(sql: str, catalog: Catalog, backend: Backend, *, llm: LLM | None = None,
                        budget: int | TokenBudget | None = None, variants: tuple[str, ...] = VARIANTS,
                        mcts_iterations: int = 6, max_children: int = 2, max_depth: int = 3,
                        c_puct: float = 1.0, max_candidates: int = 6, verify_guard: bool = True,
                        ) -> tuple[list[Candidate], LitheReport]:
    """Candidates from the prompt ensemble and the search, and a report of what it cost.

    ``llm`` defaults to ``get_llm(role="rewrite")``.  Calls are tagged with the caller's
    :func:`~sqlsluice.llm.usage_tag`, else with :func:`query_tag` of ``sql``.
    """
    if llm is None:
        llm = get_llm(None, "rewrite")
    if current_tag() is None:
        with usage_tag(query_tag(sql)):
            return propose_with_report(sql, catalog, backend, llm=llm, budget=budget, variants=variants,
                                       mcts_iterations=mcts_iterations, max_children=max_children,
                                       max_depth=max_depth, c_puct=c_puct, max_candidates=max_candidates,
                                       verify_guard=verify_guard)
    b = TokenBudget.of(budget)
    report = LitheReport()
    ctx = build_context(sql, catalog, backend)
    search = _Search(sql, catalog, backend, llm, b, ctx, report, c_puct=c_puct, max_children=max_children,
                     max_depth=max_depth)
    want_lp = llm.supports_logprobs
    search.ensemble(variants, Options(logprobs=want_lp))
    if mcts_iterations > 0 and not report.errors:
        search.mcts(mcts_iterations, Options(logprobs=want_lp))
    # the ensemble's answers all go to the gate; the search's only when the planner finds them cheaper
    chosen = [n for n in search.nodes if n.depth == 1 and n.steps[0] in variants]
    deeper = sorted((n for n in search.nodes if n not in chosen and n.reward > 0), key=lambda n: n.cost or 0.0)
    chosen = (sorted(chosen, key=lambda n: n.cost if n.cost is not None else math.inf) + deeper)[:max_candidates]
    out: list[Candidate] = []
    for n in chosen:
        note = (f"lithe {' -> '.join(n.steps)}; est cost {n.cost:.6g} vs {report.base_cost or 0:.6g}"
                + (f"; mean token logprob {n.logprob:.3f}" if n.logprob is not None else ""))
        out.append(Candidate(sql=n.sql, rules=[f"lithe:{s}" for s in n.steps], source="lithe",
                             tokens=n.tokens, cost_usd=n.cost_usd, notes=note))
    if verify_guard and out:
        out = guard(out, sql, catalog, backend.dialect, store=llm.store)
        report.rejected = len(chosen) - len(out)
    if out:  # calls that produced no candidate still cost tokens: book them on the first one
        rest_t = report.tokens - sum(c.tokens for c in out)
        rest_c = report.cost_usd - sum(c.cost_usd for c in out)
        out[0].tokens += max(0, rest_t)
        out[0].cost_usd += max(0.0, rest_c)
    log.info("LITHE: %d calls, %d tokens, %d candidates (%d malformed, %d unchanged, %d invalid, %d refuted)%s",
             report.calls, report.tokens, len(out), report.malformed, report.unchanged, report.invalid,
             report.rejected,
             f"; errors: {report.errors}" if report.errors else "")
    return out, report


def propose(sql: str, catalog: Catalog, backend: Backend, *, llm: LLM | None = None,
            budget: int | TokenBudget | None = None, **kwargs: Any) -> list[Candidate]:
    """LITHE candidates for ``sql`` (unverified: the caller's gate decides what may be served)."""
    return propose_with_report(sql, catalog, backend, llm=llm, budget=budget, **kwargs)[0]
