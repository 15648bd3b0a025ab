"""``sluice bench agree``: the agreement router evaluated offline on recorded predictions.

Several models' predictions for the same questions (BIRD's format, SQLite SQL: the six models'
BIRD mini-dev predictions in ``../shared/data/bird/predictions``) are compared pairwise with
the equivalence verifier over the schema alone, no database:

- the **verdict matrix**: for models i and j, the share of questions whose two predictions are
  proved equivalent, refuted (a counterexample database), or undecided (UNKNOWN or ERROR);
- **gold**: each model against the gold SQL (proved equal to gold = a lower bound on EX);
- **agreement of two cheap models**: coverage (the share of questions whose cheap answer stands
  because another cheap model agrees) and what the accepted answers are worth against gold;
- a **simulated cascade**: models ordered by cost; the two cheapest answer first, and while no
  two answers so far agree the next model by cost is asked; the first answer that another
  agrees with stands, else the last model's answer is taken.  Cost per question is the sum of
  the models asked, from a price table (USD per 1M input / output tokens, stated in the
  output) and estimated tokens (prompt: the schema's CREATE TABLE text, question and evidence;
  output: the predicted SQL; the stand-in tokenizer counts words and punctuation).

Two agreement policies are reported: ``proved`` (EQUIVALENT only, what the router serves without
a live database) and ``unrefuted`` (EQUIVALENT or UNKNOWN: no counterexample found; on a live
database the router also asks for identical rows).

    >>> model_name(Path("mini_dev_gpt-35-turbo_sqlite.json"))
    'gpt-35-turbo'
    >>> price_for_model("meta-llama-3-8b-instruct-2", DEFAULT_PRICES)
    (0.05, 0.08)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlsluice.bench.evaluate import Prediction, Question, load_predictions
from sqlsluice.bench.semantic import SchemaSource
from sqlsluice.errors import InvalidParameterValue, SluiceError
from sqlsluice.verifiers.compare import Semantics

GOLD = "gold"
SHORT = {"EQUIVALENT": "EQ", "NOT_EQUIVALENT": "NE", "UNKNOWN": "UN", "ERROR": "ER"}
POLICIES: dict[str, frozenset[str]] = {"proved": frozenset({"EQ"}), "unrefuted": frozenset({"EQ", "UN"})}

# USD per 1M input / output tokens: the providers' list prices as published in 2024 (OpenAI for
# GPT-4 and GPT-3.5-turbo-0125; Groq for Llama 3 and Mixtral; Azure AI serverless for Phi-3-medium).
# Assumed, not measured: pass --price NAME=IN:OUT to use others.  Matched by name prefix/substring.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4": (30.0, 60.0),
    "gpt-35-turbo": (0.50, 1.50),
    "gpt-3.5-turbo": (0.50, 1.50),
    "meta-llama-3-70b": (0.59, 0.79),
    "meta-llama-3-8b": (0.05, 0.08),
    "mixtral-8x7b": (0.24, 0.24),
    "phi-3-medium": (0.17, 0.68),
}

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def model_name(path: Path) -> str:
    """``mini_dev_<model>_<dialect>.json`` -> ``<model>``."""
    stem = path.stem
    stem = re.sub(r"^(mini_dev|dev)_", "", stem)
    return re.sub(r"_(sqlite|postgresql|mysql)$", "", stem)


def price_for_model(name: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The longest key of ``prices`` that ``name`` contains (case-insensitive)."""
    n = name.lower()
    hits = [k for k in prices if k.lower() in n]
    return prices[max(hits, key=len)] if hits else None


