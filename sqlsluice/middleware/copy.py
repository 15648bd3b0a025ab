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

from sqlsluice.errors import BackendError, SluiceError, SyntaxErrorSQL

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
    escape: str = ""  # CSV: the ESCAPE character ("" = the quote, PostgreSQL's default)

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
        quote=opts.get("quote", '"'), escape=opts.get("escape", ""))


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


def text_row_to_csv(line: bytes, delimiter: str = "\t", null: str = "\\N", *, out_delimiter: str = ",",
                    quote: str = '"', out_null: str = "\\N") -> str:
    """One line of PostgreSQL text-format COPY data as a CSV line DuckDB reads: every value
    quoted with ``quote``, NULL written unquoted as ``out_null``."""
    fields = line.decode().split(delimiter)
    out = []
    for f in fields:
        if f == null:
            out.append(out_null)
        else:
            v = _text_field(f)
            out.append(quote + v.replace(quote, quote + quote) + quote)
    return out_delimiter.join(out) + "\n"


class TextCopyWriter:
    """PostgreSQL text-format COPY data -> a file DuckDB's ``COPY ... FROM`` loads in bulk.

    The file keeps the client's delimiter and NULL string, with a control character as the
    CSV quote (``options()`` names them).  A block of whole lines with no backslash escape
    (other than whole-field NULLs), no carriage return and no quote character is already in
    that format and is written as it came; the other blocks are rewritten line by line with
    every value quoted.  Both read back as PostgreSQL reads the text format: an empty field
    is an empty string, ``\\N`` (the NULL string) is NULL.

    >>> import io
    >>> w = TextCopyWriter(io.BytesIO(), CopySpec("t", False, [], "in"))
    >>> w.feed(b"1\\tx\\t\\\\N\\n"); w.feed(b"2\\ta\\\\tb\\t"); w.finish()
    >>> w.out.getvalue()
    b'1\\tx\\t\\\\N\\n\\x012\\x01\\t\\x01a\\tb\\x01\\t\\x01\\x01\\n'
    """

    def __init__(self, out: Any, spec: CopySpec) -> None:
        self.out = out
        self.delimiter = spec.delimiter
        self.null = spec.null
        self.quote = "\x02" if spec.delimiter == "\x01" else "\x01"
        self._q = self.quote.encode()
        self._pending = b""
        self._skip_header = spec.header  # PostgreSQL 15: HEADER in text format skips the first line
        self._d = spec.delimiter.encode()
        self._null_bs = spec.null.count("\\")
        # a NULL string holding the delimiter or a line break never passes as plain
        self._null_ok = spec.delimiter not in spec.null and "\n" not in spec.null and "\r" not in spec.null
        self._dnd = self._d + spec.null.encode() + self._d
        self.fast_blocks = 0
        self.slow_blocks = 0

    def options(self) -> str:
        """DuckDB ``COPY ... FROM`` options for the file written."""
        def q(v: str) -> str:
            return "'" + v.replace("'", "''") + "'"
        return (f"FORMAT csv, auto_detect false, HEADER false, DELIMITER {q(self.delimiter)}, NULL {q(self.null)}, "
                f"QUOTE {q(self.quote)}, ESCAPE {q(self.quote)}, allow_quoted_nulls false")

    def feed(self, data: bytes) -> None:
        buf = self._pending + data if self._pending else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._pending = buf
            return
        self._pending = buf[cut + 1:]
        self._block(buf[:cut + 1])

    def finish(self) -> None:
        if self._pending:
            self._block(self._pending + b"\n")
            self._pending = b""

    def _plain(self, block: bytes) -> bool:
        if b"\r" in block or self._q in block:
            return False
        n = block.count(b"\\")
        if n == 0:
            return True
        if not self._null_bs or not self._null_ok:
            return False
        # whole-field NULL strings: with line ends as delimiters and every delimiter doubled,
        # each one stands between two delimiters of its own
        d = self._d
        whole = (b"\n" + block).replace(b"\n", d).replace(d, d + d).count(self._dnd)
        return n == self._null_bs * whole

    def _block(self, block: bytes) -> None:
        if self._skip_header:
            self._skip_header = False
            block = block[block.index(b"\n") + 1:]
            if not block:
                return
        try:
            block.decode()
        except UnicodeDecodeError as e:
            raise BackendError('invalid byte sequence for encoding "UTF8"', sqlstate="22021") from e
        if self._plain(block):
            self.fast_blocks += 1
            self.out.write(block)
            return
        self.slow_blocks += 1
        lines = []
        for line in block.split(b"\n")[:-1]:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line == b"\\.":
                continue  # the end-of-data marker
            lines.append(text_row_to_csv(line, self.delimiter, self.null, out_delimiter=self.delimiter,
                                         quote=self.quote, out_null=self.null))
        self.out.write("".join(lines).encode())


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
        data = bytes(buf)  # one copy; fields are slices of it
        n = len(data)
        unpack_h, unpack_i, ncols = _H.unpack_from, _I.unpack_from, self.ncols
        while pos + 2 <= n:
            (count,) = unpack_h(data, pos)
            if count == -1:
                self.finished = True
                pos += 2
                break
            if count != ncols:
                raise BackendError(f"row field count is {count}, expected {ncols}", sqlstate="22P04")
            p = pos + 2
            fields: list[bytes | None] = []
            complete = True
            for _ in range(count):
                if p + 4 > n:
                    complete = False
                    break
                (ln,) = unpack_i(data, p)
                p += 4
                if ln == -1:
                    fields.append(None)
                    continue
                if ln < 0:
                    raise BackendError("invalid field size in COPY data", sqlstate="22P04")
                if p + ln > n:
                    complete = False
                    break
                fields.append(data[p:p + ln])
                p += ln
            if not complete:
                break  # incomplete row: wait for more data
            rows.append(fields)
            pos = p
        del buf[:pos]
        return rows


