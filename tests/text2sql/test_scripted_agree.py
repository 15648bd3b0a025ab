"""ASK with ``router = "agree"`` on Spider's concert_singer (DuckDB) with a scripted LLM endpoint.

Plumbing only (the replies are scripted): cheap candidates that the verifier proves equivalent
stand without escalation; refuted ones escalate to the next pipeline.
"""

from __future__ import annotations

from typing import Any

import pytest

from sqlsluice.config import Config, router_error
from sqlsluice.errors import InvalidParameterValue
from sqlsluice.llm.scripted_server import Reply
from sqlsluice.routers.agree import AgreeRouter
from sqlsluice.routers.base import load_router
from sqlsluice.text2sql.api import ask

OVER_30 = "SELECT Name FROM singer WHERE Age > 30"
OVER_30_FLIPPED = "SELECT Name FROM singer WHERE 30 < Age"
COUNT = "SELECT count(*) FROM singer"


def test_two_cheap_samples_proved_equivalent_stand(concert_db, scripted, store) -> None:
    s = scripted(lambda tpl, q, body: Reply(contents=[OVER_30, OVER_30_FLIPPED]))
    a = ask(concert_db, "Which singers are older than 30?", config=s.config, router="agree", store=store)
    assert s.calls == ["basic"]  # no escalation
    assert a.pipeline == "basic" and a.sql == OVER_30
    assert a.route.startswith("agree:accepted (2: proved") and a.route.endswith("->basic")
    assert sorted(a.rows) == sorted(concert_db.execute(OVER_30).rows)
    pt, ct = s.server.reported_usage
    assert (a.tokens_in, a.tokens_out) == (pt, ct)


def test_two_cheap_samples_that_disagree_escalate(concert_db, scripted, store) -> None:
    def model(tpl: str, q: str, body: dict[str, Any]) -> str | Reply:
        if tpl == "basic":
            return Reply(contents=[COUNT, "SELECT count(*) FROM singer WHERE Age > 20"])
        if tpl == "decompose":
            return "1. count the singers"
        return COUNT

    s = scripted(model)
    a = ask(concert_db, "How many singers are there?", config=s.config, router="agree", store=store)
    assert s.calls == ["basic", "decompose", "plan_sql"]
    assert a.pipeline == "decompose" and "refuted" in a.route and a.route.endswith("escalate->decompose")
    assert a.rows == [(6,)]
    pt, ct = s.server.reported_usage
    assert (a.tokens_in, a.tokens_out) == (pt, ct)  # the cheap calls count too


def test_several_cheap_models_each_propose_one(concert_db, scripted, store) -> None:
    def model(tpl: str, q: str, body: dict[str, Any]) -> str:
        if tpl != "basic":
            return "1. x" if tpl == "decompose" else COUNT
        cheap = {"cheap-a": OVER_30, "cheap-b": OVER_30_FLIPPED, "cheap-c": "SELECT Name FROM singer"}
        return cheap.get(body["model"], COUNT)  # the escalation's own basic call uses the configured model

    s = scripted(model)
    a = ask(concert_db, "Which singers are older than 30?", config=s.config, router="agree:cheap-a,cheap-b",
            store=store)
    assert [r["model"] for r in s.server.requests] == ["cheap-a", "cheap-b"] and a.pipeline == "basic"
    b = ask(concert_db, "How many singers are there?", config=s.config, router="agree:cheap-a,cheap-c@ensemble",
            store=store)
    assert b.pipeline == "ensemble" and "refuted" in b.route and b.rows == [(6,)]


def test_agree_specs_validate_in_config() -> None:
    assert router_error("agree") is None and router_error("agree:m1,m2@ensemble") is None
    assert "at least two" in (router_error("agree:m1") or "")
    assert "escalate to one of" in (router_error("agree@magic") or "")
    Config.model_validate({"ask": {"router": "agree"}})
    r = load_router("agree:m1,m2")
    assert isinstance(r, AgreeRouter) and r.models == ("m1", "m2") and r.escalate == "decompose"
    with pytest.raises(InvalidParameterValue):
        load_router("agree@nowhere")


def test_unproved_but_unrefuted_candidates_with_the_same_rows_stand(concert_db, scripted, store) -> None:
    # Singer_ID is the primary key (never NULL): the verifier cannot prove COUNT(Singer_ID) = COUNT(*),
    # finds no counterexample, and the live database returns the same rows for both
    s = scripted(lambda tpl, q, body: Reply(contents=[COUNT, "SELECT count(Singer_ID) FROM singer"]))
    a = ask(concert_db, "How many singers are there?", config=s.config, router="agree", store=store)
    assert s.calls == ["basic"] and a.pipeline == "basic" and a.rows == [(6,)]
    assert "same rows, unknown" in a.route
