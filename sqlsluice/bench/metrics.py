"""Pure scoring functions of BIRD (EX, VES, R-VES, Soft-F1) and Spider (execution match).

Each function follows the definition in the official evaluation scripts (bird-bench/mini_dev
``evaluation/``, the BIRD dev ``evaluation_ves.py``, taoyds/test-suite-sql-eval
``exec_eval.py``); the code is ours.  Nothing here touches a database.

>>> ex_match([(1, "a")], [(1, "a"), (1, "a")])
1
>>> round(soft_f1([(1, 2)], [(1, 3)]), 3)
0.5
>>> spider_result_eq([(1, "a")], [("a", 1)], order_matters=False)
True
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import product
from typing import Any

Row = tuple[Any, ...]

LEVELS = ("simple", "moderate", "challenging")
SPIDER_LEVELS = ("easy", "medium", "hard", "extra")


def ex_match(predicted: Sequence[Row], gold: Sequence[Row]) -> int:
    """BIRD EX: 1 when the fetched rows are equal *as sets* (order and duplicates ignored)."""
    return int(set(predicted) == set(gold))


def clean_abnormal(values: Sequence[float]) -> list[float]:
    """BIRD VES outlier removal: keep values strictly within mean +/- 3 population std."""
    n = len(values)
    if n == 0:
        return []
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return [v for v in values if mean - 3 * std < v < mean + 3 * std]


def time_ratio(gold_times: Sequence[float], predicted_times: Sequence[float]) -> float:
    """Mean of gold/predicted time ratios per repetition after removing outliers.

    When every ratio is identical (std 0) the strict bounds keep nothing; the official
    script then divides by zero and counts the question as an error (0).  We do the same.
    """
    if not predicted_times or any(p <= 0 for p in predicted_times):
        return 0.0  # the official script divides by zero here and scores the question 0
    ratios = [g / p for g, p in zip(gold_times, predicted_times, strict=True)]
    kept = clean_abnormal(ratios)
    if not kept:
        return 0.0
    return sum(kept) / len(kept)


def rves_reward(ratio: float) -> float:
    """mini-dev's R-VES reward buckets on the time ratio (0 when wrong)."""
    if ratio == 0:
        return 0.0
    if ratio >= 2:
        return 1.25
    if ratio >= 1:
        return 1.0
    if ratio >= 0.5:
        return 0.75
    if ratio >= 0.25:
        return 0.5
    return 0.25


def ves_score(ratio: float) -> float:
    """Per-question VES contribution in percent: sqrt(time ratio) * 100."""
    return math.sqrt(ratio) * 100


def rves_score(ratio: float) -> float:
    """Per-question R-VES contribution in percent: sqrt(reward) * 100."""
    return math.sqrt(rves_reward(ratio)) * 100


def _row_match(pred_row: Row, gold_row: Row) -> tuple[float, float, float]:
    total = len(gold_row)
    if total == 0:  # an empty gold row: the official script divides by zero -> error -> 0
        raise ZeroDivisionError("empty gold row")
    matches = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matches
    gold_only = sum(1 for v in gold_row if v not in pred_row)
    return matches / total, pred_only / total, gold_only / total


def soft_f1(predicted: Sequence[Row], gold: Sequence[Row]) -> float:
    """mini-dev's Soft-F1: rows de-duplicated in order, paired by position, cells matched per row."""
    if not predicted and not gold:
        return 1.0
    pred = list(dict.fromkeys(predicted))
    gt = list(dict.fromkeys(gold))
    tp = fp = fn = 0.0
    for i, gold_row in enumerate(gt):
        if i >= len(pred):
            fn += 1
            continue
        m, p, g = _row_match(pred[i], gold_row)
        tp += m
        fp += p
        fn += g
    fp += max(0, len(pred) - len(gt))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


# -- Spider execution match (test-suite-sql-eval) ----------------------------------------

def _unorder_row(row: Row) -> Row:
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def _quick_reject_ok(r1: Sequence[Row], r2: Sequence[Row], order_matters: bool) -> bool:
    s1 = [_unorder_row(r) for r in r1]
    s2 = [_unorder_row(r) for r in r2]
    return s1 == s2 if order_matters else set(s1) == set(s2)


def _permutations(col_sets: list[set[Any]], r2: Sequence[Row], rng: random.Random) -> Iterator[tuple[int, ...]]:
    n = len(r2[0])
    allowed = [set(range(n)) for _ in range(n)]
    if n > 3:  # constrain the space with 20 sampled rows, as the official code does
        for _ in range(20):
            row = rng.choice(r2)
            for c1 in range(n):
                for c2 in set(allowed[c1]):
                    if row[c2] not in col_sets[c1]:
                        allowed[c1].remove(c2)
    return product(*allowed)


def spider_result_eq(r1: Sequence[Row], r2: Sequence[Row], *, order_matters: bool,
                     seed: int = 0) -> bool:
    """Spider's denotation equality: same bag of rows (a list if the gold orders) up to a column permutation."""
    if not r1 and not r2:
        return True
    if len(r1) != len(r2):
        return False
    n = len(r1[0])
    if len(r2[0]) != n:
        return False
    if not _quick_reject_ok(r1, r2, order_matters):
        return False
    col_sets = [{row[i] for row in r1} for i in range(n)]
    for perm in _permutations(col_sets, r2, random.Random(seed)):
        if len(set(perm)) != len(perm):
            continue
        r2p = list(r2) if n == 1 else [tuple(row[i] for i in perm) for row in r2]
        if order_matters:
            if list(r1) == r2p:
                return True
        elif set(r1) == set(r2p) and Counter(r1) == Counter(r2p):
            return True
    return False


# -- aggregation -------------------------------------------------------------------------

def by_level(scores: Sequence[float], levels: Sequence[str], names: Sequence[str]) -> dict[str, float | None]:
    """Mean per level and in total, in percent as given (scores already 0..100), two decimals.

    A level without questions is ``None`` (the official script would divide by zero).
    """
    out: dict[str, float | None] = {}
    for name in names:
        vals = [s for s, lv in zip(scores, levels, strict=True) if lv == name]
        out[name] = round(sum(vals) / len(vals), 2) if vals else None
    out["total"] = round(sum(scores) / len(scores), 2) if scores else None
    return out


def count_by_level(levels: Sequence[str], names: Sequence[str]) -> dict[str, int]:
    c = Counter(levels)
    out = {name: c.get(name, 0) for name in names}
    out["total"] = len(levels)
    return out
