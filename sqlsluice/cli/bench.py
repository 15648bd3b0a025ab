"""``sluice bench bird|spider score|run``, ``sluice bench report``, ``sluice data spider``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sqlsluice.cli.app import bench_app, data_app, handle_errors

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

bird_app = typer.Typer(help="BIRD: score predictions (EX, VES, R-VES, Soft-F1) or run sqlsluice's text-to-SQL.",
                       no_args_is_help=True)
spider_app = typer.Typer(help="Spider: score predictions (execution match) or run sqlsluice's text-to-SQL.",
                         no_args_is_help=True)
bench_app.add_typer(bird_app, name="bird")
bench_app.add_typer(spider_app, name="spider")

DATA_HELP = "Directory in BIRD's layout: dev.json (or mini_dev_<dialect>.json) and dev_databases/<db>/<db>.sqlite."


def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _metrics(value: str, spider: bool) -> tuple[str, ...]:
    from sqlsluice.bench.evaluate import ALL_METRICS
    from sqlsluice.errors import InvalidParameterValue

    names = ALL_METRICS if value.strip() == "all" else tuple(m.strip().lower() for m in value.split(",") if m.strip())
    bad = [m for m in names if m not in ALL_METRICS]
    if bad or not names:
        raise InvalidParameterValue(f"unknown metric(s) {', '.join(bad) or value!r}: choose from ex,ves,rves,f1 or all")
    if "ex" not in names:
        names = ("ex", *names)
    return tuple(m for m in ALL_METRICS if m in names)


def _do_score(*, benchmark: str, data: Path, predictions: Path, questions_file: Path | None, dialect: str,
              db_url: str | None, metrics: str, timeout: float, ves_repeats: int, concurrency: int,
              keep_distinct: bool = False, limit: int | None = None,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from sqlsluice.bench import evaluate as ev
    from sqlsluice.bench.metrics import LEVELS, SPIDER_LEVELS
    from sqlsluice.errors import InvalidParameterValue

    spider = benchmark == "spider"
    if timeout <= 0:
        raise InvalidParameterValue("--timeout must be positive")
    if dialect not in ("sqlite", "postgresql"):
        raise InvalidParameterValue(f"unknown dialect {dialect!r}: use sqlite or postgresql")
    if dialect == "postgresql" and not db_url:
        raise InvalidParameterValue("--dialect postgresql needs --db-url postgresql://... (the databases' location)")
    qpath = questions_file or ev.find_questions_file(data, dialect, predictions)
    questions = ev.load_questions(qpath)
    if limit:
        questions = questions[:limit]
    preds = ev.load_predictions(predictions, questions)
    mismatched = ev.db_id_mismatches(questions, preds)
    factory = ev.executor_factory(db_url if dialect == "postgresql" and db_url else data, dialect)
    opts = ev.ScoreOptions(metrics=_metrics(metrics, spider), timeout=timeout, ves_repeats=ves_repeats,
                           spider=spider, keep_distinct=keep_distinct)
    for update in _progress(f"scoring {len(questions)} questions"):
        results = ev.score(questions, preds, factory, opts, concurrency=concurrency, progress=update)
    has_hardness = spider and all(q.hardness for q in questions)
    report = ev.Report(benchmark=benchmark, dialect=dialect, metrics=opts.metrics,
                       levels=SPIDER_LEVELS if has_hardness else LEVELS, results=results,
                       predictions_file=str(predictions),
                       extra={"predictions": str(predictions), "questions": str(qpath),
                              "timeout_s": timeout, "ves_repeats": ves_repeats if set(opts.metrics) & {"ves", "rves"}
                              else 0, "db_id_mismatches": len(mismatched),
                              "name": f"{benchmark} {Path(predictions).stem}", **(extra or {})})
    summary = report.summary()
    typer.echo(ev.format_table(summary, report.levels))
    typer.echo(f"errors {summary['errors']}, timeouts {summary['timeouts']}, "
               f"missing predictions {summary['missing_predictions']}, db_id mismatches {len(mismatched)}")
    return summary


def _write_outputs(summary: dict[str, Any], json_out: Path | None, html_out: Path | None) -> None:
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
        typer.echo(f"wrote {json_out}")
    if html_out is not None:
        from sqlsluice.bench.report import render_html

        summary = {**summary, "name": summary.get("name") or Path(str(summary.get("predictions", "run"))).stem}
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(render_html([summary], []), encoding="utf-8")
        typer.echo(f"wrote {html_out}")


# Typer options shared by score and run (kept as module constants so both spell them alike).
_O_DATA = typer.Option(..., "--data", help=DATA_HELP)
_O_QUESTIONS = typer.Option(None, "--questions", help="Questions file (default: DIR/dev.json or mini_dev_<dialect>.json).")
_O_DIALECT = typer.Option("sqlite", "--dialect", help="sqlite (files under DIR) or postgresql (with --db-url).")
_O_DBURL = typer.Option(None, "--db-url", help="PostgreSQL URL holding the databases: one schema per db_id, "
                                               "BIRD's dump in public, or {db_id} in the URL.")
_O_JSON = typer.Option(None, "--json", help="Write every number (per level and per question) to this JSON file.")
_O_HTML = typer.Option(None, "--html", help="Write a self-contained HTML page with charts.")
_O_CONC = typer.Option(4, "--concurrency", "-j", help="Questions executed in parallel.")
_O_TIMEOUT = typer.Option(30.0, "--timeout", help="Seconds per question (prediction + gold); slower counts wrong.")
_O_REPEATS = typer.Option(100, "--ves-repeats", help="Timed runs per correct question for VES/R-VES (official: 100).")


def _score_command(benchmark: str, default_metrics: str) -> Callable[..., None]:
    def score(
        data: Path | None = typer.Option(None, "--data", help=DATA_HELP + " Not needed with --semantic."),
        predictions: Path = typer.Option(..., "--predictions", "-p",
                                         help="BIRD's JSON {\"<idx>\": \"<sql>\\t----- bird -----\\t<db>\"} or JSONL."),
        questions: Path | None = _O_QUESTIONS,
        dialect: str = _O_DIALECT,
        db_url: str | None = _O_DBURL,
        metrics: str = typer.Option(default_metrics, "--metrics", help="Comma list of ex,ves,rves,f1, or all."),
        json_out: Path | None = _O_JSON,
        html_out: Path | None = _O_HTML,
        concurrency: int = _O_CONC,
        timeout: float = _O_TIMEOUT,
        ves_repeats: int = _O_REPEATS,
        keep_distinct: bool = typer.Option(False, "--keep-distinct",
                                           help="Spider only: compare with DISTINCT kept (official default drops it)."),
        semantic: bool = typer.Option(False, "--semantic", help="No databases: verify each prediction against its "
                                      "gold SQL (SQLite semantics); proved / refuted / undecided, a lower bound on EX."),
        schemas: Path | None = typer.Option(None, "--schemas", help="--semantic: folder of <db>.sql DDL files or "
                                            "a tables.json (default: from --data)."),
        budget: float = typer.Option(1.0, "--budget", help="--semantic: verifier seconds per pair."),
        data_constraints: bool = typer.Option(True, "--data-constraints/--no-data-constraints",
                                              help="--semantic: NOT NULL, unique and foreign keys that annotated "
                                                   "DDL comments state about the data (BIRD's schemas/)."),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N questions."),
    ) -> None:
        from sqlsluice.errors import InvalidParameterValue

        if semantic:
            from sqlsluice.bench.semantic import format_table, run_semantic

            summary = run_semantic(benchmark=benchmark, data=data, predictions=predictions, questions_file=questions,
                                   schemas=schemas, budget_s=budget, limit=limit, progress=_progress,
                                   use_data_constraints=data_constraints)
            typer.echo(format_table(summary))
            _write_outputs(summary, json_out, None)
            return
        if data is None:
            raise InvalidParameterValue("--data DIR is needed (or --semantic, which needs no databases)")
        summary = _do_score(benchmark=benchmark, data=data, predictions=predictions, questions_file=questions,
                            dialect=dialect, db_url=db_url, metrics=metrics, timeout=timeout,
                            ves_repeats=ves_repeats, concurrency=concurrency, keep_distinct=keep_distinct,
                            limit=limit)
        _write_outputs(summary, json_out, html_out)

    return score


def _run_command(benchmark: str) -> Callable[..., None]:
    def run(
        data: Path = _O_DATA,
        router: str | None = typer.Option(None, "--router", help="Route each question with this router."),
        pipeline: str | None = typer.Option(None, "--pipeline", help="Send every question to this pipeline."),
        out: Path = typer.Option(Path(f".sluice/bench/{benchmark}"), "--out",
                                 help="Output directory (generations.jsonl, predictions.json, score.json); "
                                      "an existing one is resumed."),
        questions: Path | None = _O_QUESTIONS,
        limit: int | None = typer.Option(None, "--limit", help="Only the first K questions."),
        concurrency: int = _O_CONC,
        timeout: float = _O_TIMEOUT,
        metrics: str = typer.Option("ex,f1" if benchmark == "bird" else "ex", "--metrics",
                                    help="Metrics for the final scoring."),
        config: Path | None = typer.Option(None, "--config", help="sluice.toml with the [llm] section."),
        html_out: Path | None = _O_HTML,
    ) -> None:
        from sqlsluice.bench import evaluate as ev
        from sqlsluice.bench.run import run_questions
        from sqlsluice.config import load_config

        cfg = load_config(config)
        qpath = questions or ev.find_questions_file(data, "sqlite")
        qs = ev.load_questions(qpath)[:limit] if limit else ev.load_questions(qpath)
        for db_id in sorted({q.db_id for q in qs}):
            ev.sqlite_path(data, db_id)  # a missing database is an error before any LLM call
        for update in _progress(f"generating {len(qs)} questions"):
            run_summary = run_questions(qs, data, out, router=router, pipeline=pipeline,
                                        concurrency=concurrency, config=cfg, progress=update)
        typer.echo(f"{run_summary['system']}: generated {run_summary['generated']}/{run_summary['questions']}, "
                   f"tokens {run_summary['tokens']} ({run_summary['tokens_per_question']}/question), "
                   f"cost ${run_summary['cost_usd']:.4f}, routes {run_summary['routes']}")
        summary = _do_score(benchmark=benchmark, data=data, predictions=out / "predictions.json",
                            questions_file=qpath, dialect="sqlite", db_url=None, metrics=metrics,
                            timeout=timeout, ves_repeats=100, concurrency=concurrency, limit=limit,
                            extra={"run": run_summary, "name": run_summary["system"]})
        _write_outputs(summary, out / "score.json", html_out)

    return run


bird_app.command("score", help="Score BIRD predictions with the official metrics.\n\n"
                 "Example: sluice bench bird score --data ../bird --predictions preds.json --metrics ex,f1 "
                 "--json score.json")(handle_errors(_score_command("bird", "ex,f1")))
bird_app.command("run", help="Run sqlsluice's text-to-SQL over BIRD questions, then score.\n\n"
                 "Example: sluice bench bird run --data ../bird --pipeline basic --limit 50 --out runs/basic")(
    handle_errors(_run_command("bird")))
spider_app.command("score", help="Score Spider predictions (execution match; BIRD metrics on request).\n\n"
                   "Example: sluice bench spider score --data spider_bird --predictions preds.json")(
    handle_errors(_score_command("spider", "ex")))
spider_app.command("run", help="Run sqlsluice's text-to-SQL over Spider questions, then score.\n\n"
                   "Example: sluice bench spider run --data spider_bird --router cascade --out runs/cascade")(
    handle_errors(_run_command("spider")))


@spider_app.command("perturb")
@handle_errors
def spider_perturb(
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures and every pair (labels, verdicts, "
                                                               "counterexamples) to this JSON file."),
    data: Path | None = typer.Option(None, "--data", help="Spider dev in BIRD's layout (sluice data spider --to DIR); "
                                                          "default: built into a temporary folder."),
    per_kind: int = typer.Option(60, "--per-kind", min=1, help="Pairs per kind of error."),
    budget: float = typer.Option(1.0, "--budget", help="Verifier seconds per pair."),
    seed: int = typer.Option(0, "--seed", help="Which questions and which variant of each error."),
    kinds: str | None = typer.Option(None, "--kinds", help="Comma list of kinds (default: all): join_key, distinct, "
                                                           "aggregate, condition, order_direction, limit_ties, "
                                                           "type_mixing."),
) -> None:
    """The perturbation study: gold SQL with model-like errors, labelled on the Spider databases, verified.

    Reports wrong EQUIVALENT (goal 0), the share of execution-different pairs refuted with a
    counterexample that replays in sqlite3 (goal 90%), and the share decided (goal 85%).

    Example: sluice bench spider perturb --data spider_bird --per-kind 100 --json perturb.json
    """
    import tempfile

    from sqlsluice.bench import perturb as pt
    from sqlsluice.bench.spider import build_spider
    from sqlsluice.errors import InvalidParameterValue

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else pt.KINDS
    bad = [k for k in chosen if k not in pt.KINDS]
    if bad or budget <= 0:
        raise InvalidParameterValue(f"unknown kind(s) {', '.join(bad)}" if bad else "--budget must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            data = Path(tmp)
            build_spider(data, progress=lambda db: typer.echo(f"building {db}", err=True))
        for update in _progress(f"verifying up to {per_kind * len(chosen)} pairs"):
            rep = pt.run_study(data, per_kind=per_kind, budget_s=budget, seed=seed, kinds=chosen, progress=update)
    typer.echo(pt.format_report(rep))
    a = rep["all"]
    typer.echo(f"wrong EQUIVALENT {a['wrong_equivalent']} (goal 0); refuted with a replaying counterexample "
               f"{a['refuted_share_of_different']}% of the different pairs (goal 90%); decided {a['decided_share']}% "
               f"(goal 85%); label errors {a['label_errors']}")
    _write_outputs(rep, json_out, None)


@bird_app.command("check")
@handle_errors
def bird_check(
    predictions: list[Path] = typer.Argument(..., help="Prediction files (BIRD's JSON or JSONL)."),
    questions: Path | None = typer.Option(None, "--questions", help="Questions file; default: the "
                                          "mini_dev_<dialect>.json in ../shared/data/bird/mini_dev named by "
                                          "the file's _sqlite/_postgresql/_mysql suffix."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the table as JSON."),
) -> None:
    """Check prediction files against their questions without executing them (no databases needed).

    Example: sluice bench bird check ../shared/data/bird/predictions/*.json
    """
    from sqlsluice.bench import evaluate as ev
    from sqlsluice.bench.spider import shared_data_dir
    from sqlsluice.errors import InvalidParameterValue

    rows = []
    typer.echo("| file | predictions | db_id aligned | sqlglot parses | reads a table of its own gold SQL "
               "| of the next question's gold SQL |\n|---|---|---|---|---|---|")
    for f in predictions:
        dialect = next((d for d in ("postgresql", "mysql", "sqlite") if f.stem.endswith("_" + d)), "sqlite")
        qpath = questions or shared_data_dir() / "bird" / "mini_dev" / f"mini_dev_{dialect}.json"
        if not qpath.is_file():
            raise InvalidParameterValue(f"no questions file for {f.name}: pass --questions")
        qs = ev.load_questions(qpath)
        c = ev.check_predictions(qs, ev.load_predictions(f, qs), dialect)
        rows.append({"file": f.name, "dialect": dialect, **c})
        typer.echo(f"| {f.name} | {c['predictions']}/{c['questions']} | {c['db_id_aligned']} | {c['parsed']} | "
                   f"{c['shares_table_with_own_gold']} | {c['shares_table_with_next_gold']} |")
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=1), encoding="utf-8")


@bench_app.command("agree")
@handle_errors
def agree_cmd(
    predictions: Path = typer.Option(..., "--predictions", help="Folder of prediction files, one per model "
                                                                "(<prefix>_<model>_sqlite.json, BIRD's format)."),
    schemas: Path = typer.Option(..., "--schemas", help="Folder of <db>.sql DDL files, or a tables.json."),
    questions: Path | None = typer.Option(None, "--questions", help="Questions with gold SQL (default: "
                                          "../shared/data/bird/mini_dev/mini_dev_sqlite.json)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every number and each question's verdicts."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N questions."),
    budget: float = typer.Option(1.0, "--budget", help="Verifier seconds per pair."),
    models: str | None = typer.Option(None, "--models", help="Comma list of models (default: every file)."),
    price: list[str] = typer.Option([], "--price", help="NAME=IN:OUT, USD per 1M tokens (repeat); overrides "
                                                        "the built-in list prices."),
    data_constraints: bool = typer.Option(True, "--data-constraints/--no-data-constraints",
                                          help="NOT NULL, unique and foreign keys that annotated DDL comments state "
                                               "about the data (BIRD's schemas/)."),
) -> None:
    """Evaluate the agreement router offline: pairwise verdict matrix, coverage, simulated cascade and cost.

    Example: sluice bench agree --predictions ../shared/data/bird/predictions --schemas ../shared/data/bird/schemas
    --limit 100 --budget 0.5 --json agree.json
    """
    from sqlsluice.bench import agree as ag
    from sqlsluice.bench import evaluate as ev
    from sqlsluice.bench.semantic import SchemaSource
    from sqlsluice.bench.spider import shared_data_dir
    from sqlsluice.errors import InvalidParameterValue

    if budget <= 0:
        raise InvalidParameterValue("--budget must be positive")
    qs = ev.load_questions(questions or shared_data_dir() / "bird" / "mini_dev" / "mini_dev_sqlite.json")
    qs = qs[:limit] if limit else qs
    only = [m.strip() for m in models.split(",") if m.strip()] if models else None
    ms = ag.load_models(predictions, qs, only=only)
    for update in _progress(f"verifying {len(qs)} questions x {len(ms.names) + 1} answers"):
        source = SchemaSource(schemas, data_constraints=data_constraints)
        rep = ag.evaluate(qs, ms, source, budget_s=budget, prices=ag.parse_prices(price),
                          progress=update)
    rep["constraints_from_ddl_comments"] = source.applied
    typer.echo(ag.format_report(rep))
    _write_outputs(rep, json_out, None)


@bench_app.command("report")
@handle_errors
def report_cmd(
    inputs: list[Path] = typer.Option(..., "--json", help="Score JSONs (bench bird|spider score|run) and "
                                                          "TPC-DS rewrite JSONs (bench tpcds --json); repeat."),
    html_out: Path | None = typer.Option(None, "--html", help="Self-contained HTML page with the charts."),
    out_json: Path | None = typer.Option(None, "--out-json", help="Combined JSON with every number."),
) -> None:
    """Draw benchmark results: EX by difficulty, tokens vs EX (Pareto), VES, TPC-DS speedups.

    Example: sluice bench report --json runs/basic/score.json --json tpcds.json --html report.html
    """
    from sqlsluice.bench.report import write_report
    from sqlsluice.errors import InvalidParameterValue

    if html_out is None and out_json is None:
        raise InvalidParameterValue("give --html OUT and/or --out-json OUT")
    rep = write_report(inputs, html_out=html_out, json_out=out_json)
    typer.echo(f"{len(rep['systems'])} systems, {rep['tpcds']['count']} TPC-DS queries; "
               f"Pareto front: {', '.join(map(str, rep['pareto_front'])) or '-'}")
    for p in (html_out, out_json):
        if p is not None:
            typer.echo(f"wrote {p}")


@data_app.command("spider")
@handle_errors
def data_spider(
    to: Path = typer.Option(..., "--to", help="Output directory (BIRD layout)."),
    dbs: str | None = typer.Option(None, "--dbs", help="Comma list of databases (default: the 20 dev databases)."),
    all_dbs: bool = typer.Option(False, "--all", help="All 157 Spider databases, not only dev's."),
    duckdb: bool = typer.Option(False, "--duckdb", help="Also write dev_databases/<db>/<db>.duckdb."),
    postgres: str | None = typer.Option(None, "--postgres", help="Also load each database into this PostgreSQL "
                                                                  "(one schema per database)."),
    source: Path | None = typer.Option(None, "--source", help="Spider data (default: ../shared/data/spider)."),
) -> None:
    """Build Spider's databases (SQLite, optionally DuckDB/PostgreSQL) and dev.json in BIRD's layout.

    Example: sluice data spider --to spider_bird --dbs concert_singer,pets_1 --duckdb
    """
    from sqlsluice.bench.spider import build_spider

    chosen = [d.strip() for d in dbs.split(",") if d.strip()] if dbs else None
    rep = build_spider(to, spider_dir=source, dbs=chosen, duckdb=duckdb, postgres=postgres, all_databases=all_dbs,
                       progress=lambda db: typer.echo(f"building {db}", err=True))
    typer.echo(f"{len(rep.databases)} databases, {sum(rep.rows.values())} rows, {rep.questions} questions -> {to}")
    if rep.missing_csv:
        typer.echo(f"tables without data (see {to / 'MISSING.txt'}): {', '.join(rep.missing_csv)}")
    if rep.skipped_rows:
        typer.echo(f"rows skipped (duplicate keys or malformed): {rep.skipped_rows}")


@bench_app.command("rules-fuzz")
@handle_errors
def rules_fuzz(
    queries: int = typer.Option(500, "--queries", min=1, help="Random queries to generate."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same queries and data."),
    json_out: Path | None = typer.Option(None, "--json", help="Coverage per rule, totals and reproducers."),
    backends: str = typer.Option("duckdb,postgresql", "--backends", help="Comma list: duckdb, postgresql."),
    rules: str | None = typer.Option(None, "--rules", help="Comma list of rules (default: all, plus 'prepare')."),
) -> None:
    """Differential rule fuzzing on DuckDB and PostgreSQL; minimised reproducers; exit 1 on a mismatch.

    Example: sluice bench rules-fuzz --queries 2000 --seed 1 --json fuzz.json --backends duckdb,postgresql
    """
    from sqlsluice.bench.rules_fuzz import run_command

    for update in _progress(f"fuzzing {queries} queries"):
        code = run_command(queries=queries, seed=seed, json_out=json_out, backends=backends, rules=rules,
                           progress=update)
    if code:
        raise typer.Exit(code)


@bench_app.command("proxy")
@handle_errors
def proxy_command(
    upstream: str = typer.Option(None, "--upstream", help="postgresql://USER:PASS@HOST:PORT/DB (default: a "
                                 "throwaway local cluster)"),
    duration: int = typer.Option(10, "--duration", min=1, help="seconds per pgbench run"),
    clients: int = typer.Option(8, "--clients", min=1, help="pgbench clients (-c)"),
    jobs: int = typer.Option(2, "--jobs", min=1, help="pgbench threads (-j)"),
    rounds: int = typer.Option(1, "--rounds", min=1, help="interleaved rounds; figures are medians over rounds"),
    json_out: Path = typer.Option(None, "--json", help="write all measurements and the summary here"),
) -> None:
    """Proxy overhead: pgbench -S (simple and prepared) direct vs. byte relay vs. sqlsluice.

    Runs pgbench -i -s 1 on the upstream first (it creates the pgbench_* tables there).

    Example: sluice bench proxy --upstream postgresql://postgres@127.0.0.1:5432/postgres --duration 10 --rounds 3
    """
    from dataclasses import asdict

    from sqlsluice.bench.proxy import _print_table, bench, summarize

    def say(m: str) -> None:
        typer.echo(m, err=True)

    ms = bench(upstream, duration=duration, clients=clients, jobs=jobs, rounds=rounds, log=say)
    summary = summarize(ms)
    loop = ",".join(sorted({m.event_loop for m in ms if m.event_loop})) or "-"
    _print_table(summary, f"pgbench -S, {clients} clients, -j {jobs}, {duration} s x {rounds} round(s), "
                          f"event loop {loop}")
    if json_out is not None:
        json_out.write_text(json.dumps({"settings": {"duration": duration, "clients": clients, "jobs": jobs,
                                                      "rounds": rounds, "event_loop": loop},
                                        "measurements": [asdict(m) for m in ms], "summary": summary}, indent=2))


@bench_app.command("pool")
@handle_errors
def pool_command(
    clients: int = typer.Option(1000, "--clients", min=1, help="concurrent asyncpg clients"),
    queries: int = typer.Option(10, "--queries", min=1, help="queries (transactions) per asyncpg client"),
    duration: int = typer.Option(10, "--duration", min=1, help="seconds per pgbench run"),
    pgbench_clients: int = typer.Option(8, "--pgbench-clients", min=1, help="pgbench clients (-c)"),
    wide_clients: int = typer.Option(40, "--wide-clients", min=0,
                                     help="pgbench clients of a second run, more than --pool-size (0: none)"),
    jobs: int = typer.Option(2, "--jobs", min=1, help="pgbench threads (-j)"),
    rounds: int = typer.Option(1, "--rounds", min=1, help="interleaved pgbench rounds; TPS are medians"),
    pool_size: int = typer.Option(20, "--pool-size", min=1, help="server connections (both poolers)"),
    json_out: Path = typer.Option(None, "--json", help="write the figures here"),
) -> None:
    """Transaction pooling: many asyncpg clients onto max_connections=50, and TPS vs PgBouncer.

    Starts a throwaway PostgreSQL (max_connections = 50), sluice serve in transaction mode
    and Debian's pgbouncer in transaction mode (make system-deps-pgbouncer).

    Example: sluice bench pool --clients 1000 --duration 10 --rounds 3 --json pool.json
    """
    from sqlsluice.bench.pool import bench

    def say(m: str) -> None:
        typer.echo(m, err=True)

    out = bench(clients=clients, queries=queries, duration=duration, pgbench_clients=pgbench_clients, jobs=jobs,
                rounds=rounds, pool_size=pool_size, wide_clients=wide_clients, log=say)
    m = out["many_clients"]
    typer.echo(f"{m['clients']} asyncpg clients x {m['queries_per_client']} queries, transaction mode, "
               f"pool_size {pool_size}, max_connections 50: {m['ok_clients']} succeeded, {m['failed_clients']} failed "
               f"in {m['wall_s']:.1f} s")
    for k, n in m["errors"].items():
        typer.echo(f"  {n} x {k}")
    typer.echo(f"  query latency p50 {m['query_p50_ms']:.1f} ms, p99 {m['query_p99_ms']:.1f} ms; "
               f"login p50 {m['connect_p50_ms']:.1f} ms, p99 {m['connect_p99_ms']:.1f} ms")
    typer.echo(f"  server connections at most {m['max_server_connections']}; proxy RSS peak "
               f"{m['proxy_rss_peak_mb']:.0f} MiB, at the end {m['proxy_rss_end_mb']:.0f} MiB")
    tps = out["tps"]
    typer.echo(f"pgbench -S -c {pgbench_clients} -j {jobs}, {duration} s x {rounds}: sqlsluice "
               f"{tps['sqlsluice simple']:.0f} TPS, pgbouncer {tps['pgbouncer simple']:.0f} TPS (simple), ratio "
               f"{tps['ratio sqlsluice/pgbouncer (simple)']:.2f}; sqlsluice prepared {tps['sqlsluice prepared']:.0f} TPS")
    cpu = out["proxy_cpu_us_per_tx"]
    typer.echo(f"  proxy CPU per transaction: sqlsluice {cpu['sqlsluice simple']:.1f} us (simple), "
               f"{cpu['sqlsluice prepared']:.1f} us (prepared); pgbouncer {cpu['pgbouncer simple']:.1f} us (simple)")
    w = out.get("wide")
    if w:
        typer.echo(f"pgbench -S -c {w['clients']} -j {jobs} (more clients than pool_size {pool_size}): sqlsluice "
                   f"{w['sqlsluice simple']:.0f} TPS, pgbouncer {w['pgbouncer simple']:.0f} TPS, ratio "
                   f"{w['ratio sqlsluice/pgbouncer (simple)']:.2f}; proxy CPU per transaction "
                   f"{w['proxy_cpu_us_per_tx sqlsluice']:.1f} us vs {w['proxy_cpu_us_per_tx pgbouncer']:.1f} us")
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=2))


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

    from sqlsluice.bench.pool_proofs import parse_only, prove_pool
    from sqlsluice.config import shared_data_dir

    pool = pool or shared_data_dir() / "rewrite" / "llmr2" / "pos_pool_dsb.csv"
    if not pool.is_file():
        raise FileNotFoundError(2, "No such file", str(pool))
    with Progress(transient=True) as bar:
        task = bar.add_task("proving", total=None)
        out = prove_pool(pool, budget_s=budget, limit=limit or None, only=parse_only(only), jobs=max(1, jobs),
                         progress=lambda d, t: bar.update(task, completed=d, total=t))
    if json_out:
        json_out.write_text(json.dumps(out, indent=1))
    v = out["verdicts"]
    typer.echo(f"{out['pairs']} pairs: {v.get('EQUIVALENT', 0)} proved ({out['proved_share'] * 100:.1f}%), "
               f"{v.get('NOT_EQUIVALENT', 0)} refuted, {v.get('UNKNOWN', 0)} unknown, {v.get('ERROR', 0)} errors "
               f"in {out['seconds']} s")
    for why, n in list(out["undecided_reasons"].items())[:8]:
        typer.echo(f"  {n:4d}  {why}")