def _numeric_text(raw: bytes) -> str | None:
    """PostgreSQL's binary numeric as its text, None for NaN and infinities."""
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(raw)
    if sign not in (0, 0x4000):
        return None
    digits = "".join(f"{d:04d}" for d in struct.unpack_from(f"!{ndigits}H", raw, 8))
    whole = (weight + 1) * 4
    if whole > 0:
        digits = digits.ljust(whole, "0")
        int_part, frac = digits[:whole].lstrip("0") or "0", digits[whole:]
    else:
        int_part, frac = "0", "0" * -whole + digits
    text = int_part + ("." + frac.ljust(dscale, "0")[:dscale] if dscale > 0 else "")
    return "-" + text if sign == 0x4000 else text


_NUMERIC_HEAD = struct.Struct("!hhHh")


def binary_cell(oid: int) -> Callable[[bytes], str]:
    """A decoder of one binary COPY field of type ``oid`` into a cell of the quoted CSV file
    (NULL ``\\N``, quote ``"``): integers, booleans, strings, numerics and dates directly,
    other types through their binary decoder and text encoder (see :func:`binary_rows_to_csv`).

    >>> binary_cell(23)(b"\\x00\\x00\\x00\\x07"), binary_cell(25)(b'a"b')
    ('7', '"a""b"')
    >>> binary_cell(1700)(bytes.fromhex("0003000000000004" "007b" "0d80" "0064"))  # 123.345600
    '123.3456'
    """
    from sqlsluice.middleware import types

    enc = types.encode_text(oid)

    def generic(raw: bytes) -> str:
        return '"' + enc(types.decode_param(oid, 1, raw)).decode().replace('"', '""') + '"'

    ints = {types.INT2: "!h", types.INT4: "!i", types.OID: "!i", types.INT8: "!q"}
    if oid in ints:
        unpack = struct.Struct(ints[oid]).unpack

        def integer(raw: bytes) -> str:
            return str(unpack(raw)[0])
        return integer
    if oid == types.BOOL:
        return lambda raw: "false" if raw == b"\x00" else "true"
    if oid in (types.TEXT, types.VARCHAR, types.BPCHAR, types.NAME):
        return lambda raw: '"' + raw.decode().replace('"', '""') + '"'
    if oid == types.NUMERIC:
        def numeric(raw: bytes) -> str:
            text = _numeric_text(raw)
            return text if text is not None else generic(raw)
        return numeric
    if oid == types.DATE:
        unpack_i = _I.unpack
        fromordinal = __import__("datetime").date.fromordinal
        epoch = types.PG_EPOCH_DATE.toordinal()

        def date(raw: bytes) -> str:
            days = unpack_i(raw)[0]
            if -700000 < days < 2900000:  # years 84 .. 9939: no infinities, no BC
                return fromordinal(days + epoch).isoformat()
            return generic(raw)
        return date
    return generic


