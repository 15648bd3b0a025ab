"""``sluice bench rewrite-pool``: how many of a recorded pool of (original, rewrite) pairs the
verifier proves, e.g. LLM-R2's DSB positive pool (rewrites Calcite made, each measured faster).

Each pair is checked over the TPC-DS schema (DSB's) with its keys, as the serving gate would
check a rewrite: EQUIVALENT (proved), NOT_EQUIVALENT (a counterexample), UNKNOWN, ERROR.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path
from typing import Any


def tpcds_catalog() -> Any:
    """The TPC-DS schema with its keys (generated at sf 0 by DuckDB's extension, in memory)."""
    import duckdb

    from sqlsluice.bench.tpcds_load import with_tpcds_keys
    from sqlsluice.databases.duckdb_backend import DuckDBBackend
    from sqlsluice.databases.tpcds import load_extension

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
            # the share of the pairs not shown wrong: a refuted pair is decided (and no target for a proof)
            "proved_share_not_refuted": round(counts["EQUIVALENT"] / max(1, n - counts["NOT_EQUIVALENT"]), 4),
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




def parse_only(text: str) -> list[int] | None:
    """``"1,4-6"`` -> ``[1, 4, 5, 6]``; empty -> None."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out or None
