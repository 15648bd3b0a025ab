"""LLM-R2-style rule selection: the LLM picks a sequence of rules, the rule engine applies it.

After LLM-R2 (Li et al., VLDB 2025).  The prompt (``sqlsluice/llm/prompts/llm_r2_select.toml``)
carries the query, the rule catalog (Calcite names where there is one, with our one-line
descriptions) and ``k`` demonstrations chosen by similarity to the query.  A demonstration is a
query, the rule sequence that sped it up and the measured gain.  The pool is seeded from
``../shared/data/rewrite/llmr2/pos_pool_dsb.csv`` (LLM-R2's DSB pool; read at run time, skipped
when absent) and grows with sqlsluice's own verified, measured rewrites
(:func:`record_demonstration`, table ``sluice_llmr2_demos``).

Similarity is TF-IDF over the query's SQL words (keywords, table and column names; literals
dropped), cosine nearest neighbours.  LLM-R2 trains a contrastive plan encoder instead; the
text model needs no training and keeps the stage deterministic.

The reply's rule names are read robustly (a JSON list, else rule-like tokens) and resolved
with :func:`sqlsluice.rewriters.rules.resolve`; unknown names are ignored and counted
(``STATS["unknown_rules"]`` and the candidate's notes).  The chosen rules are applied by
:func:`sqlsluice.rewriters.rules.apply_rules`; the result is a Candidate that the caller's
gate verifies, costs and times like any other.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sqlsluice.config import shared_data_dir
from sqlsluice.databases import Backend, Catalog
from sqlsluice.errors import LLMError, SluiceError
from sqlsluice.llm.base import Options
from sqlsluice.llm.budget import TokenBudget
from sqlsluice.llm.client import LLM, current_tag, get_llm, usage_tag
from sqlsluice.llm.sqltext import parse_query, parse_rule_list
from sqlsluice.rewriters.candidates import Candidate
from sqlsluice.rewriters.rules import RULES, Rule, apply_rules, resolve
from sqlsluice.state import StateStore

log = logging.getLogger(__name__)

TEMPLATE = "llm_r2_select"
DEMOS_DDL = """CREATE TABLE IF NOT EXISTS sluice_llmr2_demos (
    sql TEXT, rules TEXT, gain DOUBLE PRECISION, source TEXT, ts DOUBLE PRECISION)"""

# process-wide counters (what the stage saw since start): calls, malformed replies, unknown names
STATS: Counter[str] = Counter()
_STATS_LOCK = threading.Lock()


def _count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        STATS[key] += n




def pool_csv() -> Path:
    return shared_data_dir() / "rewrite" / "llmr2" / "pos_pool_dsb.csv"


def display_name(rule: Rule) -> str:
    """How a rule is named in the prompt: Calcite's name where there is one (LLM-R2 speaks Calcite)."""
    return rule.calcite or rule.name.upper()


def rules_text(rules: tuple[Rule, ...] = RULES) -> str:
    return "\n".join(f"- {display_name(r)}: {r.description}" for r in rules)


@dataclass(frozen=True)
class Demonstration:
    sql: str
    rules: tuple[str, ...]  # our rule names, in order
    gain: float  # latency before / latency after
    source: str = "pool"

    def render(self, i: int) -> str:
        names = json.dumps([display_name(r) for n in self.rules if (r := resolve(n)) is not None])
        return f"Example {i}:\nQuery: {self.sql.strip()}\nRules: {names}\nGain: {self.gain:.2f}x faster"


_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_WORD = re.compile(r"[a-z_][a-z0-9_]*")


def sql_words(sql: str) -> list[str]:
    """The words similarity is computed on: keywords and identifiers, literals dropped."""
    return _WORD.findall(_LITERAL.sub(" ", sql.lower()))