def binary_rows_to_csv(rows: Sequence[Sequence[bytes | None]], cells: Sequence[Callable[[bytes], str]]) -> bytes:
    """Rows of raw binary COPY fields as lines of the quoted CSV file (see :func:`binary_cell`);
    malformed data raises BackendError 22P03."""
    try:
        return "".join(",".join("\\N" if raw is None else f(raw) for raw, f in zip(fields, cells, strict=True))
                       + "\n" for fields in rows).encode()
    except (struct.error, ValueError, OverflowError, UnicodeDecodeError, SluiceError) as e:
        raise BackendError(f"invalid binary COPY data: {e}", sqlstate="22P03") from e


def csv_line(cells: Sequence[str | None]) -> str:
    """A CSV line DuckDB reads with ``NULL '\\N'`` and quoted values."""
    return ",".join("\\N" if c is None else '"' + c.replace('"', '""') + '"' for c in cells) + "\n"


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CSV_ORIGINAL = re.compile(r"Original Line: ([^\n]*)")
_CSV_COUNT = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_CSV_CONVERT = re.compile(r"Error when converting column \"([^\"]*)\"\. Could not convert string \"([^\n]*)\" to '(\w+)'")
_PG_TYPE = {"INTEGER": "integer", "BIGINT": "bigint", "SMALLINT": "smallint", "DOUBLE": "double precision",
            "FLOAT": "real", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp", "UUID": "uuid",
            "TIME": "time", "INTERVAL": "interval"}


def load_error(e: SluiceError, spec: CopySpec, names: Sequence[str]) -> SluiceError:
    """PostgreSQL's error for DuckDB's CSV reader errors during COPY FROM (22P04 for a wrong
    number of columns, 22P02 for a value that does not convert), with ``COPY t, line n`` as
    the detail; other errors unchanged.

    >>> err = BackendError('CSV Error on Line: 2\\nOriginal Line: 2\\tx\\n'
    ...                    'Expected Number of Columns: 3 Found: 2', sqlstate="22P02")
    >>> e = load_error(err, CopySpec("t", False, [], "in"), ["a", "b", "c"])
    >>> (e.sqlstate, e.message, e.detail)
    ('22P04', 'missing data for column "c"', 'COPY t, line 2: "2\\tx"')
    """
    msg = e.message
    line = _CSV_LINE.search(msg)
    if line is None:
        return e
    orig = _CSV_ORIGINAL.search(msg)
    where = f"COPY {spec.source}, line {line.group(1)}" + (f': "{orig.group(1)}"' if orig else "")
    count = _CSV_COUNT.search(msg)
    if count:
        want, found = int(count.group(1)), int(count.group(2))
        text = (f'missing data for column "{names[found]}"' if found < want and found < len(names)
                else "extra data after last expected column")
        return BackendError(text, sqlstate="22P04", detail=where)
    conv = _CSV_CONVERT.search(msg)
    if conv:
        typ = _PG_TYPE.get(conv.group(3).upper(), conv.group(3).lower())
        return BackendError(f'invalid input syntax for type {typ}: "{conv.group(2)}"', sqlstate="22P02",
                            detail=f"COPY {spec.source}, line {line.group(1)}, column {conv.group(1)}")
    return BackendError(msg.split("\n")[0], sqlstate=e.sqlstate if e.sqlstate.startswith("22") else "22P04",
                        detail=where)
