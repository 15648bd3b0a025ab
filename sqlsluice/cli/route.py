"""``sluice route train`` and ``sluice bench route``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sqlsluice.cli.app import bench_app, fail, handle_errors, route_app
from sqlsluice.config import shared_data_dir


def _default_labels() -> Path:
    return shared_data_dir() / "bird" / "ellie_pipeline_labels.jsonl"


def _parse_costs(costs: str | None) -> tuple[float, float, float] | None:
    if costs is None:
        return None
    try:
        parts = tuple(float(x) for x in costs.split(":"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) <= 0:
        fail(f"--costs must be three positive numbers like 1:3:6, not {costs!r}")
    return parts  # type: ignore[return-value]


@route_app.command("train")
@handle_errors
def train_cmd(
    labels: Path = typer.Option(None, "--labels", help="EllieSQL-style labels JSONL (default: "
                                                       "../shared/data/bird/ellie_pipeline_labels.jsonl)."),
    out: Path = typer.Option(None, "--out", help="Where to save the router (default: "
                                                "$SLUICE_HOME/routers/<name>.joblib); also stored in the state store."),
    name: str = typer.Option("learned", "--name", help="Router name for `--router NAME` and SET sluice.router."),
    budget: float = typer.Option(None, "--budget", help="Token budget as a fraction of always-ensemble; lam is "
                                                        "chosen on the labels to stay within it."),
    lam: float = typer.Option(None, "--lam", help="Fixed accuracy/token trade-off instead of --budget."),
    costs: str = typer.Option(None, "--costs", help="Token cost per tier basic:decompose:ensemble (default: "
                                                    "measured from our prompts on BIRD)."),
    limit: int = typer.Option(None, "--limit", help="Train on the first N labels only."),
) -> None:
    """Train a learned router (random forest on question and schema-link features) and save it.

    Example: sluice route train --labels ../shared/data/bird/ellie_pipeline_labels.jsonl --budget 0.36 --out router.joblib
    """
    from sqlsluice.bench.route import measure_costs
    from sqlsluice.routers.base import fit_learned, save_router
    from sqlsluice.routers.labels import load_labels

    if budget is not None and lam is not None:
        fail("give --budget or --lam, not both")
    path = labels or _default_labels()
    items = load_labels(path, limit=limit)
    cost = _parse_costs(costs)
    if cost is None:
        rep = measure_costs(items, path.parent, sample=min(150, len(items)))
        cost = (rep.per_tier["basic"], rep.per_tier["decompose"], rep.per_tier["ensemble"])
    r = fit_learned([x.inp for x in items], [x.label for x in items], costs=cost, lam=lam, budget=budget,
                    label=name)
    p = save_router(r, out)
    typer.echo(f"saved router {name!r} to {p} (trained on {len(items)} labels; lam={r.lam:.3f}; "
               f"costs {':'.join(f'{c:.0f}' for c in cost)})")


@bench_app.command("route")
@handle_errors
def bench_route_cmd(
    labels: Path = typer.Option(None, "--labels", help="EllieSQL labels JSONL (default: "
                                                       "../shared/data/bird/ellie_pipeline_labels.jsonl)."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds for learned routers."),
    json_out: Path = typer.Option(None, "--json", help="Write {\"routers\": [...]} to this file."),
    costs: str = typer.Option(None, "--costs", help="Override the measured token costs, e.g. 1:3:6."),
    limit: int = typer.Option(None, "--limit", help="Use the first N labels only (quick runs)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for folds and models."),
) -> None:
    """Offline routing on BIRD dev with EllieSQL's per-question labels: EX, tokens, TEP, shares, AUC.

    Example: sluice bench route --labels ../shared/data/bird/ellie_pipeline_labels.jsonl --folds 5 --json route.json
    """
    import numpy as np

    from sqlsluice.bench.route import CostReport, format_table, measure_costs, paired_bootstrap, run_bench
    from sqlsluice.routers.labels import load_labels

    if folds < 2:
        fail("--folds must be at least 2")
    path = labels or _default_labels()
    items = load_labels(path, limit=limit)
    rep = measure_costs(items, path.parent, sample=min(150, len(items)))
    cost = _parse_costs(costs)
    if cost is not None:
        rep = CostReport(per_tier=dict(zip(("basic", "decompose", "ensemble"), cost, strict=True)),
                         inputs=dict(zip(("basic", "decompose", "ensemble"), cost, strict=True)),
                         outputs={"basic": 0.0, "decompose": 0.0, "ensemble": 0.0}, n=0,
                         method=f"costs given on the command line ({costs})")
    rows = run_bench(items, rep, folds=folds, seed=seed)
    typer.echo(format_table(rows, rep))
    best = next(r for r in rows if r.name == "learned")
    tab = next(r for r in rows if r.name == "tables")
    verdict = ("beats" if best.ex > tab.ex and best.tokens_rel <= tab.tokens_rel else "does NOT beat")
    y = np.asarray([x.label for x in items])
    c = np.asarray([rep.per_tier[p] for p in ("basic", "decompose", "ensemble")], float)
    ci = paired_bootstrap(best, tab, y, c, seed=seed)
    typer.echo(f"\nlearned router {verdict} `tables` on both axes "
               f"(EX {best.ex:.2f} vs {tab.ex:.2f}; tokens {best.tokens_rel:.3f} vs {tab.tokens_rel:.3f}); "
               f"paired bootstrap 95% CI of the difference: EX [{ci['ex'][0]:+.2f}, {ci['ex'][1]:+.2f}] points, "
               f"tokens [{ci['tokens_rel'][0]:+.3f}, {ci['tokens_rel'][1]:+.3f}]")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({
            "labels": str(path), "questions": len(items), "folds": folds,
            "costs": {"per_tier": rep.per_tier, "inputs": rep.inputs, "outputs": rep.outputs,
                      "questions_sampled": rep.n, "method": rep.method},
            "learned_vs_tables_ci95": ci,
            "routers": [r.as_json() for r in rows]}, indent=2))
        typer.echo(f"wrote {json_out}")
