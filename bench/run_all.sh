#!/usr/bin/env bash
# Every benchmark sqlsluice reports, in one go, writing JSON (and an HTML report) to out/.
# Each prints ratios measured side by side in one run; the machine is shared and noisy,
# so compare ratios, not absolute numbers, across runs.
#
#   bash bench/run_all.sh            # quick: small scale factors
#   SF=1 bash bench/run_all.sh       # TPC-DS at scale factor 1 on a throwaway PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE=.venv/bin/sluice
OUT=${OUT:-out}
SF=${SF:-0.1}
mkdir -p "$OUT"

# 1. proxy overhead: pgbench -S (simple and prepared) direct vs byte relay vs sqlsluice
$SLUICE bench proxy --duration 10 --json "$OUT/proxy.json"
# 2. equivalence verifier: Calcite pairs (SPES 232, VeriEQL 397) and the mutation suite
$SLUICE bench verify --json "$OUT/verify.json"
# 3. routing on BIRD dev with EllieSQL's released labels (offline, no LLM)
$SLUICE bench route --labels ../shared/data/bird/ellie_pipeline_labels.jsonl --folds 5 --json "$OUT/route.json"
# 4. TPC-DS rewrites on DuckDB (PostgreSQL: pass --db postgresql://...)
$SLUICE bench tpcds --db "duckdb:///$OUT/tpcds_sf${SF}.duckdb" --sf "$SF" --json "$OUT/tpcds_duckdb.json"
# 5. Spider: build the dev databases, score gold against itself (sanity of the scorer)
$SLUICE data spider --to "$OUT/spider"
$SLUICE bench report --json "$OUT/tpcds_duckdb.json" --html "$OUT/report.html"
