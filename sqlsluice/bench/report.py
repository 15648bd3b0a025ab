"""Benchmark reports: one JSON with every number and a self-contained HTML page of SVG charts.

Inputs are the JSON files the benchmarks write: ``sluice bench bird|spider score --json`` (and
``run``, which adds a ``run`` section with tokens and cost), and ``sluice bench tpcds --json``
(per query: ``time_original``/``time_rewrite`` seconds, speedup, rules, verdict, served; a
query whose rewrite was not served is drawn at 1x in grey).  The page draws

* EX by difficulty, one bar group per level and one bar per system;
* tokens per question against EX, one point per router or pipeline, with the Pareto front;
* the distribution of per-question VES;
* TPC-DS speedup per query (log scale), coloured by the rewrite's verdict.

The charts are inline SVG written here; the page fetches nothing.

    >>> pareto_front([(10, 50.0), (5, 40.0), (20, 45.0)])
    [(5, 40.0), (10, 50.0)]
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlsluice.errors import InvalidParameterValue

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
W, H = 640, 320
ML, MR, MT, MB = 56, 16, 44, 56


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by one with fewer (or equal) tokens and higher (or equal) EX."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


# -- input classification --------------------------------------------------------------------

def classify(doc: Any) -> str:
    """``score`` (a bird/spider summary), ``tpcds`` (rewrite benchmark) or ``unknown``."""
    if isinstance(doc, dict) and "count" in doc and any(k in doc for k in ("ex", "ves", "rves", "f1")):
        return "score"
    if tpcds_rows(doc):
        return "tpcds"
    return "unknown"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def tpcds_rows(doc: Any) -> list[dict[str, Any]]:
    """Per-query rows from the rewrite benchmark's JSON, whatever its envelope.

    Accepts a list of query records or a dict holding one under ``queries``/``results``/``per_query``
    (or keyed by query number).  A record needs a speedup, or original and rewritten seconds.
    """
    items: list[Any] = []
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict):
        for key in ("queries", "results", "per_query", "rows"):
            v = doc.get(key)
            if isinstance(v, list):
                items = v
                break
            if isinstance(v, dict):
                items = [{"query": k, **r} for k, r in v.items() if isinstance(r, dict)]
                break
    rows = []
    for i, r in enumerate(items):
        if not isinstance(r, dict):
            continue
        orig = _num(_first(r, "time_original", "original_s", "original_seconds", "original", "before_s"))
        new = _num(_first(r, "time_rewrite", "rewritten_s", "rewritten_seconds", "rewritten", "after_s"))
        speed = _num(r.get("speedup"))
        if speed is None and orig is not None and new:
            speed = orig / new
        verdict = str(r.get("verdict", ""))
        if speed is None and r.get("served") is False and orig is not None:
            speed, verdict = 1.0, "not served"  # the original is kept: no change
        if speed is None or speed <= 0:
            continue
        rules = r.get("rules") or []
        rows.append({
            "query": str(r.get("query", r.get("id", r.get("name", i + 1)))),
            "original_s": orig, "rewritten_s": new, "speedup": speed,
            "rules": list(rules) if isinstance(rules, (list, tuple)) else [str(rules)],
            "verdict": verdict, "served": r.get("served"), "results": r.get("results"),
        })
    return rows


def _first(r: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if r.get(k) is not None:
            return r[k]
    return None


def load_inputs(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(score summaries, tpcds rows) from the given JSON files."""
    scores: list[dict[str, Any]] = []
    tpcds: list[dict[str, Any]] = []
    for p in paths:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InvalidParameterValue(f"{p}: not JSON ({e.msg})") from e
        kind = classify(doc)
        if kind == "score":
            doc.setdefault("name", doc.get("system") or (doc.get("run") or {}).get("system") or Path(p).stem)
            scores.append(doc)
        elif kind == "tpcds":
            name = doc.get("name", Path(p).stem) if isinstance(doc, dict) else Path(p).stem
            tpcds.extend(dict(r, benchmark=name) for r in tpcds_rows(doc))
        else:
            raise InvalidParameterValue(f"{p}: neither a bird/spider score JSON nor a TPC-DS rewrite benchmark JSON")
    return scores, tpcds


# -- SVG primitives --------------------------------------------------------------------------

