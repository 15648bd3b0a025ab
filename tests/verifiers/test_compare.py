from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlsluice.verifiers import compare_results


def test_bag_counts_duplicates() -> None:
    assert not compare_results([(1,), (1,)], [(1,)])
    assert compare_results([(1,), (1,), (2,)], [(2,), (1,), (1,)])


def test_set_semantics_ignores_duplicates() -> None:
    assert compare_results([(1,), (1,)], [(1,)], semantics="set")
    assert not compare_results([(1,), (2,)], [(1,)], semantics="set")


def test_null_safe_and_type_tolerant() -> None:
    assert compare_results([(None, Decimal("1.50"))], [(None, 1.5)])
    assert compare_results([(1, 2.0)], [(1.0, 2)])
    assert not compare_results([(None,)], [(0,)])
    assert compare_results([(dt.date(2000, 1, 1),)], [(dt.datetime(2000, 1, 1),)])


def test_float_tolerance() -> None:
    assert compare_results([(0.1 + 0.2,)], [(0.3,)])
    assert not compare_results([(0.3001,)], [(0.3,)])
    assert compare_results([(0.3001,)], [(0.3,)], float_tol=1e-3)


def test_ordered_comparison() -> None:
    assert compare_results([(1,), (2,)], [(2,), (1,)])
    assert not compare_results([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert compare_results([(1,), (2,)], [(1,), (2,)], ordered=True)


def test_different_widths_differ() -> None:
    assert not compare_results([(1, 2)], [(1,)])
