"""``rewrite(backend, sql)``: search, verify, cost and time; return what would be served.

Every candidate, from the rule search or an LLM stage, goes through the same gate:
1. a certificate (:func:`certify`): a whole-query proof, or for a rule candidate a chain of
   rule applications each proved on this query; a refutation or a verifier error rejects.
   By default (policy ``proved``) only PROVED candidates pass; ``tested`` also admits
   unproved, unrefuted ones, checked on the live database; 2. the original's output columns:
   same number and types, names restored by aliasing; 3. the planner's estimate; 4. (with
   ``timing``) timed runs inside rolled-back READ ONLY transactions, capped at the original's
   time, with an exact result comparison (a tolerance for floats only).  Statements that
   call volatile functions are never rewritten (``safety.py``).  The original is served when
   nothing qualifies.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from sqlsluice.config import Config
from sqlsluice.databases import Backend, Catalog
from sqlsluice.errors import ConfigError, QueryCanceled, SluiceError, SyntaxErrorSQL
from sqlsluice.rewriters.candidates import Candidate
from sqlsluice.rewriters.rules import BY_NAME

log = logging.getLogger(__name__)


@dataclass
class Rewrite:
    original: str
    sql: str  # what would be served: the original when nothing qualifies
    rules: list[str] = field(default_factory=list)
    verdict: str = "NONE"  # EQUIVALENT | UNKNOWN | NOT_EQUIVALENT | NONE (nothing to verify)
    method: str = "none"
    est_cost_before: float | None = None
    est_cost_after: float | None = None
    speedup: float | None = None  # measured original/rewrite time, None without timing
    tokens: int = 0
    cost_usd: float = 0.0
    candidates_tried: int = 0
    reason: str = ""
    source: str = "rules"
    time_original: float | None = None
    time_rewrite: float | None = None
    search_seconds: float = 0.0
    # the certificate: status PROVED (by "whole query" or "rule composition", with the steps)
    # or TESTED (served only under policy "tested")
    proof: dict[str, Any] = field(default_factory=dict)

    @property
    def rewritten(self) -> bool:
        return self.sql != self.original

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}


# Runs shorter than this are repeated (best of two, both warm) before comparing; a rewrite
# must also save at least _MIN_SAVING_S in absolute terms (millisecond timings are noise).
_REPEAT_BELOW_S = 5.0
_MIN_SAVING_S = 0.005

_CATALOGS: dict[tuple[str, str], Catalog] = {}


def catalog_for(backend: Backend) -> Catalog:
    """The backend's catalog, cached per stats version.  Only the keys the database declares
    (and so enforces) are in it: a key assumed from a table's name is not a proof."""
    try:
        ver = backend.stats_version()
    except SluiceError:
        ver = ""
    key = (backend.url, ver)
    if key not in _CATALOGS:
        _CATALOGS[key] = backend.catalog(row_counts=False)
    return _CATALOGS[key]


def is_rewritable(sql: str, dialect: str) -> bool:
    """Only a single read-only query (SELECT / WITH ... SELECT / set operation) is rewritten."""
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except sqlglot.errors.SqlglotError:
        return False
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        return False
    t = trees[0]
    return not any(isinstance(n, exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Create | exp.Into)
                   for n in t.walk())


def derive_steps(original: str, rules: list[str], catalog: Catalog | None, dialect: str,
                 target: str) -> list[tuple[str, str, str]] | None:
    """The rule applications that turn ``original`` into ``target``: ``[(rule, before, after)]``
    (the first step, ``qualify``, is the parse-and-qualify every rule starts from).  None when
    replaying the rules does not reach ``target``."""
    from sqlsluice.rewriters.rules import prepare, run_rule

    try:
        root = prepare(original, catalog, dialect)
    except SluiceError:
        return None
    start = root.sql(dialect=dialect)
    for mode in ("once", "fixed"):
        steps: list[tuple[str, str, str]] = []
        if start != original:
            steps.append(("qualify", original, start))
        tree, before = root, start
        ok = True
        for name in rules:
            rule = BY_NAME.get(name)
            if rule is None:
                ok = False
                break
            passes = 1 if mode == "once" else 12
            for _ in range(passes):
                new = run_rule(rule, tree, catalog, dialect)
                if new is tree:
                    break
                after = new.sql(dialect=dialect)
                steps.append((name, before, after))
                tree, before = new, after
        if ok and before == target:
            return steps
    return None