def _frame(title: str, body: list[str], kind: str, *, xlabel: str = "", ylabel: str = "") -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{kind}" '
             f'width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{_esc(title)}">',
             f'<text x="{W / 2}" y="16" text-anchor="middle" class="title">{_esc(title)}</text>',
             f'<line x1="{ML}" y1="{H - MB}" x2="{W - MR}" y2="{H - MB}" stroke="#333"/>',
             f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" stroke="#333"/>']
    if xlabel:
        parts.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 8}" text-anchor="middle" class="axis">{_esc(xlabel)}</text>')
    if ylabel:
        parts.append(f'<text x="14" y="{(MT + H - MB) / 2}" text-anchor="middle" class="axis" '
                     f'transform="rotate(-90 14 {(MT + H - MB) / 2})">{_esc(ylabel)}</text>')
    parts.extend(body)
    parts.append("</svg>")
    return "\n".join(parts)


def _yticks(lo: float, hi: float, fmt: str = "{:g}", n: int = 5, log: bool = False) -> list[str]:
    out = []
    for i in range(n + 1):
        v = lo + (hi - lo) * i / n
        y = H - MB - (H - MB - MT) * i / n
        label = fmt.format(10 ** v if log else v)
        out.append(f'<line x1="{ML - 4}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_esc(label)}</text>')
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    x = ML + 8
    for i, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{MT - 20}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{x + 14}" y="{MT - 11}" class="tick">{_esc(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _levels(doc: dict[str, Any]) -> list[str]:
    return [k for k in doc.get("count", {}) if k != "total"] + ["total"]


def chart_ex_by_difficulty(scores: Sequence[dict[str, Any]], metric: str = "ex") -> str:
    levels: list[str] = []
    for d in scores:
        for lv in _levels(d):
            if lv not in levels:
                levels.append(lv)
    body = _yticks(0, 100, "{:.0f}")
    gw = (W - ML - MR) / max(1, len(levels))
    bw = gw * 0.8 / max(1, len(scores))
    for li, lv in enumerate(levels):
        x0 = ML + li * gw + gw * 0.1
        body.append(f'<text x="{ML + li * gw + gw / 2:.1f}" y="{H - MB + 16}" text-anchor="middle" class="tick">'
                    f'{_esc(lv)}</text>')
        for si, d in enumerate(scores):
            v = (d.get(metric) or {}).get(lv)
            if v is None:
                continue
            h = (H - MB - MT) * float(v) / 100
            x = x0 + si * bw
            body.append(f'<rect class="bar" x="{x:.1f}" y="{H - MB - h:.1f}" width="{bw * 0.9:.1f}" height="{h:.1f}" '
                        f'fill="{PALETTE[si % len(PALETTE)]}"><title>{_esc(d["name"])} {lv}: {v}</title></rect>')
    body.extend(_legend([str(d["name"]) for d in scores]))
    return _frame(f"{metric.upper()} by difficulty (%)", body, "ex-by-difficulty", ylabel=f"{metric.upper()} %")


def chart_pareto(scores: Sequence[dict[str, Any]]) -> str:
    pts = []
    for d in scores:
        run = d.get("run") or {}
        tokens = _num(run.get("tokens_per_question"))
        ex = _num((d.get("ex") or {}).get("total"))
        if tokens is not None and ex is not None:
            pts.append((tokens, ex, str(d["name"])))
    body: list[str] = []
    if not pts:
        body.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="note">no run with token counts '
                    f'(score JSONs from "bench ... run" carry them)</text>')
        return _frame("Tokens per question vs EX", body, "pareto", xlabel="tokens per question", ylabel="EX %")
    xmax = max(p[0] for p in pts) * 1.1 or 1.0
    body.extend(_yticks(0, 100, "{:.0f}"))

    def sx(x: float) -> float:
        return ML + (W - ML - MR) * x / xmax

    def sy(y: float) -> float:
        return H - MB - (H - MB - MT) * y / 100

    for i in range(6):
        v = xmax * i / 5
        body.append(f'<text x="{sx(v):.1f}" y="{H - MB + 16}" text-anchor="middle" class="tick">{v:.0f}</text>')
    front = pareto_front([(x, y) for x, y, _ in pts])
    if len(front) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in front)
        body.append(f'<polyline class="front" points="{path}" fill="none" stroke="#888" stroke-dasharray="4 3"/>')
    for i, (x, y, name) in enumerate(pts):
        on = (x, y) in front
        body.append(f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{6 if on else 4}" '
                    f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_esc(name)}: {x:.0f} tokens, EX {y}</title></circle>'
                    f'<text x="{sx(x) + 8:.1f}" y="{sy(y) - 6:.1f}" class="tick">{_esc(name)}</text>')
    return _frame("Tokens per question vs EX (Pareto front dashed)", body, "pareto",
                  xlabel="tokens per question", ylabel="EX %")


