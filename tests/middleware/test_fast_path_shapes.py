"""The fast path's shape cache (``ProductPipeline._shape``): a statement whose form (ASCII
digits as ``0``) was seen costs one dict lookup instead of the literal regex, and the key it
gets must be the one the regex gives, for any statement: identifiers with digits (``t1`` vs
``t2``), numbers in quotes, exponents, non-ASCII digits.  Checked on random statements."""

from __future__ import annotations

import random

from sqlsluice.serving.pipeline import _LITERALS, _ZERO_DIGITS, ProductPipeline


def _bare() -> ProductPipeline:
    """Only the cache of a ProductPipeline (``_shape`` uses nothing else)."""
    pp = object.__new__(ProductPipeline)
    pp._shapes = {}
    return pp


def _form(sql: str) -> bytes:
    return sql.encode("utf-8", "surrogatepass").translate(_ZERO_DIGITS)


PIECES = ["SELECT", " ", "v", "t1", "t2", "x9y", "=", "<", "(", ")", ",", "'a1'", "'7'", "'it''s 3'", "''", "1", "23",
          "4.5", "6e7", "8E-9", "0", "_2", "a_3", "٣", "é4", ";", "-", ".", "e5", "1x", "WHERE", "k", "FROM", "\n"]


def test_the_cached_shape_is_always_the_regex_shape() -> None:
    rnd = random.Random(12)
    pp = _bare()
    checked = hits = 0
    for _ in range(20000):
        sql = "SELECT " + "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 12)))
        cached = pp._shapes.get(_form(sql))
        want = _LITERALS.sub("?", sql)
        if cached is not None:
            hits += 1
            assert cached == want, sql
        assert pp._shape(sql, _form(sql)) == want
        checked += 1
    assert checked == 20000 and hits > 1000  # the cache did answer, and never wrongly


def test_numbers_share_a_form_identifiers_with_digits_do_not_share_a_key() -> None:
    pp = _bare()
    assert pp._shape("SELECT v FROM t WHERE k = 12", _form("SELECT v FROM t WHERE k = 12")) == \
        "SELECT v FROM t WHERE k = ?"
    assert pp._shapes.get(_form("SELECT v FROM t WHERE k = 98")) == "SELECT v FROM t WHERE k = ?"
    # a digit outside a literal: the form is not remembered (t1 and t2 have the same form)
    assert pp._shape("SELECT v FROM t1 WHERE k = 1", _form("SELECT v FROM t1 WHERE k = 1")) == \
        "SELECT v FROM t1 WHERE k = ?"
    assert _form("SELECT v FROM t2 WHERE k = 1") not in pp._shapes
