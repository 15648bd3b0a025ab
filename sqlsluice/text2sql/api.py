"""The ASK API: a natural-language question -> routed pipeline -> one read-only query.

>>> # doctest: +SKIP
>>> gen = generate(backend, "How many singers are there?", router="tables")
>>> gen.sql, gen.pipeline, gen.tokens_in
('SELECT count(*) FROM singer', 'basic', 412)
>>> ans = ask(backend, "How many singers are there?")
>>> ans.rows
[(6,)]

:func:`generate` links the schema, looks up values, routes, runs the pipeline and returns
the checked SQL without executing the answer (candidates may be executed read-only for
checks).  :func:`ask` also runs it read-only (:func:`~sqlsluice.text2sql.guard.run_readonly`)
and records the routing decision, tokens and pipeline in ``sluice_query_log``.  Routers
other than ``always:<pipeline>`` try the zero-token ``cache`` pipeline first.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlsluice.config import Config
from sqlsluice.databases import Backend, Catalog, ColumnInfo
from sqlsluice.errors import InsufficientPrivilege, InvalidParameterValue, SluiceError
from sqlsluice.routers.features import RouteInput
from sqlsluice.text2sql.guard import run_readonly
from sqlsluice.text2sql.pipelines import (
    PIPELINES,
    Outcome,
    Workspace,
    degenerate,
    run_basic,
    run_pipeline,
    try_run,
)
from sqlsluice.text2sql.schema import (
    Descriptions,
    link_schema,
    load_descriptions,
    lookup_values,
    sample_values,
    schema_text,
    values_text,
)

if TYPE_CHECKING:
    from sqlsluice.llm.client import LLM
    from sqlsluice.routers.base import CascadeRouter, Router
    from sqlsluice.state import StateStore


@dataclass
class Generation:
    """SQL for a question, not executed: which route and pipeline produced it, at what cost."""

    sql: str | None
    pipeline: str
    route: str
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    candidates: list[str] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    refused: str | None = None  # why a reply was refused (not one read-only query), if one was

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass
class Answer:
    """An answered question: the SQL, its rows, and how it was produced."""

    sql: str
    rows: list[tuple[Any, ...]]
    columns: list[ColumnInfo]
    route: str
    pipeline: str
    tokens: int
    seconds: float
    tokens_in: int = 0
    tokens_out: int = 0
    truncated: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def workspace(backend: Backend, question: str, *, evidence: str | None = None, config: Config | None = None,
              catalog: Catalog | None = None, descriptions: Descriptions | str | os.PathLike[str] | None = None, llm: LLM | None = None,
              store: StateStore | None = None, samples: bool = True) -> Workspace:
    """Link the schema, look up values and render the schema text for one question."""
    if not question or not question.strip():
        raise InvalidParameterValue("empty question")
    cfg = config or Config()
    if isinstance(descriptions, str | os.PathLike):
        descriptions = load_descriptions(descriptions)  # a BIRD column_descriptions/<db> folder
    elif descriptions is None:
        descriptions = _bird_descriptions_for(backend)
    cat = catalog if catalog is not None else backend.catalog()
    vals = lookup_values(backend, cat, question)
    linked = link_schema(question, cat, evidence=evidence, descriptions=descriptions, values=vals)
    samp = sample_values(backend, cat, tables=set(linked.tables)) if samples else None
    text = schema_text(cat, linked, samples=samp, descriptions=descriptions)
    return Workspace(question=question.strip(), evidence=evidence, catalog=cat, schema=text,
                     values=values_text(vals), linked=linked, dialect=backend.dialect, backend=backend, llm=llm,
                     store=store, row_limit=cfg.ask.row_limit, timeout_s=cfg.ask.statement_timeout_s)


_DESC_CACHE: dict[str, Descriptions] = {}


def _bird_descriptions_for(backend: Backend) -> Descriptions:
    """BIRD's column descriptions when the database file is named after a BIRD database
    (``.../<db_id>.duckdb`` with ``$SLUICE_SHARED/data/bird/column_descriptions/<db_id>/``)."""
    from pathlib import Path

    from sqlsluice.text2sql.schema import shared_data_dir

    if not backend.url.startswith("duckdb:"):
        return {}
    stem = Path(backend.url.split(":///", 1)[-1]).stem
    if stem not in _DESC_CACHE:
        folder = shared_data_dir() / "bird" / "column_descriptions" / stem
        _DESC_CACHE[stem] = load_descriptions(folder) if folder.is_dir() else {}
    return _DESC_CACHE[stem]


def route_input(ws: Workspace) -> RouteInput:
    lk = ws.linked
    return RouteInput(question=ws.question, evidence=ws.evidence, linked_tables=lk.n_tables,
                      linked_columns=lk.column_hits or lk.n_columns, column_hits=lk.column_hits,
                      join_edges=lk.join_edges, value_matches=len(lk.value_matches), total_tables=lk.total_tables,
                      total_columns=lk.total_columns)


def _llm(config: Config, llm: LLM | None, store: StateStore | None) -> LLM:
    if llm is not None:
        return llm
    from sqlsluice.llm import get_llm

    return get_llm(config, "text2sql", store=store)


def generate(backend: Backend, question: str, *, evidence: str | None = None, router: str | Router | None = None,
             pipeline: str | None = None, config: Config | None = None, catalog: Catalog | None = None,
             descriptions: Descriptions | str | os.PathLike[str] | None = None, llm: LLM | None = None,
             store: StateStore | None = None) -> Generation:
    """SQL for ``question`` from the routed (or named) pipeline; the answer is not executed."""
    from sqlsluice.routers.agree import AgreeRouter
    from sqlsluice.routers.base import CascadeRouter, load_router
    from sqlsluice.text2sql.querylog import store_for

    t0 = time.perf_counter()
    cfg = config or Config()
    store = store if store is not None else store_for(cfg)
    if router is not None and pipeline is not None:
        raise InvalidParameterValue("give a router or a pipeline, not both")
    if pipeline is not None and pipeline not in PIPELINES:
        raise InvalidParameterValue(f"unknown pipeline {pipeline!r}: choose one of {', '.join(PIPELINES)}")
    ws = workspace(backend, question, evidence=evidence, config=cfg, catalog=catalog, descriptions=descriptions,
                   llm=llm, store=store)
    if pipeline is not None:
        route = f"pipeline:{pipeline}"
        if pipeline != "cache":
            ws.llm = _llm(cfg, llm, store)
        out = run_pipeline(pipeline, ws)
        return _generation(out, route, t0)
    r = load_router(router if router is not None else cfg.ask.router, store=store)
    if not r.name.startswith("always:"):
        hit = run_pipeline("cache", ws)
        if hit.sql is not None:
            return _generation(hit, f"{r.name}:cache-hit", t0)
    if r.name == "always:cache":
        return _generation(run_pipeline("cache", ws), r.name, t0)
    ws.llm = _llm(cfg, llm, store)
    if isinstance(r, CascadeRouter):
        return _cascade(ws, r, t0)
    if isinstance(r, AgreeRouter):
        out, route = r.run(ws)
        return _generation(out, route, t0)
    d = r.decide(route_input(ws))
    out = run_pipeline(d.pipeline, ws)
    g = _generation(out, f"{r.name}:{d.reason}->{d.pipeline}", t0)
    return g


def _generation(out: Outcome, route: str, t0: float) -> Generation:
    return Generation(sql=out.sql, pipeline=out.pipeline, route=route, tokens_in=out.tokens_in,
                      tokens_out=out.tokens_out, seconds=time.perf_counter() - t0, candidates=list(out.candidates),
                      error=out.error, notes=list(out.notes), refused=out.refused)


def cascade_check(ws: Workspace, out: Outcome, min_confidence: float) -> str | None:
    """Why a cheap answer must escalate (None: accept it)."""
    from sqlsluice.verifiers.compare import compare_results

    if out.sql is None:
        return f"no SQL ({out.error})"
    res, err = try_run(ws, out.sql)
    if err is not None:
        return f"error: {err}"
    if res is not None:
        why = degenerate(res)
        if why:
            return why
        out.result = res
    if len(out.candidates) >= 2 and res is not None:
        other, err2 = try_run(ws, out.candidates[1])
        if other is None or not compare_results(res.rows, other.rows, semantics="bag"):
            return "two samples disagree"
    if out.confidence is not None and out.confidence < min_confidence:
        return f"low token confidence {out.confidence:.2f} < {min_confidence:.2f}"
    return None


def _cascade(ws: Workspace, r: CascadeRouter, t0: float) -> Generation:
    tokens_in = tokens_out = 0
    notes: list[str] = []
    out: Outcome | None = None
    steps = list(r.steps)
    for i, step in enumerate(steps):
        if step == "basic":
            try:
                out = run_basic(ws, samples=2, temperature=0.7)
            except SluiceError as e:
                if e.sqlstate == "55000":
                    raise
                out = Outcome("basic", error=e.message)
        else:
            out = run_pipeline(step, ws)
        tokens_in += out.tokens_in
        tokens_out += out.tokens_out
        if i == len(steps) - 1:
            break
        why = cascade_check(ws, out, r.min_confidence)
        if why is None:
            break
        notes.append(f"{step}: {why} -> escalate")
    assert out is not None
    g = _generation(out, "cascade:" + (" | ".join(notes) if notes else "accepted") + f"->{out.pipeline}", t0)
    g.tokens_in, g.tokens_out = tokens_in, tokens_out
    g.notes = notes + g.notes
    return g


def ask(backend: Backend, question: str, *, evidence: str | None = None, config: Config | None = None,
        router: str | Router | None = None, pipeline: str | None = None, llm: LLM | None = None,
        store: StateStore | None = None, catalog: Catalog | None = None,
        descriptions: Descriptions | str | os.PathLike[str] | None = None, log: bool = True) -> Answer:
    """Generate SQL for ``question`` and run it read-only; refusals raise 42501."""
    from sqlsluice.text2sql.cache import remember
    from sqlsluice.text2sql.querylog import log_query, store_for

    cfg = config or Config()
    store = store if store is not None else store_for(cfg)
    t0 = time.perf_counter()
    gen = None
    try:
        gen = generate(backend, question, evidence=evidence, router=router, pipeline=pipeline, config=cfg,
                       llm=llm, store=store, catalog=catalog, descriptions=descriptions)
        if gen.sql is None and gen.refused:
            raise InsufficientPrivilege(gen.refused)
        if gen.sql is None:
            raise InvalidParameterValue(f"no SQL for the question: {gen.error or 'the pipeline gave none'}",
                                        sqlstate="42601")
        res = run_readonly(backend, gen.sql, row_limit=cfg.ask.row_limit, timeout_s=cfg.ask.statement_timeout_s)
    except SluiceError as e:
        if log:
            log_query(kind="ask", db=backend.url, question=question, evidence=evidence,
                      sql=gen.sql if gen else None, route=gen.route if gen else None,
                      pipeline=gen.pipeline if gen else None, tokens_in=gen.tokens_in if gen else 0,
                      tokens_out=gen.tokens_out if gen else 0, seconds=time.perf_counter() - t0,
                      status="refused" if e.sqlstate == "42501" else "error", error=f"{e.sqlstate}: {e.message}",
                      detail={"notes": gen.notes if gen else []}, store=store)
        raise
    seconds = time.perf_counter() - t0
    if gen.pipeline != "cache" and degenerate(res) is None:
        ws_cat = catalog if catalog is not None else backend.catalog()
        remember(Workspace(question=question.strip(), evidence=evidence, catalog=ws_cat, schema="", values="",
                           linked=link_schema(question, ws_cat), backend=backend, store=store), gen.sql, store)
    if log:
        log_query(kind="ask", db=backend.url, question=question, evidence=evidence, sql=gen.sql, route=gen.route,
                  pipeline=gen.pipeline, tokens_in=gen.tokens_in, tokens_out=gen.tokens_out, seconds=seconds,
                  detail={"candidates": len(gen.candidates), "notes": gen.notes, "rows": len(res.rows)},
                  store=store)
    return Answer(sql=gen.sql, rows=res.rows, columns=res.columns, route=gen.route, pipeline=gen.pipeline,
                  tokens=gen.tokens, seconds=seconds, tokens_in=gen.tokens_in, tokens_out=gen.tokens_out,
                  truncated=res.truncated)
