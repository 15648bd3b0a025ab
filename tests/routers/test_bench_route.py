"""``sluice bench route`` on a small label sample: reference rows are exact, learned rows cross-validated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sqlsluice.bench.route import measure_costs, run_bench
from sqlsluice.cli.app import app


def test_offline_bench_reference_rows(label_sample, labels_path: Path) -> None:
    costs = measure_costs(label_sample, labels_path.parent, sample=40)
    assert costs.per_tier["basic"] < costs.per_tier["decompose"] < costs.per_tier["ensemble"]
    rows = {r.name: r for r in run_bench(label_sample, costs, folds=2, budgets=(0.5,))}
    y = np.array([x.label for x in label_sample])
    assert rows["always:basic"].ex == 100 * np.mean(y == 1)
    assert rows["always:advanced"].ex == rows["oracle"].ex == 100 * np.mean(y <= 3)
    assert rows["always:advanced"].tokens_rel == pytest.approx(1.0)
    assert rows["always:basic"].tep is None and rows["oracle"].tep is not None
    assert sum(rows["tables"].share.values()) == pytest.approx(1.0)
    assert 0.0 <= rows["learned"].auc <= 1.0
    assert "learned@budget:0.50" in rows and "tfidf-lr" in rows


def test_bench_route_cli_writes_json(labels_path: Path, tmp_path: Path) -> None:
    import sqlsluice.cli  # noqa: F401

    out = tmp_path / "route.json"
    r = CliRunner().invoke(app, ["bench", "route", "--labels", str(labels_path), "--folds", "2", "--limit", "200",
                                 "--json", str(out), "--costs", "1:3:6"])
    assert r.exit_code == 0, r.output
    assert "tables" in r.stdout and "costs given on the command line" in r.stdout
    data = json.loads(out.read_text())
    names = [x["name"] for x in data["routers"]]
    assert {"always:basic", "always:advanced", "oracle", "tables", "learned"} <= set(names)
    for x in data["routers"]:
        assert set(x) >= {"name", "ex", "tokens_rel", "tep", "share", "auc"}


def test_route_train_cli(labels_path: Path, tmp_path: Path, monkeypatch) -> None:
    import sqlsluice.cli  # noqa: F401

    monkeypatch.setenv("SLUICE_STATE", f"sqlite:///{tmp_path / 's.sqlite'}")
    monkeypatch.setattr("sqlsluice.state._default", None)
    out = tmp_path / "r.joblib"
    r = CliRunner().invoke(app, ["route", "train", "--labels", str(labels_path), "--limit", "200", "--out", str(out),
                                 "--budget", "0.4"])
    assert r.exit_code == 0, r.output
    assert out.exists() and "saved router 'learned'" in r.stdout
    bad = CliRunner().invoke(app, ["route", "train", "--labels", str(tmp_path / "missing.jsonl")])
    assert bad.exit_code == 2 and "error:" in bad.stderr