def chart_ves(scores: Sequence[dict[str, Any]]) -> str:
    series = []
    for d in scores:
        vals = [float(q["ves"]) for q in d.get("per_question", []) if q.get("ex") and "ves" in d]
        if vals:
            series.append((str(d["name"]), vals))
    body: list[str] = []
    if not series:
        body.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="note">no VES measured '
                    f'(score with --metrics ves)</text>')
        return _frame("VES per correct question", body, "ves-distribution", xlabel="VES", ylabel="questions")
    hi = max(max(v) for _, v in series)
    edges = max(hi, 100.0) * 1.0001
    nb = 20
    width = edges / nb
    counts = [[0] * nb for _ in series]
    for si, (_, vals) in enumerate(series):
        for v in vals:
            counts[si][min(nb - 1, int(v / width))] += 1
    cmax = max(max(c) for c in counts) or 1
    body.extend(_yticks(0, cmax, "{:.0f}"))
    bw = (W - ML - MR) / nb
    for si, row in enumerate(counts):
        for b, c in enumerate(row):
            if not c:
                continue
            h = (H - MB - MT) * c / cmax
            x = ML + b * bw + si * bw / len(series)
            body.append(f'<rect class="bar" x="{x:.1f}" y="{H - MB - h:.1f}" width="{bw / len(series) * 0.9:.1f}" '
                        f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}" fill-opacity="0.85">'
                        f'<title>{_esc(series[si][0])}: {c} in [{b * width:.0f}, {(b + 1) * width:.0f})</title></rect>')
    for b in range(0, nb + 1, 4):
        body.append(f'<text x="{ML + b * bw:.1f}" y="{H - MB + 16}" text-anchor="middle" class="tick">'
                    f'{b * width:.0f}</text>')
    body.extend(_legend([n for n, _ in series]))
    return _frame("VES per correct question (sqrt of time ratio x 100)", body, "ves-distribution",
                  xlabel="VES", ylabel="questions")


VERDICT_COLOURS = {"EQUIVALENT": "#59a14f", "NOT_EQUIVALENT": "#e15759", "UNKNOWN": "#edc948",
                   "NOT SERVED": "#bab0ac"}


