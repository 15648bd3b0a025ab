"""The web console through a real ``sluice serve`` (over a throwaway PostgreSQL), with psycopg
as the application, urllib as a script and headless Chromium (DevTools protocol) as the DBA.

Review mode: the rewrite the server finds is not served until approved in the console; the
console's approve / reject / forget change the rewrite store and what the proxy serves.
Screenshots land in the test's tmp dir (paths printed; ``SLUICE_CONSOLE_SCREENSHOTS=DIR``
copies them there too, e.g. ``docs/console``).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlsluice.databases.postgres_backend import settle_statistics
from sqlsluice.llm.scripted_server import ScriptedLLMServer
from sqlsluice.rewriters.online import RewriteStore
from sqlsluice.state import StateStore
from tests.web.cdp import Browser

ROOT = Path(__file__).resolve().parents[2]
SETUP = [
    "CREATE TABLE t (k INTEGER PRIMARY KEY, n NUMERIC(30, 10), g VARCHAR)",
    "INSERT INTO t SELECT i, i * 1.0000000001, 'g' || (i % 3) FROM generate_series(1, 200) AS s(i)",
    # large enough that the correlated average (re-run per row of t) loses to its decorrelation
    "CREATE TABLE u (k INTEGER PRIMARY KEY, tk INTEGER, v NUMERIC(12, 4))",
    "INSERT INTO u SELECT i, i % 250, (i % 97) * 0.0001 FROM generate_series(1, 20000) AS s(i)",
]
QUERY = "SELECT t.k, t.n FROM t WHERE t.n > (SELECT avg(u.v) * 1000 FROM u WHERE u.tk = t.k) ORDER BY t.k"
ADMIN, ADMIN_PW = "dba", "dba-Secret-1"
APP, APP_PW = "app", "app-secret"


def wait_until(cond: Callable[[], Any], what: str, limit: float = 120.0) -> Any:
    """Poll ``cond`` (a generous limit: a hung server fails the test instead of hanging it)."""
    deadline = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.2)


class Serve:
    """``sluice serve`` in a subprocess with [http] on a free port; its log in a file."""

    def __init__(self, tmp: Path, backend: str, config: str) -> None:
        (tmp / "sluice.toml").write_text(config)
        self.state = tmp / "state.sqlite"
        self.log_path = tmp / "sluice.log"
        env = dict(os.environ, SLUICE_HOME=str(tmp / ".sluice"), SLUICE_STATE=f"sqlite:///{self.state}")
        env.pop("SLUICE_CONFIG", None)
        self._log = open(self.log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sqlsluice", "serve", "--backend", backend, "--listen", "127.0.0.1:0",
             "--http-listen", "127.0.0.1:0", "--config", str(tmp / "sluice.toml")],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, cwd=ROOT)
        assert self.proc.stdout is not None
        out = ""
        while "/metrics" not in out:
            line = self.proc.stdout.readline()
            assert line, self.log_path.read_text()
            out += line
        self.port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", out).group(1))  # type: ignore[union-attr]
        http = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", out)
        assert http, out
        self.http = http.group(1)

    def connect(self, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=APP, password=APP_PW, dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        return self.proc.returncode


class Client:
    """A script's HTTP session: cookies kept, redirects not followed (to see them)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **kw: Any) -> None:
            return None

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), self._NoRedirect)

    def request(self, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def login(self, user: str, password: str) -> int:
        status, headers, _ = self.request("/console/login", {"user": user, "password": password,
                                                            "next": "/console/rewrites"})
        return status

    def csrf(self) -> str:
        _, _, page = self.request("/console/rewrites")
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        assert m, page[:500]
        return m.group(1)


def _run(c: psycopg.Connection[Any]) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    rows = psycopg.ClientCursor(c).execute(QUERY).fetchall()  # type: ignore[arg-type]
    return rows, dict(psycopg.ClientCursor(c).execute("SHOW sluice.last").fetchall())


def _figure(page: str, fig_id: str) -> dict[str, Any]:
    m = re.search(rf'<script type="application/json" id="{fig_id}">(.*?)</script>', page, re.S)
    assert m, page[:500]
    return json.loads(m.group(1))  # type: ignore[no-any-return]


@pytest.fixture()
def shots(tmp_path: Path) -> Iterator[list[Path]]:
    taken: list[Path] = []
    yield taken
    for p in taken:
        print(f"screenshot: {p}")
    dest = os.environ.get("SLUICE_CONSOLE_SCREENSHOTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        for p in taken:
            shutil.copy(p, Path(dest) / p.name)


def test_console_reviews_rewrites_and_shows_ask_history(pg_db: str, tmp_path: Path, shots: list[Path]) -> None:
    with psycopg.connect(pg_db, autocommit=True) as c:
        for s in SETUP:
            c.execute(s)  # type: ignore[arg-type]
        settle_statistics(c)
        expected = c.execute(QUERY).fetchall()  # type: ignore[arg-type]
    dbname = pg_db.rsplit("/", 1)[-1]
    llm = ScriptedLLMServer(responder=lambda body: "SELECT count(*) AS n FROM t WHERE t.g = 'g1'").start()
    srv = Serve(tmp_path, pg_db, f"""
[server]
auth = "scram-sha-256"
upstream_identity = "backend"
[[users]]
name = "{ADMIN}"
password = "{ADMIN_PW}"
admin = true
[[users]]
name = "{APP}"
password = "{APP_PW}"
[rewrite]
mode = "review"
min_speedup = 1.0
[llm]
base_url = "{llm.base_url}"
max_retries = 0
[llm.models]
default = "scripted-model"
""")
    browser: Browser | None = None
    try:
        # --- nothing without a login; a non-admin user cannot log in --------------------------
        anon = Client(srv.http)
        status, headers, _ = anon.request("/console/rewrites")
        assert status == 303 and headers["location"].startswith("/console/login?next=")
        for path in ("/console/ask", "/console/rewrites/abc"):
            assert anon.request(path)[0] == 303, path
        assert anon.request("/console/static/plotly.min.js")[0] == 401
        assert anon.request("/console/rewrites/abc/approve", {"db": "", "csrf": "x"})[0] == 401
        assert anon.request("/metrics")[0] == 200 and anon.request("/healthz")[0] == 200  # unchanged
        assert anon.login(APP, APP_PW) == 401  # right password, not an admin
        assert anon.login(ADMIN, "wrong") == 401
        assert not anon.jar and anon.request("/console/rewrites")[0] == 303
        dba = Client(srv.http)
        assert dba.login(ADMIN, ADMIN_PW) == 303
        status, _, page = dba.request("/console/rewrites")
        assert status == 200 and "Stored rewrites" in page
        assert dba.request("/console/static/plotly.min.js")[0] == 200

        # --- review mode: the rewrite found waits for approval -----------------------------------
        store = RewriteStore(StateStore(f"sqlite:///{srv.state}"))
        with srv.connect(dbname) as c:
            rows, last = _run(c)
            assert rows == expected and last["rewritten"] == "False"

            def stored_pending() -> str | None:
                found = [e for e in store.all() if e.has_rewrite]
                # marked pending before it is stored: never seen without a decision
                assert all(store.review_status(e) == "pending" for e in found), found
                return found[0].fingerprint if found else None

            fp = wait_until(stored_pending, "a rewrite found, proved and stored pending review")
            # held, not served (a 2 s negative cache may first answer "no stored rewrite")
            for _ in range(30):
                rows, last = _run(c)
                assert rows == expected and last["rewritten"] == "False", last
                if "pending review" in last.get("rewrite", ""):
                    break
                time.sleep(0.5)
            assert "pending review" in last.get("rewrite", ""), last
            c.execute("ASK 'How many rows of t are in group g1?'")
            c.execute("ASK 'How many rows of t are in group g1?'")  # the router may answer from the cache
            c.execute("SET sluice.router = 'always:basic'")
            c.execute("ASK 'Count the t rows of group g1'")

        # --- the DBA's browser: list, one rewrite with its plot, approve ------------------------
        browser = Browser(tmp_path / "chrome")
        assert browser.goto(srv.http + "/console/rewrites").startswith(srv.http + "/console/login")
        url = browser.submit(f"document.getElementById('user').value = {json.dumps(ADMIN)};"
                             f"document.getElementById('password').value = {json.dumps(ADMIN_PW)};"
                             "document.querySelector('form.login').submit()")
        assert url == srv.http + "/console/rewrites", url
        dom = browser.dom()
        assert f'data-fingerprint="{fp}"' in dom and 'class="badge pending"' in dom
        shots.append(browser.screenshot(tmp_path / "console-rewrites.png"))

        browser.goto(f"{srv.http}/console/rewrites/{fp}?db=")
        browser.wait_js("document.body.dataset.plotsDrawn === '1'", "the timing plot drawn")
        dom = browser.dom()
        assert 'class="main-svg"' in dom and "plotly" in dom  # plotly drew its SVG
        assert 'class="diff"' in dom and ("diff_chg" in dom or "diff_add" in dom or "diff_sub" in dom)
        assert "approve" in dom and "EQUIVALENT" in dom
        url = browser.submit("document.getElementById('approve').click()")
        assert url.startswith(f"{srv.http}/console/rewrites/{fp}") and "done=approved" in url
        assert browser.eval("document.getElementById('state').textContent") == "approved"
        assert store.status(fp)[:2] == ("approved", f"console:{ADMIN}")  # type: ignore[index]

        # --- approved: served (and its served timings recorded) ----------------------------------
        with srv.connect(dbname) as c:
            rows, last = _run(c)
            assert rows == expected and last["rewritten"] == "True", last
            for _ in range(4):
                rows, last = _run(c)
                assert rows == expected and last["rewritten"] == "True", last
        status, _, page = dba.request(f"/console/rewrites/{fp}?db=")
        fig = {t["name"]: t for t in _figure(page, "fig-timings")["data"]}
        assert len(fig["rewrite, served"]["y"]) >= 1 and len(fig["rewrite, verified"]["y"]) == 1
        assert sum(int(t.split()[0]) for t in fig["rewrite, served"]["text"]) == 5
        assert re.search(r'id="served">5 execution', page), page
        browser.goto(f"{srv.http}/console/rewrites/{fp}?db=")
        browser.wait_js("document.body.dataset.plotsDrawn === '1'", "the timing plot drawn")
        assert browser.eval("document.querySelectorAll('#plot-timings .scatterlayer .trace').length") == 4
        shots.append(browser.screenshot(tmp_path / "console-rewrite.png"))

        # --- reject (a script's POST: CSRF token required) ----------------------------------------
        assert dba.request(f"/console/rewrites/{fp}/reject", {"db": ""})[0] == 403
        assert dba.request(f"/console/rewrites/{fp}/reject", {"db": "", "csrf": "forged"})[0] == 403
        assert store.status(fp)[0] == "approved"  # type: ignore[index]
        status, headers, _ = dba.request(f"/console/rewrites/{fp}/reject", {"db": "", "csrf": dba.csrf()})
        assert status == 303 and "done=rejected" in headers["location"]
        assert store.status(fp)[0] == "rejected"  # type: ignore[index]
        with srv.connect(dbname) as c:
            rows, last = _run(c)
            assert rows == expected and last["rewritten"] == "False" and "rejected" in last.get("rewrite", ""), last

        # --- forget: deleted, searched again on next sight (and pending again) -------------------
        status, headers, _ = dba.request(f"/console/rewrites/{fp}/forget", {"db": "", "csrf": dba.csrf()})
        assert status == 303 and headers["location"] == "/console/rewrites"
        assert store.get(fp) is None and store.status(fp) is None
        assert dba.request(f"/console/rewrites/{fp}?db=")[0] == 404
        with srv.connect(dbname) as c:
            rows, last = _run(c)
            assert rows == expected and last["rewritten"] == "False"
        wait_until(lambda: store.get(fp) is not None and store.review_status(store.get(fp)) == "pending",  # type: ignore[arg-type]
                   "the shape searched again and pending review")

        # --- ASK history with its TEP plot -------------------------------------------------------
        browser.goto(srv.http + "/console/ask")
        browser.wait_js("document.body.dataset.plotsDrawn === '1'", "the TEP plot drawn")
        dom = browser.dom()
        assert 'class="main-svg"' in dom
        assert dom.count("How many rows of t are in group g1?") == 2 and "Count the t rows of group g1" in dom
        assert "SELECT count(*) AS n FROM t WHERE t.g = 'g1'" in dom and "basic" in dom
        shots.append(browser.screenshot(tmp_path / "console-ask.png"))
        status, _, page = dba.request("/console/ask")
        tep = _figure(page, "fig-tep")["data"]
        assert len(tep[0]["x"]) == 3 and tep[1]["y"][0] > 0  # one point per ASK; tokens spent

        # --- log out: the cookie no longer opens anything ----------------------------------------
        url = browser.submit("document.querySelector('form.logout').submit()")
        assert url.startswith(srv.http + "/console/login")
        assert browser.goto(srv.http + "/console/ask").startswith(srv.http + "/console/login")
    finally:
        if browser is not None:
            browser.close()
        rc = srv.stop()
        llm.stop()
    assert rc == 0
    log = srv.log_path.read_text()
    assert ADMIN_PW not in log and APP_PW not in log
    assert all(p.stat().st_size > 10_000 for p in shots)


def test_console_local_admin_under_trust_with_no_users(tmp_path: Path) -> None:
    """As over the wire: with no [[users]] and trust, a loopback client is an admin (no password);
    a Host header naming another site (DNS rebinding) gets nothing, and adding users ends it."""
    srv = Serve(tmp_path, "duckdb:///:memory:", "")
    try:
        c = Client(srv.http)
        assert c.login("anyone", "anything") == 401
        status, _, page = c.request("/console/login")
        assert status == 200 and 'id="local-login"' in page
        status, headers, _ = c.request("/console/login", {"local": "1", "next": "/console/ask"})
        assert status == 303 and headers["location"] == "/console/ask"
        status, _, page = c.request("/console/ask")
        assert status == 200 and "ASK history" in page
        assert c.request("/console/ask", headers={"Host": "rebound.example:80"})[0] == 303
        assert Client(srv.http).request("/console/login", {"local": "1"}, headers={"Host": "rebound.example"})[0] \
            == 403
        # users added (SIGHUP): the local session ends, and no local login is offered any more
        (tmp_path / "sluice.toml").write_text(f'[[users]]\nname = "{ADMIN}"\npassword = "{ADMIN_PW}"\n'
                                              "admin = true\n")
        srv.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: c.request("/console/ask")[0] == 303, "the local session ended by the reload")
        assert 'id="local-login"' not in c.request("/console/login")[2]
        assert c.login(ADMIN, ADMIN_PW) == 303 and c.request("/console/ask")[0] == 200
        # logging out revokes the session: its cookie, replayed, opens nothing
        cookie = next(k for k in c.jar if k.name == "sluice_console").value
        assert Client(srv.http).request("/console/ask", headers={"Cookie": f"sluice_console={cookie}"})[0] == 200
        _, _, page = c.request("/console/ask")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        assert c.request("/console/logout", {"csrf": csrf})[0] == 303
        replay = Client(srv.http).request("/console/ask", headers={"Cookie": f"sluice_console={cookie}"})
        assert replay[0] == 303, replay
    finally:
        assert srv.stop() == 0
