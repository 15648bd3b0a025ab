"""Routers: pick the cheapest text-to-SQL pipeline likely to answer a question.

=================== ==============================================================================
spec                router
=================== ==============================================================================
``always:<p>``      always pipeline ``p`` (``basic``, ``decompose``, ``ensemble``, ``cache``)
``tables``          EllieSQL's heuristic: 1 linked table -> basic, 2-3 -> decompose, more -> ensemble
``learned``         a classifier of the cheapest tier that solves a question (scikit-learn random
                    forest on question and schema-link features, :mod:`sqlsluice.routers.features`),
                    routing by expected accuracy minus ``lam`` x relative tokens; trained by
                    ``sluice route train``, saved under ``$SLUICE_HOME/routers/<name>.joblib``
                    (and in the state store so that every proxy sees it)
``budget:<x>``      a saved learned router (``budget:0.45@<name>``, default name ``learned``) with
                    ``lam`` re-chosen on its training labels so that the mean token cost stays within
                    ``x`` times always-ensemble
``agree``           two cheap candidates (two samples, or ``agree:<model>,<model>``) that the verifier
                    proves equivalent (or that return the same rows and are not refuted) stand;
                    otherwise escalate to decompose (``@<pipeline>``) (:mod:`sqlsluice.routers.agree`)
``cascade``         run basic (two samples, logprobs); escalate to decompose, then ensemble when the
                    answer fails a check: error, empty or all-NULL result, the two samples disagree,
                    token confidence below ``min_confidence`` (executed by :mod:`sqlsluice.text2sql.api`)
path or name        a saved learned/budget router
=================== ==============================================================================
"""

from __future__ import annotations

import base64
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sqlsluice.errors import InvalidParameterValue
from sqlsluice.routers.features import FEATURE_NAMES, RouteInput, features
from sqlsluice.state import StateStore, default_store

TIER_PIPELINES = ("basic", "decompose", "ensemble")
ROUTER_DDL = "CREATE TABLE IF NOT EXISTS sluice_routers (name TEXT, created DOUBLE PRECISION, blob TEXT)"


@dataclass
class Decision:
    pipeline: str
    reason: str


class Router:
    """Maps a :class:`RouteInput` to a pipeline name."""

    name = "router"

    def decide(self, x: RouteInput) -> Decision:
        raise NotImplementedError

    def decide_many(self, xs: list[RouteInput]) -> list[str]:
        return [self.decide(x).pipeline for x in xs]


@dataclass
class AlwaysRouter(Router):
    pipeline: str = "basic"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"always:{self.pipeline}"

    def decide(self, x: RouteInput) -> Decision:
        return Decision(self.pipeline, "always")


@dataclass
class TablesRouter(Router):
    """EllieSQL's baseline: route by the number of linked tables."""

    basic_max: int = 1
    decompose_max: int = 3
    name = "tables"

    def decide(self, x: RouteInput) -> Decision:
        n = x.linked_tables
        p = "basic" if n <= self.basic_max else "decompose" if n <= self.decompose_max else "ensemble"
        return Decision(p, f"{n} linked tables")


@dataclass
class CascadeRouter(Router):
    """Marker for the execution-feedback cascade (run by the ASK API, not decidable up front)."""

    steps: tuple[str, ...] = TIER_PIPELINES
    min_confidence: float = 0.6
    name = "cascade"

    def decide(self, x: RouteInput) -> Decision:
        return Decision(self.steps[0], "cascade starts cheap")


