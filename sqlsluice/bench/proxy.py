"""``sluice bench proxy``: pgbench through sqlsluice vs. a plain byte relay vs. direct.

One run measures, side by side and interleaved (round-robin over targets inside each
round, the order rotating between rounds), pgbench ``-S`` (select-only) in simple and
prepared protocol modes against:

* ``direct``    the upstream PostgreSQL itself;
* ``relay``     a plain asyncio byte-forwarding relay (a subprocess started here, on the same
                event loop implementation as the ``sluice serve`` process: uvloop or asyncio,
                read from ``/proc/<pid>/maps``), the floor any Python proxy pays;
* ``sqlsluice`` ``sluice serve --backend <upstream>`` (a subprocess).

It prints TPS and mean latency with the ratios sqlsluice/relay, relay/direct and
sqlsluice/direct.  The relay also lives in this module: ``python -m sqlsluice.bench.proxy
relay LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT [uvloop|asyncio]``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlsluice.errors import BackendError, ConfigError

TARGETS = ("direct", "relay", "sqlsluice")
MODES = ("simple", "prepared")


@dataclass
class Measurement:
    target: str
    mode: str
    round: int
    tps: float
    latency_ms: float
    transactions: int
    event_loop: str = ""
    proxy_cpu_us_per_tx: float | None = None  # CPU time of the proxy process per transaction (not for direct)


# --- the plain relay -------------------------------------------------------------------
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            if writer.transport.get_write_buffer_size() > 262144:
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _relay_main(listen_port: int, up_host: str, up_port: int) -> None:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(up_host, up_port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(_pipe(cr, uw), _pipe(ur, cw))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=512)
    async with server:
        await server.serve_forever()


def run_relay(listen_port: int, up_host: str, up_port: int, loop: str = "asyncio") -> None:
    """Serve the byte relay forever on ``loop`` ("uvloop" or "asyncio")."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(_relay_main(listen_port, up_host, up_port))
    else:
        asyncio.run(_relay_main(listen_port, up_host, up_port))


def event_loop_of(pid: int) -> str:
    """"uvloop" when process ``pid`` has uvloop's extension mapped, else "asyncio" (Linux ``/proc``)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "asyncio"
    return "uvloop" if "/uvloop/" in maps else "asyncio"


# --- orchestration ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stderr_file() -> Any:
    import tempfile

    return tempfile.TemporaryFile()


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0,
               err: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = ""
            if err is not None:
                err.seek(0)
                text = err.read().decode(errors="replace")
            raise BackendError(f"{what} exited with code {proc.returncode}: {text.strip()[-500:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise BackendError(f"{what} did not start listening on port {port}")


class ServeProcess:
    """``sluice serve --backend URL --listen 127.0.0.1:PORT`` as a subprocess (benchmark, tests).

    >>> ServeProcess("postgresql://u@127.0.0.1:5432/db", port=7777).argv[-4:]
    ['--backend', 'postgresql://u@127.0.0.1:5432/db', '--listen', '127.0.0.1:7777']
    """

    def __init__(self, backend_url: str, *, port: int | None = None, config: str | Path | None = None,
                 cwd: str | Path | None = None, plain: bool = False, state: str | None = None) -> None:
        self.port = port or _free_port()
        self.argv = [sys.executable, "-m", "sqlsluice", "serve"]
        if config is not None:
            self.argv += ["--config", str(config)]
        if plain:
            self.argv += ["--plain"]
        self.argv += ["--backend", backend_url, "--listen", f"127.0.0.1:{self.port}"]
        self.cwd = cwd
        # the rewrite store and query log of this server alone (not the working directory's)
        self._state_dir = tempfile.mkdtemp(prefix="sluice-state-") if state is None else None
        self.env = dict(os.environ, SLUICE_STATE=state or f"sqlite:///{self._state_dir}/state.sqlite")
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = _stderr_file()

    def dsn(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> ServeProcess:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=self.stderr, cwd=self.cwd,
                                     env=self.env)
        _wait_port(self.port, self.proc, "sluice serve", err=self.stderr)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)

    def log(self) -> str:
        """What the server wrote on stderr so far."""
        self.stderr.seek(0)
        return str(self.stderr.read().decode(errors="replace"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``), None when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pgbench() -> str:
    path = shutil.which("pgbench")
    if path:
        return path
    from sqlsluice.databases.pgcluster import pg_bindir

    cand = pg_bindir() / "pgbench"
    if cand.exists():
        return str(cand)
    raise ConfigError("pgbench not found (install the 'postgresql-contrib' or 'postgresql' package)")


_TPS = re.compile(r"tps = ([0-9.]+) \((?:without|excluding)")
_LAT = re.compile(r"latency average = ([0-9.]+) ms")
_TX = re.compile(r"number of transactions actually processed: (\d+)")


def parse_pgbench(out: str) -> tuple[float, float, int]:
    """``(tps, mean latency ms, transactions)`` from pgbench's report."""
    tps, lat, tx = _TPS.search(out), _LAT.search(out), _TX.search(out)
    if not (tps and lat and tx):
        raise BackendError(f"cannot read pgbench output: {out.strip()[-300:]}")
    return float(tps.group(1)), float(lat.group(1)), int(tx.group(1))


