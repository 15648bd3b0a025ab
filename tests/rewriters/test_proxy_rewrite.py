"""Through ``sluice serve`` over a PostgreSQL upstream: TPC-DS q1 twice; the second run is
served the verified rewrite, ``SHOW sluice.last`` says so, and the results are identical."""

from __future__ import annotations

from typing import Any

import psycopg

from sqlsluice.databases.tpcds import tpcds_queries
from sqlsluice.rewriters.online import OnlineRewriter


def _last(c: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(c.execute("SHOW sluice.last").fetchall())  # type: ignore[arg-type]


def test_tpcds_q1_second_run_is_served_the_verified_rewrite(tpcds_proxy: tuple[str, OnlineRewriter]) -> None:
    dsn, online = tpcds_proxy
    q1 = tpcds_queries()[1]
    with psycopg.connect(dsn, autocommit=True) as c:
        first = c.execute(q1).fetchall()  # type: ignore[arg-type]
        last = _last(c)
        assert last["rewritten"] == "False" and last["rewrite"] == "queued"
        assert online.wait_idle(180)
        assert online.stats.stored == 1, online.stats
        second = c.execute(q1).fetchall()  # type: ignore[arg-type]
        last = _last(c)
        assert last["rewritten"] == "True", last
        assert "scalar_subquery_to_join" in last["rules"]
        assert last["forwarded_sql"] != q1 and last["verdict"] in ("EQUIVALENT", "UNKNOWN")
        assert first and second == first  # ORDER BY ... LIMIT 100: identical, in order
        # writes pass through untouched, and off means off
        c.execute("CREATE TEMP TABLE t_rw AS SELECT 1 AS a")
        assert _last(c).get("rewritten") is None
        c.execute("SET sluice.rewrite = off")
        assert c.execute(q1).fetchall() == first  # type: ignore[arg-type]
        assert "forwarded_sql" not in _last(c)
