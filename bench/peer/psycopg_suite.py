"""psycopg's own test suite, run directly and through ``sluice serve``, side by side.

What it does, every step from the project's own files (nothing installed by hand):

1. gets psycopg's source at the tag of the installed psycopg (or the nearest older 3.x tag):
   ``git clone --depth 1 --branch <tag> https://github.com/psycopg/psycopg`` by default, ``--git URL``
   for another remote or a local mirror, ``--source DIR`` for a checkout already there;
2. makes a separate venv (``<work>/venv``; the project's ``.venv`` is left alone) with
   ``psycopg[binary,pool]`` at the installed version and the suite's test dependencies
   (``pytest``, ``pytest-randomly``, ``anyio``, ``pproxy``); ``--impl python`` runs the pure-Python
   implementation instead of the binary one;
3. starts a throwaway PostgreSQL (``PgCluster``), creates ``psycopg_test`` and runs
   ``pytest tests --test-dsn ...`` directly, then against ``sluice serve`` in front of the same
   server (``[databases] "*"`` routes every database name through; the rewriter on, policy
   ``proved``); ``--pool-mode transaction`` pools server connections per transaction. Both runs use
   the same ``pytest-randomly`` seed, so the same tests run in the same order with the same data;
4. compares the outcome of every test id: failures only through the proxy, passes only through the
   proxy, counts; prints them and writes ``--json`` (with each proxy-only failure's message).

Deselected (``DESELECT`` below, each with its reason): what needs things this machine does not
have (DNS on the network, CockroachDB, gevent, mypy) and timing-based tests, which assert on
elapsed times and flap on a loaded machine whatever sits in between.

Not part of ``make test``: it downloads sources and takes tens of minutes.

    .venv/bin/python bench/peer/psycopg_suite.py --json out/peer_psycopg_session.json
    .venv/bin/python bench/peer/psycopg_suite.py --pool-mode transaction --json out/peer_psycopg_tx.json
    .venv/bin/python bench/peer/psycopg_suite.py --git /path/to/psycopg-mirror --json out/p.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_regress import sh, start_proxy, stop_proxy  # noqa: E402

from sqlsluice.databases.pgcluster import PgCluster  # noqa: E402

GIT_URL = "https://github.com/psycopg/psycopg"
TEST_DEPS = ["anyio>=4.0", "pproxy>=2.7", "pytest>=6.2.5", "pytest-randomly>=3.5"]
SEED = 20261205
DATABASE = "psycopg_test"

# (pytest selection, why it is not run here)
DESELECT: list[tuple[str, str]] = [
    ("--ignore=tests/test_typing.py", "mypy type-checks of example code: no server involved, mypy not installed"),
    ("--ignore=tests/crdb", "CockroachDB only (each test skips itself on PostgreSQL anyway)"),
    ("--ignore=tests/test_gevent.py", "needs gevent, not installed"),
    ("--ignore=tests/test_dns.py", "resolves names on the network (dnspython, DNS): no network here"),
    ("--ignore=tests/test_dns_srv.py", "DNS SRV lookups on the network: no network here"),
    ("-m", "not timing and not flakey and not dns and not mypy and not gevent"),
]
SLOW = "not slow"  # dropped unless --with-slow
DESELECT_WHY = {
    "timing": "asserts on elapsed times: flaps on a loaded 2-core machine with or without a proxy",
    "flakey": "marked flakey by psycopg itself (fails unpredictably)",
    "slow": "unless --with-slow: reference-leak and stress tests (gc, many connections) that take most of "
            "the suite's time on a shared 2-core machine",
}

# a pytest plugin that writes one JSON line per test: nodeid, outcome, message
RECORDER = '''
import json, os

_out = open(os.environ["PEER_RESULTS"], "w")
_seen = {}


def pytest_runtest_logreport(report):
    nid = report.nodeid
    if report.when == "call" or report.outcome != "passed":
        if report.outcome == "skipped" and hasattr(report, "wasxfail"):
            outcome = "xfailed"
        elif report.outcome == "passed" and hasattr(report, "wasxfail"):
            outcome = "xpassed"
        elif report.outcome == "failed" and report.when != "call":
            outcome = "error"
        else:
            outcome = report.outcome
        if nid in _seen and _seen[nid] != "passed":
            return  # the first non-pass (setup error) wins over a teardown report
        _seen[nid] = outcome
        msg = ""
        if report.outcome != "passed":
            lr = report.longrepr
            msg = (getattr(lr, "reprcrash", None) and lr.reprcrash.message) or str(lr)
            if isinstance(lr, tuple):
                msg = lr[2]
        _out.write(json.dumps({"id": nid, "when": report.when, "outcome": outcome,
                               "message": str(msg)[:600]}) + "\\n")
        _out.flush()


def pytest_unconfigure(config):
    _out.close()
'''


def installed_psycopg() -> str:
    import psycopg

    return str(psycopg.__version__)


def tag_for(version: str, tags: list[str]) -> str:
    """``version`` if tagged, else the nearest older 3.x release tag."""
    def key(t: str) -> tuple[int, ...]:
        return tuple(int(x) for x in t.split("."))

    releases = [t for t in tags if re.fullmatch(r"3\.\d+\.\d+", t)]
    if version in releases:
        return version
    older = [t for t in releases if key(t) <= key(version)]
    if not older:
        raise SystemExit(f"error: no psycopg tag at or below {version}")
    return max(older, key=key)


def get_source(work: Path, version: str, source: str | None, git: str) -> tuple[Path, str]:
    """A psycopg checkout with ``tests/``, and the tag it is at."""
    if source:
        src = Path(source).resolve()
        if not (src / "tests" / "conftest.py").exists():
            raise SystemExit(f"error: {src} is not a psycopg source tree (no tests/conftest.py)")
        r = sh(["git", "-C", str(src), "describe", "--tags"], check=False)
        return src, r.stdout.strip() or "unknown"
    tags = [ln.rsplit("/", 1)[-1] for ln in sh(["git", "ls-remote", "--tags", git]).stdout.split()
            if ln.startswith("refs/tags/") and not ln.endswith("^{}")]
    tag = tag_for(version, tags)
    src = work / f"psycopg-{tag}"
    if not (src / "tests" / "conftest.py").exists():
        sh(["git", "-c", "advice.detachedHead=false", "clone", "-q", "--depth", "1", "--branch", tag,
            git if "://" in git else f"file://{Path(git).resolve()}", str(src)])
    return src, tag


def make_venv(work: Path, version: str) -> Path:
    venv = work / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
    r = sh([str(py), "-c", "import psycopg, psycopg_pool, pytest, pytest_randomly, anyio, pproxy;"
            "print(psycopg.__version__)"], check=False)
    if r.returncode != 0 or r.stdout.strip() != version:
        sh([str(py), "-m", "pip", "install", "-q", f"psycopg[binary,pool]=={version}", *TEST_DEPS],
           log=work / "pip.log")
    (work / "peer_recorder.py").write_text(RECORDER)
    return py


def run_suite(py: Path, src: Path, dsn: str, tag: str, out: Path, impl: str, extra: list[str],
              slow: bool) -> dict[str, object]:
    """``pytest tests`` against ``dsn``; counts and every test's outcome."""
    results = out / f"results-{tag}.jsonl"
    env = dict(os.environ, PEER_RESULTS=str(results), PYTHONPATH=str(out.parent), PSYCOPG_IMPL=impl,
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PGHOST", None)
    env.pop("PGPORT", None)
    sel = [a for pair in DESELECT for a in pair[0:1] if a.startswith("--ignore")]
    marks = next(p[1] for p in DESELECT if p[0] == "-m") + ("" if slow else f" and {SLOW}")
    where = [] if any(x.startswith("tests") for x in extra) else ["tests"]
    cache = out / f"cache-{tag}"  # psycopg's conftest refuses to run after a crash it recorded there
    sh(["rm", "-rf", str(cache)])
    cmd = [str(py), "-m", "pytest", *where, "-p", "peer_recorder", "-o", f"cache_dir={cache}", "-q",
           "--no-header", "-o", "addopts=", "-W", "ignore", f"--randomly-seed={SEED}", "--test-dsn", dsn,
           *sel, "-m", marks, *extra]
    t0 = time.monotonic()
    r = sh(cmd, cwd=src, env=env, check=False, log=out / f"pytest-{tag}.log")
    seconds = round(time.monotonic() - t0, 1)
    outcomes: dict[str, dict[str, str]] = {}
    if results.exists():
        for line in results.read_text().splitlines():
            rec = json.loads(line)
            outcomes[rec.pop("id")] = rec
    counts: dict[str, int] = {}
    for rec in outcomes.values():
        counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
    lines = [ln.strip("= ") for ln in (r.stdout + r.stderr).splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    return {"summary": lines[-1] if lines else f"no summary (pytest exited {r.returncode})", "counts": counts,
            "seconds": seconds, "exit": r.returncode, "results": str(results), "outcomes": outcomes}


def slim(run: dict[str, object]) -> dict[str, object]:
    """A run as the JSON keeps it: every test that did not pass, with its message (the passes are
    the rest of the ``counts``; each test's outcome stays in the ``results`` JSON-lines file)."""
    outcomes: dict[str, dict[str, str]] = run["outcomes"]  # type: ignore[assignment]
    out = {k: v for k, v in run.items() if k != "outcomes"}
    out["not_passed"] = {t: {"outcome": o["outcome"], "message": o["message"]} for t, o in outcomes.items()
                         if o["outcome"] != "passed"}
    return out


def load_run(run: dict[str, object]) -> dict[str, object]:
    """A run read back from a JSON written by this script (its results file when still there)."""
    results = Path(str(run.get("results", "")))
    if "outcomes" in run or not results.is_file():
        return {**run, "outcomes": run.get("outcomes") or run.get("not_passed", {})}
    outcomes = {}
    for line in results.read_text().splitlines():
        rec = json.loads(line)
        outcomes[rec.pop("id")] = rec
    return {**run, "outcomes": outcomes}


def sluice_revision(tree: Path) -> str:
    """The commit the proxy runs from: git HEAD (+ "dirty") or the commit a `git archive` export records."""
    r = sh(["git", "-C", str(tree), "rev-parse", "HEAD"], check=False)
    if r.returncode == 0:
        dirty = sh(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no", "--", "sqlsluice"],
                   check=False).stdout.strip()
        return r.stdout.strip() + (" + uncommitted changes in sqlsluice/" if dirty else "")
    stamp = tree / "COMMIT"
    return stamp.read_text().strip() if stamp.exists() else str(tree)


def compare(direct: dict[str, object], proxied: dict[str, object]) -> dict[str, object]:
    d: dict[str, dict[str, str]] = direct["outcomes"]  # type: ignore[assignment]
    p: dict[str, dict[str, str]] = proxied["outcomes"]  # type: ignore[assignment]
    bad = {"failed", "error"}
    only_fail = sorted(t for t in p if p[t]["outcome"] in bad and d.get(t, {}).get("outcome") not in bad)
    only_pass = sorted(t for t in p if p[t]["outcome"] == "passed" and d.get(t, {}).get("outcome") in bad)
    changed = sorted(t for t in p if t in d and p[t]["outcome"] != d[t]["outcome"] and t not in only_fail
                     and t not in only_pass)
    return {
        "proxy_only_failures": {t: p[t]["message"] for t in only_fail},
        "proxy_only_passes": only_pass,
        "other_changes": {t: f"{d[t]['outcome']} -> {p[t]['outcome']}" for t in changed},
        "missing_through_proxy": sorted(set(d) - set(p)),
    }


# Why a test fails only through the proxy in transaction pooling, by what it does (checked by
# hand on sluice 0a173d7 and a1de957; README "Peer suite"). Session mode had none to explain.
EXPLAIN: dict[str, str] = {
    "refused": "a statement transaction pooling refuses (0A000, named in the message): it would leave "
               "state on a server connection that the next client gets",
    "listen-pq": "LISTEN sent with libpq's PQexec and its result never checked: the 0A000 refusal is "
                 "silent, then no notification arrives",
    "own-pid": "kills its own server session with pg_terminate_backend(conn.info.backend_pid) and expects "
               "the connection to break (or the pool to replace it): the client's pid is one of the "
               "proxy's own, shared server connections are not the client's to kill",
    "shared-statements": "reads pg_prepared_statements and expects its own statements only: the server "
                         "connection held at that moment also has every other client's statements, "
                         "under the proxy's names (sluice_s_<hash>), as with PgBouncer's",
    "bug-prepare-transaction": "PROXY BUG: PREPARE TRANSACTION (two-phase commit) is refused as if it were "
                               "SQL PREPARE (middleware/pool.py _REFUSED); it ends the transaction and "
                               "leaves nothing on the connection",
    "bug-stale-statement": "PROXY BUG: a client that left inside a transaction had its Parse of a statement "
                           "naming a type made in that transaction kept in ServerConn.prepared after the "
                           "ROLLBACK (pool.py left()); the next client's same SQL reuses it: 'cache lookup "
                           "failed for type'",
    "cancel-race": "COPY TO cancelled mid-stream ended without an error once in the suite (INTRANS, not "
                   "INERROR); not reproduced in 30 runs alone",
}


def explain(test: str, msg: str) -> str:
    """The ``EXPLAIN`` key of a transaction-mode proxy-only failure ("" when none fits)."""
    if "PREPARE is not supported" in msg and ("tpc" in test or "dbapi20" in test):
        return "bug-prepare-transaction"
    if "not supported in transaction pooling mode" in msg:
        return "refused"
    if test.startswith("tests/pq/test_pgconn.py::test_notify"):
        return "listen-pq"
    if "change_type" in test and "cache lookup failed for type" in msg:
        return "bug-stale-statement"
    if re.search(r"::test_(broken|right_exception_on_server_disconnect|context_inerror_rollback_no_clobber|"
                 r"check_connection|connect_no_check|connect_check|getconn_check|stats_check)\b", test):
        return "own-pid"
    if test.startswith("tests/test_prepared"):
        return "shared-statements"
    if "copy_out_error_with_copy_not_finished" in test:
        return "cancel-race"
    return ""


def refusal_classes(failures: dict[str, str]) -> dict[str, list[str]]:
    """Transaction mode: proxy-only failures grouped by the pooling refusal (0A000) in their message."""
    groups: dict[str, list[str]] = {}
    for t, msg in failures.items():
        m = re.search(r"(?:^|: )([^:\n]*?) (?:is|are) not supported in transaction pooling mode", msg)
        key = m.group(1) if m else "no refusal in the message"
        groups.setdefault(key, []).append(t)
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "sluice-peer-psycopg"),
                    help="where the source and the venv go (kept between runs)")
    ap.add_argument("--source", help="an existing psycopg checkout (with tests/) instead of cloning")
    ap.add_argument("--git", default=GIT_URL, help="where to clone psycopg from (URL or local mirror)")
    ap.add_argument("--pool-mode", default="session", choices=["session", "transaction"])
    ap.add_argument("--impl", default="binary", choices=["binary", "python"], help="PSYCOPG_IMPL")
    ap.add_argument("--sluice-tree", help="run the proxy from this copy of the project (e.g. a `git archive "
                    "HEAD` export) instead of this checkout")
    ap.add_argument("--skip-direct", help="reuse the direct run of this earlier --json instead of running it")
    ap.add_argument("--with-slow", action="store_true", help="run the tests marked slow too")
    ap.add_argument("--json")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --), e.g. -k copy")
    a = ap.parse_args()
    # a SIGTERM stops pytest, the proxy and the cluster as Ctrl-C does (the finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    json_out = Path(a.json).resolve() if a.json else None
    tree = Path(a.sluice_tree).resolve() if a.sluice_tree else REPO
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    version = installed_psycopg()
    src, tag = get_source(work, version, a.source, a.git)
    print(f"psycopg {version} (tests from {tag}, {src}); venv in {work / 'venv'}")
    py = make_venv(work, version)
    out = work / f"out-{a.pool_mode}"
    out.mkdir(exist_ok=True)
    cluster = PgCluster(settings={"max_connections": "300", "max_prepared_transactions": "10"}).start()
    report: dict[str, object] = {
        "psycopg": version, "tests_from": tag, "impl": a.impl, "pool_mode": a.pool_mode, "seed": SEED,
        "deselected": {**{p[0]: p[1] for p in DESELECT if p[0] != "-m"}, **DESELECT_WHY},
        "pytest_args": a.pytest_args, "with_slow": a.with_slow, "sluice": sluice_revision(tree),
    }
    try:
        cluster.create_database(DATABASE)
        sv = sh(["psql", cluster.dsn(DATABASE), "-Atc", "show server_version"], check=False).stdout.strip()
        report["server"] = f"PostgreSQL {sv}"
        if a.skip_direct:
            direct = load_run(json.loads(Path(a.skip_direct).read_text())["direct"])
        else:
            dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname={DATABASE}"
            direct = run_suite(py, src, dsn, "direct", out, a.impl, a.pytest_args, a.with_slow)
        print(f"direct:         {direct['summary']} ({direct['seconds']} s) {direct['counts']}")
        # `python -m sqlsluice` finds the package in its working directory first, then PYTHONPATH
        os.chdir(out)
        os.environ["PYTHONPATH"] = str(tree)
        proc, port = start_proxy(cluster.port, out, a.pool_mode)
        try:
            dsn = f"host=127.0.0.1 port={port} user=postgres dbname={DATABASE}"
            proxied = run_suite(py, src, dsn, f"proxy-{a.pool_mode}", out, a.impl, a.pytest_args, a.with_slow)
        finally:
            stop_proxy(proc)
        print(f"through sluice: {proxied['summary']} ({proxied['seconds']} s, pool_mode={a.pool_mode}) "
              f"{proxied['counts']}")
        report["direct"], report["proxy"] = slim(direct), slim(proxied)
        cmp = compare(direct, proxied)
        report.update(cmp)
        fails: dict[str, str] = cmp["proxy_only_failures"]  # type: ignore[assignment]
        # session mode: no proxy-only failure is expected, so none is explained
        why = {t: explain(t, m) if a.pool_mode == "transaction" else "" for t, m in fails.items()}
        report["unexplained"] = sorted(t for t in why if not why[t])
        if a.pool_mode == "transaction":
            report["proxy_only_failures_by_refusal"] = refusal_classes(fails)
            report["explanations"] = EXPLAIN
            report["proxy_only_failures_explained"] = {k: sorted(t for t in why if why[t] == k) for k in EXPLAIN}
            print("by cause: " + ", ".join(f"{k} {sum(1 for v in why.values() if v == k)}" for k in EXPLAIN))
        print(f"unexplained: {len(report['unexplained'])}")  # type: ignore[arg-type]
        print(f"failing only through sluice ({len(fails)}):")
        for t, msg in fails.items():
            print(f"  {t}: {msg.splitlines()[0] if msg else ''}"[:200])
        print(f"passing only through sluice: {len(cmp['proxy_only_passes'])}; logs in {out}")  # type: ignore[arg-type]
    finally:
        cluster.stop()
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