@dataclass
class LearnedRouter(Router):
    """A classifier of the cheapest solving tier; route = argmax P(solved at tier) - lam * cost."""

    model: Any = None  # sklearn classifier over features() + db one-hot, classes 1..4
    dbs: list[str] = field(default_factory=list)
    costs: tuple[float, float, float] = (1.0, 3.0, 6.0)  # tokens per tier (any unit)
    lam: float = 0.1
    label: str = "learned"
    meta: dict[str, Any] = field(default_factory=dict)
    oof: tuple[np.ndarray, np.ndarray] | None = None  # out-of-fold P(solved) and labels, for re-budgeting

    def with_budget(self, budget: float) -> LearnedRouter:
        """The same model with ``lam`` re-chosen on its training labels for another token budget."""
        if self.oof is None:
            raise InvalidParameterValue(f"router {self.label!r} was trained without --budget; retrain it with "
                                        "`sluice route train --budget X` to re-target budgets")
        probs, y = self.oof
        lam = choose_lam(probs, y, np.asarray(self.costs, float), budget)
        return LearnedRouter(model=self.model, dbs=self.dbs, costs=self.costs, lam=lam,
                             label=f"{self.label}@budget:{budget:g}", meta=self.meta, oof=self.oof)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    def matrix(self, xs: list[RouteInput]) -> np.ndarray:
        return design_matrix(xs, self.dbs)

    def solve_probs(self, xs: list[RouteInput]) -> np.ndarray:
        """``P(solved | routed to tier r)`` for r = basic, decompose, ensemble (n x 3)."""
        return solve_probs(self.model, self.matrix(xs))

    def route_probs(self, probs: np.ndarray, lam: float | None = None) -> np.ndarray:
        c = np.asarray(self.costs, dtype=float)
        c = c / c.max()
        lam = self.lam if lam is None else lam
        return np.argmax(probs - lam * c[None, :], axis=1)

    def decide(self, x: RouteInput) -> Decision:
        p = self.solve_probs([x])
        r = int(self.route_probs(p)[0])
        return Decision(TIER_PIPELINES[r], "P(solved)=" + "/".join(f"{v:.2f}" for v in p[0]) + f" lam={self.lam:.3f}")

    def decide_many(self, xs: list[RouteInput]) -> list[str]:
        return [TIER_PIPELINES[int(r)] for r in self.route_probs(self.solve_probs(xs))]


def design_matrix(xs: list[RouteInput], dbs: list[str]) -> np.ndarray:
    rows = []
    for x in xs:
        rows.append(features(x) + [1.0 if x.db == d else 0.0 for d in dbs])
    return np.asarray(rows, dtype=float)


def solve_probs(model: Any, X: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(X)
    full = np.zeros((X.shape[0], 4))
    for j, cls in enumerate(model.classes_):
        full[:, int(cls) - 1] = proba[:, j]
    return np.cumsum(full[:, :3], axis=1)


def make_model(seed: int = 0) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, min_samples_leaf=8, random_state=seed, n_jobs=1)


