"""COPY ... FROM STDIN / TO STDOUT over DuckDB: statement parsing and the text/CSV formats.

PostgreSQL's text format (tab-separated, ``\\N`` for NULL, backslash escapes), CSV format
(``FORMAT csv``, ``HEADER``, ``DELIMITER``, ``NULL``, ``QUOTE``) and binary format (what
asyncpg's ``copy_records_to_table`` sends) are supported.  Incoming data is converted to a CSV file that DuckDB's own COPY
loads; outgoing rows are encoded with the text encoders of :mod:`sqlsluice.middleware.types`.

>>> c = parse_copy("COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true)")
>>> (c.source, c.columns, c.direction, c.format, c.header)
('t', ['a', 'b'], 'in', 'csv', True)
>>> text_row_to_csv(b"1\\tx\\\\ty\\t\\\\N")
'"1","x\\ty",\\\\N\\n'
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlsluice.errors import BackendError, SyntaxErrorSQL

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
    format: str = "text"  # "text" | "csv" | "binary"
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
    if "binary" in opts:
        fmt = "binary"
    if fmt not in ("text", "csv", "binary"):
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


# --- binary format -------------------------------------------------------------------------
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_TRAILER = b"\xff\xff"
_H = struct.Struct("!h")
_I = struct.Struct("!i")


def binary_header() -> bytes:
    return BINARY_SIGNATURE + struct.pack("!ii", 0, 0)


def binary_row(row: Sequence[Any], encoders: Sequence[Callable[[Any], bytes]]) -> bytes:
    parts = [_H.pack(len(row))]
    for v, e in zip(row, encoders, strict=True):
        if v is None:
            parts.append(_I.pack(-1))
        else:
            b = e(v)
            parts.append(_I.pack(len(b)))
            parts.append(b)
    return b"".join(parts)


class BinaryCopyReader:
    """Incremental parser of binary COPY data: ``feed`` bytes, get complete rows of raw fields."""

    def __init__(self, ncols: int) -> None:
        self.ncols = ncols
        self.buf = bytearray()
        self.header_done = False
        self.finished = False

    def feed(self, data: bytes) -> list[list[bytes | None]]:
        self.buf += data
        buf = self.buf
        pos = 0
        rows: list[list[bytes | None]] = []
        if not self.header_done:
            if len(buf) < 19:
                return rows
            if bytes(buf[:11]) != BINARY_SIGNATURE:
                raise BackendError("COPY file signature not recognized", sqlstate="22P04")
            (ext,) = _I.unpack_from(buf, 15)
            if ext < 0:
                raise BackendError("invalid COPY file header (wrong length)", sqlstate="22P04")
            if len(buf) < 19 + ext:
                return rows
            pos = 19 + ext
            self.header_done = True
        n = len(buf)
        while not self.finished and pos + 2 <= n:
            (count,) = _H.unpack_from(buf, pos)
            if count == -1:
                self.finished = True
                pos += 2
                break
            if count != self.ncols:
                raise BackendError(f"row field count is {count}, expected {self.ncols}", sqlstate="22P04")
            p = pos + 2
            fields: list[bytes | None] = []
            for _ in range(count):
                if p + 4 > n:
                    break
                (ln,) = _I.unpack_from(buf, p)
                p += 4
                if ln == -1:
                    fields.append(None)
                    continue
                if ln < 0:
                    raise BackendError("invalid field size in COPY data", sqlstate="22P04")
                if p + ln > n:
                    break
                fields.append(bytes(buf[p:p + ln]))
                p += ln
            if len(fields) < count:
                break  # incomplete row: wait for more data
            rows.append(fields)
            pos = p
        del buf[:pos]
        return rows


def csv_line(cells: Sequence[str | None]) -> str:
    """A CSV line DuckDB reads with ``NULL '\\N'`` and quoted values."""
    return ",".join("\\N" if c is None else '"' + c.replace('"', '""') + '"' for c in cells) + "\n"
