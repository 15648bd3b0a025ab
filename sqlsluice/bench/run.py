"""Run sqlsluice's text-to-SQL over BIRD-layout questions and keep what it produced.

``run_questions`` asks :func:`sqlsluice.text2sql.api.generate` for each question (with its
evidence), against a DuckDB copy of the question's database, and appends one JSON line per
question to ``OUT/generations.jsonl`` (SQL, pipeline, route, tokens in/out, cost, seconds).
A second run with the same ``OUT`` skips questions already there, so an interrupted run
resumes.  ``OUT/predictions.json`` is rewritten in BIRD's format (SQL in SQLite's dialect,
transpiled with sqlglot) for :mod:`sqlsluice.bench.evaluate`.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import sqlglot

from sqlsluice.bench.evaluate import BIRD_SEP, Question, sqlite_path
from sqlsluice.errors import InvalidParameterValue, LLMNotConfigured, SluiceError

GENERATIONS = "generations.jsonl"
PREDICTIONS = "predictions.json"


def duckdb_for(data_dir: Path, db_id: str, cache_dir: Path) -> Path:
    """``<db>.duckdb`` beside the SQLite file, else a copy made once under ``cache_dir``."""
    src = sqlite_path(data_dir, db_id)
    beside = src.with_suffix(".duckdb")
    if beside.is_file():
        return beside
    target = cache_dir / f"{db_id}.duckdb"
    if not target.is_file():
        from sqlsluice.bench.spider import copy_sqlite_to_duckdb

        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp.duckdb")
        copy_sqlite_to_duckdb(src, tmp)
        tmp.replace(target)
    return target


def to_sqlite(sql: str, dialect: str) -> str:
    """The generated SQL in SQLite's dialect (unchanged when sqlglot cannot read it)."""
    if dialect in ("sqlite", ""):
        return sql
    try:
        return ";\n".join(sqlglot.transpile(sql, read=dialect, write="sqlite"))
    except sqlglot.errors.SqlglotError:
        return sql


def load_done(out_dir: Path) -> dict[int, dict[str, Any]]:
    """Records already in ``generations.jsonl`` (the last one per question wins; errors are retried)."""
    path = out_dir / GENERATIONS
    done: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interruption
        if isinstance(rec, dict) and "idx" in rec and not rec.get("error"):
            done[int(rec["idx"])] = rec
    return done


