"""Measure what the LLM rewrite stages would send for TPC-DS, without calling any LLM.

For each of the 99 TPC-DS queries: the time to build LITHE's database-sensitive context
(sizes, sampled selectivities, redundancies), the time to pick LLM-R2 demonstrations, and
the size of every first-round prompt in characters and in words+punctuation (the scripted
server's stand-in tokenizer; it counts ``ss_ext_sales_price`` as one token where BPE tokenizers
use several, so it is a lower bound; characters / 4 is the usual rule of thumb for BPE).
Cost uses the shipped price table and the characters / 4 estimate.

    python -m sqlsluice.bench.prompt_stats --db duckdb:///.sluice/tpcds_sf0_01.duckdb
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--model", default="gpt-4o-mini")
    args = ap.parse_args(argv)

    from sqlsluice.databases import connect
    from sqlsluice.databases.tpcds import tpcds_queries
    from sqlsluice.llm.ledger import cost_usd
    from sqlsluice.llm.prompts import load_prompt
    from sqlsluice.llm.scripted_server import count_tokens
    from sqlsluice.rewriters.lithe import VARIANTS, build_context
    from sqlsluice.rewriters.llm_r2 import DemoPool, rules_text

    be = connect(args.db)
    try:
        from sqlsluice.rewriters.api import catalog_for

        catalog = catalog_for(be)
    except ImportError:
        catalog = be.catalog()
    t0 = time.perf_counter()
    pool = DemoPool.load(None)
    pool_s = time.perf_counter() - t0
    ctx_s: list[float] = []
    demo_s: list[float] = []
    toks: dict[str, list[int]] = {v: [] for v in (*VARIANTS, "llm_r2_select")}
    chars: dict[str, list[int]] = {v: [] for v in toks}
    for _n, sql in sorted(tpcds_queries().items()):
        t = time.perf_counter()
        ctx = build_context(sql, catalog, be)
        ctx_s.append(time.perf_counter() - t)
        base = {"query": sql, "dialect": be.dialect, **ctx.variables()}
        for v in VARIANTS:
            text = "\n".join(m.content for m in load_prompt(v).render(base))
            toks[v].append(count_tokens(text))
            chars[v].append(len(text))
        t = time.perf_counter()
        demos = pool.nearest(sql, 3)
        demo_s.append(time.perf_counter() - t)
        r2 = {"rules": rules_text(), "query": sql,
              "demonstrations": "\n\n".join(d.render(i + 1) for i, d in enumerate(demos))}
        text = "\n".join(m.content for m in load_prompt("llm_r2_select").render(r2))
        toks["llm_r2_select"].append(count_tokens(text))
        chars["llm_r2_select"].append(len(text))
    be.close()
    print(f"queries: 99; demonstration pool: {len(pool)} demos loaded in {pool_s:.2f} s")
    print(f"LITHE context build: median {statistics.median(ctx_s) * 1000:.1f} ms, max {max(ctx_s) * 1000:.1f} ms")
    print(f"LLM-R2 demonstration pick (k=3): median {statistics.median(demo_s) * 1000:.1f} ms")
    print(f"{'prompt':<20} {'median chars':>12} {'max chars':>10} {'median words':>12}")
    for v in toks:
        print(f"{v:<20} {statistics.median(chars[v]):>12.0f} {max(chars[v]):>10} {statistics.median(toks[v]):>12.0f}")
    ens = [sum(chars[v][i] for v in VARIANTS) / 4 for i in range(99)]
    med = int(statistics.median(ens))
    print(f"LITHE ensemble input tokens per query (chars/4): median {med}, max {max(ens):.0f}; "
          f"{args.model} input cost of the ensemble, median query: ${cost_usd(args.model, med, 0):.5f}")


if __name__ == "__main__":
    main()
