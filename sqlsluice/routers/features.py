"""Question and schema-link features for complexity routing.

One :class:`RouteInput` per question: the text, the evidence and the linked schema's
shape.  :func:`features` turns it into a fixed, named numeric vector (``FEATURE_NAMES``):
link structure (linked tables/columns, join edges, value matches, schema size), evidence
shape (length, formulas, equalities, backticked columns), and question cues (aggregation,
comparison, superlative, ratio/percentage, grouping, negation, nesting words, literals).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_W = re.compile(r"[A-Za-z]+")

CUES: dict[str, tuple[str, ...]] = {
    "agg": ("how many", "number of", "count", "total", "sum", "average", "avg", "mean", "amount"),
    "extreme": ("highest", "lowest", "most", "least", "max", "min", "maximum", "minimum", "top", "largest",
                "smallest", "biggest", "best", "worst", "first", "last", "oldest", "youngest", "latest",
                "earliest"),
    "compare": ("more than", "less than", "greater", "fewer", "over", "under", "at least", "at most", "between",
                "before", "after", "older", "younger", "higher", "lower", "exceed", "above", "below", "than"),
    "ratio": ("ratio", "percentage", "percent", "proportion", "rate", "difference", "times", "divide", "share",
              "increase", "decrease", "gap"),
    "group": ("each", "per", "every", "for all", "group", "by"),
    "negation": ("not", "no", "never", "without", "except", "neither", "nor", "none"),
    "nest": ("whose", "which", "that have", "who have", "among", "of those", "of the", "in which", "where"),
    "list": ("list", "name", "names", "give", "show", "state", "provide", "identify", "indicate"),
    "time": ("year", "month", "date", "day", "time", "age", "born", "birthday", "season"),
    "distinct": ("different", "distinct", "unique", "types of", "kinds of"),
}
EV_OPS = ("divide", "subtract", "sum", "count", "multiply", "cast", "avg", "max", "min", "iif", "case",
          "strftime", "substr", "like", "percentage", "*", "/", "-", "+", ">", "<")


@dataclass
class RouteInput:
    """What a router sees about one question before any SQL exists."""

    question: str
    evidence: str | None = None
    linked_tables: int = 1
    linked_columns: int = 1
    column_hits: int = 0
    join_edges: int = 0
    value_matches: int = 0
    total_tables: int = 1
    total_columns: int = 1
    db: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def _count(text: str, phrases: tuple[str, ...]) -> int:
    low = f" {text.lower()} "
    n = 0
    for p in phrases:
        if p.isalpha() or " " in p:
            n += len(re.findall(rf"\b{re.escape(p)}\b", low))
        else:
            n += low.count(p)
    return n


FEATURE_NAMES: list[str] = [
    "linked_tables", "linked_columns", "column_hits", "join_edges", "value_matches", "total_tables",
    "total_columns", "q_words", "q_numbers", "q_quoted", "q_capitals", "q_superlatives", "q_and",
    "q_clauses", *[f"cue_{k}" for k in CUES],
    "ev_present", "ev_words", "ev_eq", "ev_ops", "ev_backticks", "ev_clauses", "ev_numbers", "ev_refers",
]


def features(x: RouteInput) -> list[float]:
    q = x.question
    ev = x.evidence or ""
    qw = _W.findall(q)
    caps = sum(1 for i, w in enumerate(qw) if i > 0 and w[:1].isupper())
    sup = sum(1 for w in qw if len(w) > 4 and w.lower().endswith("est"))
    vals: list[float] = [
        x.linked_tables, x.linked_columns, x.column_hits, x.join_edges, x.value_matches, x.total_tables,
        x.total_columns, len(qw), len(re.findall(r"\d+(?:\.\d+)?", q)), len(re.findall(r"'[^']+'|\"[^\"]+\"", q)),
        caps, sup, _count(q, ("and",)), q.count(",") + q.count(";"),
    ]
    vals.extend(_count(q, phr) for phr in CUES.values())
    low_ev = ev.lower()
    vals.extend([
        1.0 if ev.strip() else 0.0, len(_W.findall(ev)), ev.count("="), _count(low_ev, EV_OPS),
        ev.count("`") // 2, ev.count(";") + 1 if ev.strip() else 0, len(re.findall(r"\d+(?:\.\d+)?", ev)),
        _count(low_ev, ("refers to", "means", "stands for")),
    ])
    return [float(v) for v in vals]
