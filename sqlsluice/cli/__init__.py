"""``sluice``: the command line, a thin shell over the SDK.  See ``sluice --help``.

Every command lives in this package; the engines and benchmarks know nothing of the CLI.
"""

from __future__ import annotations

from sqlsluice.cli import (  # noqa: F401  (each module adds its commands to the apps in cli.app)
    ask,  # ask
    bench,  # bench bird|spider|agree|report|rules-fuzz|proxy|pool|rewrite-pool, data spider
    llm,  # llm check|usage|prompts
    rewrite,  # rewrite, bench tpcds, bench dsb
    rewrites,  # rewrites list|show|approve|reject|forget
    route,  # route train, bench route
    serve,  # serve, demo, query
    verify,  # verify, bench verify
)
from sqlsluice.cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