def _our_rules(names: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for n in names:
        r = resolve(n)
        if r is not None and r.name not in out:
            out.append(r.name)
    return tuple(out)


def load_pool_csv(path: Path, *, max_sql_chars: int = 4000) -> list[Demonstration]:
    """LLM-R2's positive pool: rows with a measured gain (> 1) and at least one rule we know."""
    if not path.exists():
        log.info("LLM-R2 demonstration pool %s not found; using stored demonstrations only", path)
        return []
    out: list[Demonstration] = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                names = ast.literal_eval(row["activated_rules"])
                gain = float(row["latency_org"]) / float(row["latency_new"])
            except (ValueError, SyntaxError, ZeroDivisionError, KeyError):
                continue
            rules = _our_rules([str(n) for n in names])
            sql = " ".join(row["original_sql"].split()).rstrip(" ;")
            if rules and gain > 1.0 and len(sql) <= max_sql_chars:
                out.append(Demonstration(sql=sql, rules=rules, gain=gain, source="llmr2-dsb"))
    return out


def record_demonstration(store: StateStore, sql: str, rules: list[str], gain: float, source: str = "sluice") -> None:
    """Add a verified rewrite's rule sequence and measured gain to the pool (only gains > 1)."""
    ours = _our_rules(rules)
    if not ours or gain <= 1.0:
        return
    store.ensure(DEMOS_DDL)
    store.execute("INSERT INTO sluice_llmr2_demos (sql, rules, gain, source, ts) VALUES (?,?,?,?,?)",
                  (sql, json.dumps(list(ours)), float(gain), source, time.time()))


def _has_table(store: StateStore, name: str) -> bool:
    if store.kind == "postgres":
        return bool(store.execute("SELECT to_regclass(?) IS NOT NULL", (f"sluice.{name}",))[0][0])
    return bool(store.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))


def stored_demonstrations(store: StateStore) -> list[Demonstration]:
    """Demonstrations recorded here, plus the rule rewrites the proxy stored as verified and faster
    (``sluice_rewrites``: query template, rule sequence, measured speedup)."""
    store.ensure(DEMOS_DDL)
    out = []
    if _has_table(store, "sluice_rewrites"):
        rows = store.execute("SELECT original_template, rules, speedup FROM sluice_rewrites"
                             " WHERE speedup IS NOT NULL AND speedup > 1 AND rules IS NOT NULL")
        for sql, rules, gain in rows:
            try:
                names = json.loads(rules)
            except (json.JSONDecodeError, TypeError):
                continue
            ours = _our_rules([str(n) for n in names]) if isinstance(names, list) else ()
            if ours and sql:
                out.append(Demonstration(sql=sql, rules=ours, gain=float(gain), source="sluice-rewrites"))
    for sql, rules, gain, source in store.execute("SELECT sql, rules, gain, source FROM sluice_llmr2_demos"):
        try:
            names = json.loads(rules)
        except json.JSONDecodeError:
            continue
        ours = _our_rules(names)
        if ours:
            out.append(Demonstration(sql=sql, rules=ours, gain=float(gain), source=source))
    return out


@dataclass
class DemoPool:
    """Demonstrations with a TF-IDF index for nearest-neighbour selection."""

    demos: list[Demonstration]
    max_overlap: float = 0.9
    _vec: Any = field(default=None, repr=False)
    _mat: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.demos:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self._vec = TfidfVectorizer(analyzer=sql_words, sublinear_tf=True)
            self._mat = self._vec.fit_transform([d.sql for d in self.demos])

    def __len__(self) -> int:
        return len(self.demos)

    def nearest(self, sql: str, k: int = 3) -> list[Demonstration]:
        """The ``k`` most similar demonstrations (ties by higher gain), most similar first."""
        if not self.demos or k <= 0:
            return []
        q = self._vec.transform([sql])
        sims = np.asarray((self._mat @ q.T).todense()).ravel()
        order = sorted(range(len(self.demos)), key=lambda i: (-round(float(sims[i]), 9), -self.demos[i].gain, i))
        picked: list[int] = []
        # one demonstration per query shape: the pool holds several instances of each template,
        # so a candidate nearly identical (cosine >= 0.9) to one already picked is skipped
        for i in order:
            if " ".join(self.demos[i].sql.split()).lower() == " ".join(sql.split()).lower().rstrip(" ;"):
                continue  # the query itself is no demonstration
            if picked:
                close = np.asarray((self._mat[picked] @ self._mat[i].T).todense()).ravel()
                if float(close.max()) >= self.max_overlap:
                    continue
            picked.append(i)
            if len(picked) == k:
                break
        return [self.demos[i] for i in picked]

    @classmethod
    def load(cls, store: StateStore | None = None, csv_path: Path | None = None) -> DemoPool:
        seed = _seed_pool(str(csv_path or pool_csv()))
        own = stored_demonstrations(store) if store is not None else []
        return cls(list(seed) + own)


