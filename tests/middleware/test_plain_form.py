"""Transaction pooling remembers ``plain_query`` under a statement's digit form
(``upstream.plain_form``): a statement that differs from one seen before only in its ASCII
digits gets the remembered answer, which must be ``plain_query``'s own for every statement.
Checked on random statements built from pieces that move each of plain_query's tests (the
head, a ``;`` inside, the advisory-lock and set_config names, digits in and around them)."""

from __future__ import annotations

import random

from sqlsluice.middleware import upstream
from sqlsluice.middleware.pipeline import statement_form
from sqlsluice.middleware.upstream import plain_form, plain_query

HEADS = ["SELECT ", " select ", "WITH x AS (SELECT 1) SELECT ", "(SELECT ", "SET x = ", "DISCARD ", "WITH1 ",
         "SELECT1 ", "\tWith ", "selecT9 "]
PIECES = ["1", "23", "t1", "k = 7", ";", " ; ", "';'", "pg_advisory_lock(1)", "PG_ADVISORY_UNLOCK(2)", "advisory",
          "advis0ry", "set_config('a', '1', false)", "SET_CONFIG", "set_c0nfig", " LISTEN x", "4.5", "'9'", "é3",
          "٣", "\n", " ", "FROM", "WHERE", "x9y"]


def test_the_remembered_answer_is_always_plain_query() -> None:
    rnd = random.Random(7)
    upstream._PLAIN_FORMS.clear()
    hits = 0
    for _ in range(20000):
        sql = rnd.choice(HEADS) + "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 8)))
        if rnd.random() < 0.3:
            sql += rnd.choice([";", ";;", "; ", " ;\n"])
        form = statement_form(sql)
        hits += form in upstream._PLAIN_FORMS
        assert plain_form(form, sql) == plain_query(sql), sql
    assert hits > 1000  # the cache did answer (and never wrongly)


def test_the_cache_is_bounded() -> None:
    upstream._PLAIN_FORMS.clear()
    long_sql = "SELECT " + "x, " * 3000 + "1"
    assert plain_form(statement_form(long_sql), long_sql) is True
    assert not upstream._PLAIN_FORMS  # longer than _PLAIN_FORM_LEN: checked each time, not kept
    for i in range(upstream._PLAIN_FORMS_MAX + 5):
        sql = f"SELECT c FROM t WHERE k = 1{'x' * (i % 7)} AND n{'y' * (i // 7)} = 2"
        plain_form(statement_form(sql), sql)
    assert 0 < len(upstream._PLAIN_FORMS) <= upstream._PLAIN_FORMS_MAX