def fit_learned(xs: list[RouteInput], labels: list[int], *, costs: tuple[float, float, float],
                lam: float | None = None, budget: float | None = None, use_db: bool = True,
                seed: int = 0, label: str = "learned") -> LearnedRouter:
    """Train on labels (1..4); ``lam`` fixed, or chosen so that the mean token cost on the
    training questions (out-of-fold predictions) is at most ``budget`` x always-ensemble."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    dbs = sorted({x.db for x in xs}) if use_db else []
    X = design_matrix(xs, dbs)
    y = np.asarray(labels)
    model = make_model(seed)
    r = LearnedRouter(model=model, dbs=dbs, costs=costs, lam=lam if lam is not None else 0.1, label=label)
    if lam is None and budget is not None:
        folds = max(2, min(5, int(np.bincount(y).min(initial=5)) if len(set(y)) > 1 else 2))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        try:
            proba = cross_val_predict(make_model(seed), X, y, cv=cv, method="predict_proba")
            classes = sorted(set(y.tolist()))
            full = np.zeros((len(y), 4))
            for j, cls in enumerate(classes):
                full[:, int(cls) - 1] = proba[:, j]
            probs = np.cumsum(full[:, :3], axis=1)
        except ValueError:
            probs = np.tile(np.array([[0.5, 0.6, 0.65]]), (len(y), 1))
        r.lam = choose_lam(probs, y, np.asarray(costs, float), budget)
        r.oof = (probs, y)
    model.fit(X, y)
    r.meta = {"trained": time.time(), "n": len(y), "budget": budget, "features": FEATURE_NAMES}
    return r


def choose_lam(probs: np.ndarray, y: np.ndarray, costs: np.ndarray, budget: float) -> float:
    """The ``lam`` with the best accuracy among those whose mean cost is within ``budget``."""
    c = costs / costs.max()
    best = (-1.0, 1.0)
    for lam in np.linspace(0.0, 1.0, 401):
        r = np.argmax(probs - lam * c[None, :], axis=1)
        cost = float(c[r].mean())
        if cost <= budget + 1e-9:
            acc = float(np.mean((y <= 3) & (r + 1 >= y)))
            if acc > best[0]:
                best = (acc, float(lam))
    return best[1]


# -- saving and loading -------------------------------------------------------------------------

def routers_dir() -> Path:
    return Path(os.environ.get("SLUICE_HOME", ".sluice")) / "routers"


def save_router(router: LearnedRouter, path: str | os.PathLike[str] | None = None, *,
                store: StateStore | None = None) -> Path:
    """Write the router to ``path`` (default ``$SLUICE_HOME/routers/<name>.joblib``) and the store."""
    import joblib

    p = Path(path) if path is not None else routers_dir() / f"{router.label}.joblib"
    p.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(router, p)
    buf = io.BytesIO()
    joblib.dump(router, buf)
    st = store if store is not None else default_store()
    st.ensure(ROUTER_DDL)
    st.execute("DELETE FROM sluice_routers WHERE name = ?", [router.label])
    st.execute("INSERT INTO sluice_routers (name, created, blob) VALUES (?, ?, ?)",
               [router.label, time.time(), base64.b64encode(buf.getvalue()).decode()])
    return p


def load_router(spec: str | Router | None, *, store: StateStore | None = None) -> Router:
    """A router by spec: ``always:<p>``, ``tables``, ``cascade``, ``budget:<x>``, or a saved
    router's name or path."""
    if isinstance(spec, Router):
        return spec
    s = (spec or "tables").strip()
    if s.startswith("always:"):
        p = s.split(":", 1)[1]
        if p not in ("cache", *TIER_PIPELINES):
            raise InvalidParameterValue(f"unknown pipeline {p!r} in router {s!r}")
        return AlwaysRouter(p)
    if s == "tables":
        return TablesRouter()
    if s.startswith("budget:"):
        frac, _, name = s.split(":", 1)[1].partition("@")
        try:
            b = float(frac)
        except ValueError:
            raise InvalidParameterValue(f"bad budget in {s!r}: use budget:0.4 or budget:0.4@<router>") from None
        base = load_router(name or "learned", store=store)
        if not isinstance(base, LearnedRouter):
            raise InvalidParameterValue(f"{s!r}: {name!r} is not a learned router")
        return base.with_budget(b)
    if s == "agree" or s.startswith(("agree:", "agree@")):
        from sqlsluice.routers.agree import parse_agree

        return parse_agree(s)
    if s.startswith("cascade"):
        parts = s.split(":", 1)
        return CascadeRouter(min_confidence=float(parts[1])) if len(parts) == 2 else CascadeRouter()
    import joblib

    path = Path(s)
    if path.suffix in (".joblib", ".pkl") or path.exists():
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return _load_file(path, s)
    f = routers_dir() / f"{s}.joblib"
    if f.exists():
        return _load_file(f, s)
    st = store if store is not None else default_store()
    st.ensure(ROUTER_DDL)
    rows = st.execute("SELECT created, blob FROM sluice_routers WHERE name = ? ORDER BY created DESC", [s])
    if rows:
        key = (f"store:{id(st)}:{s}", float(rows[0][0]))
        if key not in _LOADED:
            _LOADED[key] = _checked(joblib.load(io.BytesIO(base64.b64decode(rows[0][1]))), s)
        return _LOADED[key]
    raise InvalidParameterValue(
        f"unknown router {s!r}: use always:<pipeline>, tables, cascade, or a router saved by `sluice route train`")


_LOADED: dict[tuple[str, float], Router] = {}


def _load_file(path: Path, spec: str) -> Router:
    """Load a saved router once per file version (the proxy loads it on every ASK)."""
    import joblib

    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _LOADED:
        _LOADED[key] = _checked(joblib.load(path), spec)
    return _LOADED[key]


def _checked(obj: Any, spec: str) -> Router:
    if not isinstance(obj, Router):
        raise InvalidParameterValue(f"{spec}: not a saved router")
    return obj
