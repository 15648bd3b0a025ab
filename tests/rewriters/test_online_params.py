"""Prepared statements and the online rewriter, without a server: ``$n`` parameters share the
shape of literals, and a Bind's values (text or binary format) become the literal instance."""

from __future__ import annotations

import struct

from sqlsluice.middleware.codec import Bind
from sqlsluice.middleware.types import DATE, INT4, INT8, NUMERIC, TEXT
from sqlsluice.rewriters.online import fingerprint, instantiate
from sqlsluice.serving.rewrite_stage import bind_values

Q = ("SELECT i.i_item_id FROM item AS i WHERE i.i_category = {a} AND i.i_current_price > {b} * "
     "(SELECT AVG(j.i_current_price) FROM item AS j WHERE j.i_category = i.i_category) ORDER BY 1")


def test_parameters_and_literals_share_a_shape() -> None:
    k_lit, lits = fingerprint(Q.format(a="'Music'", b="1.2"), "postgres")
    k_par, pars = fingerprint(Q.format(a="$1", b="$2"), "postgres")
    k_mix, _ = fingerprint(Q.format(a="$1", b="1.2"), "postgres")
    assert k_lit == k_par == k_mix
    assert lits == ["1", "'Music'", "1.2"] and pars == ["1", "$1", "$2"]  # ORDER BY 1 is a slot too
    # a different shape stays different (an expression where a slot was)
    assert fingerprint(Q.format(a="$1", b="($2 + 0)"), "postgres")[0] != k_par


def test_bind_values_become_the_literal_instance_text_and_binary() -> None:
    sql = Q.format(a="$1", b="$2")
    text = Bind("", "", (0,), (b"Music", b"1.2"), ())
    inst = instantiate(sql, bind_values(text)((TEXT, NUMERIC)), "postgres")
    assert inst is not None and "'Music'" in inst and "1.2" in inst and "$1" not in inst
    assert fingerprint(inst, "postgres")[0] == fingerprint(sql, "postgres")[0]
    numeric_1_2 = struct.pack("!hhhh", 2, 0, 0, 1) + struct.pack("!hh", 1, 2000)  # 1.2 in NUMERIC's binary form
    binary = Bind("", "", (1,), (b"Books", numeric_1_2), ())
    inst2 = instantiate(sql, bind_values(binary)((TEXT, NUMERIC)), "postgres")
    assert inst2 is not None and "'Books'" in inst2 and "1.2" in inst2
    assert fingerprint(inst2, "postgres")[0] == fingerprint(sql, "postgres")[0]


def test_values_without_a_same_shape_literal_are_not_instantiated() -> None:
    sql = "SELECT a FROM t WHERE b = $1 AND c > $2 AND d = $3"
    ok = Bind("", "", (1,), (struct.pack("!i", 7), struct.pack("!q", -5), struct.pack("!i", 366)), ())
    inst = instantiate(sql, bind_values(ok)((INT4, INT8, DATE)), "postgres")
    # a negative number is an untyped string literal (one slot, not a negation); dates are strings
    assert inst == "SELECT a FROM t WHERE b = 7 AND c > '-5' AND d = '2001-01-01'"
    assert fingerprint(inst, "postgres")[0] == fingerprint(sql, "postgres")[0]
    null = Bind("", "", (1,), (struct.pack("!i", 7), None, struct.pack("!i", 1)), ())
    assert instantiate(sql, bind_values(null)((INT4, INT8, DATE)), "postgres") is None  # NULL is another shape
    short = Bind("", "", (1,), (struct.pack("!i", 7),), ())
    assert instantiate(sql, bind_values(short)((INT4, INT8, DATE)), "postgres") is None
