"""Rewrite-rule fixtures double as verifier tests: every before/after pair is proved or at least not refuted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlsluice.databases import Catalog
from sqlsluice.verifiers import verify

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"


def _pairs() -> list[tuple[str, str, str, str]]:
    """``(id, dialect, input, expected)`` of every firing case (same format as tests/rewriters)."""
    out = []
    for path in sorted(FIXTURES.glob("*.sql")):
        for chunk in path.read_text().split("# title:")[1:]:
            title = chunk.splitlines()[0].strip()
            dialect = re.search(r"^# dialect:\s*(\S+)", chunk, re.M)
            m = re.search(r"^-- input\n(.*?)^-- expected\n(.*)", chunk, re.M | re.S)
            if m is None:
                continue
            inp, exp = (x.strip().rstrip(";").strip() for x in m.groups())
            out.append((f"{path.stem}:{title[:40]}", dialect[1] if dialect else "duckdb", inp, exp))
    return out


PAIRS = _pairs()


@pytest.fixture(scope="module")
def keyed_tpcds(tpcds_catalog: Catalog) -> Catalog:
    from sqlsluice.bench.tpcds_load import with_tpcds_keys

    return with_tpcds_keys(tpcds_catalog)


@pytest.mark.skipif(not PAIRS, reason="no rule fixtures yet")
def test_rule_fixture_pairs_not_refuted(keyed_tpcds: Catalog) -> None:
    verdicts = {}
    for pid, dialect, before, after in PAIRS:
        v = verify(before, after, keyed_tpcds, dialect, time_budget_s=0.4)
        verdicts[pid] = v.verdict
        assert v.verdict != "NOT_EQUIVALENT", (pid, v.counterexample)
    print({k: sum(1 for v in verdicts.values() if v == k) for k in ("EQUIVALENT", "UNKNOWN")})
