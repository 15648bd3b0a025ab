"""Usage ledger and response cache, both in the state database.

``sluice_llm_usage``: one row per call (provider, model, role, template, template hash,
input/output tokens as reported by the provider, latency, cost, cached flag, status, tag, ts).
``sluice_llm_cache``: responses keyed on (provider, model, template hash, inputs, options).
Both are safe to use from several threads (the store serialises statements).
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlsluice.llm.base import Completion, Message, Options
from sqlsluice.state import StateStore

USAGE_DDL = """CREATE TABLE IF NOT EXISTS sluice_llm_usage (
    ts DOUBLE PRECISION, provider TEXT, model TEXT, role TEXT, template TEXT, template_hash TEXT,
    input_tokens BIGINT, output_tokens BIGINT, latency_s DOUBLE PRECISION, cost_usd DOUBLE PRECISION,
    cached BIGINT, status TEXT, tag TEXT)"""

CACHE_DDL = """CREATE TABLE IF NOT EXISTS sluice_llm_cache (
    key TEXT PRIMARY KEY, provider TEXT, model TEXT, template TEXT, template_hash TEXT,
    response TEXT, ts DOUBLE PRECISION)"""

PRICES_FILE = Path(__file__).resolve().parent / "prices.toml"


@lru_cache(maxsize=1)
def default_prices() -> dict[str, tuple[float, float]]:
    """The shipped price table: model -> (USD per 1M input tokens, USD per 1M output tokens)."""
    data = tomllib.loads(PRICES_FILE.read_text())
    return {k: (float(v[0]), float(v[1])) for k, v in data.get("prices", {}).items()}


def price_for(model: str, prices: dict[str, tuple[float, float]] | None = None) -> tuple[float, float] | None:
    """Exact model name first, then the longest known prefix (``gpt-4o-2024-08-06`` -> ``gpt-4o``)."""
    table = {**default_prices(), **(prices or {})}
    if model in table:
        return table[model]
    best = max((k for k in table if model.startswith(k)), key=len, default=None)
    return table[best] if best else None


def cost_usd(model: str, input_tokens: int, output_tokens: int,
             prices: dict[str, tuple[float, float]] | None = None) -> float:
    p = price_for(model, prices)
    if p is None:
        return 0.0
    return (input_tokens * p[0] + output_tokens * p[1]) / 1_000_000


@dataclass(frozen=True)
class UsageTotals:
    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Ledger:
    """Records every call; sums usage by any of tag, template, role, model, provider, since."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        store.ensure(USAGE_DDL)

    def record(self, *, provider: str, model: str, role: str, template: str, template_hash: str,
               input_tokens: int, output_tokens: int, latency_s: float, cost_usd: float,
               cached: bool, status: str = "ok", tag: str | None = None) -> None:
        self.store.execute(
            "INSERT INTO sluice_llm_usage (ts, provider, model, role, template, template_hash, input_tokens,"
            " output_tokens, latency_s, cost_usd, cached, status, tag) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (time.time(), provider, model, role, template, template_hash, int(input_tokens),
             int(output_tokens), float(latency_s), float(cost_usd), int(cached), status, tag))

    @staticmethod
    def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for k, v in filters.items():
            if v is None:
                continue
            if k == "since":
                clauses.append("ts >= ?")
            elif k in {"tag", "template", "role", "model", "provider", "status"}:
                clauses.append(f"{k} = ?")
            else:
                raise ValueError(f"unknown usage filter {k!r}")
            params.append(v)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def totals(self, *, tag: str | None = None, template: str | None = None, role: str | None = None,
               model: str | None = None, provider: str | None = None, since: float | None = None) -> UsageTotals:
        """Sum of usage over the rows matching every given filter."""
        where, params = self._where(dict(tag=tag, template=template, role=role, model=model,
                                         provider=provider, since=since))
        row = self.store.execute(
            "SELECT COUNT(*), COALESCE(SUM(cached), 0),"
            " COALESCE(SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), 0),"
            " COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0),"
            f" COALESCE(SUM(latency_s), 0) FROM sluice_llm_usage{where}", params)[0]
        return UsageTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]),
                           float(row[5]), float(row[6]))

    def by(self, column: str = "tag", *, since: float | None = None) -> dict[str | None, UsageTotals]:
        """Totals grouped by ``column`` (tag, template, role, model or provider)."""
        if column not in {"tag", "template", "role", "model", "provider"}:
            raise ValueError(f"cannot group usage by {column!r}")
        where, params = self._where({"since": since})
        rows = self.store.execute(
            f"SELECT {column}, COUNT(*), COALESCE(SUM(cached), 0),"
            " COALESCE(SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), 0),"
            " COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0),"
            f" COALESCE(SUM(latency_s), 0) FROM sluice_llm_usage{where} GROUP BY {column}", params)
        return {r[0]: UsageTotals(int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), float(r[6]), float(r[7]))
                for r in rows}


def cache_key(provider: str, model: str, template_hash: str, messages: list[Message], options: Options) -> str:
    blob = json.dumps({"provider": provider, "model": model, "template": template_hash,
                       "inputs": [m.model_dump() for m in messages],
                       "options": options.model_dump(exclude={"timeout_s"})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        store.ensure(CACHE_DDL)

    def get(self, key: str) -> Completion | None:
        rows = self.store.execute("SELECT response FROM sluice_llm_cache WHERE key = ?", (key,))
        if not rows:
            return None
        return Completion.model_validate_json(rows[0][0])

    def put(self, key: str, completion: Completion) -> None:
        self.store.execute(
            "INSERT INTO sluice_llm_cache (key, provider, model, template, template_hash, response, ts)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING",
            (key, completion.provider, completion.model, completion.template, completion.template_hash,
             completion.model_dump_json(), time.time()))

    def clear(self) -> None:
        self.store.execute("DELETE FROM sluice_llm_cache")
