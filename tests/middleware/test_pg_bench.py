"""``sluice bench proxy``: the harness runs pgbench against all three targets and reports ratios.

The run here is short (1 s per pgbench run) and checks the harness, not the figures;
the measured table lives in docs/proxy-bench.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlsluice.bench.proxy import Measurement, parse_pgbench, summarize
from sqlsluice.databases.pgcluster import PgCluster

PGBENCH_OUT = """\
transaction type: <builtin: select only>
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 301234
number of failed transactions: 0 (0.000%)
latency average = 0.265 ms
initial connection time = 10.123 ms
tps = 30123.456789 (without initial connection time)
"""


def test_pg_bench_parses_pgbench_report() -> None:
    assert parse_pgbench(PGBENCH_OUT) == (30123.456789, 0.265, 301234)


def test_pg_bench_summary_ratios() -> None:
    ms = [Measurement("direct", "simple", 0, 100.0, 1.0, 1000), Measurement("relay", "simple", 0, 50.0, 2.0, 500),
          Measurement("sqlsluice", "simple", 0, 45.0, 2.2, 450), Measurement("sqlsluice", "simple", 1, 55.0, 1.8, 550)]
    s = summarize(ms)["simple"]
    assert s["sqlsluice"] == {"tps": 50.0, "latency_ms": 2.0}
    assert s["ratios"] == {"sqlsluice/relay": 1.0, "relay/direct": 0.5, "sqlsluice/direct": 0.5}


def test_pg_bench_proxy_command_end_to_end(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database("pgbench_harness")
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "sqlsluice", "bench", "proxy", "--upstream", url, "--duration", "1",
                        "--clients", "2", "--json", str(out)], capture_output=True, text=True, timeout=240,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert "sqlsluice/relay" in r.stdout
    data = json.loads(out.read_text())
    seen = {(m["mode"], m["target"]) for m in data["measurements"]}
    assert seen == {(mode, t) for mode in ("simple", "prepared") for t in ("direct", "relay", "sqlsluice")}
    assert all(m["transactions"] > 0 and m["tps"] > 0 for m in data["measurements"])
    assert set(data["summary"]["prepared"]["ratios"]) >= {"sqlsluice/relay", "relay/direct", "sqlsluice/direct"}
    assert data["summary"]["simple"]["sqlsluice"]["cpu_us_per_tx"] > 0


def test_pg_bench_bad_upstream_is_a_one_line_error() -> None:
    r = subprocess.run([sys.executable, "-m", "sqlsluice", "bench", "proxy", "--upstream", "duckdb:///x.db"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: invalid PostgreSQL URL") and len(r.stderr.strip().splitlines()) == 1