def write_predictions(out_dir: Path, questions: Sequence[Question], done: dict[int, dict[str, Any]]) -> Path:
    preds = {str(q.idx): f"{done[q.idx]['sql']}{BIRD_SEP}{q.db_id}" for q in questions if q.idx in done}
    path = out_dir / PREDICTIONS
    path.write_text(json.dumps(preds, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def _generate_fn() -> Callable[..., Any]:
    try:
        from sqlsluice.text2sql.api import generate
    except ImportError as e:
        raise LLMNotConfigured("sqlsluice.text2sql.api.generate is not available in this build") from e
    return generate


def run_questions(questions: Sequence[Question], data_dir: Path, out_dir: Path, *,
                  router: str | None = None, pipeline: str | None = None, concurrency: int = 4,
                  config: Any = None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Generate SQL for every question not yet in ``out_dir``; returns the run's summary."""
    if (router is None) == (pipeline is None):
        raise InvalidParameterValue("give exactly one of --router NAME or --pipeline NAME")
    generate = _generate_fn()
    accepts = inspect.signature(generate).parameters
    from sqlsluice.databases import connect

    store = None
    state = getattr(getattr(config, "server", None), "state", None)
    if state and "store" in accepts:  # the config's state store (cache, ledger), not the default one
        from sqlsluice.state import StateStore

        store = StateStore(state if state.startswith(("postgresql://", "postgres://", "sqlite:///"))
                           else f"sqlite:///{state}")
    out_dir.mkdir(parents=True, exist_ok=True)
    done = load_done(out_dir)
    todo = [q for q in questions if q.idx not in done]
    backends: dict[str, Any] = {}
    lock = threading.Lock()
    log = open(out_dir / GENERATIONS, "a", encoding="utf-8")

    def backend_for(db_id: str) -> Any:
        with lock:
            if db_id not in backends:
                path = duckdb_for(data_dir, db_id, out_dir / "duckdb")
                backends[db_id] = connect(f"duckdb:///{path.resolve()}")
            return backends[db_id]

    def one(q: Question) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"evidence": q.evidence or None}
        if router is not None:
            kwargs["router"] = router
        else:
            kwargs["pipeline"] = pipeline
        if config is not None and "config" in accepts:
            kwargs["config"] = config
        if store is not None:
            kwargs["store"] = store
        backend = backend_for(q.db_id)
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"idx": q.idx, "question_id": q.question_id, "db_id": q.db_id,
                               "difficulty": q.difficulty, "router": router, "requested_pipeline": pipeline}
        try:
            gen = generate(backend, q.question, **kwargs)
        except LLMNotConfigured:
            raise
        except SluiceError as e:
            rec.update(sql="", error=f"{type(e).__name__}: {e.message}", seconds=time.perf_counter() - t0,
                       tokens_in=0, tokens_out=0, cost_usd=0.0)
            return rec
        raw_sql = str(getattr(gen, "sql", "") or "")
        tin = int(getattr(gen, "tokens_in", 0) or 0)
        tout = int(getattr(gen, "tokens_out", 0) or 0)
        rec.update(
            sql=to_sqlite(raw_sql, getattr(backend, "dialect", "duckdb")).replace("\n", " ") if raw_sql else "",
            generated_sql=raw_sql,
            pipeline=getattr(gen, "pipeline", pipeline),
            route=_jsonable(getattr(gen, "route", None)),
            tokens_in=tin,
            tokens_out=tout,
            cost_usd=_cost(config, tin, tout),
            seconds=float(getattr(gen, "seconds", time.perf_counter() - t0) or 0.0),
            no_sql=getattr(gen, "error", None) if not raw_sql else None,  # an answer, scored wrong
            error=None,
        )
        if not raw_sql and tin == 0 and tout == 0:
            # No SQL and no tokens: the LLM never answered (outage, timeout).  Recorded as an
            # error, so that a resumed run asks again.
            rec["error"] = f"no reply: {getattr(gen, 'error', None) or 'no SQL'}"
        return rec

    n = 0
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futs = [pool.submit(one, q) for q in todo]
            try:
                for fut in as_completed(futs):
                    rec = fut.result()
                    with lock:
                        log.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                        log.flush()
                    if not rec.get("error"):
                        done[rec["idx"]] = rec
                    n += 1
                    if progress is not None:
                        progress(n, len(todo))
            except BaseException:
                for f in futs:
                    f.cancel()
                raise
    finally:
        log.close()
        for b in backends.values():
            close = getattr(b, "close", None)
            if close is not None:
                close()
    write_predictions(out_dir, questions, done)
    return summarize(questions, out_dir, router=router, pipeline=pipeline)


def _cost(config: Any, tokens_in: int, tokens_out: int) -> float:
    """USD from the price table for the text-to-SQL model (0 when the model's price is unknown)."""
    from sqlsluice.llm.ledger import cost_usd

    llm = getattr(config, "llm", None)
    models = getattr(llm, "models", {}) or {}
    model = models.get("text2sql") or models.get("default") or ""
    return cost_usd(model, tokens_in, tokens_out, getattr(llm, "prices", None)) if model else 0.0


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if hasattr(v, "model_dump"):
        return v.model_dump()
    if hasattr(v, "__dict__"):
        return {k: _jsonable(x) for k, x in vars(v).items() if not k.startswith("_")}
    return str(v)


def summarize(questions: Sequence[Question], out_dir: Path, *, router: str | None,
              pipeline: str | None) -> dict[str, Any]:
    """Tokens, cost and routes over the questions' latest successful generations."""
    done = load_done(out_dir)
    recs = [done[q.idx] for q in questions if q.idx in done]
    errors = 0
    path = out_dir / GENERATIONS
    if path.is_file():
        last: dict[int, dict[str, Any]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                last[int(rec["idx"])] = rec
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        errors = sum(1 for q in questions if q.idx in last and last[q.idx].get("error") and q.idx not in done)
    pipelines = Counter(str(r.get("pipeline")) for r in recs)
    routes = Counter(_route_name(r.get("route")) for r in recs)
    tin = sum(int(r.get("tokens_in", 0)) for r in recs)
    tout = sum(int(r.get("tokens_out", 0)) for r in recs)
    return {
        "system": f"router:{router}" if router else f"pipeline:{pipeline}",
        "router": router, "pipeline": pipeline,
        "questions": len(questions), "generated": len(recs), "generation_errors": errors,
        "tokens_in": tin, "tokens_out": tout, "tokens": tin + tout,
        "tokens_per_question": round((tin + tout) / len(recs), 1) if recs else 0.0,
        "cost_usd": round(sum(float(r.get("cost_usd", 0.0)) for r in recs), 6),
        "seconds": round(sum(float(r.get("seconds", 0.0)) for r in recs), 3),
        "pipelines": dict(pipelines), "routes": dict(routes),
        "escalations": sum(str(r.get("route", "")).count("-> escalate") for r in recs),
        "no_sql": sum(1 for r in recs if r.get("no_sql")),
    }


def _route_name(route: Any) -> str:
    """``cascade: basic: ... -> escalate->decompose`` -> ``cascade->decompose``."""
    if isinstance(route, dict):
        return json.dumps(route, sort_keys=True)
    text = str(route)
    if "->" in text:
        return f"{text.split(':', 1)[0]}->{text.rsplit('->', 1)[1].strip()}"
    return text