def parse_prices(values: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``["gpt-4=30:60", "phi-3=0.1:0.1"]`` -> ``{"gpt-4": (30.0, 60.0), ...}``."""
    out: dict[str, tuple[float, float]] = {}
    for v in values:
        name, _, rest = v.partition("=")
        try:
            a, _, b = rest.partition(":")
            out[name.strip()] = (float(a), float(b or a))
        except ValueError:
            raise InvalidParameterValue(f"--price {v!r}: use NAME=IN:OUT (USD per 1M tokens)") from None
    return out


@dataclass
class Models:
    names: list[str]
    predictions: dict[str, dict[int, Prediction]]
    files: dict[str, str] = field(default_factory=dict)


def load_models(folder: Path, questions: Sequence[Question], *, dialect: str = "sqlite",
                only: Sequence[str] | None = None) -> Models:
    """Every ``*_<dialect>.json`` prediction file in ``folder`` (or only the named models)."""
    files = sorted(folder.glob(f"*_{dialect}.json")) or sorted(folder.glob("*.json"))
    if not files:
        raise InvalidParameterValue(f"no prediction files (*_{dialect}.json) in {folder}")
    m = Models(names=[], predictions={})
    for f in files:
        name = model_name(f)
        if only and name not in only:
            continue
        m.names.append(name)
        m.predictions[name] = load_predictions(f, questions)
        m.files[name] = str(f)
    if only:
        missing = [n for n in only if n not in m.names]
        if missing:
            raise InvalidParameterValue(f"no predictions for {', '.join(missing)} in {folder}: have "
                                        + ", ".join(model_name(f) for f in files))
    if len(m.names) < 2:
        raise InvalidParameterValue(f"need at least two models' predictions, found {len(m.names)} in {folder}")
    return m


# -- verdicts ----------------------------------------------------------------------------------

def pair_key(a: str, b: str) -> str:
    return f"{a}|{b}" if a <= b else f"{b}|{a}"


def verdicts_for_question(q: Question, sqls: dict[str, str | None], schemas: SchemaSource, *, budget_s: float,
                          semantics: Semantics) -> dict[str, str]:
    """Short verdicts (EQ/NE/UN/ER) for every pair of ``sqls`` (gold included as ``"gold"``)."""
    from sqlsluice.verifiers.batch import verify_pair

    try:
        cat = schemas.catalog(q.db_id)
    except SluiceError:
        cat = None
    out: dict[str, str] = {}
    seen: dict[tuple[str, str], str] = {}
    for a, b in itertools.combinations(sorted(sqls), 2):
        sa, sb = sqls[a], sqls[b]
        if not sa or not sb or cat is None:
            out[pair_key(a, b)] = "ER"
            continue
        na, nb = " ".join(sa.split()), " ".join(sb.split())
        if na == nb:
            out[pair_key(a, b)] = "EQ"
            continue
        k = (na, nb) if na <= nb else (nb, na)
        if k not in seen:
            v = verify_pair(sa, sb, cat, "sqlite", semantics=semantics, time_budget_s=budget_s)
            seen[k] = SHORT.get(v.verdict, "ER")
        out[pair_key(a, b)] = seen[k]
    return out


def collect(questions: Sequence[Question], models: Models, schemas: SchemaSource, *, budget_s: float = 1.0,
            semantics: Semantics = "set", progress: Callable[[int, int], None] | None = None
            ) -> list[dict[str, Any]]:
    """One record per question: ``{idx, db_id, difficulty, verdicts: {"a|b": "EQ", ...}}``."""
    rows = []
    for n, q in enumerate(questions):
        sqls: dict[str, str | None] = {}
        for m in models.names:
            p = models.predictions[m].get(q.idx)
            sqls[m] = p.sql if p is not None and p.sql.strip() else None
        if q.sql.strip():
            sqls[GOLD] = q.sql
        rows.append({"idx": q.idx, "db_id": q.db_id, "difficulty": q.difficulty,
                     "verdicts": verdicts_for_question(q, sqls, schemas, budget_s=budget_s, semantics=semantics)})
        if progress is not None:
            progress(n + 1, len(questions))
    return rows


# -- analysis ----------------------------------------------------------------------------------

def _share(n: int, total: int) -> float:
    return round(100.0 * n / total, 2) if total else 0.0


def matrix(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``m[a][b] = {"proved": %, "refuted": %, "undecided": %}`` over the questions."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a in names:
        out[a] = {}
        for b in names:
            if a == b:
                continue
            vs = [r["verdicts"].get(pair_key(a, b), "ER") for r in rows]
            out[a][b] = {"proved": _share(vs.count("EQ"), len(vs)), "refuted": _share(vs.count("NE"), len(vs)),
                         "undecided": _share(vs.count("UN") + vs.count("ER"), len(vs))}
    return out


def versus_gold(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, float]]:
    return {m: {"proved": _share(sum(r["verdicts"].get(pair_key(m, GOLD)) == "EQ" for r in rows), len(rows)),
                "refuted": _share(sum(r["verdicts"].get(pair_key(m, GOLD)) == "NE" for r in rows), len(rows)),
                "undecided": _share(sum(r["verdicts"].get(pair_key(m, GOLD)) in ("UN", "ER", None) for r in rows),
                                    len(rows))}
            for m in names}


def _gold_outcome(row: dict[str, Any], model: str) -> str:
    return row["verdicts"].get(pair_key(model, GOLD), "ER")


def pair_agreement(rows: Sequence[dict[str, Any]], cheap: str, partner: str, policy: str) -> dict[str, Any]:
    """The agree router with two models: ``cheap``'s answer stands when ``partner`` agrees."""
    ok = POLICIES[policy]
    accepted = [r for r in rows if r["verdicts"].get(pair_key(cheap, partner)) in ok]
    rejected = [r for r in rows if r["verdicts"].get(pair_key(cheap, partner)) not in ok]
    n = len(accepted)
    return {"cheap": cheap, "partner": partner, "policy": policy, "questions": len(rows),
            "coverage": _share(n, len(rows)),
            "accepted_proved_gold": _share(sum(_gold_outcome(r, cheap) == "EQ" for r in accepted), n),
            "accepted_refuted_by_gold": _share(sum(_gold_outcome(r, cheap) == "NE" for r in accepted), n),
            "rejected_cheap_proved_gold": _share(sum(_gold_outcome(r, cheap) == "EQ" for r in rejected), len(rejected))}


def question_cost(q: Question, sql: str | None, schema_tokens: int, price: tuple[float, float]) -> float:
    """Estimated USD of one model's call for ``q``."""
    t_in = schema_tokens + count_tokens(q.question) + count_tokens(q.evidence)
    t_out = count_tokens(sql or "")
    return (t_in * price[0] + t_out * price[1]) / 1e6


def cascade(rows: Sequence[dict[str, Any]], order: Sequence[str], costs: dict[str, list[float]],
            policy: str) -> dict[str, Any]:
    """Ask the two cheapest, escalate while no two answers agree; the agreed (or last) answer stands."""
    ok = POLICIES[policy]
    stops = {m: 0 for m in order[1:]}
    total_cost = 0.0
    proved = refuted = 0
    answered_by: dict[str, int] = {m: 0 for m in order}
    for qi, r in enumerate(rows):
        asked = list(order[:2])
        answer: str | None = None
        while True:
            for a, b in itertools.combinations(asked, 2):
                if r["verdicts"].get(pair_key(a, b)) in ok:
                    answer = a  # the cheaper of the first agreeing pair
                    break
            if answer is not None or len(asked) == len(order):
                break
            asked.append(order[len(asked)])
        final = answer if answer is not None else asked[-1]
        stops[asked[-1]] += 1
        answered_by[final] += 1
        total_cost += sum(costs[m][qi] for m in asked)
        g = _gold_outcome(r, final)
        proved += g == "EQ"
        refuted += g == "NE"
    n = len(rows)
    return {"policy": policy, "order": list(order), "questions": n,
            "stopped_at": {m: _share(c, n) for m, c in stops.items()},
            "coverage_two_cheapest": _share(stops[order[1]], n),
            "answered_by": {m: _share(c, n) for m, c in answered_by.items()},
            "cost_usd_per_1k_questions": round(1000 * total_cost / n, 4) if n else 0.0,
            "proved_gold": _share(proved, n), "refuted_by_gold": _share(refuted, n)}


def evaluate(questions: Sequence[Question], models: Models, schemas: SchemaSource, *, budget_s: float = 1.0,
             prices: dict[str, tuple[float, float]] | None = None, semantics: Semantics = "set",
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Everything ``sluice bench agree`` reports (see the module docstring)."""
    table = {**DEFAULT_PRICES, **(prices or {})}
    model_prices: dict[str, tuple[float, float]] = {}
    for m in models.names:
        p = price_for_model(m, table)
        if p is None:
            raise InvalidParameterValue(f"no price for model {m!r}: pass --price {m}=IN:OUT (USD per 1M tokens)")
        model_prices[m] = p
    rows = collect(questions, models, schemas, budget_s=budget_s, semantics=semantics, progress=progress)
    schema_tokens: dict[str, int] = {}
    for q in questions:
        if q.db_id not in schema_tokens:
            try:
                cat = schemas.catalog(q.db_id)
                schema_tokens[q.db_id] = sum(count_tokens(f"CREATE TABLE {t.name} (" + ", ".join(
                    f"{c.name} {c.type}" for c in t.columns) + ")") for t in cat.tables)
            except SluiceError:
                schema_tokens[q.db_id] = 0
    costs = {m: [question_cost(q, (models.predictions[m].get(q.idx) or Prediction(q.idx, "", None)).sql,
                               schema_tokens[q.db_id], model_prices[m]) for q in questions] for m in models.names}
    for qi, r in enumerate(rows):
        r["cost_usd"] = {m: round(costs[m][qi], 8) for m in models.names}
    mean_cost = {m: sum(c) / len(c) if c else 0.0 for m, c in costs.items()}
    order = sorted(models.names, key=lambda m: (mean_cost[m], m))
    has_gold = any(q.sql.strip() for q in questions)
    out: dict[str, Any] = {
        "questions": len(questions), "models": list(models.names), "files": models.files,
        "budget_s": budget_s, "semantics": semantics, "dialect": "sqlite",
        "prices_usd_per_1m_tokens": {m: list(model_prices[m]) for m in models.names},
        "cost_note": "cost per call = (prompt tokens x input price + output tokens x output price) / 1e6; prompt "
                     "tokens: the schema's CREATE TABLE text (names and types), question and evidence; output: the "
                     "predicted SQL; tokens counted as words and punctuation; prices are assumed list prices",
        "cost_usd_per_1k_questions": {m: round(1000 * mean_cost[m], 4) for m in order},
        "order_by_cost": order,
        "matrix": matrix(rows, models.names),
        "gold": versus_gold(rows, models.names) if has_gold else None,
        "two_cheapest": {p: pair_agreement(rows, order[0], order[1], p) for p in POLICIES},
        "pairs": {p: [pair_agreement(rows, a, b, p) for a in order for b in order if a != b] for p in POLICIES},
        "cascade": {p: cascade(rows, order, costs, p) for p in POLICIES},
        "baselines": {m: {"cost_usd_per_1k_questions": round(1000 * mean_cost[m], 4),
                          "proved_gold": versus_gold(rows, [m])[m]["proved"] if has_gold else None}
                      for m in order},
        "per_question": rows,
    }
    return out


def format_report(rep: dict[str, Any]) -> str:
    """Markdown: the matrix (proved / refuted / undecided %), gold, and the cascade."""
    names = rep["models"]
    lines = [f"{rep['questions']} questions, budget {rep['budget_s']} s per pair; cells: proved / refuted / "
             "undecided (% of questions)", "", "| | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for a in names:
        cells = []
        for b in names:
            c = rep["matrix"][a].get(b)
            cells.append("-" if c is None else f"{c['proved']:.0f} / {c['refuted']:.0f} / {c['undecided']:.0f}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    if rep["gold"]:
        lines += ["", "| model | $/1k questions | proved = gold | refuted by gold | undecided |", "|---|---|---|---|---|"]
        for m in rep["order_by_cost"]:
            g = rep["gold"][m]
            lines.append(f"| {m} | {rep['cost_usd_per_1k_questions'][m]:.4f} | {g['proved']:.1f} | "
                         f"{g['refuted']:.1f} | {g['undecided']:.1f} |")
    lines += ["", "| policy | two-cheapest coverage | accepted proved = gold | cascade $/1k | cascade proved = gold "
              "| cascade refuted by gold | stopped at |", "|---|---|---|---|---|---|---|"]
    for p, c in rep["cascade"].items():
        t = rep["two_cheapest"][p]
        stops = ", ".join(f"{m} {v:.0f}%" for m, v in c["stopped_at"].items())
        lines.append(f"| {p} | {t['coverage']:.1f}% | {t['accepted_proved_gold']:.1f}% | "
                     f"{c['cost_usd_per_1k_questions']:.4f} | {c['proved_gold']:.1f}% | {c['refuted_by_gold']:.1f}% "
                     f"| {stops} |")
    return "\n".join(lines)
