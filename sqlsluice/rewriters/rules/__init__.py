"""The rule catalog: every rewrite rule once, in order, with its Calcite name and groups.

A rule is a pure function ``rule(expr, *, schema=None, dialect=None) -> expr`` on sqlglot
trees that returns its input unchanged when it cannot apply safely.  Rules expect
qualified column references; :func:`prepare` parses and qualifies a query first.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from sqlsluice.databases.catalog import Catalog
from sqlsluice.errors import SyntaxErrorSQL
from sqlsluice.rewriters.rules.basic import (
    constant_fold,
    distinct_remove_under_keys,
    filter_into_derived,
    left_join_remove_under_keys,
    sort_remove,
    subquery_merge,
    union_branch_prune,
    union_to_distinct,
)
from sqlsluice.rewriters.rules.counts import count_positive_to_exists
from sqlsluice.rewriters.rules.ctes import (
    cte_inline,
    cte_materialize,
    cte_not_materialized,
    cte_unused_remove,
)
from sqlsluice.rewriters.rules.fences import exists_table_materialize
from sqlsluice.rewriters.rules.semijoins import distinct_join_to_semi_join, in_to_join_under_keys
from sqlsluice.rewriters.rules.subqueries import (
    derived_aggregates_to_filtered_aggregate,
    exists_to_in,
    or_in_to_union,
    scalar_subqueries_to_filtered_aggregate,
    scalar_subquery_to_join,
)

RuleFn = Callable[..., exp.Expr]
log = logging.getLogger(__name__)
# Rules that raised on some input (a bug to fix; the input was kept): name -> count.
RULE_ERRORS: Counter[str] = Counter()


@dataclass(frozen=True)
class Rule:
    name: str
    calcite: str | None
    description: str
    fn: RuleFn
    groups: tuple[str, ...]
    needs: tuple[type, ...] = ()  # node types that must occur for the rule to apply (a cheap pre-check)
    sound: bool = True  # sound for every input the applicability checks admit


RULES: tuple[Rule, ...] = (
    Rule("scalar_subquery_to_join", "FILTER_SUB_QUERY_TO_CORRELATE",
         "correlated scalar aggregate in a WHERE comparison -> join with a grouped derived table",
         scalar_subquery_to_join, ("safe", "subquery"), (exp.Subquery,)),
    # proved: the verifier reads such count tests as EXISTS (verifiers/count_exists.py, written
    # apart from the rule), so each application is proved on the query at hand
    Rule("count_positive_to_exists", None,
         "(SELECT COUNT(*) FROM .. WHERE ..) > 0 (>= 1, <> 0) -> EXISTS (SELECT 1 FROM .. WHERE ..)",
         count_positive_to_exists, ("safe", "subquery"), (exp.Subquery,)),
    Rule("exists_to_in", "SEMI_JOIN",
         "correlated EXISTS under AND/OR -> key IN (uncorrelated subquery), hashable once",
         exists_to_in, ("safe", "subquery"), (exp.Exists,)),
    Rule("or_in_to_union", None,
         "k IN (Q1) OR k IN (Q2) -> k IN (Q1 UNION ALL Q2): one semi-join instead of an OR",
         or_in_to_union, ("safe", "subquery"), (exp.In,)),
    Rule("distinct_join_to_semi_join", "JOIN_TO_SEMI_JOIN",
         "inner join with a duplicate-free derived table used only as a filter -> EXISTS (per INTERSECT branch)",
         distinct_join_to_semi_join, ("safe", "subquery"), (exp.Subquery,)),
    Rule("exists_table_materialize", None,
         "the one table of an EXISTS correlated by = and <> -> a MATERIALIZED CTE of the columns it reads (hashed once)",
         exists_table_materialize, ("safe", "subquery"), (exp.Exists,)),
    Rule("scalar_subqueries_to_filtered_aggregate", None,
         "several uncorrelated scalar aggregates over one table -> one scan with FILTER clauses",
         scalar_subqueries_to_filtered_aggregate, ("safe", "subquery"), (exp.Subquery,)),
    Rule("derived_aggregates_to_filtered_aggregate", None,
         "cross-joined one-row aggregate derived tables over the same FROM -> one scan with FILTER clauses",
         derived_aggregates_to_filtered_aggregate, ("safe", "subquery"), (exp.Subquery,)),
    Rule("cte_not_materialized", None,
         "mark CTEs used several times NOT MATERIALIZED so each reference gets its own predicates",
         cte_not_materialized, ("safe", "cte"), (exp.CTE,)),
    Rule("cte_inline", None,
         "inline every CTE as a derived table at each reference",
         cte_inline, ("safe", "cte"), (exp.CTE,)),
    Rule("filter_into_derived", "FILTER_SET_OP_TRANSPOSE",
         "copy a single-source predicate into a derived table and each UNION ALL branch (HAVING for aggregates)",
         filter_into_derived, ("safe", "filter"), (exp.Subquery,)),
    Rule("union_branch_prune", "UNION_REMOVE",
         "drop a UNION ALL branch whose WHERE is always FALSE",
         union_branch_prune, ("safe", "filter"), (exp.Union,)),
    Rule("constant_fold", "FILTER_REDUCE_EXPRESSIONS",
         "fold constants and simplify boolean logic",
         constant_fold, ("safe", "filter")),
    Rule("cte_materialize", None,
         "mark aggregating CTEs used once MATERIALIZED (an optimisation fence)",
         cte_materialize, ("safe", "cte"), (exp.CTE,)),
    Rule("subquery_merge", "PROJECT_MERGE",
         "merge simple derived tables into the outer query",
         subquery_merge, ("safe", "merge"), (exp.Subquery, exp.CTE)),
    Rule("distinct_remove_under_keys", "AGGREGATE_REMOVE",
         "drop DISTINCT when the output keeps a key of every inner-joined table",
         distinct_remove_under_keys, ("safe", "needs-keys"), (exp.Distinct,)),
    Rule("left_join_remove_under_keys", "PROJECT_JOIN_REMOVE",
         "drop a LEFT JOIN on a full key of a table nothing else uses",
         left_join_remove_under_keys, ("safe", "needs-keys"), (exp.Join,)),
    Rule("in_to_join_under_keys", None,
         "x IN (SELECT k ...) with k provably unique (a key, DISTINCT, GROUP BY k) -> inner join",
         in_to_join_under_keys, ("safe", "needs-keys"), (exp.In,)),
    Rule("sort_remove", "SORT_REMOVE",
         "drop ORDER BY inside subqueries without LIMIT",
         sort_remove, ("safe",), (exp.Order,)),
    Rule("cte_unused_remove", None,
         "drop CTEs nothing refers to",
         cte_unused_remove, ("safe", "cleanup"), (exp.CTE,)),
    Rule("union_to_distinct", "UNION_TO_DISTINCT",
         "A UNION B -> SELECT DISTINCT * FROM (A UNION ALL B)",
         union_to_distinct, ("vocabulary",), (exp.Union,)),
)

BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}
BY_CALCITE: dict[str, Rule] = {r.calcite: r for r in RULES if r.calcite}
# Extra Calcite names LLM-R2 speaks that map onto one of our rules.
CALCITE_ALIASES: dict[str, str] = {
    "FILTER_PROJECT_TRANSPOSE": "filter_into_derived",
    "FILTER_AGGREGATE_TRANSPOSE": "filter_into_derived",
    "FILTER_SET_OP_TRANSPOSE": "filter_into_derived",
    "PROJECT_REDUCE_EXPRESSIONS": "constant_fold",
    "JOIN_REDUCE_EXPRESSIONS": "constant_fold",
    "FILTER_MERGE": "subquery_merge",
    "AGGREGATE_PROJECT_MERGE": "subquery_merge",
    "PROJECT_SUB_QUERY_TO_CORRELATE": "scalar_subquery_to_join",
    "JOIN_SUB_QUERY_TO_CORRELATE": "scalar_subquery_to_join",
    "SORT_REMOVE_CONSTANT_KEYS": "sort_remove",
    "PRUNE_EMPTY_UNION": "union_branch_prune",
}

GROUPS: dict[str, tuple[Rule, ...]] = {}
for _r in RULES:
    for _g in _r.groups:
        GROUPS[_g] = (*GROUPS.get(_g, ()), _r)
# The rules the cost-guided search explores (vocabulary-only rules rarely pay off).
SEARCH: tuple[Rule, ...] = tuple(r for r in RULES if "safe" in r.groups)


def resolve(name: str) -> Rule | None:
    """A rule by our name or by Calcite's (``FILTER_INTO_JOIN``, ``CoreRules.X``, ``x_rule``)."""
    n = name.strip()
    if n in BY_NAME:
        return BY_NAME[n]
    up = n.split(".")[-1].upper()
    if up.endswith("_RULE"):
        up = up[:-5]
    if up in BY_CALCITE:
        return BY_CALCITE[up]
    if up in CALCITE_ALIASES:
        return BY_NAME[CALCITE_ALIASES[up]]
    return BY_NAME.get(n.lower())


