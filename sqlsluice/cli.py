"""``sluice``: the command line, a thin shell over the SDK.  See ``sluice --help``."""

from __future__ import annotations

import importlib

from sqlsluice.cliapp import app

# Feature modules that add commands to the apps in sqlsluice.cliapp.
COMMAND_MODULES = (
    "sqlsluice.middleware.commands",    # serve, demo, query
    "sqlsluice.verifiers.commands",     # verify, bench verify
    "sqlsluice.rewriters.commands",     # rewrite, bench tpcds, bench dsb
    "sqlsluice.rewriters.review_commands",  # rewrites list|show|approve|reject|forget
    "sqlsluice.text2sql.commands",      # ask
    "sqlsluice.routers.commands",       # route train, bench route
    "sqlsluice.bench.commands",         # bench bird, bench spider, data spider, bench report
    "sqlsluice.bench.proxy",            # bench proxy
    "sqlsluice.bench.pool_proofs",      # bench rewrite-pool
    "sqlsluice.llm.commands",           # llm check, llm usage, llm prompts
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _e:  # a feature still being built
        if _e.name != _name:
            raise


def main() -> None:
    app()


if __name__ == "__main__":
    main()
