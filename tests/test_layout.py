"""The layout shows the architecture, and this test keeps it that way.

* the wire layer (``middleware``) knows no engine: it imports none of the rewriter, ASK,
  router, verifier or LLM packages, nor the composition root, the CLI or the benchmarks;
* the engines know no wire: none of them imports ``middleware``, ``serving``, ``cli`` or
  ``bench``;
* ``serving`` (the composition root) is the only package that joins wire and engines; it
  never imports the CLI or the benchmarks;
* commands live in ``cli`` alone (nothing else imports typer or the CLI app); benchmarks sit
  on top (nothing but ``cli`` imports ``bench``).

Every import counts, also the ones inside functions (lazy imports are still dependencies).
"""

from __future__ import annotations

import ast
from pathlib import Path

import sqlsluice

ROOT = Path(sqlsluice.__file__).parent
ENGINES = ("rewriters", "text2sql", "routers", "verifiers", "llm")

# package -> packages of sqlsluice it must never import
FORBIDDEN = {
    "middleware": (*ENGINES, "serving", "cli", "bench"),
    **{e: ("middleware", "serving", "cli", "bench") for e in ENGINES},
    "databases": (*ENGINES, "middleware", "serving", "cli", "bench"),
    "serving": ("cli", "bench"),
    "bench": ("cli",),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return out


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0].removesuffix(".py") if len(rel) > 1 else ""


def test_layers_import_only_downwards() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        pkg = package_of(path)
        for lineno, mod in imports_of(path):
            parts = mod.split(".")
            if parts[0] != "sqlsluice" or len(parts) < 2:
                continue
            if parts[1] in FORBIDDEN.get(pkg, ()):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{lineno} ({pkg}) imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_commands_live_in_cli() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        if package_of(path) == "cli" or path == ROOT / "__main__.py":  # python -m sqlsluice
            continue
        for lineno, mod in imports_of(path):
            if mod == "typer" or mod.startswith(("typer.", "sqlsluice.cli")):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{lineno} imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_every_command_is_registered() -> None:
    from typer.main import get_command

    from sqlsluice.cli import app

    root = get_command(app)
    names = set(root.commands)  # type: ignore[attr-defined]
    assert {"serve", "demo", "query", "rewrite", "rewrites", "ask", "verify", "llm", "bench", "route",
            "data"} <= names
    bench = set(root.commands["bench"].commands)  # type: ignore[attr-defined]
    assert {"proxy", "pool", "rewrite-pool", "rules-fuzz", "tpcds", "dsb", "verify", "route", "bird",
            "spider", "agree", "report"} <= bench