def prepare(sql: str | exp.Expr, schema: Catalog | None = None, dialect: str | None = None
            ) -> exp.Expr:
    """Parse (if needed) and qualify column references with their sources.

    Falls back to the parsed tree when qualification fails (unknown columns); rules that
    need qualified references then simply do not fire.
    """
    if isinstance(sql, exp.Expr):
        tree = sql
    else:
        try:
            tree = _drop_positions(sqlglot.parse_one(sql, read=dialect))
        except sqlglot.errors.ParseError as e:
            raise SyntaxErrorSQL(f"cannot parse SQL: {str(e).splitlines()[0]}") from e
    from sqlglot.optimizer.qualify import qualify

    if any(j.args.get("using") or j.args.get("method") for j in tree.find_all(exp.Join)):
        # qualify turns USING / NATURAL joins into ON, which changes what ``*`` expands to
        # (the merged column appears once, then twice): leave such queries unqualified, so
        # that the rules, which need qualified columns, do not fire
        return tree
    try:
        mapping: dict[str, object] | None = dict(schema.mapping()) if schema else None
        return _drop_positions(qualify(tree.copy(), schema=mapping, dialect=dialect,
                                       validate_qualify_columns=False, quote_identifiers=False,
                                       expand_stars=False))
    except Exception:
        return tree


