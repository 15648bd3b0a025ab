"""``sluice bench pool``: transaction pooling under many clients, and against PgBouncer.

One run, on a throwaway PostgreSQL with ``max_connections = 50`` (``pgbench -i -s 1``):

1. **many clients**: ``--clients`` (1,000) concurrent asyncpg connections through
   ``sluice serve`` in transaction mode (``pool_size`` 20), each running ``--queries``
   single-statement transactions (``SELECT abalance FROM pgbench_accounts WHERE aid = $1``,
   a prepared statement, so statements move between server connections).  Reports
   successes and failures, p50/p99 latency of a query and of a login, the most server
   connections seen in ``pg_stat_activity``, and the proxy's RSS (peak and at the end).
2. **TPS against PgBouncer**: pgbench ``-S`` through ``sluice serve`` (transaction mode) and
   through Debian's ``pgbouncer`` (transaction mode, the same pool size), interleaved
   rounds, simple protocol (PgBouncer before 1.21 keeps no prepared statements in
   transaction mode; ``-M prepared`` is run through sqlsluice alone).  Reports TPS and the
   sqlsluice/pgbouncer ratio.  Run twice: with ``--pgbench-clients`` (8, fewer clients than
   ``pool_size``: each finds an idle server connection) and with ``--wide-clients`` (40, more
   than ``pool_size``: clients queue for server connections, what transaction pooling is for).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlsluice.bench.proxy import (
    ServeProcess,
    _Env,
    _free_port,
    _pgbench,
    _stderr_file,
    _wait_port,
    process_cpu_seconds,
    run_pgbench,
)
from sqlsluice.errors import BackendError, ConfigError

POOL_SIZE = 20
QUERY = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"


@dataclass
class ManyClients:
    clients: int
    queries_per_client: int
    ok_clients: int = 0
    failed_clients: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # first error of each failed client, counted
    query_p50_ms: float = 0.0
    query_p99_ms: float = 0.0
    connect_p50_ms: float = 0.0
    connect_p99_ms: float = 0.0
    wall_s: float = 0.0
    max_server_connections: int = 0
    proxy_rss_peak_mb: float = 0.0
    proxy_rss_end_mb: float = 0.0


def rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident set size of a process in MiB (Linux ``/proc``)."""
    peak = cur = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak, cur


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def many_clients(dsn: str, clients: int, queries: int, *, query: str = QUERY,
                       connect_timeout: float = 300.0) -> ManyClients:
    """``clients`` concurrent asyncpg connections, each running ``queries`` prepared SELECTs
    (``query`` with one integer parameter)."""
    import asyncpg

    out = ManyClients(clients, queries)
    lat: list[float] = []
    conn_lat: list[float] = []
    go = asyncio.Event()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        c = await asyncpg.connect(dsn, timeout=connect_timeout, command_timeout=300)
        conn_lat.append(time.perf_counter() - t0)
        try:
            await go.wait()  # every client is connected before the first query
            stmt = await c.prepare(query)
            for j in range(queries):
                t = time.perf_counter()
                await stmt.fetchval((i * queries + j) % 100000 + 1)
                lat.append(time.perf_counter() - t)
        finally:
            await c.close()

    async def guarded(i: int) -> BaseException | None:
        try:
            await one(i)
        except BaseException as e:  # counted, not raised: the point is how many succeed
            return e
        return None

    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(guarded(i)) for i in range(clients)]
    while len(conn_lat) + sum(1 for t in tasks if t.done()) < clients:
        await asyncio.sleep(0.05)
    go.set()
    results = await asyncio.gather(*tasks)
    out.wall_s = time.perf_counter() - t0
    for r in results:
        if r is None:
            out.ok_clients += 1
        else:
            out.failed_clients += 1
            key = f"{type(r).__name__}: {str(r)[:120]}"
            out.errors[key] = out.errors.get(key, 0) + 1
    out.query_p50_ms, out.query_p99_ms = _pct(lat, 0.5) * 1e3, _pct(lat, 0.99) * 1e3
    out.connect_p50_ms, out.connect_p99_ms = _pct(conn_lat, 0.5) * 1e3, _pct(conn_lat, 0.99) * 1e3
    return out