class _Env:
    def __init__(self, target: Any, password: str | None) -> None:
        self.t = target
        self.env = dict(os.environ)
        if password:
            self.env["PGPASSWORD"] = password

    def args(self, host: str, port: int) -> list[str]:
        return ["-h", host, "-p", str(port), "-U", self.t.user, self.t.database]


def run_pgbench(env: _Env, host: str, port: int, mode: str, *, clients: int, jobs: int,
                duration: int) -> tuple[float, float, int]:
    cmd = [_pgbench(), "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(jobs), "-T", str(duration),
           *env.args(host, port)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env.env, timeout=duration + 120, check=False)
    if r.returncode != 0:
        raise BackendError(f"pgbench failed ({' '.join(cmd)}): {r.stderr.strip()[-500:]}")
    return parse_pgbench(r.stdout)


def bench(upstream: str | None, *, duration: int = 10, clients: int = 8, jobs: int = 2, rounds: int = 1,
          modes: tuple[str, ...] = MODES, targets: tuple[str, ...] = TARGETS, log: Any = None
          ) -> list[Measurement]:
    """Run the whole comparison; returns one Measurement per (round, mode, target)."""
    from sqlsluice.databases.pgcluster import PgCluster
    from sqlsluice.middleware.upstream_auth import UpstreamTarget

    say = log or (lambda _m: None)
    cluster: PgCluster | None = None
    procs: list[subprocess.Popen[bytes]] = []
    serve: ServeProcess | None = None
    try:
        if upstream is None:
            say("starting a throwaway PostgreSQL cluster")
            cluster = PgCluster().start()
            upstream = cluster.url
        t = UpstreamTarget.from_url(upstream)
        env = _Env(t, t.password)
        say("pgbench -i -s 1")
        r = subprocess.run([_pgbench(), "-i", "-s", "1", "-q", *env.args(t.host, t.port)], capture_output=True,
                           text=True, env=env.env, timeout=600, check=False)
        if r.returncode != 0:
            raise BackendError(f"pgbench -i failed: {r.stderr.strip()[-500:]}")

        ports: dict[str, int] = {"direct": t.port}
        loop = "asyncio"
        if "sqlsluice" in targets:
            serve = ServeProcess(upstream).start()
            ports["sqlsluice"] = serve.port
            if serve.proc is not None:
                loop = event_loop_of(serve.proc.pid)
        if "relay" in targets:
            # the relay runs on the same event loop implementation as sluice serve
            ports["relay"] = _free_port()
            relay_err = _stderr_file()
            p = subprocess.Popen([sys.executable, "-m", "sqlsluice.bench.proxy", "relay", str(ports["relay"]),
                                  t.host, str(t.port), loop], stdout=subprocess.DEVNULL, stderr=relay_err)
            procs.append(p)
            _wait_port(ports["relay"], p, "the relay", err=relay_err)
        say(f"event loop of sluice serve and the relay: {loop}")
        hosts = {name: ("127.0.0.1" if name != "direct" else t.host) for name in ports}
        pids: dict[str, int] = {}
        if serve is not None and serve.proc is not None:
            pids["sqlsluice"] = serve.proc.pid
        if "relay" in targets:
            pids["relay"] = procs[-1].pid

        out: list[Measurement] = []
        order = list(targets)
        for rnd in range(rounds):
            for mode in modes:
                for name in order:
                    say(f"round {rnd + 1}/{rounds} {mode:8} {name}")
                    cpu0 = process_cpu_seconds(pids[name]) if name in pids else None
                    tps, lat, tx = run_pgbench(env, hosts[name], ports[name], mode, clients=clients, jobs=jobs,
                                               duration=duration)
                    cpu1 = process_cpu_seconds(pids[name]) if name in pids else None
                    cpu = (cpu1 - cpu0) * 1e6 / tx if cpu0 is not None and cpu1 is not None and tx else None
                    out.append(Measurement(name, mode, rnd, tps, lat, tx, loop if name != "direct" else "", cpu))
            order = order[1:] + order[:1]
        return out
    finally:
        if serve is not None:
            serve.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if cluster is not None:
            cluster.stop()