@lru_cache(maxsize=4)
def _seed_pool(path: str) -> tuple[Demonstration, ...]:
    return tuple(load_pool_csv(Path(path)))


@dataclass
class R2Report:
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    demonstrations: int = 0
    chosen: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    not_fired: list[str] = field(default_factory=list)
    malformed: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def _resolve_name(name: str) -> str | None:
    r = resolve(name)
    return r.name if r is not None else None


def _norm(sql: str, dialect: str) -> str:
    q = parse_query(sql, dialect)
    return q.sql(dialect=dialect, normalize=True) if q is not None else sql


def propose_with_report(sql: str, catalog: Catalog, backend: Backend, *, llm: LLM | None = None,
                        budget: int | TokenBudget | None = None, k: int = 3, samples: int = 1,
                        pool: DemoPool | None = None) -> tuple[list[Candidate], R2Report]:
    """Ask for rule sequences (``samples`` replies), apply each, return distinct changed queries.

    ``llm`` defaults to ``get_llm(role="rewrite")``; calls are tagged like LITHE's.
    """
    if llm is None:
        llm = get_llm(None, "rewrite")
    if current_tag() is None:
        from sqlsluice.rewriters.lithe import query_tag

        with usage_tag(query_tag(sql)):
            return propose_with_report(sql, catalog, backend, llm=llm, budget=budget, k=k, samples=samples,
                                       pool=pool)
    b = TokenBudget.of(budget)
    rep = R2Report()
    dialect = backend.dialect
    pool = pool if pool is not None else DemoPool.load(llm.store)
    demos = pool.nearest(sql, k)
    rep.demonstrations = len(demos)
    variables = {"rules": rules_text(),
                 "demonstrations": "\n\n".join(d.render(i + 1) for i, d in enumerate(demos)) or "(none)",
                 "query": sql.strip().rstrip(";")}
    out: list[Candidate] = []
    seen = {_norm(sql, dialect)}
    for s in range(max(1, samples)):
        if b.exhausted:
            break
        opts = Options() if s == 0 else Options(temperature=0.8, seed=s)
        try:
            comp = llm.complete(TEMPLATE, variables, options=opts)
        except LLMError as e:
            rep.errors.append(e.message)
            log.warning("LLM-R2: the LLM call failed: %s", e.message)
            break
        b.charge(comp)
        _count("calls")
        rep.calls += 1
        rep.tokens += comp.usage.total
        rep.cost_usd += comp.cost_usd
        names, unknown, ok = parse_rule_list(comp.text, _resolve_name)
        if not ok:
            rep.malformed += 1
            _count("malformed_replies")
            log.info("LLM-R2: reply holds no rule list (%d chars)", len(comp.text))
            continue
        if unknown:
            rep.unknown.extend(unknown)
            _count("unknown_rules", len(unknown))
            log.info("LLM-R2: ignored unknown rule names %s", unknown)
        rep.chosen.extend(names)
        try:
            res = apply_rules(sql, names, catalog, dialect)
        except SluiceError as e:
            rep.errors.append(f"applying {names}: {e.message}")
            continue
        rep.applied.extend(r for r in res.applied if r not in rep.applied)
        rep.not_fired.extend(r for r in res.not_fired if r not in rep.not_fired)
        key = _norm(res.sql, dialect)
        if not res.applied or key in seen:
            rep.unchanged += 1
            continue
        seen.add(key)
        notes = f"LLM-R2 chose {names}" + (f"; ignored unknown {unknown}" if unknown else "") + \
            (f"; did not fire {res.not_fired}" if res.not_fired else "") + f"; {len(demos)} demonstrations"
        out.append(Candidate(sql=res.sql, rules=list(res.applied), source="llm-r2", tokens=comp.usage.total,
                             cost_usd=comp.cost_usd, notes=notes))
    if out:
        out[0].tokens += max(0, rep.tokens - sum(c.tokens for c in out))
        out[0].cost_usd += max(0.0, rep.cost_usd - sum(c.cost_usd for c in out))
    return out, rep


def propose(sql: str, catalog: Catalog, backend: Backend, *, llm: LLM | None = None,
            budget: int | TokenBudget | None = None, **kwargs: Any) -> list[Candidate]:
    """LLM-R2 candidates for ``sql`` (unverified: the caller's gate decides what may be served)."""
    return propose_with_report(sql, catalog, backend, llm=llm, budget=budget, **kwargs)[0]
