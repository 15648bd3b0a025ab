"""``sluice bench route``: offline routing on BIRD dev with EllieSQL's per-question labels.

A question counts as solved when it is routed to its label's tier or a more expensive one
(UNSOLVED is never solved).  Token costs per tier are MEASURED from this project's own
pipelines: the prompts of ``basic``, ``decompose`` and ``ensemble`` are rendered with each
sampled BIRD question, its evidence and its linked schema text (typed columns, keys, BIRD
column descriptions) and counted with the stand-in tokenizer
(:func:`sqlsluice.llm.scripted_server.count_tokens`: words and punctuation); replies are
costed as the question's gold SQL in a fence (plans and reasoning as twice that).

Learned routers are scored by stratified k-fold cross-validation: every figure for a
question comes from a model that never saw its label, and ``lam`` (the accuracy/token
trade-off) is chosen on the training folds only (inner cross-validation), for a token
budget fixed before looking at test labels.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sqlsluice.routers.base import TablesRouter, choose_lam, design_matrix, make_model
from sqlsluice.routers.labels import LabeledQuestion
from sqlsluice.routers.tep import tep


@dataclass
class RouterScore:
    name: str
    ex: float  # percent
    tokens_rel: float  # mean tokens / always-ensemble
    tep: float | None
    share: dict[str, float]
    auc: float | None = None
    note: str = ""
    routes: np.ndarray | None = None  # tier per question (1..3), for paired comparisons

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ex": round(self.ex, 2), "tokens_rel": round(self.tokens_rel, 4),
                "tep": None if self.tep is None else round(self.tep, 4),
                "share": {k: round(v, 4) for k, v in self.share.items()},
                "auc": None if self.auc is None else round(self.auc, 4), "note": self.note}


@dataclass
class CostReport:
    per_tier: dict[str, float]  # mean tokens per question (input + output)
    inputs: dict[str, float]
    outputs: dict[str, float]
    n: int
    method: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def measure_costs(items: list[LabeledQuestion], bird_dir: Path, *, sample: int = 150, seed: int = 0) -> CostReport:
    """Mean tokens per question of each pipeline's rendered prompts on BIRD questions and schemas."""
    import json

    from sqlsluice.llm.prompts import load_prompt
    from sqlsluice.llm.scripted_server import count_tokens
    from sqlsluice.text2sql.pipelines import DIALECT_NAMES
    from sqlsluice.text2sql.schema import (
        bird_descriptions,
        catalogs_from_tables_json,
        link_schema,
        schema_text,
    )

    catalogs = catalogs_from_tables_json(bird_dir / "dev_tables.json")
    gold: dict[tuple[str, str], str] = {}
    dev = bird_dir / "dev.json"
    if dev.exists():
        for d in json.loads(dev.read_text()):
            gold[(d["db_id"], d["question"].strip())] = d.get("SQL") or ""
    rng = random.Random(seed)
    pool = [x for x in items if x.db_id in catalogs]
    chosen = rng.sample(pool, min(sample, len(pool)))
    descs: dict[str, Any] = {}

    def render(name: str, **v: Any) -> int:
        return sum(count_tokens(m.content) for m in load_prompt(name).render(v))

    ins: dict[str, list[int]] = {"basic": [], "decompose": [], "ensemble": []}
    outs: dict[str, list[int]] = {"basic": [], "decompose": [], "ensemble": []}
    for x in chosen:
        cat = catalogs[x.db_id]
        if x.db_id not in descs:
            descs[x.db_id] = bird_descriptions(x.db_id, bird_dir.parent)
        linked = link_schema(x.question, cat, evidence=x.evidence, descriptions=descs[x.db_id])
        v = {"schema": schema_text(cat, linked, descriptions=descs[x.db_id]), "values": "(none)",
             "evidence": x.evidence or "(none)", "question": x.question, "dialect": DIALECT_NAMES["sqlite"]}
        sql = gold.get((x.db_id, x.question), "SELECT 1")
        reply = f"```sql\n{sql}\n```"
        out_sql = count_tokens(reply)
        plan = "\n".join(f"{i}. {sql[: max(len(sql) // 2, 20)]}" for i in (1, 2))  # plan ~ 2x the SQL
        b_in = render("text2sql_basic", **v)
        d_in = render("text2sql_decompose", **v) + render("text2sql_plan_sql", **v, plan=plan)
        d_out = count_tokens(plan) + out_sql
        cot_out = 3 * (2 * out_sql + out_sql)  # three sampled choices: reasoning (~2x SQL) + SQL
        listing = "\n\n".join(f"{i}. {reply}\nrows: (…)" for i in (1, 2))
        sel_in = render("text2sql_select", **v, candidates=listing)
        e_in = b_in + render("text2sql_cot", **v) + d_in + sel_in
        e_out = out_sql + cot_out + d_out + 1
        ins["basic"].append(b_in)
        outs["basic"].append(out_sql)
        ins["decompose"].append(d_in)
        outs["decompose"].append(d_out)
        ins["ensemble"].append(e_in)
        outs["ensemble"].append(e_out)
    mi = {k: statistics.mean(v) for k, v in ins.items()}
    mo = {k: statistics.mean(v) for k, v in outs.items()}
    return CostReport(per_tier={k: mi[k] + mo[k] for k in mi}, inputs=mi, outputs=mo, n=len(chosen),
                      method="rendered prompts of our pipelines on sampled BIRD dev questions + linked schema text "
                             "with BIRD column descriptions; replies costed as gold SQL (plans/reasoning 2x); "
                             "no repair calls (they depend on execution); stand-in tokenizer (words+punctuation)")