def summarize(ms: list[Measurement]) -> dict[str, dict[str, dict[str, float]]]:
    """``{mode: {target: {tps, latency_ms[, cpu_us_per_tx]}, "ratios": {...}}}``; medians over rounds.

    Ratios are of TPS (sqlsluice/relay, relay/direct, sqlsluice/direct) and, where the proxy's
    CPU time was read, of CPU time per transaction (``cpu sqlsluice/relay``), which is far
    less sensitive than TPS to other load on the machine.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode in dict.fromkeys(m.mode for m in ms):
        per: dict[str, dict[str, float]] = {}
        for target in dict.fromkeys(m.target for m in ms):
            sel = [m for m in ms if m.mode == mode and m.target == target]
            if sel:
                per[target] = {"tps": statistics.median(m.tps for m in sel),
                               "latency_ms": statistics.median(m.latency_ms for m in sel)}
                cpus = [m.proxy_cpu_us_per_tx for m in sel if m.proxy_cpu_us_per_tx is not None]
                if cpus:
                    per[target]["cpu_us_per_tx"] = statistics.median(cpus)
        ratios: dict[str, float] = {}
        for a, b in (("sqlsluice", "relay"), ("relay", "direct"), ("sqlsluice", "direct")):
            if a in per and b in per and per[b]["tps"] > 0:
                ratios[f"{a}/{b}"] = per[a]["tps"] / per[b]["tps"]
        if per.get("relay", {}).get("cpu_us_per_tx") and "cpu_us_per_tx" in per.get("sqlsluice", {}):
            ratios["cpu sqlsluice/relay"] = per["sqlsluice"]["cpu_us_per_tx"] / per["relay"]["cpu_us_per_tx"]
        per["ratios"] = ratios
        out[mode] = per
    return out


def _print_table(summary: dict[str, dict[str, dict[str, float]]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("mode")
    table.add_column("target")
    for col in ("TPS", "mean latency (ms)", "proxy CPU (us/tx)"):
        table.add_column(col, justify="right")
    for mode, per in summary.items():
        for target, v in per.items():
            if target != "ratios":
                cpu = f"{v['cpu_us_per_tx']:.1f}" if "cpu_us_per_tx" in v else ""
                table.add_row(mode, target, f"{v['tps']:.0f}", f"{v['latency_ms']:.3f}", cpu)
        for name, r in per["ratios"].items():
            if name.startswith("cpu "):
                table.add_row(mode, f"ratio {name[4:]} (CPU/tx)", "", "", f"{r:.2f}")
            else:
                table.add_row(mode, f"ratio {name}", f"{r:.2f}", "", "")
    Console(width=max(Console().width, 110)).print(table)




if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "relay":
        run_relay(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) == 6 else "asyncio")
    else:
        print("usage: python -m sqlsluice.bench.proxy relay LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT [uvloop|asyncio]",
              file=sys.stderr)
        sys.exit(2)
