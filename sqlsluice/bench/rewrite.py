"""The TPC-DS / DSB rewrite benchmark: original vs served rewrite, per query and in total."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlglot

from sqlsluice.config import Config
from sqlsluice.databases import Backend
from sqlsluice.errors import SluiceError
from sqlsluice.rewriters.api import _same, _time, rewrite

PRODUCTIVE = 1.5


@dataclass
class QueryResult:
    query: str
    time_original: float | None  # None: timed out or failed
    time_rewrite: float | None
    speedup: float | None
    rules: list[str]
    verdict: str
    served: bool
    results: str  # "equal", "differ", "unchecked", "n/a"
    reason: str
    search_seconds: float = 0.0
    error: str = ""
    proof: str = ""  # the served rewrite's certificate: PROVED (by ...) | TESTED | ""


@dataclass
class BenchReport:
    name: str
    backend: str
    sf: float | None
    timeout_s: float
    runs: int
    queries: list[QueryResult] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> dict[str, Any]:
        prod = [q for q in self.queries if q.served and q.speedup and q.speedup >= PRODUCTIVE]
        served = [q for q in self.queries if q.served]
        gm = math.exp(statistics.fmean(math.log(q.speedup) for q in prod if q.speedup)) if prod else None
        return {
            "queries": len(self.queries),
            "rewrites_served": len(served),
            "productive": len(prod),
            "productive_queries": [q.query for q in prod],
            "geomean_speedup_productive": round(gm, 3) if gm else None,
            "served_proved": sum(1 for q in served if q.proof.startswith("PROVED")),
            "productive_proved": sum(1 for q in prod if q.proof.startswith("PROVED")),
            "slower_served": sum(1 for q in served if q.speedup is not None and q.speedup < 1.0),
            "wrong_results": sum(1 for q in self.queries if q.results == "differ"),
            "original_timeouts": sum(1 for q in self.queries if q.time_original is None and not q.error),
            "timeouts_after": sum(1 for q in self.queries if q.time_original is None and
                                  (not q.served or q.time_rewrite is None) and not q.error),
            "errors": sum(1 for q in self.queries if q.error),
            "mean_search_seconds": round(statistics.fmean(q.search_seconds for q in self.queries), 3)
            if self.queries else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "sf": self.sf, "timeout_s": self.timeout_s,
                "runs": self.runs, "seconds": round(self.seconds, 1), "totals": self.totals(),
                "queries": [asdict(q) for q in self.queries]}


def to_dialect(backend: Backend, sql: str, read: str = "duckdb") -> str:
    """The query as the backend accepts it: unchanged if it plans, else transpiled by sqlglot."""
    try:
        backend.explain(sql)
        return sql
    except SluiceError:
        pass
    try:
        return sqlglot.transpile(sql, read=read, write=backend.dialect)[0]
    except sqlglot.errors.SqlglotError:
        return sql


def run_bench(name: str, backend: Backend, queries: dict[str, str], *, timeout_s: float, runs: int = 1,
              sf: float | None = None, rewriter: str = "rules", config: Config | None = None,
              reference: Callable[[str, str], list[tuple[Any, ...]] | None] | None = None,
              on_query: Callable[[QueryResult], None] | None = None, out: Path | None = None) -> BenchReport:
    """Run each query original then rewritten; ``reference(id, sql)`` gives rows to check a rewrite of a
    query whose original timed out (e.g. the same query on a DuckDB copy of the data)."""
    rep = BenchReport(name=name, backend=backend.dialect, sf=sf, timeout_s=timeout_s, runs=runs)
    t0 = time.perf_counter()
    for qid, raw in queries.items():
        sql = to_dialect(backend, raw)
        try:
            t_orig, rows = _time(backend, sql, timeout_s)
            for _ in range(runs - 1):
                if t_orig is None:
                    break
                t2, _r = _time(backend, sql, timeout_s)
                if t2 is not None:
                    t_orig = min(t_orig, t2)
            rw = rewrite(backend, sql, config=config, rewriter=rewriter, timing=True, timeout_s=timeout_s,
                         original_time=(t_orig, rows))
        except SluiceError as e:
            qr = QueryResult(qid, None, None, None, [], "NONE", False, "n/a", "", error=e.message.splitlines()[0])
            rep.queries.append(qr)
            if on_query:
                on_query(qr)
            continue
        served = rw.rewritten
        results = "n/a"
        t_rw = rw.time_rewrite
        if served:
            if rows is not None:
                results = "equal"  # the gate compared them
                for _ in range(runs - 1):
                    t2, r2 = _time(backend, rw.sql, timeout_s)
                    if t2 is not None and t_rw is not None:
                        t_rw = min(t_rw, t2)
                    if r2 is not None and not _same(rows, r2):
                        results = "differ"
            else:
                ref = reference(qid, raw) if reference else None
                if ref is None:
                    results = "unchecked"
                else:
                    _t, r2 = _time(backend, rw.sql, timeout_s)
                    results = "equal" if r2 is not None and _same(ref, r2) else "differ"
        speed = None
        if served and t_rw:
            speed = (t_orig if t_orig is not None else timeout_s) / t_rw
        proof = ""
        if served and rw.proof:
            proof = str(rw.proof.get("status", "")) + (f" by {rw.proof['by']}" if rw.proof.get("by") else "")
        qr = QueryResult(qid, t_orig, t_rw if served else None, speed, rw.rules, rw.verdict, served, results,
                         rw.reason, search_seconds=rw.search_seconds, proof=proof)
        rep.queries.append(qr)
        if on_query:
            on_query(qr)
        if out is not None:
            rep.seconds = time.perf_counter() - t0
            out.write_text(json.dumps(rep.to_json(), indent=1, default=str))
    rep.seconds = time.perf_counter() - t0
    if out is not None:
        out.write_text(json.dumps(rep.to_json(), indent=1, default=str))
    return rep


def dsb_queries(root: Path) -> dict[str, str]:
    """DSB queries used by R-Bot: ``queryNNN/*_0.sql`` is the original (one per template)."""
    import re

    out: dict[str, str] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("query")):
        files = sorted(d.glob("*_0.sql")) or sorted(d.glob("*.sql"))
        if not files:
            continue
        parts = [p.strip() for p in re.split(r";\s*(?:\n|$)", files[0].read_text()) if p.strip()]
        parts = [p for p in parts if re.search(r"\bselect\b", p, re.I)]
        for i, p in enumerate(parts):
            out[d.name if len(parts) == 1 else f"{d.name}.{i + 1}"] = p
    return out


def duckdb_reference(path: Path) -> Callable[[str, str], list[tuple[Any, ...]] | None]:
    """Reference rows from a DuckDB copy of the same data (used when the original times out)."""
    import duckdb

    def ref(qid: str, sql: str) -> list[tuple[Any, ...]] | None:
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute(sql).fetchall()
        except duckdb.Error:
            return None
        finally:
            con.close()

    return ref


def to_markdown(report: dict[str, Any], *, only_served: bool = False) -> str:
    """A report (``BenchReport.to_json()``) as a Markdown table plus a totals line."""

    def f(t: float | None) -> str:
        return f"{t:.3f}" if t is not None else f"> {report['timeout_s']:g}"

    lines = ["| query | original s | rewrite s | speedup | rules | verdict | rows |",
             "|---|---:|---:|---:|---|---|---|"]
    for q in report["queries"]:
        if only_served and not q["served"]:
            continue
        if q.get("error"):
            lines.append(f"| {q['query']} | error | | | | | {q['error'][:60]} |")
            continue
        rw = f(q["time_rewrite"]) if q["served"] else "-"
        sp = f"{q['speedup']:.2f}x" if q["speedup"] else "-"
        rules = ", ".join(dict.fromkeys(q["rules"])) if q["served"] else ""
        lines.append(f"| {q['query']} | {f(q['time_original'])} | {rw} | {sp} | {rules} | "
                     f"{q['verdict'] if q['served'] else ''} | {q['results'] if q['served'] else ''} |")
    t = report["totals"]
    lines.append("")
    lines.append(f"Totals: {t['queries']} queries, {t['rewrites_served']} rewrites served, **{t['productive']} "
                 f"productive** (>= 1.5x), geometric-mean speedup over them **{t['geomean_speedup_productive']}x**, "
                 f"slower rewrites served **{t['slower_served']}**, wrong results **{t['wrong_results']}**, "
                 f"originals over the timeout {t['original_timeouts']} -> {t['timeouts_after']} after rewriting, "
                 f"errors {t['errors']}, mean search {t['mean_search_seconds']} s, wall {report['seconds']:.0f} s.")
    return "\n".join(lines)
