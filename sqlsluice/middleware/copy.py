"""COPY ... FROM STDIN / TO STDOUT over DuckDB: statement parsing and the text/CSV formats.

PostgreSQL's text format (tab-separated, ``\\N`` for NULL, backslash escapes) and CSV format
(``FORMAT csv``, ``HEADER``, ``DELIMITER``, ``NULL``, ``QUOTE``) are supported; binary COPY
is refused with 0A000.  Incoming data is converted to a CSV file that DuckDB's own COPY
loads; outgoing rows are encoded with the text encoders of :mod:`sqlsluice.middleware.types`.

>>> c = parse_copy("COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true)")
>>> (c.source, c.columns, c.direction, c.format, c.header)
('t', ['a', 'b'], 'in', 'csv', True)
>>> text_row_to_csv(b"1\\tx\\\\ty\\t\\\\N")
'"1","x\\ty",\\\\N\\n'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlsluice.errors import FeatureNotSupported, SyntaxErrorSQL

_COPY = re.compile(
    r"^\s*COPY\s+(?P<src>\((?P<query>.*)\)|(?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)\s*"
    r"(?P<cols>\([^()]*\))?\s+(?P<dir>FROM|TO)\s+(?P<target>STDIN|STDOUT)\b(?P<opts>.*?)\s*;?\s*$",
    re.I | re.S)


@dataclass(frozen=True)
class CopySpec:
    source: str  # a table name, or the query's text when ``is_query``
    is_query: bool
    columns: list[str]
    direction: str  # "in" (FROM STDIN) | "out" (TO STDOUT)
    format: str = "text"  # "text" | "csv"
    header: bool = False
    delimiter: str = "\t"
    null: str = "\\N"
    quote: str = '"'

    def select_sql(self) -> str:
        if self.is_query:
            return self.source
        cols = ", ".join(self.columns) if self.columns else "*"
        return f"SELECT {cols} FROM {self.source}"


def _unq(v: str) -> str:
    return v[1:-1].replace("''", "'") if len(v) >= 2 and v[0] == "'" == v[-1] else v


_TOKEN = re.compile(r"'(?:[^']|'')*'|[\w$]+|[^\s\w]")
_VALUED = frozenset({"format", "delimiter", "null", "quote", "escape", "encoding", "default"})
_BOOL = frozenset({"true", "false", "on", "off", "1", "0", "match"})


def _options(text: str) -> dict[str, str]:
    """Both ``WITH (FORMAT csv, HEADER true)`` and the legacy ``CSV HEADER DELIMITER ';'``."""
    toks = [t for t in _TOKEN.findall(text) if t not in ("(", ")", ",")]
    opts: dict[str, str] = {}
    i = 0
    while i < len(toks):
        key = toks[i].lower()
        i += 1
        if key in ("with", "as"):
            continue
        if i < len(toks) and toks[i].lower() == "as":
            i += 1
        if key in _VALUED and i < len(toks):
            opts[key] = _unq(toks[i])
            i += 1
        elif i < len(toks) and toks[i].lower() in _BOOL:
            opts[key] = toks[i].lower()
            i += 1
        else:
            opts[key] = "true"
    return opts


def parse_copy(sql: str) -> CopySpec | None:
    """A COPY to/from the client, or None for other statements (server-side files stay with DuckDB)."""
    m = _COPY.match(sql)
    if not m:
        return None
    opts = _options(m.group("opts"))
    fmt = opts.pop("format", "csv" if "csv" in opts else "text").lower()
    opts.pop("csv", None)
    if fmt == "binary" or "binary" in opts:
        raise FeatureNotSupported("COPY in binary format is not supported over DuckDB; use text or csv")
    if fmt not in ("text", "csv"):
        raise SyntaxErrorSQL(f'COPY format "{fmt}" not recognized')
    csv = fmt == "csv"
    header = opts.get("header", "false").lower() in ("true", "on", "1", "match")
    cols = [c.strip() for c in m.group("cols")[1:-1].split(",")] if m.group("cols") else []
    query = m.group("query")
    return CopySpec(
        source=query if query is not None else m.group("src"), is_query=query is not None, columns=cols,
        direction="in" if m.group("dir").upper() == "FROM" else "out", format=fmt, header=header,
        delimiter=opts.get("delimiter", "," if csv else "\t"), null=opts.get("null", "" if csv else "\\N"),
        quote=opts.get("quote", '"'))


_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _text_field(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            n = raw[i + 1]
            out.append(_UNESCAPE.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def text_row_to_csv(line: bytes, delimiter: str = "\t", null: str = "\\N") -> str:
    """One line of PostgreSQL text-format COPY data as a CSV line DuckDB reads (NULL -> ``\\N``)."""
    fields = line.decode().split(delimiter)
    out = []
    for f in fields:
        if f == null:
            out.append("\\N")
        else:
            v = _text_field(f)
            out.append('"' + v.replace('"', '""') + '"')
    return ",".join(out) + "\n"


_ESC = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def row_encoder(spec: CopySpec, encoders: Sequence[Callable[[Any], bytes]]) -> Callable[[Sequence[Any]], bytes]:
    """Encode one result row as a line of COPY TO STDOUT data."""
    if spec.format == "text":
        null = spec.null.encode()
        delim = spec.delimiter.encode()

        def text(row: Sequence[Any]) -> bytes:
            return delim.join(null if v is None else e(v).decode().translate(_ESC).encode()
                              for v, e in zip(row, encoders, strict=True)) + b"\n"
        return text

    q = spec.quote

    def csv(row: Sequence[Any]) -> bytes:
        cells = []
        for v, e in zip(row, encoders, strict=True):
            if v is None:
                cells.append(spec.null)
                continue
            s = e(v).decode()
            if (spec.delimiter in s or q in s or "\n" in s or "\r" in s or s == spec.null or not s):
                s = q + s.replace(q, q + q) + q
            cells.append(s)
        return (spec.delimiter.join(cells) + "\n").encode()
    return csv


def csv_header(spec: CopySpec, names: Sequence[str]) -> bytes:
    return (spec.delimiter.join(names) + "\n").encode()
