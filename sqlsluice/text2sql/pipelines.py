"""Text-to-SQL pipelines of rising cost, each reporting the tokens it spent.

========== ========================================================================= ==========
name       what it does                                                              EllieSQL
========== ========================================================================= ==========
cache      a question already answered for this database (normalised text, or a      -
           hashed n-gram vector above a strict cosine threshold): zero tokens
basic      one call: linked schema + value hits + evidence -> SQL                    BASIC
decompose  sub-questions, then SQL from the plan, then up to two repairs fed by      INTERMEDIATE
           execution errors or an empty result
ensemble   candidates from varied prompts and sampling, grouped by their result      ADVANCED
           sets on the database; the largest group wins, ties go to an LLM judge
========== ========================================================================= ==========

Every pipeline returns an :class:`Outcome` with the SQL (checked to parse and to be one
read-only query, see :mod:`sqlsluice.text2sql.guard`), the candidates it considered and
its token usage.  Candidates are executed read-only for checks (repair, grouping); the
final answer is not executed here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlsluice.databases import Backend, Catalog
from sqlsluice.errors import InvalidParameterValue, SluiceError
from sqlsluice.llm.base import Completion, Options
from sqlsluice.text2sql.guard import GuardedResult, check_readonly, extract_sql, run_readonly
from sqlsluice.text2sql.schema import LinkedSchema

if TYPE_CHECKING:
    from sqlsluice.llm.client import LLM
    from sqlsluice.state import StateStore

PIPELINES = ("cache", "basic", "decompose", "ensemble")
"""Pipelines in order of cost."""
TIERS = {"basic": "BASIC", "decompose": "INTERMEDIATE", "ensemble": "ADVANCED"}
"""Our pipeline for each of EllieSQL's tiers (the labels' ``pipeline_type``)."""
LLM_PIPELINES = ("basic", "decompose", "ensemble")
DIALECT_NAMES = {"duckdb": "DuckDB", "postgres": "PostgreSQL", "sqlite": "SQLite"}


@dataclass
class Workspace:
    """Everything a pipeline needs for one question."""

    question: str
    evidence: str | None
    catalog: Catalog
    schema: str  # compact schema text of the linked tables
    values: str  # value-lookup hits, one per line
    linked: LinkedSchema
    dialect: str = "duckdb"
    backend: Backend | None = None
    llm: LLM | None = None
    store: StateStore | None = None
    row_limit: int = 1000
    timeout_s: float = 30.0

    def variables(self, **extra: Any) -> dict[str, Any]:
        v = {"schema": self.schema, "values": self.values or "(none)", "evidence": self.evidence or "(none)",
             "question": self.question, "dialect": DIALECT_NAMES.get(self.dialect, self.dialect)}
        v.update(extra)
        return v


@dataclass
class Outcome:
    """What one pipeline produced."""

    pipeline: str
    sql: str | None = None
    candidates: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    calls: int = 0
    error: str | None = None
    confidence: float | None = None  # mean token probability of the answer, when logprobs came back
    result: GuardedResult | None = None  # the answer's rows when the pipeline ran it for a check
    refused: str | None = None  # the last refusal (a reply that was not one read-only query)
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def reject(self, e: SluiceError) -> None:
        """Record a rejected reply; refusals (42501) are kept so the caller can report them."""
        self.notes.append(f"rejected: {e.message}")
        if e.sqlstate == "42501":
            self.refused = e.message

    def add(self, comp: Completion) -> None:
        self.tokens_in += comp.usage.input_tokens
        self.tokens_out += comp.usage.output_tokens
        self.calls += 1


def _need_llm(ws: Workspace) -> LLM:
    if ws.llm is None:
        from sqlsluice.config import Config
        from sqlsluice.llm import get_llm

        ws.llm = get_llm(Config(), "text2sql")
    return ws.llm


def _call(ws: Workspace, out: Outcome, template: str, options: Options | None = None, **extra: Any) -> Completion:
    comp = _need_llm(ws).complete(template, ws.variables(**extra), options=options)
    out.add(comp)
    return comp


def confidence(comp: Completion, index: int = 0) -> float | None:
    """Geometric-mean token probability of a choice (None without logprobs)."""
    ch = comp.choices[index] if index < len(comp.choices) else None
    if ch is None or not ch.logprobs:
        return None
    lps = [t.logprob for t in ch.logprobs]
    return math.exp(sum(lps) / len(lps)) if lps else None


def parse_candidate(text: str, dialect: str) -> str:
    """Extract and check one SQL query from a reply (raises with the reason)."""
    sql = extract_sql(text)
    check_readonly(sql, dialect)
    return sql


def try_run(ws: Workspace, sql: str) -> tuple[GuardedResult | None, str | None]:
    """Run a candidate read-only; ``(result, None)`` or ``(None, error message)``."""
    if ws.backend is None:
        return None, None
    try:
        return run_readonly(ws.backend, sql, row_limit=ws.row_limit, timeout_s=ws.timeout_s), None
    except SluiceError as e:
        return None, f"{e.message} (SQLSTATE {e.sqlstate})"


def degenerate(res: GuardedResult) -> str | None:
    """Why a result looks wrong: no rows, or every value NULL.  None when it looks fine."""
    if not res.rows:
        return "the query returned no rows"
    if all(v is None for r in res.rows for v in r):
        return "the query returned only NULL values"
    return None


# -- pipelines ---------------------------------------------------------------------------------

def run_basic(ws: Workspace, *, samples: int = 1, temperature: float = 0.0) -> Outcome:
    """One call; with ``samples=2`` (cascade) two choices of one call at ``temperature``."""
    out = Outcome("basic")
    opts = Options(temperature=temperature, n=samples, logprobs=bool(ws.llm and ws.llm.supports_logprobs))
    comp = _call(ws, out, "text2sql_basic", opts)
    out.confidence = confidence(comp)
    for ch in comp.choices:
        try:
            out.candidates.append(parse_candidate(ch.text, ws.dialect))
        except SluiceError as e:
            out.reject(e)
    if out.candidates:
        out.sql = out.candidates[0]
    else:
        out.error = out.notes[-1] if out.notes else "no SQL in the reply"
    return out


_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*])\s+(.+)$", re.M)


def run_decompose(ws: Workspace, *, max_repairs: int = 2) -> Outcome:
    """Plan sub-questions, write SQL from the plan, repair from execution feedback."""
    out = Outcome("decompose")
    plan = _call(ws, out, "text2sql_decompose").text
    steps = _NUMBERED.findall(plan)
    plan_text = "\n".join(f"{i + 1}. {s.strip()}" for i, s in enumerate(steps[:6])) or plan.strip()
    comp = _call(ws, out, "text2sql_plan_sql", plan=plan_text)
    text = comp.text
    sql: str | None = None
    feedback: str | None = None
    for attempt in range(max_repairs + 1):
        try:
            sql = parse_candidate(text, ws.dialect)
            out.candidates.append(sql)
        except SluiceError as e:
            sql, feedback = None, e.message
            out.reject(e)
        if sql is not None:
            res, err = try_run(ws, sql)
            if res is not None:
                feedback = degenerate(res)
                if feedback is None:
                    out.result = res
            else:
                feedback = err
            if feedback is None:
                break
        if attempt == max_repairs:
            break
        out.notes.append(f"repair {attempt + 1}: {feedback}")
        text = _call(ws, out, "text2sql_repair", sql=sql or text.strip(), feedback=feedback or "").text
    if out.candidates:
        # the last parsed candidate is the best we have, even if its result looked degenerate
        out.sql = out.candidates[-1]
    else:
        out.error = feedback or "no SQL in the replies"
    return out


def run_ensemble(ws: Workspace, *, samples: int = 3) -> Outcome:
    """Candidates from three prompts (basic, plan-based, step-by-step with ``samples`` sampled
    choices), grouped by their result sets; the largest group wins, an LLM judge breaks ties."""
    from sqlsluice.verifiers.compare import compare_results

    out = Outcome("ensemble")
    texts: list[str] = []
    texts.append(_call(ws, out, "text2sql_basic").text)
    texts.extend(ch.text for ch in _call(ws, out, "text2sql_cot", Options(n=samples, temperature=0.7)).choices)
    dec = run_decompose(ws, max_repairs=1)
    out.tokens_in += dec.tokens_in
    out.tokens_out += dec.tokens_out
    out.calls += dec.calls
    cands: list[str] = []
    for t in texts:
        try:
            cands.append(parse_candidate(t, ws.dialect))
        except SluiceError as e:
            out.reject(e)
    if dec.sql:
        cands.append(dec.sql)
    out.candidates = cands
    if not cands:
        out.error = "no candidate parsed: " + "; ".join(out.notes[-3:])
        return out
    if ws.backend is None:
        out.sql = max(set(cands), key=cands.count)
        return out
    groups: list[tuple[GuardedResult, list[str]]] = []
    failed: list[str] = []
    for sql in cands:
        res, err = try_run(ws, sql)
        if res is None:
            failed.append(sql)
            out.notes.append(f"candidate failed: {err}")
            continue
        for g_res, members in groups:
            if compare_results(g_res.rows, res.rows, semantics="bag") and len(g_res.columns) == len(res.columns):
                members.append(sql)
                break
        else:
            groups.append((res, [sql]))
    if not groups:
        out.sql = cands[0]
        out.error = None
        out.notes.append("every candidate failed to run")
        return out
    # prefer groups with a non-degenerate result, then size
    groups.sort(key=lambda g: (degenerate(g[0]) is None, len(g[1])), reverse=True)
    best = groups[0]
    ties = [g for g in groups if len(g[1]) == len(best[1]) and (degenerate(g[0]) is None) ==
            (degenerate(best[0]) is None)]
    if len(ties) > 1:
        listing = []
        for i, (res, members) in enumerate(ties, 1):
            preview = ", ".join(str(r) for r in res.rows[:3])
            listing.append(f"{i}. ```sql\n{members[0]}\n```\nrows: {preview or '(none)'}")
        pick = _call(ws, out, "text2sql_select", candidates="\n\n".join(listing)).text
        m = re.search(r"\d+", pick)
        k = int(m.group()) - 1 if m else 0
        best = ties[k] if 0 <= k < len(ties) else ties[0]
        out.notes.append(f"judge picked {k + 1} of {len(ties)} tied groups")
    out.sql = best[1][0]
    out.result = best[0]
    out.notes.append(f"{len(groups)} result groups; winner has {len(best[1])} of {len(cands)} candidates")
    return out


PIPELINE_FUNCS: dict[str, Callable[[Workspace], Outcome]] = {
    "basic": run_basic, "decompose": run_decompose, "ensemble": run_ensemble,
}


def run_pipeline(name: str, ws: Workspace) -> Outcome:
    """Run the pipeline called ``name`` (``cache`` included)."""
    if name == "cache":
        from sqlsluice.text2sql.cache import lookup

        hit = lookup(ws)
        if hit is None:
            return Outcome("cache", error="cache miss: no answered question like this one for this database")
        return Outcome("cache", sql=hit, candidates=[hit])
    fn = PIPELINE_FUNCS.get(name)
    if fn is None:
        raise InvalidParameterValue(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}")
    try:
        return fn(ws)
    except SluiceError as e:
        if e.sqlstate in ("55000",):  # LLM not configured: the caller must know
            raise
        return Outcome(name, error=f"{e.message}")
