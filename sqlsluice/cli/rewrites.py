"""``sluice rewrites list|show|approve|reject|forget``: review the stored rewrites.

They work on the state store the server uses (``--state URL``, else ``$SLUICE_STATE``, else
``server.state`` in ``sluice.toml``, else ``.sluice/state.sqlite``); a server running on the
same store sees a decision within seconds (its cached lookups expire).  A fingerprint may be
given by a unique prefix.  With ``[rewrite] mode = "review"`` a rewrite the server finds is
``pending`` and is served only after ``approve``; ``reject`` keeps it unserved (and the shape
is not searched again until the schema changes); ``forget`` deletes it (searched again on
next sight).
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer

from sqlsluice.cli.app import app, fail, handle_errors

rewrites_app = typer.Typer(help="Review stored rewrites: list, show, approve, reject, forget.",
                           no_args_is_help=True)
app.add_typer(rewrites_app, name="rewrites")

StateOpt = Annotated[str | None, typer.Option("--state", help="State store: sqlite:///PATH, a file path or "
                                              "postgresql://... (default: $SLUICE_STATE, server.state, "
                                              ".sluice/state.sqlite)")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="With [databases]: the backend URL whose "
                                                 "rewrites to review (each database keeps its own)")]
ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="sluice.toml path")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
FpArg = Annotated[str, typer.Argument(help="The rewrite's fingerprint (or a unique prefix of it).")]


def _state_url(state: str | None, config: str | None) -> str | None:
    import os

    from sqlsluice.config import load_config

    url = state or os.environ.get("SLUICE_STATE")
    if not url:
        url = load_config(config).server.state
    if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        url = f"sqlite:///{url}"
    return url


def open_store(state: str | None = None, config: str | None = None, database: str | None = None) -> Any:
    """The :class:`~sqlsluice.rewriters.online.RewriteStore` the CLI reviews."""
    from sqlsluice.config import load_config
    from sqlsluice.errors import SluiceError
    from sqlsluice.rewriters.online import RewriteStore
    from sqlsluice.state import NamespacedState, StateStore

    base = StateStore(_state_url(state, config))
    # in review mode a stored rewrite with no decision is pending (the server holds it)
    try:
        review = load_config(config).rewrite.mode == "review"
    except SluiceError:
        review = False  # the store was named (--state / $SLUICE_STATE): the file is not needed
    if database:
        from sqlsluice.middleware.server import rewrite_namespace

        return RewriteStore(NamespacedState(base, rewrite_namespace(database)), review=review)
    return RewriteStore(base, review=review)


def _one(store: Any, fp: str) -> Any:
    keys = store.resolve(fp)
    if not keys:
        fail(f"no stored rewrite with fingerprint {fp!r} (see `sluice rewrites list`)")
    if len(keys) > 1:
        fail(f"fingerprint prefix {fp!r} is ambiguous: {', '.join(k[:12] for k in keys[:5])} ...")
    e = store.get(keys[0])
    assert e is not None
    return e


def _row(store: Any, e: Any) -> dict[str, Any]:
    proof = store.proof(e.fingerprint) or {}
    st = store.status(e.fingerprint)
    return {"fingerprint": e.fingerprint, "status": store.review_status(e), "rules": e.rules, "verdict": e.verdict,
            "proof": proof.get("status", ""), "speedup": e.speedup, "time_original": e.time_original,
            "created": e.created, "decided_by": st[1] if st else None, "decided_at": st[2] if st else None}


@rewrites_app.command("list")
@handle_errors
def list_cmd(state: StateOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
             as_json: JsonOpt = False,
             all_: Annotated[bool, typer.Option("--all", help="Also the shapes searched with no rewrite "
                                                "found (status none).")] = False) -> None:
    """List the stored rewrites: fingerprint, status, proof, speedup, rules.

    Example: sluice rewrites list --state .sluice/state.sqlite
    """
    store = open_store(state, config, database)
    rows = [_row(store, e) for e in store.all() if all_ or e.has_rewrite]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    typer.echo(f"{'fingerprint':32}  {'status':8}  {'proof':6}  {'speedup':>7}  rules")
    for r in rows:
        sp = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        typer.echo(f"{r['fingerprint']:32}  {r['status']:8}  {r['proof'] or '-':6}  {sp:>7}  {','.join(r['rules'])}")
    if not rows:
        typer.echo("(no stored rewrites)")


@rewrites_app.command("show")
@handle_errors
def show_cmd(fingerprint: FpArg, state: StateOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
             as_json: JsonOpt = False) -> None:
    """One stored rewrite: original and rewritten templates, rules, proof steps, speedup, status.

    Example: sluice rewrites show 3fa2c1
    """
    store = open_store(state, config, database)
    e = _one(store, fingerprint)
    row = _row(store, e)
    proof = store.proof(e.fingerprint) or {}
    if as_json:
        typer.echo(json.dumps({**row, "original": e.original_template, "rewritten": e.rewritten_template,
                               "certificate": proof}, indent=1))
        return
    typer.echo(f"fingerprint:   {e.fingerprint}")
    who = f" (by {row['decided_by']})" if row["decided_by"] else ""
    typer.echo(f"status:        {row['status']}{who}")
    typer.echo(f"verdict:       {e.verdict}")
    typer.echo(f"speedup:       {f'{e.speedup:.3g}x' if e.speedup else '-'}")
    typer.echo(f"time_original: {f'{e.time_original * 1000:.3g} ms' if e.time_original else '-'}")
    typer.echo(f"rules:         {', '.join(e.rules) or '-'}")
    typer.echo("original:")
    typer.echo("  " + e.original_template)
    typer.echo("rewritten:")
    typer.echo("  " + (e.rewritten_template or "(none)"))
    if proof:
        head = str(proof.get("status", "?")) + (f" by {proof['by']}" if proof.get("by") else "") + \
            (f" ({proof['method']})" if proof.get("method") else "")
        typer.echo(f"proof:         {head}")
        for i, step in enumerate(proof.get("steps") or [], 1):
            detail = ", ".join(f"{k}={v}" for k, v in step.items() if k != "rule" and v not in ("", None))
            typer.echo(f"  {i}. {step.get('rule', '?')}" + (f": {detail}"[:300] if detail else ""))
        if proof.get("reason"):
            typer.echo(f"  reason: {str(proof['reason'])[:300]}")
    else:
        typer.echo("proof:         none stored")


def _decide(fingerprint: str, status: str, state: str | None, config: str | None, database: str | None,
            by: str | None) -> None:
    store = open_store(state, config, database)
    e = _one(store, fingerprint)
    if not e.has_rewrite:
        fail(f"{e.fingerprint}: the shape was searched and no rewrite was found: nothing to review")
    store.set_status(e.fingerprint, status, by or getpass.getuser())
    typer.echo(f"{e.fingerprint}: {status}")


ByOpt = Annotated[str | None, typer.Option("--by", help="Who decided (default: the OS user).")]


@rewrites_app.command("approve")
@handle_errors
def approve_cmd(fingerprint: FpArg, state: StateOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
                by: ByOpt = None) -> None:
    """Approve a stored rewrite: the server serves it from now on.

    Example: sluice rewrites approve 3fa2c1
    """
    _decide(fingerprint, "approved", state, config, database, by)


@rewrites_app.command("reject")
@handle_errors
def reject_cmd(fingerprint: FpArg, state: StateOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
               by: ByOpt = None) -> None:
    """Reject a stored rewrite: never served, kept so the shape is not searched again until
    the schema changes.

    Example: sluice rewrites reject 3fa2c1
    """
    _decide(fingerprint, "rejected", state, config, database, by)


@rewrites_app.command("forget")
@handle_errors
def forget_cmd(fingerprint: FpArg, state: StateOpt = None, config: ConfigOpt = None,
               database: DatabaseOpt = None) -> None:
    """Delete a stored rewrite (and its proof and decision): the shape is searched again on next sight.

    Example: sluice rewrites forget 3fa2c1
    """
    store = open_store(state, config, database)
    e = _one(store, fingerprint)
    store.drop(e.fingerprint)
    typer.echo(f"{e.fingerprint}: forgotten")