@dataclass
class Certificate:
    """Why a candidate may (or may not) be served: a whole-query proof, a chain of proved rule
    applications, or the evidence of testing."""

    status: str  # PROVED | TESTED (unproved, not refuted: served only under policy "tested") | REFUTED | ERROR
    by: str = ""  # "whole query" | "rule composition" | ""
    method: str = ""
    verdict: str = "UNKNOWN"
    steps: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def certify(original: str, c: Candidate, catalog: Catalog, dialect: str, budget_s: float) -> Certificate:
    """Check one candidate: a whole-query proof first; for a rule candidate whose whole-query
    check is undecided, each rule application on its own (a rewrite made only of proved
    applications is proved by composition).  A refutation anywhere rejects it; a verifier that
    raises is an ERROR, never a pass."""
    from sqlsluice.verifiers import verify

    def check(a: str, b: str, budget: float) -> tuple[str, str, str]:
        try:
            v = verify(a, b, catalog, dialect=dialect, time_budget_s=budget)
        except SluiceError as e:
            return "ERROR", "none", e.message
        except Exception as e:  # a verifier bug must never let a candidate through
            log.exception("verifier raised on a candidate")
            return "ERROR", "none", f"{type(e).__name__}: {e}"
        return v.verdict, v.method, v.reason

    verdict, method, why = check(original, c.sql, budget_s)
    if verdict == "NOT_EQUIVALENT":
        return Certificate("REFUTED", verdict=verdict, method=method, reason=why)
    if verdict == "EQUIVALENT":
        return Certificate("PROVED", "whole query", method, verdict,
                           [{"rule": r, "checked": "whole query"} for r in c.rules], why)
    if verdict == "ERROR":
        return Certificate("ERROR", verdict=verdict, reason=why)
    if c.source in ("rules", "llm-r2") and c.rules and all(r in BY_NAME and BY_NAME[r].sound for r in c.rules):
        chain = derive_steps(original, c.rules, catalog, dialect, c.sql)
        if chain is not None:
            steps, failed = _prove_chain(chain, check, budget_s)
            if failed is None:
                return Certificate("PROVED", "rule composition", "steps", "EQUIVALENT", steps,
                                   f"{len(steps)} rule applications, each proved")
            rule, sv, sm, sw = failed
            if sv == "NOT_EQUIVALENT":
                return Certificate("REFUTED", verdict=sv, method=sm, steps=steps,
                                   reason=f"rule {rule} refuted on this query: {sw}")
            if sv == "ERROR":
                return Certificate("ERROR", verdict=sv, steps=steps, reason=f"rule {rule}: {sw}")
    if c.source not in ("rules", "llm-r2"):
        # a free-form (LLM) rewrite: where our rules reach a query the verifier proves equal to
        # it, the rule chain (each application proved) and that last proof are the certificate
        via = _proof_through_rules(original, c, catalog, dialect, budget_s, check)
        if via is not None:
            return via
    return Certificate("TESTED", verdict=verdict, method=method, reason=why)


def _prove_chain(chain: list[tuple[str, str, str]], check: Any, budget_s: float
                 ) -> tuple[list[dict[str, Any]], tuple[str, str, str, str] | None]:
    """Prove each ``(rule, before, after)`` step in turn: the steps checked, and the first one not
    proved as ``(rule, verdict, method, reason)`` (None when every step is proved)."""
    steps: list[dict[str, Any]] = []
    for rule, before, after in chain:
        sv, sm, sw = check(before, after, max(0.5, budget_s / 2))
        steps.append({"rule": rule, "verdict": sv, "method": sm, "before": before, "after": after})
        if sv != "EQUIVALENT":
            return steps, (rule, sv, sm, sw)
    return steps, None


def _proof_through_rules(original: str, c: Candidate, catalog: Catalog, dialect: str, budget_s: float,
                         check: Any) -> Certificate | None:
    from sqlsluice.rewriters.rules import SEARCH, apply_rules

    try:
        ap = apply_rules(original, [r.name for r in SEARCH], catalog, dialect)
    except SluiceError:
        return None
    if not ap.applied or ap.sql == original:
        return None
    last_v, last_m, _ = check(ap.sql, c.sql, budget_s)
    if last_v != "EQUIVALENT":
        return None
    chain = derive_steps(original, ap.applied, catalog, dialect, ap.sql)
    if chain is None:
        return None
    steps, failed = _prove_chain(chain, check, budget_s)
    if failed is not None:
        return None
    steps.append({"rule": "candidate", "verdict": last_v, "method": last_m,
                  "checked": "the rules' result proved equal to the candidate"})
    return Certificate("PROVED", "rule composition", "steps", "EQUIVALENT", steps,
                       "our rules reach a query proved equal to the candidate")


