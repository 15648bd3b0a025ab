"""The metric definitions, checked on cases worked out by hand from the official scripts."""

from __future__ import annotations

import math

import pytest

from sqlsluice.bench import metrics


def test_ex_is_set_equality_ignoring_order_and_duplicates() -> None:
    assert metrics.ex_match([(1,), (2,)], [(2,), (1,), (1,)]) == 1
    assert metrics.ex_match([(1,), (2,)], [(1,)]) == 0
    assert metrics.ex_match([], []) == 1
    assert metrics.ex_match([(1, 2)], [(2, 1)]) == 0  # columns are not permuted by BIRD


def test_soft_f1_matches_a_hand_computed_value() -> None:
    # gold rows (1,'a'), (2,'b'); predicted (1,'a'), (2,'c'), (3,'d'):
    # row0: 2 matches; row1: 1 match, 1 pred-only, 1 gold-only; row2: extra predicted row.
    # tp = 1 + 0.5 = 1.5, fp = 0.5 + 1 = 1.5, fn = 0.5 -> P = 0.5, R = 0.75, F1 = 0.6
    assert metrics.soft_f1([(1, "a"), (2, "c"), (3, "d")], [(1, "a"), (2, "b")]) == pytest.approx(0.6)
    assert metrics.soft_f1([], []) == 1.0
    assert metrics.soft_f1([], [(1,)]) == 0.0
    # duplicates are dropped before rows are paired
    assert metrics.soft_f1([(1,), (1,), (2,)], [(1,), (2,)]) == 1.0


def test_outliers_beyond_three_sigma_are_removed_and_identical_ratios_score_zero() -> None:
    values = [1.0] * 20 + [100.0]
    kept = metrics.clean_abnormal(values)
    assert 100.0 not in kept and len(kept) == 20
    # std 0: the strict bounds keep nothing; the official script then fails and scores 0
    assert metrics.time_ratio([2.0, 2.0], [1.0, 1.0]) == 0.0
    assert metrics.time_ratio([2.0, 2.2, 1.8], [1.0, 1.0, 1.0]) == pytest.approx(2.0)


@pytest.mark.parametrize(("ratio", "reward"), [(0, 0), (0.1, 0.25), (0.25, 0.5), (0.49, 0.5), (0.5, 0.75),
                                               (0.99, 0.75), (1.0, 1.0), (1.99, 1.0), (2.0, 1.25), (50, 1.25)])
def test_rves_buckets(ratio: float, reward: float) -> None:
    assert metrics.rves_reward(ratio) == reward
    assert metrics.rves_score(ratio) == pytest.approx(math.sqrt(reward) * 100)


def test_spider_execution_match_permutes_columns_and_respects_order() -> None:
    g = [(1, "a"), (2, "b")]
    assert metrics.spider_result_eq(g, [("b", 2), ("a", 1)], order_matters=False)
    assert not metrics.spider_result_eq(g, [("b", 2), ("a", 1)], order_matters=True)
    assert metrics.spider_result_eq(g, [("a", 1), ("b", 2)], order_matters=True)
    # bag semantics: duplicates count
    assert not metrics.spider_result_eq([(1,), (1,)], [(1,), (2,)], order_matters=False)
    assert not metrics.spider_result_eq([(1,), (1,), (2,)], [(1,), (2,), (2,)], order_matters=False)
    assert not metrics.spider_result_eq([(1, 2)], [(1,)], order_matters=False)


def test_by_level_rounds_to_two_decimals_and_marks_empty_levels() -> None:
    out = metrics.by_level([100.0, 0.0, 0.0], ["simple", "simple", "moderate"], metrics.LEVELS)
    assert out == {"simple": 50.0, "moderate": 0.0, "challenging": None, "total": 33.33}