def chart_tpcds(rows: Sequence[dict[str, Any]]) -> str:
    body: list[str] = []
    if not rows:
        body.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="note">no TPC-DS rewrite benchmark '
                    f'JSON given (sluice bench tpcds --json)</text>')
        return _frame("TPC-DS speedup per query", body, "tpcds-speedups", xlabel="query", ylabel="speedup")
    logs = [math.log10(r["speedup"]) for r in rows]
    lo, hi = min(min(logs), -0.3), max(max(logs), 0.3)
    body.extend(_yticks(lo, hi, "{:.2g}x", log=True))

    def sy(v: float) -> float:
        return H - MB - (H - MB - MT) * (v - lo) / (hi - lo)

    bw = (W - ML - MR) / len(rows)
    y1 = sy(0.0)
    body.append(f'<line x1="{ML}" y1="{y1:.1f}" x2="{W - MR}" y2="{y1:.1f}" stroke="#333" stroke-dasharray="2 2"/>')
    for i, (r, lv) in enumerate(zip(rows, logs, strict=True)):
        y = sy(lv)
        top, h = (y, y1 - y) if lv >= 0 else (y1, y - y1)
        colour = VERDICT_COLOURS.get(r["verdict"].upper(), "#4e79a7")
        tip = f"q{r['query']}: {r['speedup']:.2f}x {r['verdict']} {', '.join(map(str, r['rules']))}"
        body.append(f'<rect class="bar" x="{ML + i * bw + bw * 0.1:.1f}" y="{top:.1f}" width="{bw * 0.8:.1f}" '
                    f'height="{max(h, 0.5):.1f}" fill="{colour}"><title>{_esc(tip)}</title></rect>')
        if len(rows) <= 30 or i % max(1, len(rows) // 20) == 0:
            body.append(f'<text x="{ML + i * bw + bw / 2:.1f}" y="{H - MB + 14}" text-anchor="middle" '
                        f'class="tick">{_esc(r["query"])}</text>')
    return _frame("TPC-DS speedup per query (log scale; green = proved equivalent)", body, "tpcds-speedups",
                  xlabel="query", ylabel="speedup")


# -- page ------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.title{font-size:13px;font-weight:600} .tick{font-size:10px;fill:#444} .axis{font-size:11px} .note{font-size:12px;fill:#888}
"""


# Inline and offline: after layout, record on <body> how many charts have a non-empty drawn
# box and how many marks (bars, points) they hold; a headless browser's DOM dump shows it.
RENDER_CHECK = """(function(){var n=0,m=0;document.querySelectorAll('svg.chart').forEach(function(s){
var b=s.getBBox();if(b.width>0&&b.height>0){n++;}s.setAttribute('data-drawn-width',Math.round(b.width));
m+=s.querySelectorAll('.bar,.point').length;});document.body.setAttribute('data-charts-rendered',n);
document.body.setAttribute('data-marks',m);})();"""


def _table(scores: Sequence[dict[str, Any]]) -> str:
    rows = ["<table><tr><th>system</th><th>metric</th>"]
    levels: list[str] = []
    for d in scores:
        for lv in _levels(d):
            if lv not in levels:
                levels.append(lv)
    rows[0] += "".join(f"<th>{_esc(lv)}</th>" for lv in levels) + "</tr>"
    for d in scores:
        for m in ("ex", "ves", "rves", "f1"):
            if m in d:
                cells = "".join(f"<td>{'' if d[m].get(lv) is None else f'{d[m][lv]:.2f}'}</td>" for lv in levels)
                rows.append(f"<tr><td>{_esc(d['name'])}</td><td>{m.upper()}</td>{cells}</tr>")
        cells = "".join(f"<td>{d['count'].get(lv, '')}</td>" for lv in levels)
        rows.append(f"<tr><td>{_esc(d['name'])}</td><td>count</td>{cells}</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def build_report(scores: Sequence[dict[str, Any]], tpcds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report JSON: every input number, without per-question rows of the score files."""
    systems = []
    for d in scores:
        systems.append({k: v for k, v in d.items() if k != "per_question"})
    pts = [(float(d["run"]["tokens_per_question"]), float(d["ex"]["total"]), d["name"])
           for d in scores if d.get("run") and d.get("ex", {}).get("total") is not None]
    front = pareto_front([(x, y) for x, y, _ in pts])
    geo = math.exp(sum(math.log(r["speedup"]) for r in tpcds) / len(tpcds)) if tpcds else None
    return {
        "systems": systems,
        "pareto_front": [n for x, y, n in pts if (x, y) in front],
        "ves_per_question": {d["name"]: [q["ves"] for q in d.get("per_question", []) if q.get("ex")]
                             for d in scores if "ves" in d},
        "tpcds": {"queries": list(tpcds), "geomean_speedup": round(geo, 4) if geo else None,
                  "faster": sum(1 for r in tpcds if r["speedup"] > 1), "count": len(tpcds)},
    }


def render_html(scores: Sequence[dict[str, Any]], tpcds: Sequence[dict[str, Any]], *, title: str = "sqlsluice benchmarks") -> str:
    charts = [("Execution accuracy by difficulty", chart_ex_by_difficulty(scores) if scores else
               chart_ex_by_difficulty([])),
              ("Tokens against accuracy", chart_pareto(scores)),
              ("Valid efficiency score", chart_ves(scores)),
              ("TPC-DS rewrites", chart_tpcds(tpcds))]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1>"]
    if scores:
        parts.append("<h2>Scores</h2>" + _table(scores))
    for heading, svg in charts:
        parts.append(f"<h2>{_esc(heading)}</h2>\n{svg}")
    parts.append(f"<script>{RENDER_CHECK}</script></body></html>")
    return "\n".join(parts)


def write_report(inputs: Sequence[Path], *, html_out: Path | None, json_out: Path | None) -> dict[str, Any]:
    scores, tpcds = load_inputs(inputs)
    rep = build_report(scores, tpcds)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rep, indent=1, default=str), encoding="utf-8")
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(render_html(scores, tpcds), encoding="utf-8")
    return rep