def admissible(cert: Certificate, policy: str) -> bool:
    """The gate: PROVED is served; an unproved, unrefuted candidate only under ``tested``."""
    if cert.status == "PROVED":
        return True
    return policy == "tested" and cert.status == "TESTED"


def admit(original: str, candidate: str, rules: list[str] | None, catalog: Catalog | Any,
          dialect: str = "duckdb", *, policy: str = "proved", budget_s: float = 2.0) -> bool:
    """Would the gate serve ``candidate`` in place of ``original``?  (rules: the rule sequence
    that produced it, or None / [] for a free-form rewrite such as an LLM's).  ``catalog``: a
    Catalog, DDL text or a database URL, as :func:`sqlsluice.verifiers.verify` takes."""
    from sqlsluice.verifiers.schema import load_schema

    cat = catalog if isinstance(catalog, Catalog) else load_schema(catalog, dialect)
    src = "rules" if rules else "llm"
    return admissible(certify(original, Candidate(candidate, list(rules or []), src), cat, dialect, budget_s), policy)


def _time(backend: Backend, sql: str, timeout: float) -> tuple[float | None, list[tuple[Any, ...]] | None]:
    """Time one run of a query inside a rolled-back READ ONLY transaction (see safety.py)."""
    t0 = time.perf_counter()
    try:
        r = backend.execute_readonly(sql, timeout=timeout)
    except QueryCanceled:
        return None, None
    except SluiceError as e:
        log.info("timing run failed: %s", e.message)
        return None, None
    return time.perf_counter() - t0, r.rows


def _exact_key(v: Any) -> Any:
    """A value as the database returned it: exact for integers, NUMERIC (with its scale), text,
    dates and booleans; floats rounded (the only type where a tolerance applies)."""
    import math

    if isinstance(v, float):
        if math.isnan(v):
            return ("float", "nan")
        return ("float", float(f"{v:.9g}"))
    if isinstance(v, list | tuple):
        return ("seq", tuple(_exact_key(x) for x in v))
    if isinstance(v, dict):
        return ("map", tuple(sorted((str(k), _exact_key(x)) for k, x in v.items())))
    if isinstance(v, memoryview | bytearray):
        return ("bytes", bytes(v))
    return (type(v).__name__, str(v) if not isinstance(v, bytes) else v)


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """The same bag of rows, value for value (see :func:`_exact_key`)."""
    from collections import Counter

    return len(a) == len(b) and Counter(tuple(_exact_key(v) for v in r) for r in a) == \
        Counter(tuple(_exact_key(v) for v in r) for r in b)


def realias(sql: str, names: list[str], dialect: str) -> str | None:
    """``sql`` with its output columns named ``names`` (the first branch of a set operation
    names the columns), or None when that cannot be done by aliasing (``*``, a count mismatch)."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    head: exp.Expr = tree
    while isinstance(head, exp.SetOperation):
        head = head.this
    if not isinstance(head, exp.Select) or any(p.is_star for p in head.expressions) or \
            len(head.expressions) != len(names):
        return None
    renamed: dict[str, tuple[exp.Expr, str]] = {}  # old output name -> (its expression, new name)
    for p, name in zip(list(head.expressions), names, strict=True):
        inner = p.this if isinstance(p, exp.Alias) else p
        if p.alias_or_name and p.alias_or_name != name:
            renamed[p.alias_or_name] = (inner, name)
        p.replace(exp.alias_(inner.copy(), exp.to_identifier(name, quoted=True)))
    # what referred to an old output name (ORDER BY _col_0) now refers to the same column:
    # in a SELECT by its expression, above a set operation by its new name
    clauses: list[tuple[exp.Expr, str, bool]] = [(head, k, True) for k in ("order", "group", "having")]
    if tree is not head:
        clauses.append((tree, "order", False))
    for owner, clause, by_expr in clauses:
        node = owner.args.get(clause)
        if node is None:
            continue
        for col in list(node.find_all(exp.Column)):
            if col.table or col.name not in renamed or col.find_ancestor(exp.Subquery) is not None:
                continue
            expr, new = renamed[col.name]
            col.replace(expr.copy() if by_expr else exp.column(exp.to_identifier(new, quoted=True)))
    return tree.sql(dialect=dialect)


def match_columns(backend: Backend, original: str, candidate: str) -> str | None:
    """``candidate`` with the original's output column names (re-aliased where a rule renamed
    one: ``?column?``, ``avg``), or None when the columns' number or types differ."""
    try:
        want = backend.output_columns(original)
        got = backend.output_columns(candidate)
    except SluiceError as e:
        log.info("cannot describe a candidate: %s", e.message)
        return None
    if len(want) != len(got) or any(w.type != g.type for w, g in zip(want, got, strict=True)):
        return None
    if [w.name for w in want] == [g.name for g in got]:
        return candidate
    out = realias(candidate, [w.name for w in want], backend.dialect)
    if out is None:
        return None
    try:
        again = backend.output_columns(out)
    except SluiceError:
        return None
    if [(c.name, c.type) for c in again] != [(c.name, c.type) for c in want]:
        return None
    return out


