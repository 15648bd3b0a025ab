"""``sluice bench rewrite-pool``: how many of a recorded pool of (original, rewrite) pairs the
verifier proves, e.g. LLM-R2's DSB positive pool (rewrites Calcite made, each measured faster).

Each pair is checked over the TPC-DS schema (DSB's) with its keys, as the serving gate would
check a rewrite: EQUIVALENT (proved), NOT_EQUIVALENT (a counterexample), UNKNOWN, ERROR.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from sqlsluice.cliapp import bench_app, handle_errors
from sqlsluice.config import shared_data_dir


def tpcds_catalog() -> Any:
    """The TPC-DS schema with its keys (generated at sf 0 by DuckDB's extension, in memory)."""
    import duckdb

    from sqlsluice.bench.tpcds_data import load_extension
    from sqlsluice.databases.duckdb_backend import DuckDBBackend
    from sqlsluice.rewriters.tpcds_load import with_tpcds_keys

    be = DuckDBBackend(":memory:")
    con: duckdb.DuckDBPyConnection = be._db
    load_extension(con, "tpcds")
    con.execute("CALL dsdgen(sf=0)")
    cat = with_tpcds_keys(be.catalog(row_counts=False))
    be.close()
    return cat


# DSB (and the TPC-DS specification) spell one column of ``store`` as ``s_tax_precentage``;
# DuckDB's tpcds extension corrects it.  LLM-R2's DSB pool uses DSB's spelling.
DSB_SPELLINGS = {("store", "s_tax_percentage"): "s_tax_precentage"}


def dsb_catalog() -> Any:
    """:func:`tpcds_catalog` with DSB's column names (the schema LLM-R2's DSB pool was written for)."""
    cat = tpcds_catalog()
    for t in cat.tables:
        for c in t.columns:
            new = DSB_SPELLINGS.get((t.name.lower(), c.name.lower()))
            if new is not None:
                c.name = new
    return cat


_WORKER_CAT: Any = None


def _check(args: tuple[int, dict[str, str], float, str]) -> dict[str, Any]:
    """One pair's record (in a worker process when ``--jobs`` > 1: the catalog is built once per worker)."""
    from sqlsluice.verifiers.batch import verify_pair

    global _WORKER_CAT
    i, r, budget_s, dialect = args
    if _WORKER_CAT is None:
        _WORKER_CAT = dsb_catalog()
    v = verify_pair(r["original_sql"].strip().rstrip(";"), r["rewritten_sql"].strip().rstrip(";"), _WORKER_CAT,
                    dialect, time_budget_s=budget_s)
    return {"index": r.get("") or str(i), "verdict": v.verdict, "method": v.method,
            "seconds": round(v.seconds, 3), "rules": r.get("activated_rules", ""),
            "reason": (v.error or v.reason)[:300]}


def prove_pool(pool: Path, *, budget_s: float = 4.0, limit: int | None = None, dialect: str = "postgres",
               progress: Any = None, only: list[int] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Verify every pair (or the first ``limit``, or the rows numbered ``only``), ``jobs`` at a time."""
    csv.field_size_limit(1 << 30)
    with open(pool, newline="") as f:
        rows = list(csv.DictReader(f))
    picked = list(enumerate(rows))
    if only:
        want = set(only)
        picked = [(i, r) for i, r in picked if i in want]
    if limit:
        picked = picked[:limit]
    t0 = time.monotonic()
    tasks = [(i, r, budget_s, dialect) for i, r in picked]
    records: list[dict[str, Any]] = []
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=20) as workers:
            for rec in workers.imap(_check, tasks):
                records.append(rec)
                if progress is not None:
                    progress(len(records), len(tasks))
    else:
        for t in tasks:
            records.append(_check(t))
            if progress is not None:
                progress(len(records), len(tasks))
    counts = Counter(rec["verdict"] for rec in records)
    n = len(records)
    reasons = Counter(_short_reason(rec) for rec in records if rec["verdict"] in ("UNKNOWN", "ERROR"))
    return {"pool": str(pool), "pairs": n, "budget_s": budget_s, "dialect": dialect, "jobs": jobs,
            "verdicts": dict(counts), "proved_share": round(counts["EQUIVALENT"] / n, 4) if n else 0.0,
            "seconds": round(time.monotonic() - t0, 1),
            "undecided_reasons": dict(reasons.most_common(15)), "records": records}


def _short_reason(rec: dict[str, Any]) -> str:
    """What stopped the proof tiers on an undecided pair (the SMT tier's reason, or the error)."""
    if rec["verdict"] == "ERROR":
        return "error: " + rec["reason"][:60]
    why = rec["reason"]
    if "smt: " in why:
        why = why.split("smt: ", 1)[1].split("; differential", 1)[0]
    return why[:100]


@bench_app.command("rewrite-pool")
@handle_errors
def rewrite_pool_cmd(
    pool: Path = typer.Option(None, "--pool", help="CSV with original_sql, rewritten_sql "
                                                   "(default: ../shared/data/rewrite/llmr2/pos_pool_dsb.csv)."),
    budget: float = typer.Option(4.0, "--budget", help="Verifier time budget per pair, seconds."),
    limit: int = typer.Option(0, "--limit", help="Only the first N pairs (0: all)."),
    json_out: Path = typer.Option(None, "--json", help="Write the summary and one record per pair here."),
    only: str = typer.Option("", "--only", help="Only these rows (0-based, comma-separated, ranges a-b), "
                                                "e.g. --only 18-25,197."),
    jobs: int = typer.Option(1, "--jobs", help="Pairs verified at once (processes); budgets are wall-clock."),
) -> None:
    """Prove a pool of recorded rewrites (LLM-R2's DSB positive pool by default) over TPC-DS's schema."""
    from rich.progress import Progress

    pool = pool or shared_data_dir() / "rewrite" / "llmr2" / "pos_pool_dsb.csv"
    if not pool.is_file():
        raise FileNotFoundError(2, "No such file", str(pool))
    with Progress(transient=True) as bar:
        task = bar.add_task("proving", total=None)
        out = prove_pool(pool, budget_s=budget, limit=limit or None, only=_parse_only(only), jobs=max(1, jobs),
                         progress=lambda d, t: bar.update(task, completed=d, total=t))
    if json_out:
        json_out.write_text(json.dumps(out, indent=1))
    v = out["verdicts"]
    typer.echo(f"{out['pairs']} pairs: {v.get('EQUIVALENT', 0)} proved ({out['proved_share'] * 100:.1f}%), "
               f"{v.get('NOT_EQUIVALENT', 0)} refuted, {v.get('UNKNOWN', 0)} unknown, {v.get('ERROR', 0)} errors "
               f"in {out['seconds']} s")
    for why, n in list(out["undecided_reasons"].items())[:8]:
        typer.echo(f"  {n:4d}  {why}")


def _parse_only(text: str) -> list[int] | None:
    """``"1,4-6"`` -> ``[1, 4, 5, 6]``; empty -> None."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out or None
