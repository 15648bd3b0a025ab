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


def prove_pool(pool: Path, *, budget_s: float = 4.0, limit: int | None = None, dialect: str = "postgres",
               progress: Any = None) -> dict[str, Any]:
    from sqlsluice.verifiers.batch import verify_pair

    csv.field_size_limit(1 << 30)
    with open(pool, newline="") as f:
        rows = list(csv.DictReader(f))
    if limit:
        rows = rows[:limit]
    cat = tpcds_catalog()
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for i, r in enumerate(rows):
        v = verify_pair(r["original_sql"].strip().rstrip(";"), r["rewritten_sql"].strip().rstrip(";"), cat, dialect,
                        time_budget_s=budget_s)
        records.append({"index": r.get("") or str(i), "verdict": v.verdict, "method": v.method,
                        "seconds": round(v.seconds, 3), "rules": r.get("activated_rules", ""),
                        "reason": (v.error or v.reason)[:300]})
        if progress is not None:
            progress(i + 1, len(rows))
    counts = Counter(rec["verdict"] for rec in records)
    n = len(records)
    return {"pool": str(pool), "pairs": n, "budget_s": budget_s, "dialect": dialect,
            "verdicts": dict(counts), "proved_share": round(counts["EQUIVALENT"] / n, 4) if n else 0.0,
            "seconds": round(time.monotonic() - t0, 1), "records": records}


@bench_app.command("rewrite-pool")
@handle_errors
def rewrite_pool_cmd(
    pool: Path = typer.Option(None, "--pool", help="CSV with original_sql, rewritten_sql "
                                                   "(default: ../shared/data/rewrite/llmr2/pos_pool_dsb.csv)."),
    budget: float = typer.Option(4.0, "--budget", help="Verifier time budget per pair, seconds."),
    limit: int = typer.Option(0, "--limit", help="Only the first N pairs (0: all)."),
    json_out: Path = typer.Option(None, "--json", help="Write the summary and one record per pair here."),
) -> None:
    """Prove a pool of recorded rewrites (LLM-R2's DSB positive pool by default) over TPC-DS's schema."""
    from rich.progress import Progress

    pool = pool or shared_data_dir() / "rewrite" / "llmr2" / "pos_pool_dsb.csv"
    if not pool.is_file():
        raise FileNotFoundError(2, "No such file", str(pool))
    with Progress(transient=True) as bar:
        task = bar.add_task("proving", total=None)
        out = prove_pool(pool, budget_s=budget, limit=limit or None,
                         progress=lambda d, t: bar.update(task, completed=d, total=t))
    if json_out:
        json_out.write_text(json.dumps(out, indent=1))
    v = out["verdicts"]
    typer.echo(f"{out['pairs']} pairs: {v.get('EQUIVALENT', 0)} proved ({out['proved_share'] * 100:.1f}%), "
               f"{v.get('NOT_EQUIVALENT', 0)} refuted, {v.get('UNKNOWN', 0)} unknown, {v.get('ERROR', 0)} errors "
               f"in {out['seconds']} s")
