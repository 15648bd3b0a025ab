"""Lexical helpers over SQL text: statement splitting and ``$n`` parameter counting.

A small scanner that knows PostgreSQL's quoting (``'...'`` with ``''``, ``E'...'`` with
backslashes, ``"..."``, ``$tag$...$tag$``) and comments (``--``, nested ``/* */``).

>>> split_statements("SELECT 1; SELECT ';' ; -- done")
['SELECT 1', "SELECT ';'"]
>>> max_param("SELECT $1, '$2', $3")
3
"""

from __future__ import annotations

import re
from functools import lru_cache

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_PARAM = re.compile(r"\$(\d+)")


def _scan(sql: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Positions of top-level ``;`` and the (start, end) spans of code outside quotes/comments."""
    semis: list[int] = []
    code: list[tuple[int, int]] = []
    i, n = 0, len(sql)
    start = 0
    while i < n:
        c = sql[i]
        if c == "'":
            code.append((start, i))
            escape = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            i += 1
            while i < n:
                if escape and sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == "'":
                    if i + 1 < n and sql[i + 1] == "'":
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            start = i
        elif c == '"':
            code.append((start, i))
            j = sql.find('"', i + 1)
            while j != -1 and j + 1 < n and sql[j + 1] == '"':
                j = sql.find('"', j + 2)
            i = n if j == -1 else j + 1
            start = i
        elif c == "-" and sql.startswith("--", i):
            code.append((start, i))
            j = sql.find("\n", i)
            i = n if j == -1 else j + 1
            start = i
        elif c == "/" and sql.startswith("/*", i):
            code.append((start, i))
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            start = i
        elif c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                code.append((start, i))
                j = sql.find(m.group(0), m.end())
                i = n if j == -1 else j + len(m.group(0))
                start = i
            else:
                i += 1
        elif c == ";":
            semis.append(i)
            i += 1
        else:
            i += 1
    code.append((start, n))
    return semis, code


CACHE_MAX_LEN = 8192  # longer strings (bulk INSERTs) are not worth keeping in a cache


def split_statements(sql: str) -> list[str]:
    """Split a simple-Query string into statements (empty ones dropped)."""
    return list(_split_cached(sql)) if len(sql) <= CACHE_MAX_LEN else _split(sql)


@lru_cache(maxsize=4096)
def _split_cached(sql: str) -> tuple[str, ...]:
    return tuple(_split(sql))


def _split(sql: str) -> list[str]:
    if ";" not in sql:
        s = sql.strip()
        return [s] if s and not _only_comments(s) else []
    semis, _ = _scan(sql)
    out, prev = [], 0
    for pos in [*semis, len(sql)]:
        s = sql[prev:pos].strip()
        prev = pos + 1
        if s and not _only_comments(s):
            out.append(s)
    return out


def _only_comments(s: str) -> bool:
    if "--" not in s and "/*" not in s:
        return False
    _, code = _scan(s)
    return not any(s[a:b].strip() for a, b in code)


def max_param(sql: str) -> int:
    """The highest ``$n`` placeholder outside quotes and comments (0 when none)."""
    if "$" not in sql:
        return 0
    return _max_param_cached(sql) if len(sql) <= CACHE_MAX_LEN else _max_param(sql)


@lru_cache(maxsize=4096)
def _max_param_cached(sql: str) -> int:
    return _max_param(sql)


def _max_param(sql: str) -> int:
    _, code = _scan(sql)
    best = 0
    for a, b in code:
        for m in _PARAM.finditer(sql, a, b):
            best = max(best, int(m.group(1)))
    return best
