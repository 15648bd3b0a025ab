"""The Typer apps that make up ``sluice``; feature modules add commands to them.

Each feature keeps its commands in ``sqlsluice/<feature>/commands.py`` and decorates
these apps; :mod:`sqlsluice.cli` imports them all.  Heavy imports go inside commands.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from sqlsluice.errors import SluiceError

app = typer.Typer(
    name="sluice",
    help="sqlsluice: a PostgreSQL-wire proxy that answers questions with SQL and serves verified faster rewrites.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: proxy overhead, verifier, TPC-DS/DSB rewrites, BIRD/Spider, routing.",
                        no_args_is_help=True)
data_app = typer.Typer(help="Build benchmark databases (Spider) from ../shared/data.", no_args_is_help=True)
route_app = typer.Typer(help="Train and inspect text-to-SQL routers.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
app.add_typer(route_app, name="route")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error (passwords masked) and exit non-zero."""
    from sqlsluice.logs import mask

    first = message.strip().splitlines()[0] if message.strip() else "error"
    typer.echo(f"error: {mask(first)}", err=True)
    raise typer.Exit(code)


def fail_all(errors: list[str], code: int = 2) -> None:
    """Print every error on its own line (passwords masked) and exit non-zero."""
    from sqlsluice.logs import mask

    for line in errors:
        typer.echo(f"error: {mask(line)}", err=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn SluiceError (and file errors) into a one-line message and exit code 2; a config
    with several mistakes (``ConfigInvalid``) prints one line per mistake."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SluiceError as e:
            errors = getattr(e, "errors", None)
            if isinstance(errors, list) and errors:
                fail_all([str(x) for x in errors])
            fail(e.message)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            fail(f"{e.strerror}: {e.filename}")
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
