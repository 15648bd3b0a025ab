"""The console's Starlette routes (mounted beside ``/metrics`` and ``/healthz``).

=====================================  ==================================================
``GET  /console/login``                the login form; ``POST`` checks an admin's password
``POST /console/logout``               ends the session
``GET  /console/rewrites``             the rewrite store of every database
``GET  /console/rewrites/{fp}?db=NS``  one rewrite: diff, rules, proof, timing plot, buttons
``POST /console/rewrites/{fp}/{act}``  ``approve`` | ``reject`` | ``forget`` (``db``, ``csrf``)
``GET  /console/ask``                  ASK history and TEP over time
``GET  /console/static/{name}``        plotly.min.js (from the ``plotly`` package), console.js/css
=====================================  ==================================================

Without a valid session a page answers 303 to the login form, anything else 401.  Pages are
served with a Content-Security-Policy that allows scripts from this origin only (no inline
script, no CDN).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from sqlsluice.serving.web import data, timings
from sqlsluice.serving.web.auth import COOKIE, SessionKeys, check_password

if TYPE_CHECKING:
    from sqlsluice.middleware.server import SluiceServer

log = logging.getLogger("sqlsluice.serving.web")

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
FAILED_LOGIN_DELAY_S = 0.5
LOCAL = "(local)"  # the session of a loopback client under trust with no [[users]] (not a user name)


def _loopback(addr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _loopback_host(host: str) -> bool:
    """A Host header that names this machine's loopback (``127.0.0.1:6544``, ``[::1]:6544``, ``localhost``)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name == "localhost" or _loopback(name)


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["tojson_script"] = _json_for_script
    return env


