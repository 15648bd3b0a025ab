"""Would the rewrites a recorded TPC-DS run served be proved now?

For each served rewrite of a ``sluice bench tpcds --json`` report, replay its rule sequence on
the query (TPC-DS schema with its keys) and run the gate's certificate (``certify``): PROVED by
the whole query or by rule composition, TESTED (unproved), REFUTED or ERROR.  No timing: the
question is only which served rewrites carry a proof.

    .venv/bin/python bench/certify_recorded.py docs/bench/rewrite_tpcds_pg_sf1_s2.json --dialect postgres
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from sqlsluice.bench.pool_proofs import tpcds_catalog
from sqlsluice.databases.tpcds import tpcds_queries
from sqlsluice.rewriters.api import certify
from sqlsluice.rewriters.candidates import Candidate
from sqlsluice.rewriters.rules import apply_rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--dialect", default="postgres")
    ap.add_argument("--budget", type=float, default=8.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    rep = json.load(open(a.report))
    queries = tpcds_queries()
    cat = tpcds_catalog()
    out = []
    for q in rep["queries"]:
        if not q.get("served"):
            continue
        sql = queries[int(q["query"].lstrip("q"))]
        t0 = time.monotonic()
        applied = apply_rules(sql, q["rules"], cat, a.dialect)
        cert = certify(sql, Candidate(applied.sql, applied.applied, "rules"), cat, a.dialect, a.budget)
        row = {"query": q["query"], "speedup_then": q.get("speedup"), "rules": q["rules"],
               "status": cert.status, "by": cert.by, "method": cert.method,
               "steps": [(s.get("rule"), s.get("verdict"), s.get("method")) for s in cert.steps],
               "reason": cert.reason[:300], "seconds": round(time.monotonic() - t0, 1)}
        out.append(row)
        print(f"{row['query']:>5} {str(row['speedup_then'])[:6]:>6}x  {row['status']:<8} {row['by']:<17} "
              f"{','.join(q['rules'])}", flush=True)
    c = Counter(r["status"] for r in out)
    prod = [r for r in out if (r["speedup_then"] or 0) >= 1.5]
    print(f"served then: {len(out)}; now PROVED {c['PROVED']}, TESTED {c['TESTED']}, REFUTED {c['REFUTED']}, "
          f"ERROR {c['ERROR']}; productive then {len(prod)}, of them PROVED now "
          f"{sum(r['status'] == 'PROVED' for r in prod)}")
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
