"""What the console shows, read from the server and its state store (no HTTP here).

* :func:`databases`: the rewrite stores a server serves from, one per database;
* :func:`rewrite_rows` / :func:`rewrite_detail`: the rewrite store (and each rewrite's
  certificate, side-by-side diff and timing history);
* :func:`decide`: approve | reject | forget, as ``sluice rewrites approve|reject|forget`` do;
* :func:`ask_history` / :func:`tep_series`: ASK questions from the query log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from sqlsluice.serving.web import timings

ACTIONS = {"approve": "approved", "reject": "rejected", "forget": "forgotten"}


@dataclass
class Database:
    """One rewrite store: ``ns`` ('' for the server's one backend) names it in URLs."""

    ns: str
    label: str
    store: Any  # sqlsluice.rewriters.online.RewriteStore
    online: Any = None  # the live OnlineRewriter serving from it, when one is open
    dialect: str = "postgres"


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def databases(server: Any) -> list[Database]:
    """The stores of the databases the server serves: its products' live rewriters, then
    ``[databases]`` entries no client has opened yet (their stores, as they will be used)."""
    out: list[Database] = []
    seen: set[str] = set()
    names = {_entry_url(v): k for k, v in getattr(server.config, "databases", {}).items()}
    for p in list(server.products()):
        online = getattr(p, "online", None)
        if online is None:
            continue
        ns = timings.namespace(online.store)
        if ns in seen:
            continue
        seen.add(ns)
        url = str(getattr(p, "backend_url", ""))
        label = f"{names[url]} ({redact(url)})" if url in names else redact(url)
        out.append(Database(ns, label, online.store, online, online.dialect))
    from sqlsluice.middleware.server import rewrite_namespace
    from sqlsluice.rewriters.online import RewriteStore
    from sqlsluice.state import NamespacedState, store_for

    review = server.config.rewrite.mode == "review"  # no decision: pending, as the server holds it
    for name, entry in getattr(server.config, "databases", {}).items():
        url = _entry_url(entry)
        if name == "*":
            continue
        ns = rewrite_namespace(url)
        if ns not in seen:
            seen.add(ns)
            store = RewriteStore(NamespacedState(store_for(server.config), ns), review=review)
            out.append(Database(ns, f"{name} ({redact(url)})", store, None,
                                "duckdb" if url.startswith("duckdb") else "postgres"))
    if not out and not getattr(server.config, "databases", None):
        out.append(Database("", redact(server.backend_url), RewriteStore(store_for(server.config), review=review),
                            None, "duckdb" if server.backend_url.startswith("duckdb") else "postgres"))
    return out


def _entry_url(entry: Any) -> str:
    return entry if isinstance(entry, str) else str(getattr(entry, "backend", ""))


def find(server: Any, ns: str) -> Database | None:
    return next((d for d in databases(server) if d.ns == ns), None)


def _short(sql: str, n: int = 140) -> str:
    s = " ".join((sql or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def rewrite_rows(db: Database, *, include_none: bool = False) -> list[dict[str, Any]]:
    served = timings.served_counts(db.store)
    rows = []
    for e in db.store.all():
        if not e.has_rewrite and not include_none:
            continue
        proof = db.store.proof(e.fingerprint) or {}
        st = db.store.status(e.fingerprint)
        rows.append({"db": db.ns, "database": db.label, "fingerprint": e.fingerprint,
                     "original": _short(e.original_template), "rewritten": _short(e.rewritten_template or ""),
                     "rules": e.rules, "verdict": e.verdict, "proof": proof.get("status", ""),
                     "speedup": e.speedup, "served": served.get(e.fingerprint, 0),
                     "status": db.store.review_status(e), "decided_by": st[1] if st else "",
                     "created": _when(e.created)})
    return rows


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(sql: str, dialect: str) -> str:
    """The SQL laid out one clause a line (so that a line diff shows what a rule changed)."""
    import sqlglot

    try:
        return sqlglot.transpile(sql, read=dialect, write=dialect, pretty=True)[0]
    except Exception:  # a template sqlglot cannot lay out is shown as stored
        return sql


def side_by_side(original: str, rewritten: str) -> str:
    """An HTML table: the two texts side by side, changed lines highlighted (difflib)."""
    table = difflib.HtmlDiff(tabsize=2, wrapcolumn=72).make_table(
        original.splitlines(), rewritten.splitlines(), "original", "rewritten", context=False)
    # difflib's navigation column points at anchors that make no sense in a page of our own;
    # two equal halves, each a line-number column and a text column
    table = re.sub(r'<t([dh]) class="diff_next"[^>]*>.*?</t\1>', "", table.replace('nowrap="nowrap"', ""))
    cols = '<colgroup><col class="ln"><col class="text"><col class="ln"><col class="text"></colgroup>'
    return re.sub(r"(\s*<colgroup></colgroup>)+", cols, table, count=1)


def rewrite_detail(db: Database, fingerprint: str) -> dict[str, Any] | None:
    e = db.store.get(fingerprint)
    if e is None:
        return None
    proof = db.store.proof(fingerprint) or {}
    st = db.store.status(fingerprint)
    orig = pretty(e.original_template, db.dialect)
    new = pretty(e.rewritten_template or "", db.dialect)
    steps = []
    for step in proof.get("steps") or []:
        if isinstance(step, dict):
            steps.append({"rule": step.get("rule", "?"),
                          "facts": [(k, v if isinstance(v, str) else json.dumps(v, default=str))
                                    for k, v in step.items() if k != "rule" and v not in ("", None, [], {})]})
    hist = timings.history(db.store, fingerprint)
    served = sum(n for _, _, n in hist["served_rewrite"])
    return {"db": db.ns, "database": db.label, "fingerprint": e.fingerprint, "status": db.store.review_status(e),
            "decided_by": st[1] if st else "", "decided_at": _when(st[2]) if st else "", "verdict": e.verdict,
            "rules": e.rules, "speedup": e.speedup,
            "time_original_ms": e.time_original * 1000 if e.time_original else None,
            "time_rewrite_ms": e.time_original * 1000 / e.speedup if e.time_original and e.speedup else None,
            "created": _when(e.created), "original": orig, "rewritten": new, "diff": side_by_side(orig, new),
            "proof": {k: v for k, v in proof.items() if k != "steps"}, "steps": steps, "served": served,
            "has_rewrite": e.has_rewrite, "figure": timing_figure(hist)}


def timing_figure(hist: dict[str, list[tuple[float, float, int]]]) -> dict[str, Any]:
    """A plotly figure (JSON-able): verified and served timings (ms) over time."""
    styles = {"verified_original": ("original, verified", "markers", "#888"),
              "verified_rewrite": ("rewrite, verified", "markers", "#1f77b4"),
              "served_original": ("original, served", "lines+markers", "#d62728"),
              "served_rewrite": ("rewrite, served", "lines+markers", "#2ca02c")}
    data = []
    for kind, (name, mode, color) in styles.items():
        pts = hist.get(kind) or []
        data.append({"type": "scatter", "mode": mode, "name": name,
                     "x": [_iso(ts) for ts, _, _ in pts], "y": [round(s * 1000, 4) for _, s, _ in pts],
                     "text": [f"{n} execution(s)" for _, _, n in pts],
                     "marker": {"color": color, "size": 9 if mode == "markers" else 6,
                                "symbol": "diamond" if kind.startswith("verified") else "circle"}})
    return {"data": data, "layout": {"title": {"text": "Verified and served timings"}, "height": 360,
                                     "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
                                     "xaxis": {"title": {"text": "time (UTC)"}, "type": "date"},
                                     "yaxis": {"title": {"text": "ms (mean per interval, log scale)"}, "type": "log"},
                                     "legend": {"orientation": "h", "y": -0.25}}}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def decide(server: Any, db: Database, fingerprint: str, action: str, by: str) -> str:
    """Approve, reject or forget a stored rewrite; the live rewriter's memoised decisions
    expire at once (a CLI decision is picked up when they time out)."""
    from sqlsluice.rewriters.online import APPROVED, REJECTED

    e = db.store.get(fingerprint)
    if e is None:
        raise KeyError(fingerprint)
    if action == "forget":
        db.store.drop(fingerprint)
        timings.forget(db.store, fingerprint)
    elif not e.has_rewrite:
        raise ValueError("the shape was searched and no rewrite was found: nothing to review")
    else:
        db.store.set_status(fingerprint, APPROVED if action == "approve" else REJECTED, by)
    online = db.online
    if online is not None:
        online.expire_decisions()  # cached lookups of the shape carry the generation they were made in
    for p in list(server.products()):  # the pipelines' 2 s negative cache of shapes with no rewrite
        with contextlib.suppress(AttributeError):
            p.forget_cached_decisions()
    return ACTIONS[action]


# --- ASK history -----------------------------------------------------------------------------
ASK_COLUMNS = ("ts", "kind", "db", "question", "evidence", "sql", "route", "pipeline", "tokens_in", "tokens_out",
               "seconds", "status", "error")


def ask_history(config: Any, limit: int = 500) -> list[dict[str, Any]]:
    """The newest ASK and EXPLAIN ASK records of the query log, with an estimated cost."""
    from sqlsluice.llm.client import resolve_model
    from sqlsluice.llm.ledger import cost_usd
    from sqlsluice.text2sql.querylog import DDL, store_for

    st = store_for(config)
    st.ensure(DDL)
    rows = st.execute(f"SELECT {', '.join(ASK_COLUMNS)} FROM sluice_query_log WHERE kind IN ('ask', 'explain_ask') "
                      "ORDER BY ts DESC LIMIT ?", [limit])
    model = resolve_model(config, "text2sql") or ""
    out = []
    for r in rows:
        d = dict(zip(ASK_COLUMNS, r, strict=True))
        tin, tout = int(d["tokens_in"] or 0), int(d["tokens_out"] or 0)
        d.update(tokens=tin + tout, when=_when(d["ts"]), cost=cost_usd(model, tin, tout, config.llm.prices),
                 model=model)
        out.append(d)
    return out


def tep_series(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cumulative TEP (EllieSQL) after each question, in time order, against the questions
    the ``basic`` pipeline answered.  Live questions have no gold SQL, so EX is taken as the
    share of questions answered (status ok); None while undefined (no basic question yet, or
    the same tokens)."""
    from sqlsluice.routers.tep import tep

    pts = []
    n = ok = tok = 0
    nb = okb = tokb = 0
    for d in sorted((h for h in history if h["kind"] == "ask"), key=lambda h: h["ts"]):
        n += 1
        ok += d["status"] == "ok"
        tok += d["tokens"]
        if d["pipeline"] == "basic":
            nb += 1
            okb += d["status"] == "ok"
            tokb += d["tokens"]
        value = None
        if nb:
            value = tep(ex=ok / n, tokens=tok / n, ex_basic=okb / nb, tokens_basic=tokb / nb)
        pts.append({"ts": d["ts"], "tep": value if value is None or math.isfinite(value) else None,
                    "tokens_per_question": tok / n, "answered": ok / n})
    return pts


def ask_figure(history: list[dict[str, Any]]) -> dict[str, Any]:
    pts = tep_series(history)
    x = [_iso(p["ts"]) for p in pts]
    return {"data": [
        {"type": "scatter", "mode": "lines+markers", "name": "TEP (cumulative)", "x": x,
         "y": [None if p["tep"] is None else round(p["tep"], 4) for p in pts], "connectgaps": False,
         "marker": {"color": "#9467bd"}},
        {"type": "scatter", "mode": "lines", "name": "tokens per question", "x": x, "yaxis": "y2",
         "y": [round(p["tokens_per_question"], 1) for p in pts], "line": {"color": "#ff7f0e", "dash": "dot"}},
    ], "layout": {"title": {"text": "TEP over time (EX taken as the answered share)"}, "height": 340,
                  "margin": {"l": 60, "r": 60, "t": 40, "b": 50},
                  "xaxis": {"title": {"text": "time (UTC)"}, "type": "date"},
                  "yaxis": {"title": {"text": "TEP"}},
                  "yaxis2": {"title": {"text": "tokens"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
                  "legend": {"orientation": "h", "y": -0.3}}}
