"""The ``cache`` pipeline: answer a question already answered for this database, for zero tokens.

Answers are stored (table ``sluice_ask_cache``) once they ran and passed the checks (no
error, a non-degenerate result).  A new question hits when its normalised text (lower
case, punctuation and stop words dropped, words stemmed) equals a stored one, or when the
cosine similarity of hashed word and character-trigram vectors (a deterministic local
representation: no model weights) is at least ``threshold`` (0.92) **and** both questions
name exactly the same literals (numbers, quoted strings, capitalised words), so that
"singers older than 30" never reuses the answer for "older than 40".

>>> normalise("What are the names of all singers?") == normalise("what are the singer names")
True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from typing import TYPE_CHECKING

from sqlsluice.state import StateStore, default_store
from sqlsluice.text2sql.schema import content_words

if TYPE_CHECKING:
    from sqlsluice.text2sql.pipelines import Workspace

DDL = ("CREATE TABLE IF NOT EXISTS sluice_ask_cache (db TEXT, qnorm TEXT, literals TEXT, question TEXT, "
       "evidence TEXT, sql TEXT, vec TEXT, created DOUBLE PRECISION)")
DIM = 512
THRESHOLD = 0.92
_LIT = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d+(?:\.\d+)?\b|(?<!^)(?<![.?!]\s)\b[A-Z][a-zA-Z]+\b")


def normalise(question: str, evidence: str | None = None) -> str:
    """Sorted content words of the question (and evidence)."""
    return " ".join(sorted(content_words(question + " " + (evidence or ""))))


def literals(question: str) -> str:
    return json.dumps(sorted({m.strip("'\"").lower() for m in _LIT.findall(question.strip())}))


def vector(text: str) -> list[float]:
    """Hashed bag of words and character trigrams, L2-normalised."""
    v = [0.0] * DIM
    toks = sorted(content_words(text))
    feats = list(toks)
    for w in toks:
        p = f"#{w}#"
        feats.extend(p[i:i + 3] for i in range(len(p) - 2))
    for f in feats:
        h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=4).digest(), "big")
        v[h % DIM] += 1.0 if len(f) != 3 else 0.5
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 5) for x in v]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _db_key(ws: Workspace) -> str:
    url = ws.backend.url if ws.backend is not None else ""
    return f"{url}#{ws.catalog.schema_fingerprint()}"


def lookup(ws: Workspace, *, threshold: float = THRESHOLD) -> str | None:
    """The stored SQL for this question on this database, or None."""
    st = ws.store if ws.store is not None else default_store()
    st.ensure(DDL)
    key = _db_key(ws)
    qn = normalise(ws.question, ws.evidence)
    rows = st.execute("SELECT qnorm, literals, sql, vec FROM sluice_ask_cache WHERE db = ? ORDER BY created DESC",
                      [key])
    lits = literals(ws.question)
    vec = None
    for qnorm, lit, sql, vtext in rows:
        if qnorm == qn:
            return str(sql)
        if lit != lits:
            continue
        vec = vec or vector(ws.question + " " + (ws.evidence or ""))
        if cosine(vec, json.loads(vtext)) >= threshold:
            return str(sql)
    return None


def remember(ws: Workspace, sql: str, store: StateStore | None = None) -> None:
    """Store a checked answer for later questions."""
    st = store if store is not None else ws.store if ws.store is not None else default_store()
    st.ensure(DDL)
    key = _db_key(ws)
    qn = normalise(ws.question, ws.evidence)
    if st.execute("SELECT 1 FROM sluice_ask_cache WHERE db = ? AND qnorm = ?", [key, qn]):
        return
    st.execute("INSERT INTO sluice_ask_cache (db, qnorm, literals, question, evidence, sql, vec, created) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [key, qn, literals(ws.question), ws.question, ws.evidence, sql,
                json.dumps(vector(ws.question + " " + (ws.evidence or ""))), time.time()])
