"""``sluice llm check | usage | prompts``: the configured endpoint, the usage ledger, the prompt files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from sqlsluice.cli.app import app, fail, handle_errors

llm_app = typer.Typer(help="The LLM layer: check the configured endpoint, usage ledger, prompt templates.",
                      no_args_is_help=True)
app.add_typer(llm_app, name="llm")

GROUPS = ("tag", "template", "model", "role", "provider")


@llm_app.command("check")
@handle_errors
def check_cmd(
    role: str = typer.Option("rewrite", "--role", help="Which configured model to call (llm.models[role])."),
    config: Path = typer.Option(None, "--config", help="Config file (default: $SLUICE_CONFIG or ./sluice.toml)."),
) -> None:
    """Send one tiny prompt to the configured LLM; print model, tokens, latency, logprobs support.

    Example: OPENAI_BASE_URL=http://127.0.0.1:11434/v1 SLUICE_LLM_MODEL=qwen2.5-coder sluice llm check
    """
    from sqlsluice.config import load_config
    from sqlsluice.llm import Options, get_llm

    llm = get_llm(load_config(config), role)
    t0 = time.perf_counter()
    c = llm.chat([{"role": "user", "content": "Reply with exactly: SELECT 1"}],
                 options=Options(max_tokens=16, logprobs=True), template="check", cache=False)
    lp = c.choices[0].logprobs if c.choices else None
    typer.echo(json.dumps({"provider": c.provider, "model": c.model, "reply": c.text.strip()[:80],
                           "input_tokens": c.usage.input_tokens, "output_tokens": c.usage.output_tokens,
                           "cost_usd": round(c.cost_usd, 8), "latency_s": round(time.perf_counter() - t0, 3),
                           "logprobs": lp is not None}))


@llm_app.command("usage")
@handle_errors
def usage_cmd(
    by: str = typer.Option("template", "--by", help="Group by tag | template | model | role | provider."),
    since_hours: float = typer.Option(None, "--since-hours", help="Only calls in the last N hours."),
    state: str = typer.Option(None, "--state", help="State store URL (default: $SLUICE_STATE or .sluice/state.sqlite)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sum the usage ledger: calls, cached calls, failed tries, tokens as reported, cost.

    Example: sluice llm usage --by tag --since-hours 24
    """
    from sqlsluice.llm import Ledger
    from sqlsluice.state import StateStore, default_store

    if by not in GROUPS:
        fail(f"--by must be one of {', '.join(GROUPS)}, not {by!r}")
    store = StateStore(state) if state else default_store()
    since = time.time() - since_hours * 3600 if since_hours is not None else None
    groups = Ledger(store).by(by, since=since)
    rows = [{by: k, "calls": v.calls, "cached": v.cached_calls, "failed": v.failed_calls,
             "input_tokens": v.input_tokens, "output_tokens": v.output_tokens, "cost_usd": round(v.cost_usd, 6)}
            for k, v in sorted(groups.items(), key=lambda kv: -kv[1].tokens)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo(f"{by:<40} {'calls':>6} {'cached':>6} {'failed':>6} {'in tok':>10} {'out tok':>9} {'cost $':>10}")
    for r in rows:
        typer.echo(f"{str(r[by])[:40]:<40} {r['calls']:>6} {r['cached']:>6} {r['failed']:>6} "
                   f"{r['input_tokens']:>10} {r['output_tokens']:>9} {r['cost_usd']:>10.4f}")


@llm_app.command("prompts")
@handle_errors
def prompts_cmd() -> None:
    """List the prompt templates: name, version, hash, description.

    Example: sluice llm prompts
    """
    from sqlsluice.llm.prompts import list_prompts

    for p in list_prompts():
        typer.echo(f"{p.name:<24} v{p.version:<3} {p.hash}  {p.description}")