def _json_for_script(value: Any) -> Any:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` can close it)."""
    import markupsafe

    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return markupsafe.Markup(text)


def console_routes(server: SluiceServer) -> list[Any]:
    """The console's routes for ``server`` (and the timing recorder's hook and flusher)."""
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    keys = SessionKeys()
    env = _templates()
    timings.install()
    flusher = timings.Flusher(lambda: [d.store for d in data.databases(server)],
                              done=lambda: bool(getattr(server, "shutting_down", False))).start()

    def password_of(user: str) -> str | None:
        if user == LOCAL:  # bound to no password; valid while the trust policy holds (see who)
            return "" if local_policy() else None
        u = server.config.user(user)
        return u.password if u is not None and u.admin else None

    def local_policy() -> bool:
        cfg = server.config
        return not cfg.users and cfg.auth_method == "trust"

    def local_trust(request: Request) -> bool:
        """As over the wire (``SHOW sluice.stats``): with no users and trust authentication, a
        client on the loopback address is an admin; the Host header must name a loopback
        address too (a page on another site that rebinds its name to 127.0.0.1 gets nothing)."""
        return local_policy() and _loopback(request.client.host if request.client else "") and \
            _loopback_host(request.headers.get("host", ""))

    def who(request: Request) -> str | None:
        user = keys.verify(request.cookies.get(COOKIE), password_of)
        if user == LOCAL and not local_trust(request):
            return None
        return user

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        cookie = request.cookies.get(COOKIE)
        html = env.get_template(name).render(user=who(request), csrf=keys.csrf(cookie), nav=name, **ctx)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                                "X-Content-Type-Options": "nosniff",
                                                                "Cache-Control": "no-store",
                                                                "Referrer-Policy": "same-origin"})

    def to_login(request: Request) -> Response:
        if request.method == "GET" and not request.url.path.startswith("/console/static/"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)
        return PlainTextResponse("login required", status_code=401, headers={"WWW-Authenticate": "Cookie"})

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body())[:65536].decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def same_origin(request: Request) -> bool:
        """A POST from our own pages: Origin (or Referer) names this host, when the browser sends one."""
        src = request.headers.get("origin") or request.headers.get("referer")
        if not src or src == "null":
            return src is None
        return urlsplit(src).netloc == request.headers.get("host", "")

    def safe_next(target: str | None) -> str:
        if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
            return target
        return "/console/rewrites"

    async def login(request: Request) -> Response:
        admins = [u.name for u in server.config.users if u.admin]
        local = local_trust(request)
        if request.method == "GET":
            return page(request, "login.html", next=safe_next(request.query_params.get("next")), error="",
                        no_admin=not admins and not local, local=local)
        f = await form(request)
        user, password = f.get("user", ""), f.get("password", "")
        target = safe_next(f.get("next"))
        if not same_origin(request):
            return PlainTextResponse("cross-origin login refused", status_code=403)
        if f.get("local") == "1":
            if not local:
                return PlainTextResponse("a local login needs trust authentication, no [[users]] and a loopback "
                                         "client", status_code=403)
            resp = RedirectResponse(target, status_code=303)
            resp.set_cookie(COOKIE, keys.sign(LOCAL, ""), max_age=int(keys.lifetime_s), httponly=True,
                            samesite="strict", path="/console")
            return resp
        u = server.config.user(user)
        ok = await asyncio.to_thread(check_password, u.password if u is not None else "x" * 16, password, user)
        if not (ok and u is not None and u.admin):
            log.warning("console: failed login for user %r from %s", user, request.client.host if request.client
                        else "?")
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            return page(request, "login.html", status=401, next=target, no_admin=not admins and not local,
                        local=local, error="wrong user or password, or not an admin user")
        log.info("console: %s logged in", user)
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, keys.sign(user, u.password), max_age=int(keys.lifetime_s), httponly=True,
                        samesite="strict", path="/console", secure=request.url.scheme == "https")
        return resp

    async def logout(request: Request) -> Response:
        f = await form(request)
        if who(request) is None or not keys.check_csrf(request.cookies.get(COOKIE), f.get("csrf", "")):
            return to_login(request)
        keys.revoke(request.cookies.get(COOKIE))
        resp = RedirectResponse("/console/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    async def index(request: Request) -> Response:
        if who(request) is None:
            return to_login(request)
        return RedirectResponse("/console/rewrites", status_code=303)

    async def rewrites(request: Request) -> Response:
        if who(request) is None:
            return to_login(request)
        include_none = request.query_params.get("all") == "1"
        await asyncio.to_thread(flusher.flush)

        def gather() -> list[tuple[data.Database, list[dict[str, Any]]]]:
            return [(d, data.rewrite_rows(d, include_none=include_none)) for d in data.databases(server)]

        dbs = await asyncio.to_thread(gather)
        return page(request, "rewrites.html", dbs=dbs, include_none=include_none,
                    mode=server.config.rewrite.mode)

    async def rewrite(request: Request) -> Response:
        if who(request) is None:
            return to_login(request)
        fp = request.path_params["fp"]
        ns = request.query_params.get("db", "")
        await asyncio.to_thread(flusher.flush)
        db = await asyncio.to_thread(data.find, server, ns)
        detail = await asyncio.to_thread(data.rewrite_detail, db, fp) if db is not None else None
        if detail is None:
            return page(request, "missing.html", status=404, what=f"no stored rewrite {fp}")
        return page(request, "rewrite.html", r=detail, message=request.query_params.get("done", ""),
                    mode=server.config.rewrite.mode)

    async def decide(request: Request) -> Response:
        user = who(request)
        if user is None:
            return to_login(request)
        f = await form(request)
        if not same_origin(request) or not keys.check_csrf(request.cookies.get(COOKIE), f.get("csrf", "")):
            return PlainTextResponse("missing or wrong CSRF token", status_code=403)
        fp, action = request.path_params["fp"], request.path_params["action"]
        if action not in data.ACTIONS:
            return PlainTextResponse(f"unknown action {action!r}", status_code=404)
        ns = f.get("db", "")
        db = await asyncio.to_thread(data.find, server, ns)
        if db is None:
            return PlainTextResponse(f"no database {ns!r}", status_code=404)
        try:
            done = await asyncio.to_thread(data.decide, server, db, fp, action, f"console:{user}")
        except KeyError:
            return page(request, "missing.html", status=404, what=f"no stored rewrite {fp}")
        except ValueError as e:
            return PlainTextResponse(str(e), status_code=409)
        log.info("console: %s %s rewrite %s", user, done, fp)
        q = f"?db={quote(ns)}&done={done}" if action != "forget" else ""
        target = f"/console/rewrites/{fp}{q}" if action != "forget" else "/console/rewrites"
        return RedirectResponse(target, status_code=303)

    async def ask(request: Request) -> Response:
        if who(request) is None:
            return to_login(request)
        rows = await asyncio.to_thread(data.ask_history, server.config)
        totals = {"questions": len(rows), "tokens": sum(r["tokens"] for r in rows),
                  "cost": sum(r["cost"] for r in rows)}
        return page(request, "ask.html", rows=rows, figure=data.ask_figure(rows), totals=totals)

    static = {"plotly.min.js": (_plotly_js, "application/javascript"),
              "console.js": (lambda: HERE / "static" / "console.js", "application/javascript"),
              "console.css": (lambda: HERE / "static" / "console.css", "text/css")}

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name != "console.css" and who(request) is None:
            return to_login(request)
        if name not in static:
            return PlainTextResponse("not found", status_code=404)
        path, media = static[name]
        return FileResponse(path(), media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    return [Route("/console", index), Route("/console/", index),
            Route("/console/login", login, methods=["GET", "POST"]),
            Route("/console/logout", logout, methods=["POST"]),
            Route("/console/rewrites", rewrites),
            Route("/console/rewrites/{fp}", rewrite),
            Route("/console/rewrites/{fp}/{action}", decide, methods=["POST"]),
            Route("/console/ask", ask),
            Route("/console/static/{name}", static_file)]
