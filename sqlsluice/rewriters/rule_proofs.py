"""``sluice verify rules``: each rule of the catalog applied to its templates and proved.

A template (``data/rule_templates.toml``) is a query on a small generic schema that meets
the rule's preconditions: nullable columns stand for arbitrary values, a nullable BOOLEAN
for an arbitrary predicate of the row, a keyless table for duplicates.  For each template
the rule must fire, and the verifier must prove input and output EQUIVALENT (its proof
tiers reason over bags, NULLs and three-valued logic and empty tables; its differential
tier hunts for a counterexample first).  A rule is *template-proved* when every template
of it is.

What the serving gate relies on is stronger and per query: every rule application that is
served is proved on the query at hand (``api.certify``), so a rule whose template is not
proved is never served unproved; this command says which rules are proved once for all
inputs their templates stand for, and fails when a template is refuted or does not fire.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlglot import exp

from sqlsluice.errors import SluiceError
from sqlsluice.rewriters.rules import BY_NAME, RULES, Rule, fixed_point, prepare, run_rule


@dataclass
class TemplateResult:
    rule: str
    sql: str
    rewritten: str = ""
    fired: bool = False
    verdict: str = "UNKNOWN"
    method: str = ""
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RuleResult:
    rule: str
    templates: list[TemplateResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.templates:
            return "NO TEMPLATE"
        if any(t.verdict == "NOT_EQUIVALENT" for t in self.templates):
            return "REFUTED"
        if any(not t.fired for t in self.templates):
            return "DOES NOT FIRE"
        if all(t.verdict == "EQUIVALENT" for t in self.templates):
            return "PROVED"
        return "UNPROVED"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "status": self.status,
                "templates": [t.__dict__ for t in self.templates]}


def load_templates() -> tuple[str, list[dict[str, str]]]:
    text = resources.files("sqlsluice.rewriters").joinpath("data/rule_templates.toml").read_text()
    data = tomllib.loads(text)
    return str(data["schema"]), list(data.get("template", []))


def prove_rules(names: list[str] | None = None, *, budget_s: float = 3.0) -> list[RuleResult]:
    """Prove every rule (or the named ones) on its templates."""
    from sqlsluice.verifiers import verify
    from sqlsluice.verifiers.schema import load_schema

    ddl, templates = load_templates()
    wanted = names or [r.name for r in RULES]
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise SluiceError(f"unknown rule(s): {', '.join(unknown)}")
    out: dict[str, RuleResult] = {n: RuleResult(n) for n in wanted}
    catalogs: dict[str, Any] = {}
    for t in templates:
        name = t["rule"]
        if name not in out:
            continue
        dialect = t.get("dialect", "duckdb")
        if dialect not in catalogs:
            catalogs[dialect] = load_schema(ddl, dialect)
        cat = catalogs[dialect]
        rule = BY_NAME[name]
        res = TemplateResult(name, t["sql"])
        t0 = time.monotonic()
        tree = prepare(t["sql"], cat, dialect)
        def run(r: Rule, x: exp.Expr, cat: Any = cat, dialect: str = dialect) -> exp.Expr:
            return run_rule(r, x, cat, dialect)

        new, applied, _ = fixed_point(tree, [rule], run)
        res.fired = bool(applied)
        res.rewritten = new.sql(dialect=dialect)
        if res.fired:
            try:
                v = verify(t["sql"], res.rewritten, cat, dialect, time_budget_s=budget_s)
                res.verdict, res.method, res.reason = v.verdict, v.method, v.reason
            except SluiceError as e:
                res.verdict, res.reason = "ERROR", e.message
        else:
            res.reason = "the rule did not fire on its template"
        res.seconds = time.monotonic() - t0
        out[name].templates.append(res)
    return list(out.values())