def score(name: str, routes: np.ndarray, y: np.ndarray, costs: np.ndarray, *, ex_basic: float,
          tok_basic: float, auc: float | None = None, note: str = "") -> RouterScore:
    """``routes`` are tiers 1..3 per question."""
    ex = 100.0 * float(np.mean((y <= 3) & (routes >= y)))
    tok = float(costs[routes - 1].mean() / costs[2])
    share = {p: float(np.mean(routes == i + 1)) for i, p in enumerate(("basic", "decompose", "ensemble"))}
    return RouterScore(name, ex, tok, tep(ex=ex, tokens=tok, ex_basic=ex_basic, tokens_basic=tok_basic), share,
                       auc, note, routes)


def paired_bootstrap(a: RouterScore, b: RouterScore, y: np.ndarray, costs: np.ndarray, *, n: int = 2000,
                     seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals (over questions) of EX(a) - EX(b) in points and tokens_rel(a) - tokens_rel(b)."""
    assert a.routes is not None and b.routes is not None
    rng = np.random.default_rng(seed)
    sa = ((y <= 3) & (a.routes >= y)).astype(float)
    sb = ((y <= 3) & (b.routes >= y)).astype(float)
    ta = costs[a.routes - 1] / costs[2]
    tb = costs[b.routes - 1] / costs[2]
    idx = rng.integers(0, len(y), size=(n, len(y)))
    dex = 100.0 * (sa[idx].mean(axis=1) - sb[idx].mean(axis=1))
    dtok = ta[idx].mean(axis=1) - tb[idx].mean(axis=1)
    return {"ex": (float(np.percentile(dex, 2.5)), float(np.percentile(dex, 97.5))),
            "tokens_rel": (float(np.percentile(dtok, 2.5)), float(np.percentile(dtok, 97.5)))}


def _auc(target: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(target.tolist())) < 2:
        return None
    return float(roc_auc_score(target, s))


def _oof(X: np.ndarray, y: np.ndarray, folds: int, seed: int, make: Any) -> np.ndarray:
    """Out-of-fold ``P(solved at tier r)`` (n x 3)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros((len(y), 3))
    k = max(2, min(folds, int(np.bincount(y)[np.bincount(y) > 0].min())))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
        m = make()
        m.fit(X[tr], y[tr])
        full = np.zeros((len(te), 4))
        for j, cls in enumerate(m.classes_):
            full[:, int(cls) - 1] = m.predict_proba(X[te])[:, j]
        out[te] = np.cumsum(full[:, :3], axis=1)
    return out


def run_bench(items: list[LabeledQuestion], costs: CostReport, *, folds: int = 5, seed: int = 0,
              budgets: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)) -> list[RouterScore]:
    """Reference rows, the tables heuristic and cross-validated learned routers."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    y = np.asarray([x.label for x in items])
    c = np.asarray([costs.per_tier[p] for p in ("basic", "decompose", "ensemble")], float)
    n = len(y)
    ex_basic = 100.0 * float(np.mean(y == 1))
    tok_basic = float(c[0] / c[2])
    need_more = (y > 1).astype(int)
    rows: list[RouterScore] = []

    def add(name: str, routes: np.ndarray, auc: float | None = None, note: str = "") -> None:
        rows.append(score(name, routes, y, c, ex_basic=ex_basic, tok_basic=tok_basic, auc=auc, note=note))

    add("always:basic", np.ones(n, int))
    add("always:decompose", np.full(n, 2))
    add("always:advanced", np.full(n, 3), note="always ensemble (EllieSQL ADVANCED)")
    add("oracle", np.where(y <= 3, y, 1), note="label's tier; unsolved -> basic")
    tr = TablesRouter()
    tab = np.asarray([{"basic": 1, "decompose": 2, "ensemble": 3}[tr.decide(x.inp).pipeline] for x in items])
    ntab = np.asarray([x.inp.linked_tables for x in items], float)
    add("tables", tab, auc=_auc(need_more, ntab), note="1 linked table -> basic, 2-3 -> decompose, 4+ -> ensemble; "
                                                       "auc: linked-table count as the score")
    tables_budget = float(c[tab - 1].mean() / c[2])

    xs = [x.inp for x in items]
    dbs = sorted({x.db_id for x in items})
    variants: list[tuple[str, np.ndarray, Any]] = [
        ("learned", design_matrix(xs, dbs), lambda: make_model(seed)),
    ]
    texts = [f"{x.question} || {x.evidence}" for x in items]
    outer = StratifiedKFold(max(2, folds), shuffle=True, random_state=seed)
    for vname, X, make in [*variants, ("tfidf-lr", np.zeros((n, 1)), None)]:
        routes_at: dict[float, np.ndarray] = {b: np.zeros(n, int) for b in (tables_budget, *budgets)}
        oof_basic = np.zeros(n)
        for tr_idx, te_idx in outer.split(np.zeros(n), y):
            if vname == "tfidf-lr":
                def mk() -> Any:
                    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                                         LogisticRegression(C=1.0, max_iter=2000))
                Xt = np.asarray(texts, dtype=object)
                inner = _oof_text(Xt[tr_idx], y[tr_idx], folds, seed, mk)
                m = mk()
                m.fit(list(Xt[tr_idx]), y[tr_idx])
                proba = m.predict_proba(list(Xt[te_idx]))
            else:
                inner = _oof(X[tr_idx], y[tr_idx], folds, seed, make)
                m = make()
                m.fit(X[tr_idx], y[tr_idx])
                proba = m.predict_proba(X[te_idx])
            full = np.zeros((len(te_idx), 4))
            for j, cls in enumerate(m.classes_):
                full[:, int(cls) - 1] = proba[:, j]
            probs = np.cumsum(full[:, :3], axis=1)
            oof_basic[te_idx] = probs[:, 0]
            cn = c / c.max()
            for b in routes_at:
                lam = choose_lam(inner, y[tr_idx], c, b)
                routes_at[b][te_idx] = np.argmax(probs - lam * cn[None, :], axis=1) + 1
        auc = _auc(need_more, 1.0 - oof_basic)
        add(vname, routes_at[tables_budget], auc=auc,
            note=f"budget = tables' tokens ({tables_budget:.3f}); lam chosen on training folds")
        for b in budgets:
            add(f"{vname}@budget:{b:.2f}", routes_at[b], auc=auc, note="curve point")
    return rows


def _oof_text(X: np.ndarray, y: np.ndarray, folds: int, seed: int, make: Any) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros((len(y), 3))
    for tr, te in StratifiedKFold(max(2, folds), shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        m = make()
        m.fit(list(X[tr]), y[tr])
        full = np.zeros((len(te), 4))
        proba = m.predict_proba(list(X[te]))
        for j, cls in enumerate(m.classes_):
            full[:, int(cls) - 1] = proba[:, j]
        out[te] = np.cumsum(full[:, :3], axis=1)
    return out


def format_table(rows: list[RouterScore], costs: CostReport) -> str:
    lines = [
        f"per-question token cost measured on {costs.n} BIRD dev questions ({costs.method}):",
        "  " + ", ".join(f"{k} {v:,.0f} (in {costs.inputs[k]:,.0f} / out {costs.outputs[k]:,.0f})"
                         for k, v in costs.per_tier.items())
        + "  ratio " + ":".join(f"{v / costs.per_tier['basic']:.2f}" for v in costs.per_tier.values()),
        "",
        f"{'router':<26} {'EX %':>6} {'tokens/adv':>10} {'TEP':>7} {'basic':>6} {'decomp':>6} {'ensem':>6} "
        f"{'AUC>basic':>9}",
    ]
    for r in rows:
        t = "-" if r.tep is None else f"{r.tep:.3f}"
        a = "-" if r.auc is None else f"{r.auc:.3f}"
        lines.append(f"{r.name:<26} {r.ex:6.2f} {r.tokens_rel:10.3f} {t:>7} {r.share['basic']:6.2f} "
                     f"{r.share['decompose']:6.2f} {r.share['ensemble']:6.2f} {a:>9}")
    return "\n".join(lines)