_POSITIONS = ("line", "col", "start", "end")


def _drop_positions(tree: exp.Expr) -> exp.Expr:
    """Forget the parser's source positions (a dict per identifier) in place.

    They never reach the generated SQL, but every rule copies the tree first and the deep
    copy of those small dicts is most of a copy's cost.
    """
    for node in tree.walk():
        meta = node._meta
        if meta:
            for k in _POSITIONS:
                meta.pop(k, None)
            if not meta:
                node._meta = None
    return tree


def run_rule(rule: Rule, tree: exp.Expr, schema: Catalog | None, dialect: str | None) -> exp.Expr:
    """Apply one rule; a rule that raises on an odd shape counts as not applicable."""
    if rule.needs and tree.find(*rule.needs) is None:
        return tree
    try:
        return rule.fn(tree, schema=schema, dialect=dialect)
    except Exception as e:
        RULE_ERRORS[rule.name] += 1
        log.warning("rule %s raised %s: %s (query left unchanged)", rule.name, type(e).__name__, e)
        return tree


@dataclass
class Applied:
    """The outcome of :func:`apply_rules`."""

    expr: exp.Expr
    sql: str
    applied: list[str]
    unknown: list[str]
    not_fired: list[str]


def apply_rules(sql_or_tree: str | exp.Expr, rule_names: list[str], schema: Catalog | None = None,
                dialect: str | None = None, *, max_passes: int = 12) -> Applied:
    """Apply rules in the order given (each up to ``max_passes`` times, to a fixed point).

    Unknown names are ignored and reported in ``unknown``; rules that never changed the
    query are in ``not_fired``.  Used by LLM-R2's stage to apply an LLM-chosen sequence.
    """
    tree = prepare(sql_or_tree, schema, dialect)
    rules: list[Rule] = []
    unknown: list[str] = []
    for name in rule_names:
        rule = resolve(name)
        if rule is None:
            unknown.append(name)
        else:
            rules.append(rule)
    tree, applied, not_fired = fixed_point(tree, rules, lambda r, t: run_rule(r, t, schema, dialect), max_passes)
    return Applied(tree, tree.sql(dialect=dialect), applied, unknown, not_fired)


def fixed_point(tree: exp.Expr, rules: list[Rule], run: Callable[[Rule, exp.Expr], exp.Expr],
                max_passes: int = 12) -> tuple[exp.Expr, list[str], list[str]]:
    """Each rule in turn, up to ``max_passes`` times, until it returns its input unchanged:
    ``(tree, rules that fired, rules that did not)``.  ``run(rule, tree)`` applies one rule."""
    applied: list[str] = []
    not_fired: list[str] = []
    for rule in rules:
        fired = False
        for _ in range(max_passes):
            new = run(rule, tree)
            if new is tree:
                break
            tree, fired = new, True
        (applied if fired else not_fired).append(rule.name)
    return tree, applied, not_fired


__all__ = ["BY_NAME", "GROUPS", "RULES", "SEARCH", "Applied", "Rule", "apply_rules", "fixed_point", "prepare",
           "resolve"]
