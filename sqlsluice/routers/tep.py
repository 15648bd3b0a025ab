"""TEP, token elasticity of performance (EllieSQL).

The relative change of execution accuracy divided by the relative change of tokens,
both against the ``basic`` pipeline::

    TEP = ((EX - EX_basic) / EX_basic) / ((T - T_basic) / T_basic)

A router that buys 10% more accuracy with 100% more tokens has TEP 0.1.  Undefined (None)
when the tokens do not change.

>>> round(tep(ex=60.0, tokens=2.0, ex_basic=50.0, tokens_basic=1.0), 3)
0.2
>>> tep(ex=50.0, tokens=1.0, ex_basic=50.0, tokens_basic=1.0) is None
True
"""

from __future__ import annotations


def tep(*, ex: float, tokens: float, ex_basic: float, tokens_basic: float) -> float | None:
    if ex_basic <= 0 or tokens_basic <= 0:
        return None
    dt = (tokens - tokens_basic) / tokens_basic
    if abs(dt) < 1e-12:
        return None
    return ((ex - ex_basic) / ex_basic) / dt
