"""PostgreSQL's own regression suite, run directly and through ``sluice serve``, side by side.

What it does, every step from the project's own files (nothing installed by hand):

1. downloads the Debian source package of the installed server (``postgresql-<major>`` at the
   installed version) with ``apt-get source --download-only``, using the machine's own Debian
   sources turned into ``deb-src`` in a private apt directory (the system's apt setup is left
   alone); unpacks the upstream tarball;
2. configures it with the installed server's ``--bindir`` and builds only ``src/test/regress``
   (``pg_regress``, ``regress.so``, ``refint.so``, ``autoinc.so``);
3. starts a throwaway PostgreSQL (``PgCluster``) and runs ``make installcheck`` against it
   directly, then against ``sluice serve`` in front of the same server (``[databases] "*"`` routes
   ``regression`` and every other database name through; the rewriter on, policy ``proved``);
   with ``--pool-mode transaction`` the proxy pools server connections per transaction;
4. prints both summaries (``All 217 tests passed.`` / ``N of 217 tests failed.``) and the tests
   that fail only through the proxy, writes ``--json`` and keeps ``regression.diffs`` of each run.

Not part of ``make test``: it downloads sources and takes several minutes.

    .venv/bin/python bench/peer/pg_regress.py --json out/peer_regress.json
    .venv/bin/python bench/peer/pg_regress.py --pool-mode transaction --json out/peer_regress_tx.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sqlsluice.databases.pgcluster import PgCluster, free_port, pg_bindir  # noqa: E402


def sh(cmd: list[str], cwd: Path | None = None, log: Path | None = None, env: dict[str, str] | None = None,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if log is not None:
        log.write_text(r.stdout + r.stderr)
    if check and r.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout)[-800:]}")
    return r


def server_version() -> tuple[str, str]:
    """(major, Debian version) of the installed server package."""
    out = sh([str(pg_bindir() / "postgres"), "--version"]).stdout
    major = re.search(r"(\d+)\.\d+", out)
    if not major:
        raise SystemExit(f"error: cannot read the server version from {out!r}")
    pkg = f"postgresql-{major.group(1)}"
    deb = sh(["dpkg-query", "-W", "-f=${Version}", pkg], check=False).stdout.strip()
    if not deb:
        raise SystemExit(f"error: {pkg} is not installed from a Debian package; cannot fetch its source")
    return major.group(1), deb


def fetch_source(work: Path, major: str, version: str) -> Path:
    """The unpacked upstream source tree of ``postgresql-<major>`` at ``version``."""
    trees = sorted(p for p in work.glob(f"postgresql-{major}.*") if p.is_dir())
    if trees:
        return trees[-1]
    apt = work / "apt"
    (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    parts = apt / "sources.list.d"
    parts.mkdir(exist_ok=True)
    for f in glob.glob("/etc/apt/sources.list.d/*.sources"):  # deb822: the machine's own mirrors
        text = Path(f).read_text()
        if "Types: deb" in text:
            (parts / Path(f).name).write_text(re.sub(r"(?m)^Types:\s*deb\s*$", "Types: deb-src", text))
    (apt / "sources.list").write_text("")
    opts = ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", f"Dir::Etc::SourceParts={parts}",
            "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", "APT::Sandbox::User=root"]
    sh(["apt-get", *opts, "update"], check=False, log=work / "apt-update.log")
    sh(["apt-get", *opts, "source", "--download-only", f"postgresql-{major}={version}"], cwd=work,
       log=work / "apt-source.log")
    tarballs = sorted(work.glob(f"postgresql-{major}_*.orig.tar.*"))
    if not tarballs:
        raise SystemExit(f"error: no upstream tarball downloaded (see {work / 'apt-source.log'})")
    sh(["tar", "xf", str(tarballs[-1])], cwd=work)
    trees = sorted(p for p in work.glob(f"postgresql-{major}.*") if p.is_dir())
    if not trees:
        raise SystemExit("error: the tarball did not unpack to postgresql-<version>/")
    return trees[-1]


def build_regress(src: Path) -> None:
    regress = src / "src" / "test" / "regress"
    if (regress / "pg_regress").exists() and (regress / "regress.so").exists():
        return
    if not (src / "GNUmakefile").exists():
        sh(["./configure", f"--bindir={pg_bindir()}", "--without-readline", "--without-zlib", "--without-icu",
            "--without-llvm"], cwd=src, log=src / "configure.sluice.log")
    sh(["make", "-j2", "-C", "src/test/regress"], cwd=src, log=src / "build.sluice.log")


def installcheck(src: Path, port: int, tag: str, out: Path) -> dict[str, object]:
    """``make installcheck`` against 127.0.0.1:port; the summary and the failed tests."""
    regress = src / "src" / "test" / "regress"
    for d in ("results", "log"):
        shutil.rmtree(regress / d, ignore_errors=True)
    for p in (regress, regress / "results"):
        p.mkdir(exist_ok=True)
    subprocess.run(["chmod", "-R", "a+rwX", str(regress)], check=False)  # the server writes COPY TO files here
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="postgres", LC_ALL="C.UTF-8",
               LANG="C.UTF-8")
    t0 = time.monotonic()
    r = sh(["make", "-C", "src/test/regress", "installcheck"], cwd=src, env=env, check=False,
           log=out / f"installcheck-{tag}.log")
    seconds = round(time.monotonic() - t0, 1)
    text = r.stdout + r.stderr
    # "test name ... FAILED" (serial) and "     name ... FAILED" (a parallel group member)
    failed = sorted(set(re.findall(r"^\s*(?:test\s+)?(\S+)\s+\.\.\.\s+FAILED", text, re.M)))
    summary = re.search(r"(All \d+ tests passed\.|\d+ of \d+ tests failed\.[^\n]*)", text)
    diffs = regress / "regression.diffs"
    if diffs.exists():
        shutil.copy(diffs, out / f"regression-{tag}.diffs")
    total = re.search(r"(?:All|of) (\d+) tests", summary.group(1)) if summary else None
    return {"summary": summary.group(1) if summary else f"no summary (make exited {r.returncode})",
            "tests": int(total.group(1)) if total else None, "failed": failed, "seconds": seconds,
            "exit": r.returncode}


def start_proxy(backend_port: int, work: Path, pool_mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / "sluice-peer.toml"
    url = f"postgresql://postgres@127.0.0.1:{backend_port}/postgres"
    conf.write_text(f'[server]\nbackend = "{url}"\nlisten = "127.0.0.1:{port}"\nauth = "trust"\n'
                    f'state = "{work / "state.sqlite"}"\n\n[databases]\n"*" = "{url}"\n\n'
                    f'[pool]\npool_mode = "{pool_mode}"\n')
    env = dict(os.environ, SLUICE_STATE=str(work / "state.sqlite"))
    proc = subprocess.Popen([sys.executable, "-m", "sqlsluice", "serve", "--config", str(conf)],
                            stdout=(work / "serve.log").open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: sluice serve exited: {(work / 'serve.log').read_text()[-800:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("error: sluice serve did not start listening in 60 s")


def stop_proxy(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown), then kill if it has not exited in 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "sluice-peer"),
                    help="where the source is downloaded and built (kept between runs)")
    ap.add_argument("--pool-mode", default="session", choices=["session", "transaction"])
    ap.add_argument("--json")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    major, version = server_version()
    print(f"PostgreSQL {major} (Debian {version}): fetching and building the regression suite in {work}")
    src = fetch_source(work, major, version)
    build_regress(src)
    out = work / f"out-{a.pool_mode}"
    out.mkdir(exist_ok=True)
    # the suite's expected plans assume PostgreSQL's defaults (PgCluster turns parallel query off)
    cluster = PgCluster(settings={"max_connections": "100", "max_parallel_workers_per_gather": "2"}).start()
    report: dict[str, object] = {"server": f"PostgreSQL {major} (Debian {version})", "pool_mode": a.pool_mode}
    try:
        report["direct"] = direct = installcheck(src, cluster.port, "direct", out)
        print(f"direct:        {direct['summary']} ({direct['seconds']} s)")
        proc, port = start_proxy(cluster.port, work, a.pool_mode)
        try:
            report["proxy"] = proxied = installcheck(src, port, f"proxy-{a.pool_mode}", out)
        finally:
            stop_proxy(proc)
        print(f"through sluice: {proxied['summary']} ({proxied['seconds']} s, pool_mode={a.pool_mode})")
        only = sorted(set(proxied["failed"]) - set(direct["failed"]))  # type: ignore[arg-type,call-overload]
        report["proxy_only_failures"] = only
        print(f"failing only through sluice: {', '.join(only) if only else 'none'}; diffs in {out}")
    finally:
        cluster.stop()
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
