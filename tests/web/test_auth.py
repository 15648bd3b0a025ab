"""Console login pieces: the SCRAM password check, the signed session cookie, CSRF tokens,
and the timing recorder's buckets (a real SQLite state store)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlsluice.rewriters.online import Entry, RewriteStore
from sqlsluice.serving.web import timings
from sqlsluice.serving.web.auth import SessionKeys, check_password
from sqlsluice.serving.web.data import side_by_side, tep_series
from sqlsluice.state import NamespacedState, StateStore


def test_password_checked_through_a_scram_exchange() -> None:
    assert check_password("s3cret", "s3cret", "dba")
    assert not check_password("s3cret", "s3creT", "dba")
    assert not check_password("s3cret", "", "dba")
    assert check_password("pässwörd ✓", "pässwörd ✓", "dba")


def test_session_cookie_is_signed_bound_to_the_password_and_expires() -> None:
    keys = SessionKeys()
    cookie = keys.sign("dba", "pw")
    assert keys.verify(cookie, lambda u: "pw" if u == "dba" else None) == "dba"
    assert keys.verify(cookie, lambda u: "new password") is None  # password changed (SIGHUP)
    assert keys.verify(cookie, lambda u: None) is None  # no longer an admin, or gone
    body, _, sig = cookie.partition(".")
    forged = SessionKeys().sign("dba", "pw")  # another server's secret
    assert keys.verify(forged, lambda u: "pw") is None
    assert keys.verify(body + "." + sig[::-1], lambda u: "pw") is None
    assert keys.verify(body[:-2] + "." + sig, lambda u: "pw") is None
    assert keys.verify("garbage", lambda u: "pw") is None and keys.verify(None, lambda u: "pw") is None
    expired = SessionKeys(keys.secret, lifetime_s=-1).sign("dba", "pw")
    assert keys.verify(expired, lambda u: "pw") is None
    other = keys.sign("dba", "pw")
    keys.revoke(cookie)  # logged out: that cookie opens nothing, the user's other session still does
    assert keys.verify(cookie, lambda u: "pw") is None and keys.csrf(cookie) == ""
    assert keys.verify(other, lambda u: "pw") == "dba"


def test_csrf_token_belongs_to_one_session() -> None:
    keys = SessionKeys()
    a, b = keys.sign("dba", "pw"), keys.sign("dba", "pw")
    ta = keys.csrf(a)
    assert ta and keys.check_csrf(a, ta)
    assert not keys.check_csrf(b, ta) and not keys.check_csrf(a, "") and not keys.check_csrf(None, ta)
    assert keys.csrf(None) == ""


def test_recorder_buckets_served_timings_and_records_verified_ones(tmp_path: Path) -> None:
    base = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    store = RewriteStore(NamespacedState(base, "db1"))
    store.put(Entry("fp1", "SELECT 1", "SELECT 1", ["rule_a"], "EQUIVALENT", 4.0, 0.2, "v1", time.time()))

    class Rewriter:  # what the hook reads of an OnlineRewriter: its store
        pass

    rw = Rewriter()
    rw.store = store  # type: ignore[attr-defined]
    rec = timings.TimingRecorder()
    for s in (0.04, 0.06, 0.05):
        rec.hook(rw, "fp1", s, True)
    rec.hook(rw, "fp1", 0.3, False)
    assert rec.flush([store]) == 2 + 2  # one bucket per kind, the two verified timings
    assert rec.flush([store]) == 0  # nothing new
    h = timings.history(store, "fp1")
    assert [(round(m, 3), n) for _, m, n in h["served_rewrite"]] == [(0.05, 3)]
    assert [(m, n) for _, m, n in h["served_original"]] == [(0.3, 1)]
    assert [m for _, m, _ in h["verified_original"]] == [0.2] and [m for _, m, _ in h["verified_rewrite"]] == [0.05]
    assert timings.served_counts(store) == {"fp1": 3}
    # a re-timing changes the entry: recorded again; another process's recorder does not repeat it
    store.put(Entry("fp1", "SELECT 1", "SELECT 1", ["rule_a"], "EQUIVALENT", 2.0, 0.3, "v1", time.time()))
    assert rec.flush([store]) == 2
    assert timings.TimingRecorder().flush([store]) == 0
    other = RewriteStore(NamespacedState(base, "db2"))  # other namespaces see none of it
    assert timings.served_counts(other) == {} and timings.history(other, "fp1")["served_rewrite"] == []
    timings.forget(store, "fp1")
    assert timings.history(store, "fp1") == {k: [] for k in timings.KINDS}


def test_diff_marks_the_changed_lines_and_escapes_sql() -> None:
    html = side_by_side("SELECT a\nFROM t\nWHERE b < '<x>'", "SELECT a\nFROM t AS t\nWHERE b < '<x>'")
    assert "diff_add" in html or "diff_chg" in html
    assert "<x>" not in html and "&lt;x&gt;" in html
    assert "diff_next" not in html and html.count('<col class="text">') == 2


def test_tep_series_against_basic_questions() -> None:
    hist = [{"kind": "ask", "ts": 1.0, "status": "ok", "tokens": 100, "pipeline": "basic"},
            {"kind": "ask", "ts": 2.0, "status": "ok", "tokens": 300, "pipeline": "decompose"},
            {"kind": "explain_ask", "ts": 2.5, "status": "ok", "tokens": 50, "pipeline": "basic"},
            {"kind": "ask", "ts": 3.0, "status": "error", "tokens": 200, "pipeline": "basic"}]
    pts = tep_series(hist)
    assert [p["tep"] for p in pts[:2]] == [None, 0.0]  # same answered share, twice the tokens
    # 2/3 answered vs basic's 1/2, 200 tokens a question vs basic's 150
    assert round(pts[2]["tep"], 4) == round(((2 / 3 - 0.5) / 0.5) / ((200 - 150) / 150), 4)