def rewrite(backend: Backend, sql: str, *, config: Config | None = None, rewriter: str = "rules",
            timing: bool = True, timeout_s: float = 60.0, token_budget: int | None = None,
            max_timed: int = 3, verify_budget_s: float | None = None, llm: Any = None,
            original_time: tuple[float | None, list[tuple[Any, ...]] | None] | None = None) -> Rewrite:
    """Find a faster equivalent form of ``sql`` on ``backend``; see the module docstring."""
    cfg = config or Config()
    dialect = backend.dialect
    out = Rewrite(original=sql, sql=sql)
    try:
        sqlglot.parse(sql, read=dialect)
    except sqlglot.errors.SqlglotError as e:
        raise SyntaxErrorSQL(f"cannot parse SQL: {str(e).strip().splitlines()[0]}") from e
    if not is_rewritable(sql, dialect):
        out.reason = "not a single read-only query"
        return out
    from sqlsluice.rewriters.safety import side_effect_reason

    unsafe = side_effect_reason(backend, sql)
    if unsafe:
        out.reason = f"not rewritten: {unsafe}"
        return out
    t0 = time.perf_counter()
    catalog = catalog_for(backend)
    cands: list[tuple[Candidate, float | None]] = []
    from sqlsluice.rewriters.search import search

    est_before: float | None = None
    if rewriter in ("rules", "all"):
        res = search(sql, catalog, backend, dialect=dialect)
        est_before = res.original_cost
        seen_costs: set[float] = set()
        for st in res.states:
            if st.cost in seen_costs:
                continue
            seen_costs.add(st.cost)
            cands.append((Candidate(st.sql, st.rules, "rules"), st.cost))
    if rewriter in ("llm-r2", "lithe", "all"):
        import importlib

        from sqlsluice.llm import get_llm, usage_meter
        from sqlsluice.llm.budget import TokenBudget

        # one budget for the whole query, shared by the stages (``all`` must not spend it twice)
        budget = TokenBudget.of(token_budget if token_budget is not None else cfg.rewrite.token_budget)
        if llm is None:
            llm = get_llm(cfg, "rewrite")  # the config given to rewrite(), not whatever sluice.toml says
        # meter every call, so tokens spent on replies that yield no candidate are reported too
        with usage_meter() as meter:
            for name in (("llm_r2", "lithe") if rewriter == "all" else (rewriter.replace("-", "_"),)):
                try:
                    mod = importlib.import_module(f"sqlsluice.rewriters.{name}")
                except ModuleNotFoundError as e:
                    raise ConfigError(f"rewriter {name!r} is not available in this build") from e
                for c in mod.propose(sql, catalog, backend, llm=llm, budget=budget):
                    try:
                        cost: float | None = backend.explain(c.sql).cost
                    except SluiceError:
                        continue
                    cands.append((c, cost))
        out.tokens += meter.tokens
        out.cost_usd += meter.cost_usd
    if est_before is None:
        try:
            est_before = backend.explain(sql).cost
        except SluiceError as e:
            out.reason = f"original does not plan: {e.message}"
            return out
    out.est_cost_before = est_before
    out.search_seconds = time.perf_counter() - t0
    # cheapest estimate first; the "all rules" state may be estimated dearer but is still timed
    cands.sort(key=lambda x: (x[1] if x[1] is not None else float("inf")))
    admitted: list[tuple[Candidate, float | None, Certificate]] = []
    refuted = other_columns = 0
    for c, cost in cands:
        out.candidates_tried += 1
        cert = certify(sql, c, catalog, dialect, verify_budget_s or cfg.rewrite.verify_budget_s)
        if cert.status == "REFUTED":
            refuted += 1
            log.warning("candidate %s refuted: %s", c.rules or c.source, cert.reason)
        if not admissible(cert, cfg.rewrite.policy):
            continue
        # a rewrite never renames a column: the original's names (and exactly its types)
        named = match_columns(backend, sql, c.sql)
        if named is None:
            other_columns += 1
            continue
        if named != c.sql:
            cert.steps.append({"rule": "output names", "checked": "re-aliased to the original's column names"})
            c.sql = named
        admitted.append((c, cost, cert))
        if len(admitted) >= max_timed:
            break
    if not admitted:
        out.reason = "no candidate" if not cands else (
            f"no candidate proved ({refuted} refuted, {other_columns} with other output columns)"
            if cfg.rewrite.policy == "proved" else "no candidate passed verification")
        return out
    if not timing:
        c, cost, cert = admitted[0]
        if cost is not None and cost < est_before:
            _fill(out, c, cost, cert)
            out.reason = "cheaper planner estimate (not timed)"
        else:
            out.reason = "no candidate with a cheaper estimate"
        return out
    t_orig, rows_orig = original_time if original_time is not None else _time(backend, sql, timeout_s)
    if original_time is None and t_orig is not None and t_orig < _REPEAT_BELOW_S:
        t2, _ = _time(backend, sql, timeout_s)  # the first run warms caches: time it warm, too
        t_orig = min(t_orig, t2) if t2 is not None else t_orig
    out.time_original = t_orig
    best: tuple[float, Candidate, float | None, Certificate] | None = None
    for c, cost, cert in admitted:
        cap = timeout_s if t_orig is None else min(timeout_s, t_orig / cfg.rewrite.min_speedup)
        t_c, rows_c = _time(backend, c.sql, max(cap, 0.05))
        if t_c is None:
            continue
        if rows_orig is not None and not _same(rows_orig, rows_c or []):
            log.warning("candidate %s returned different rows; rejected", c.rules)
            continue
        if rows_orig is None and cert.status != "PROVED":
            continue  # an unproved rewrite needs a reference result to be checked against
        if t_c < _REPEAT_BELOW_S:
            t2, _ = _time(backend, c.sql, max(cap, 0.05))
            t_c = min(t_c, t2) if t2 is not None else t_c
        if best is None or t_c < best[0]:
            best = (t_c, c, cost, cert)
    if best is None:
        out.reason = "no candidate was faster with equal results"
        return out
    t_c, c, cost, cert = best
    if t_orig is not None and t_orig < _REPEAT_BELOW_S:
        # confirm: alternate original and winner twice more, keep each side's best (warm) time
        for _ in range(2):
            t1, _r = _time(backend, sql, timeout_s)
            t2, _r = _time(backend, c.sql, timeout_s)
            t_orig = min(t_orig, t1) if t1 is not None else t_orig
            t_c = min(t_c, t2) if t2 is not None else t_c
        out.time_original = t_orig
    speed = (t_orig if t_orig is not None else timeout_s) / max(t_c, 1e-6)
    if speed < cfg.rewrite.min_speedup:
        out.reason = f"best candidate only {speed:.2f}x"
        return out
    if t_orig is not None and t_orig - t_c < _MIN_SAVING_S:
        out.reason = f"saves under {_MIN_SAVING_S * 1000:.0f} ms: within timing noise"
        return out
    _fill(out, c, cost, cert)
    out.time_rewrite, out.speedup = t_c, speed
    out.reason = "faster and equivalent" if t_orig is not None else "original timed out; rewrite finished"
    return out


def _fill(out: Rewrite, c: Candidate, cost: float | None, cert: Certificate) -> None:
    out.sql, out.rules, out.source = c.sql, list(c.rules), c.source
    out.est_cost_after, out.verdict, out.method = cost, cert.verdict, cert.method
    out.proof = cert.to_json()