class PgBouncer:
    """Debian's ``pgbouncer`` in transaction mode in front of ``host:port`` (trust auth)."""

    def __init__(self, host: str, port: int, *, pool_size: int = POOL_SIZE, max_client_conn: int = 2000) -> None:
        exe = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
        if exe is None:
            raise ConfigError("pgbouncer not found: install Debian's 'pgbouncer' (make system-deps-pgbouncer)")
        self.exe = exe
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-pgbouncer-"))
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
* = host={host} port={port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
ignore_startup_parameters = extra_float_digits
logfile = {self.dir}/pgbouncer.log
""")
        self.argv = [exe, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            for f in self.dir.iterdir():
                os.chown(f, pw.pw_uid, pw.pw_gid)
            self.argv[1:1] = ["-u", "postgres"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = _stderr_file()

    def start(self) -> PgBouncer:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=self.stderr)
        _wait_port(self.port, self.proc, "pgbouncer", err=self.stderr)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _watch_server_connections(url: str, stop: threading.Event, seen: list[int]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        while not stop.is_set():
            # every client backend but this one: the pool's and the rewriter's own connections
            row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                            "AND pid <> pg_backend_pid()").fetchone()
            seen.append(int(row[0]) if row else 0)
            time.sleep(0.1)


def serve_config(path: Path, upstream: str, *, pool_size: int, max_client_conn: int) -> Path:
    path.write_text(f'[server]\nbackend = "{upstream}"\nauth = "trust"\n'
                    f'[pool]\npool_mode = "transaction"\npool_size = {pool_size}\n'
                    f"max_client_conn = {max_client_conn}\nquery_wait_timeout = 300\n")
    return path


def bench(*, clients: int = 1000, queries: int = 10, duration: int = 10, pgbench_clients: int = 8, jobs: int = 2,
          rounds: int = 1, pool_size: int = POOL_SIZE, wide_clients: int = 40, log: Any = None) -> dict[str, Any]:
    from sqlsluice.databases.pgcluster import PgCluster
    from sqlsluice.middleware.upstream_auth import UpstreamTarget

    say = log or (lambda _m: None)
    cluster = PgCluster(settings={"max_connections": "50"})
    tmp = Path(tempfile.mkdtemp(prefix="sluice-bench-pool-"))
    serve: ServeProcess | None = None
    bouncer: PgBouncer | None = None
    try:
        say("starting a throwaway PostgreSQL cluster (max_connections = 50)")
        cluster.start()
        t = UpstreamTarget.from_url(cluster.url)
        env = _Env(t, None)
        say("pgbench -i -s 1")
        r = subprocess.run([_pgbench(), "-i", "-s", "1", "-q", *env.args(t.host, t.port)], capture_output=True,
                           text=True, timeout=600, check=False)
        if r.returncode != 0:
            raise BackendError(f"pgbench -i failed: {r.stderr.strip()[-500:]}")
        cfg = serve_config(tmp / "sluice.toml", cluster.url, pool_size=pool_size, max_client_conn=clients + 100)
        serve = ServeProcess(cluster.url, config=cfg).start()
        assert serve.proc is not None
        pid = serve.proc.pid

        say(f"{clients} concurrent asyncpg clients x {queries} queries through sluice serve (transaction mode)")
        stop, seen = threading.Event(), [0]
        w = threading.Thread(target=_watch_server_connections, args=(cluster.url, stop, seen), daemon=True)
        w.start()
        try:
            many = asyncio.run(many_clients(serve.dsn(), clients, queries))
        finally:
            stop.set()
            w.join(10)
        many.max_server_connections = max(seen)
        many.proxy_rss_peak_mb, many.proxy_rss_end_mb = rss_mb(pid)

        bouncer = PgBouncer(t.host, t.port, pool_size=pool_size).start()
        ports = {"sqlsluice": serve.port, "pgbouncer": bouncer.port}
        pids = {"sqlsluice": pid, "pgbouncer": bouncer.proc.pid if bouncer.proc is not None else 0}
        runs: list[dict[str, Any]] = []

        def one(name: str, mode: str, rnd: int, n_clients: int) -> None:
            say(f"round {rnd + 1}/{rounds} {mode:8} -c {n_clients:<4} {name}")
            c0 = process_cpu_seconds(pids[name])
            tps, lat, tx = run_pgbench(env, "127.0.0.1", ports[name], mode, clients=n_clients, jobs=jobs,
                                       duration=duration)
            c1 = process_cpu_seconds(pids[name])
            cpu = (c1 - c0) * 1e6 / tx if c0 is not None and c1 is not None and tx else None
            runs.append({"target": name, "mode": mode, "clients": n_clients, "round": rnd, "tps": tps,
                         "latency_ms": lat, "transactions": tx, "proxy_cpu_us_per_tx": cpu})

        # pgbench_clients (fewer than pool_size: every client finds an idle server connection)
        # and, with wide_clients, more clients than pool_size (clients queue for a server)
        widths = [pgbench_clients] + ([wide_clients] if wide_clients and wide_clients != pgbench_clients else [])
        order = ["sqlsluice", "pgbouncer"]
        for rnd in range(rounds):
            for n_clients in widths:
                for name in order:
                    one(name, "simple", rnd, n_clients)
                order.reverse()
            one("sqlsluice", "prepared", rnd, pgbench_clients)

        def med(target: str, mode: str, key: str = "tps", n_clients: int = pgbench_clients) -> float:
            xs = [x[key] for x in runs if x["target"] == target and x["mode"] == mode and x["clients"] == n_clients
                  and x[key] is not None]
            return statistics.median(xs) if xs else 0.0

        s, b = med("sqlsluice", "simple"), med("pgbouncer", "simple")
        out: dict[str, Any] = {
            "settings": {"clients": clients, "queries": queries, "duration": duration,
                         "pgbench_clients": pgbench_clients, "wide_clients": wide_clients, "jobs": jobs,
                         "rounds": rounds, "pool_size": pool_size, "max_connections": 50, "cpus": os.cpu_count()},
            "many_clients": asdict(many), "pgbench": runs,
            "tps": {"sqlsluice simple": s, "pgbouncer simple": b, "sqlsluice prepared": med("sqlsluice", "prepared"),
                    "ratio sqlsluice/pgbouncer (simple)": s / b if b else 0.0},
            "proxy_cpu_us_per_tx": {"sqlsluice simple": med("sqlsluice", "simple", "proxy_cpu_us_per_tx"),
                                    "pgbouncer simple": med("pgbouncer", "simple", "proxy_cpu_us_per_tx"),
                                    "sqlsluice prepared": med("sqlsluice", "prepared", "proxy_cpu_us_per_tx")}}
        if len(widths) > 1:
            sw, bw = med("sqlsluice", "simple", n_clients=wide_clients), med("pgbouncer", "simple", n_clients=wide_clients)
            out["wide"] = {"clients": wide_clients, "sqlsluice simple": sw, "pgbouncer simple": bw,
                           "ratio sqlsluice/pgbouncer (simple)": sw / bw if bw else 0.0,
                           "proxy_cpu_us_per_tx sqlsluice": med("sqlsluice", "simple", "proxy_cpu_us_per_tx", wide_clients),
                           "proxy_cpu_us_per_tx pgbouncer": med("pgbouncer", "simple", "proxy_cpu_us_per_tx", wide_clients)}
        return out
    finally:
        if bouncer is not None:
            bouncer.stop()
        if serve is not None:
            serve.stop()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


