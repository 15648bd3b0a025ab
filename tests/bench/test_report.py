"""``sluice bench report``: the HTML page renders its charts in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlsluice.bench.report import pareto_front
from sqlsluice.cli import app
from tests.bench.conftest import write_predictions

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if exe is None:
        pytest.fail("chromium is not installed: run `make system-deps` (apt-get install -y chromium)")
    return exe


def _dump_dom(html: Path, tmp_path: Path) -> str:
    out = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chrome'}", "--dump-dom",
                          html.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def test_pareto_front() -> None:
    assert pareto_front([(100, 60.0), (50, 55.0), (200, 58.0), (50, 40.0), (400, 70.0)]) == \
        [(50, 55.0), (100, 60.0), (400, 70.0)]


def test_report_renders_all_charts_in_chromium(spider_bird: Path, questions: list[dict], tmp_path: Path) -> None:
    qs = questions[:20]
    (tmp_path / "q.json").write_text(json.dumps(qs))
    inputs = []
    for name, wrong in (("cheap", 6), ("dear", 2)):
        sqls = {i: ("SELECT 'sluice-wrong'" if i < wrong else q["SQL"]) for i, q in enumerate(qs)}
        preds = write_predictions(tmp_path / f"{name}.json", sqls, qs)
        out = tmp_path / f"{name}_score.json"
        r = CliRunner().invoke(app, ["bench", "bird", "score", "--data", str(spider_bird), "--questions",
                                     str(tmp_path / "q.json"), "-p", str(preds), "--metrics", "ex,ves",
                                     "--ves-repeats", "3", "--json", str(out)])
        assert r.exit_code == 0, r.output
        doc = json.loads(out.read_text())
        # the token figures a `bench ... run` adds (given here: this test is about drawing them)
        doc["run"] = {"system": name, "tokens_per_question": 300.0 if name == "cheap" else 1500.0}
        out.write_text(json.dumps(doc))
        inputs += ["--json", str(out)]
    tpcds = tmp_path / "tpcds.json"
    # the rewrite benchmark's format (sqlsluice.bench.rewrite: BenchReport.to_json)
    tpcds.write_text(json.dumps({"name": "tpcds", "queries": [
        {"query": q, "time_original": 0.2, "time_rewrite": 0.2 / s if s else None, "speedup": s,
         "rules": ["filter_into_join"], "verdict": v, "served": s is not None}
        for q, s, v in (("q3", 1.8, "EQUIVALENT"), ("q7", 0.9, "UNKNOWN"), ("q19", 3.5, "EQUIVALENT"),
                        ("q20", None, "NOT_EQUIVALENT"))]}))
    html = tmp_path / "report.html"
    r = CliRunner().invoke(app, ["bench", "report", *inputs, "--json", str(tpcds), "--html", str(html),
                                 "--out-json", str(tmp_path / "report.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["pareto_front"] == ["bird cheap", "bird dear"] and rep["tpcds"]["count"] == 4
    page = html.read_text()
    # self-contained: nothing to load (the only URL is the SVG namespace name)
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?https?:""", page)
    assert "<script src" not in page and "fetch(" not in page and "XMLHttpRequest" not in page

    dom = _dump_dom(html, tmp_path)
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    assert 'data-charts-rendered="4"' in body.group(0)
    charts = dict(re.findall(r'data-chart="([\w-]+)"[^>]*data-drawn-width="(\d+)"', dom))
    assert set(charts) == {"ex-by-difficulty", "pareto", "ves-distribution", "tpcds-speedups"}
    assert all(int(w) > 100 for w in charts.values())
    svgs = dict(re.findall(r'<svg[^>]*data-chart="([\w-]+)"(.*?)</svg>', dom, flags=re.S))
    assert svgs["tpcds-speedups"].count('class="bar"') == 4  # the unserved one drawn at 1x
    assert svgs["pareto"].count('class="point"') == 2
    assert svgs["ex-by-difficulty"].count('class="bar"') >= 2 * 2  # two systems, >= 2 levels
    assert svgs["ves-distribution"].count('class="bar"') >= 2


def test_report_rejects_unknown_json(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"hello": 1}')
    r = CliRunner().invoke(app, ["bench", "report", "--json", str(tmp_path / "x.json"), "--html",
                                 str(tmp_path / "r.html")])
    assert r.exit_code == 2 and r.output.startswith("error:") and "neither" in r.output
