"""``sluice verify`` and ``sluice bench verify``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from sqlsluice.cli.app import app, bench_app, fail, handle_errors
from sqlsluice.config import shared_data_dir


@app.command("verify")
@handle_errors
def verify_cmd(
    target: str = typer.Argument(None, metavar="[rules]",
                                 help="'rules': prove every rewrite rule of the catalog on its templates."),
    schema: str = typer.Option(None, "--schema", help="DDL file, DDL text, or database URL (duckdb:///x.db)."),
    q1: str = typer.Option(None, "--q1", help="First query."),
    q2: str = typer.Option(None, "--q2", help="Second query."),
    pairs: Path = typer.Option(None, "--pairs", help='JSONL file, one {"id", "q1", "q2"} per line.'),
    dialect: str = typer.Option("duckdb", "--dialect",
                                help="SQL dialect of the queries and DDL; the differential tier runs on that "
                                     "engine: sqlite3, DuckDB, or PostgreSQL ($SLUICE_VERIFY_POSTGRES_URL, else a "
                                     "throwaway cluster for the batch)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per pair."),
    semantics: str = typer.Option("bag", "--semantics", help="bag (default) or set."),
    budget: float = typer.Option(2.0, "--budget", help="Time budget per pair, seconds."),
) -> None:
    """Decide whether two queries are equivalent: EQUIVALENT, NOT_EQUIVALENT (with a counterexample),
    UNKNOWN, or ERROR (the pair cannot be parsed, names something the schema lacks, or the engine
    rejects it).  A batch never stops: every pair of --pairs gets one line (one JSON object with
    --json), an ERROR included, in input order.

    Exit status, as diff's: 0 every pair EQUIVALENT; 1 some pair NOT_EQUIVALENT (this wins over
    everything else); 3 no pair NOT_EQUIVALENT but some UNKNOWN or ERROR; 2 trouble (bad flags,
    an unreadable --pairs file or schema).  A --pairs line that is not a JSON object with q1 and
    q2 is an ERROR for that line, not trouble.

    ``sluice verify rules [--json]``: apply every rule of the rewrite catalog to its templates
    and prove input and output equivalent; exit 1 when a template is refuted or does not fire.

    Example: sluice verify --schema schema.sql --q1 "SELECT a FROM t WHERE a > 1" --q2 "SELECT a FROM t WHERE 1 < a"
    """
    from sqlsluice.verifiers import load_schema
    from sqlsluice.verifiers.batch import exit_code

    if target is not None:
        if target != "rules":
            fail(f"unknown verify target {target!r} (the only one is 'rules')")
        _verify_rules(as_json, max(budget, 3.0))
        return
    if schema is None:
        fail("give --schema (DDL file, DDL text or database URL)")

    if semantics not in ("bag", "set"):
        fail(f"--semantics must be bag or set, not {semantics!r}")
    if pairs is None and (q1 is None or q2 is None):
        fail("give --q1 and --q2, or --pairs FILE")
    if pairs is not None and (q1 is not None or q2 is not None):
        fail("give either --q1/--q2 or --pairs, not both")
    catalog = load_schema(Path(schema) if Path(schema).is_file() else schema, dialect)
    items: list[tuple[str, object, object, str]] = []  # id, q1, q2, error reading the line
    if pairs is not None:
        for n, line in enumerate(pairs.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                items.append((str(n), None, None, f"{pairs}:{n}: not JSON: {e}"))
                continue
            if not isinstance(rec, dict):
                items.append((str(n), None, None, f"{pairs}:{n}: expected a JSON object with q1 and q2"))
                continue
            pid = str(rec.get("id", n))
            if not isinstance(rec.get("q1"), str) or not isinstance(rec.get("q2"), str):
                items.append((pid, None, None, f"{pairs}:{n}: expected q1 and q2 as strings"))
                continue
            items.append((pid, rec["q1"], rec["q2"], ""))
    else:
        items.append(("1", q1, q2, ""))
    with _postgres_for(dialect):
        verdicts = _verify_items(items, catalog, dialect, semantics, budget, as_json)
    raise typer.Exit(exit_code(verdicts))


@contextlib.contextmanager
def _postgres_for(dialect: str) -> Iterator[None]:
    """``--dialect postgres``: the differential tier runs the queries on PostgreSQL itself, the
    server of ``$SLUICE_VERIFY_POSTGRES_URL`` or else one throwaway cluster for the whole batch
    (each pair in a schema of its own, dropped afterwards)."""
    if dialect not in ("postgres", "postgresql") or os.environ.get("SLUICE_VERIFY_POSTGRES_URL"):
        yield
        return
    from sqlsluice.databases.pgcluster import PgCluster

    cluster = PgCluster().start()
    os.environ["SLUICE_VERIFY_POSTGRES_URL"] = cluster.url
    try:
        yield
    finally:
        os.environ.pop("SLUICE_VERIFY_POSTGRES_URL", None)
        cluster.stop()


def _verify_items(items: list[tuple[str, object, object, str]], catalog: object, dialect: str, semantics: str,
                  budget: float, as_json: bool) -> list[str]:
    from sqlsluice.verifiers.batch import error_verdict, verify_pair

    verdicts: list[str] = []
    for pid, a, b, bad in items:
        v = error_verdict(bad) if bad else verify_pair(a, b, catalog, dialect, semantics=semantics,  # type: ignore[arg-type]
                                                       time_budget_s=budget)
        verdicts.append(v.verdict)
        if as_json:
            typer.echo(json.dumps({"id": pid, **v.summary()}, default=str))
        elif v.verdict == "ERROR":
            typer.echo(f"{pid}: ERROR: {v.error}")
        else:
            line = f"{pid}: {v.verdict} ({v.method}, {v.seconds:.2f}s)"
            if v.verdict == "UNKNOWN":
                line += f" after {v.evidence.databases_tried} databases"
            typer.echo(line)
            if v.counterexample is not None:
                for ins in v.counterexample.inserts:
                    typer.echo(f"  {ins}")
                typer.echo(f"  q1 -> {v.counterexample.q1_rows}")
                typer.echo(f"  q2 -> {v.counterexample.q2_rows}")
        sys.stdout.flush()
    return verdicts


@bench_app.command("verify")
@handle_errors
def bench_verify_cmd(
    out: Path = typer.Option(None, "--json", help="Write the summary JSON here."),
    data: Path = typer.Option(None, "--data", help="Shared data folder (default ../shared/data or $SLUICE_SHARED/data)."),
    budget: float = typer.Option(1.0, "--budget", help="Time budget per pair, seconds."),
    limit: int = typer.Option(0, "--limit", help="Only the first N pairs of each set (0 = all)."),
    mutants: int = typer.Option(400, "--mutants", help="Size of the mutation sample (0 = skip)."),
    oracle: float = typer.Option(2.0, "--oracle-budget", help="Seconds of independent differential testing per unrefuted mutant."),
    records: Path = typer.Option(None, "--records", help="Also write every per-pair record (JSONL)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print one line per pair."),
) -> None:
    """Run the verifier on SPES's 232 and VeriEQL's 397 Calcite pairs and on a mutation suite.

    Example: sluice bench verify --json verify.json --budget 1.0 --mutants 400
    """
    from sqlsluice.bench.verify import load_spes, load_verieql, run_mutations, run_pairs

    data = data or shared_data_dir()
    if not (data / "equivalence").is_dir():
        fail(f"no equivalence data under {data} (set --data or SLUICE_SHARED)")
    say = (lambda s: typer.echo(s, err=True)) if verbose else None
    spes, veq = load_spes(data), load_verieql(data)
    if limit:
        spes, veq = spes[:limit], veq[:limit]
    result: dict[str, object] = {}
    recs: list[dict[str, object]] = []
    for name, pairs in (("spes_calcite_232", spes), ("verieql_calcite_397", veq)):
        st = run_pairs(pairs, budget, say)
        result[name] = st.summary()
        result[name + "_refuted_ids"] = [r["id"] for r in st.records if r["verdict"] == "NOT_EQUIVALENT"]  # type: ignore[assignment]
        recs.extend({"set": name, **r} for r in st.records)
        typer.echo(f"{name}: {json.dumps(result[name])}")
    if mutants:
        result["mutations"] = run_mutations(spes + veq, sample=mutants, budget_s=budget, oracle_s=oracle,
                                            progress=say)
        m = dict(result["mutations"])  # type: ignore[call-overload]
        m.pop("missed_ids", None)
        typer.echo(f"mutations: {json.dumps(m)}")
    if out:
        out.write_text(json.dumps(result, indent=2, default=str))
    if records:
        records.write_text("".join(json.dumps(r, default=str) + "\n" for r in recs))


def _verify_rules(as_json: bool, budget: float) -> None:
    """``sluice verify rules``: every rule proved on its templates (see rewriters/rule_proofs.py)."""
    from sqlsluice.rewriters.rule_proofs import prove_rules

    results = prove_rules(budget_s=budget)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=1, default=str))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="rewrite rules proved on their templates")
        for col in ("rule", "templates", "status", "methods"):
            t.add_column(col)
        for r in results:
            t.add_row(r.rule, str(len(r.templates)), r.status,
                      ", ".join(sorted({x.method or x.verdict for x in r.templates})))
        Console().print(t)
        proved = sum(r.status == "PROVED" for r in results)
        typer.echo(f"{proved} of {len(results)} rules proved on every template; the others are served only "
                   "where each application is proved on the query at hand.")
    bad = [r.rule for r in results if r.status in ("REFUTED", "DOES NOT FIRE", "NO TEMPLATE")]
    if bad:
        typer.echo(f"error: rules refuted or not exercised by their templates: {', '.join(bad)}", err=True)
        raise typer.Exit(1)
