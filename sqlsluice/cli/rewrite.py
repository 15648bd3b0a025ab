"""``sluice rewrite``, ``sluice bench tpcds``, ``sluice bench dsb``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sqlsluice.cli.app import app, bench_app, fail, handle_errors
from sqlsluice.config import shared_data_dir

REWRITERS = ("rules", "llm-r2", "lithe", "all")




@app.command("rewrite")
@handle_errors
def rewrite_cmd(
    db: str = typer.Option(..., "--db", help="Database URL: duckdb:///tpcds.duckdb or postgresql://..."),
    sql: str = typer.Option(None, "--sql", help="The query to rewrite."),
    file: Path = typer.Option(None, "--file", help="Read the query from this file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    rewriter: str = typer.Option("rules", "--rewriter", help="rules | llm-r2 | lithe | all."),
    timing: bool = typer.Option(True, "--timing/--no-timing", help="Confirm by timing against the original."),
    timeout: float = typer.Option(60.0, "--timeout", help="Per-run timeout in seconds."),
) -> None:
    """Rewrite one query into a faster equivalent one.

    Example: sluice rewrite --db duckdb:///tpcds.duckdb --sql "SELECT ..." --json
    """
    from sqlsluice.config import load_config
    from sqlsluice.databases import connect
    from sqlsluice.rewriters.api import rewrite

    if (sql is None) == (file is None):
        fail("give exactly one of --sql or --file")
    if rewriter not in REWRITERS:
        fail(f"unknown rewriter {rewriter!r}: use one of {', '.join(REWRITERS)}")
    text = sql if sql is not None else file.read_text()
    with connect(db) as be:
        rw = rewrite(be, text, config=load_config(), rewriter=rewriter, timing=timing, timeout_s=timeout)
    if as_json:
        typer.echo(json.dumps({"original": rw.original, "sql": rw.sql, "rules": rw.rules, "verdict": rw.verdict,
                               "speedup": rw.speedup, "est_cost_before": rw.est_cost_before,
                               "est_cost_after": rw.est_cost_after, "reason": rw.reason}))
        return
    typer.echo(rw.sql)
    speed = f"{rw.speedup:.2f}x" if rw.speedup else "not timed"
    typer.echo(f"-- rules: {', '.join(rw.rules) or 'none'}; verdict: {rw.verdict}; speedup: {speed}; "
               f"{rw.reason}", err=True)


def _print_row(q: object) -> None:
    from sqlsluice.bench.rewrite import QueryResult

    assert isinstance(q, QueryResult)

    def f(t: float | None) -> str:
        return f"{t:8.3f}" if t is not None else "  >limit" if not q.error else "   error"

    sp = f"{q.speedup:7.2f}x" if q.speedup else "       -"
    typer.echo(f"{q.query:>10} {f(q.time_original)} {f(q.time_rewrite) if q.served else '       -'} {sp} "
               f"{q.verdict:>14} {q.results:>9}  {','.join(dict.fromkeys(q.rules))[:60]} {q.error[:60]}")


def _print_totals(rep: object) -> None:
    from sqlsluice.bench.rewrite import BenchReport

    assert isinstance(rep, BenchReport)
    t = rep.totals()
    typer.echo("")
    typer.echo(f"queries {t['queries']}, rewrites served {t['rewrites_served']} ({t['served_proved']} proved), "
               f"productive (>=1.5x) {t['productive']} ({t['productive_proved']} proved), geomean speedup over them {t['geomean_speedup_productive']}, "
               f"slower served {t['slower_served']}, wrong results {t['wrong_results']}, original timeouts "
               f"{t['original_timeouts']} -> {t['timeouts_after']} after, errors {t['errors']}, "
               f"mean search {t['mean_search_seconds']} s, total {rep.seconds:.0f} s")


def _run(name: str, db: str, sf: float, queries: dict[str, str], runs: int, timeout: float, out: Path | None,
         rewriter: str) -> None:
    from sqlsluice.bench.rewrite import duckdb_reference, run_bench
    from sqlsluice.bench.tpcds_load import load_tpcds
    from sqlsluice.config import load_config

    if rewriter not in REWRITERS:
        fail(f"unknown rewriter {rewriter!r}: use one of {', '.join(REWRITERS)}")
    cache = Path(".sluice") / "data"
    be = load_tpcds(db, sf=sf, cache_dir=cache)
    ref_path = cache / f"tpcds_sf{str(sf).replace('.', '_')}.duckdb"
    ref = duckdb_reference(ref_path) if be.dialect != "duckdb" and ref_path.exists() else None
    typer.echo(f"{'query':>10} {'orig s':>8} {'rewr s':>8} {'speedup':>8} {'verdict':>14} {'results':>9}  rules")
    rep = run_bench(name, be, queries, timeout_s=timeout, runs=runs, sf=sf, rewriter=rewriter,
                    config=load_config(), reference=ref, on_query=_print_row, out=out)
    _print_totals(rep)
    be.close()


@bench_app.command("tpcds")
@handle_errors
def bench_tpcds(
    db: str = typer.Option(..., "--db", help="Target: duckdb:///PATH or postgresql://... (TPC-DS loaded if absent)."),
    sf: float = typer.Option(1.0, "--sf", help="TPC-DS scale factor to load when absent."),
    runs: int = typer.Option(1, "--runs", help="Runs per query (best time kept)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Per-run timeout in seconds."),
    out: Path = typer.Option(None, "--json", help="Write the full report (JSON) here."),
    rewriter: str = typer.Option("rules", "--rewriter", help="rules | llm-r2 | lithe | all."),
    queries: str = typer.Option(None, "--queries", help="Comma-separated query numbers (default: all 99)."),
) -> None:
    """TPC-DS: every query original and rewritten, equal results checked, speedups totalled.

    Example: sluice bench tpcds --db duckdb:///.sluice/tpcds.duckdb --sf 0.1 --queries 1,4,11 --json out.json
    """
    from sqlsluice.databases.tpcds import tpcds_queries

    allq = tpcds_queries()
    sel = allq
    if queries:
        try:
            nums = [int(x) for x in queries.split(",") if x.strip()]
        except ValueError:
            fail(f"--queries must be numbers like 1,4,11, not {queries!r}")
        bad = [n for n in nums if n not in allq]
        if bad:
            fail(f"no TPC-DS query {bad[0]} (1..99)")
        sel = {n: allq[n] for n in nums}
    _run("tpcds", db, sf, {f"q{n}": q for n, q in sel.items()}, runs, timeout, out, rewriter)


@bench_app.command("dsb")
@handle_errors
def bench_dsb(
    db: str = typer.Option(..., "--db", help="Target: duckdb:///PATH or postgresql://... (TPC-DS loaded if absent)."),
    sf: float = typer.Option(1.0, "--sf", help="TPC-DS scale factor to load when absent."),
    runs: int = typer.Option(1, "--runs", help="Runs per query (best time kept)."),
    timeout: float = typer.Option(60.0, "--timeout", help="Per-run timeout in seconds."),
    out: Path = typer.Option(None, "--json", help="Write the full report (JSON) here."),
    rewriter: str = typer.Option("rules", "--rewriter", help="rules | llm-r2 | lithe | all."),
    data: Path = typer.Option(None, "--data", help="DSB folder (default ../shared/data/rewrite/rbot/dsb)."),
    queries: str = typer.Option(None, "--queries", help="Comma-separated names, e.g. query001,query010."),
) -> None:
    """DSB (R-Bot's query set) on TPC-DS data: original vs rewritten, like ``bench tpcds``.

    Example: sluice bench dsb --db duckdb:///.sluice/tpcds.duckdb --sf 0.1 --timeout 30
    """
    from sqlsluice.bench.rewrite import dsb_queries

    root = data or shared_data_dir() / "rewrite" / "rbot" / "dsb"
    if not root.is_dir():
        fail(f"DSB queries not found at {root} (set --data or SLUICE_SHARED)")
    allq = dsb_queries(root)
    sel = allq
    if queries:
        names = [x.strip() for x in queries.split(",") if x.strip()]
        bad = [n for n in names if n not in allq]
        if bad:
            fail(f"no DSB query {bad[0]!r} in {root}")
        sel = {n: allq[n] for n in names}
    _run("dsb", db, sf, sel, runs, timeout, out, rewriter)
