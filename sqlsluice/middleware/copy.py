"""COPY ... FROM STDIN / TO STDOUT over DuckDB: statement parsing and the text/CSV formats.

PostgreSQL's text format (tab-separated, ``\\N`` for NULL, backslash escapes), CSV format
(``FORMAT csv``, ``HEADER``, ``DELIMITER``, ``NULL``, ``QUOTE``) and binary format (what
asyncpg's ``copy_records_to_table`` and psycopg's binary copies send) are supported.  Incoming
text and CSV data go to a file that DuckDB's own COPY loads; binary data is decoded column by
column with numpy (:class:`BinaryCopyDecoder`) into batches DuckDB inserts in bulk; outgoing
rows are encoded with the encoders of :mod:`sqlsluice.middleware.types`.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sqlsluice.errors import BackendError, SluiceError, SyntaxErrorSQL
from sqlsluice.middleware import types

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


def _q(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


@dataclass(frozen=True)
class CsvDialect:
    """A COPY FROM file as DuckDB's CSV reader reads it, as ``COPY`` or ``read_csv`` options.

    >>> d = CsvDialect(",", "", '"', '"', header=True)
    >>> print(d.read_csv_options())
    header=true, auto_detect=false, delim=',', nullstr='', quote='"', escape='"', allow_quoted_nulls=false
    """

    delimiter: str
    null: str
    quote: str
    escape: str
    header: bool = False

    @classmethod
    def of(cls, spec: CopySpec) -> CsvDialect:
        """CSV data as the client sent it."""
        return cls(spec.delimiter, spec.null, spec.quote, spec.escape or spec.quote, spec.header)

    def copy_options(self) -> str:
        return (f"FORMAT csv, auto_detect false, HEADER {str(self.header).lower()}, DELIMITER {_q(self.delimiter)}, "
                f"NULL {_q(self.null)}, QUOTE {_q(self.quote)}, ESCAPE {_q(self.escape)}, allow_quoted_nulls false")

    def read_csv_options(self) -> str:
        return (f"header={str(self.header).lower()}, auto_detect=false, delim={_q(self.delimiter)}, "
                f"nullstr={_q(self.null)}, quote={_q(self.quote)}, escape={_q(self.escape)}, allow_quoted_nulls=false")


def bytea_from_text(column: str) -> str:
    """SQL turning PostgreSQL's text form of a bytea (hex ``\\x0aff``; else as DuckDB reads a
    blob) read as VARCHAR into a BLOB.

    >>> import duckdb
    >>> hexed, empty = chr(92) + 'x00ff', chr(92) + 'x'
    >>> duckdb.sql(f"SELECT {bytea_from_text('x')} FROM (VALUES ('{hexed}'), ('{empty}'), ('ab')) t(x)").fetchall()
    [(b'\\x00\\xff',), (b'',), (b'ab',)]
    """
    return (f"CASE WHEN starts_with({column}, '\\x') THEN unhex(substr({column}, 3)) "
            f"ELSE CAST({column} AS BLOB) END")


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

    def dialect(self) -> CsvDialect:
        """How DuckDB's CSV reader reads the file written."""
        return CsvDialect(self.delimiter, self.null, self.quote, self.quote)

    def options(self) -> str:
        """DuckDB ``COPY ... FROM`` options for the file written."""
        return self.dialect().copy_options()

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


# --- binary format, decoded column by column --------------------------------------------------
_EPOCH_US = 10957 * 86_400_000_000  # 2000-01-01 (PostgreSQL's epoch) in microseconds since 1970
_POW10000 = np.array([1, 10**4, 10**8, 10**12], np.int64)
_POW10 = np.array([10**i for i in range(19)], np.int64)
_DIGIT_MASK = np.array([0, 0xFFFF << 48, 0xFFFFFFFF << 32, 0xFFFFFFFFFFFF << 16, 2**64 - 1], np.uint64)
_INT32_MAX, _INT64_MAX = 2**31 - 1, 2**63 - 1
_FIXED = {types.INT2: ">i2", types.INT4: ">i4", types.INT8: ">i8", types.FLOAT4: ">f4", types.FLOAT8: ">f8",
          types.BOOL: "u1", types.DATE: ">i4", types.TIMESTAMP: ">i8", types.TIMESTAMPTZ: ">i8"}
_PAD = bytes(16)  # every fixed-size read of a NULL field (offset 0) stays inside the buffer


def _be_view(b: np.ndarray, fmt: str) -> np.ndarray:
    """The big-endian ``fmt`` value starting at every byte offset of ``b``: a view, no copy."""
    size = np.dtype(fmt).itemsize
    rows = len(b) - size + 1
    if rows <= 0:
        return np.zeros(0, fmt)
    return np.lib.stride_tricks.as_strided(b, shape=(rows, size), strides=(1, 1), writeable=False).view(fmt)[:, 0]


@dataclass
class ColumnBatch:
    """Rows of binary COPY data decoded column by column: numpy arrays by name (what DuckDB
    scans when they are registered as a view), the text columns as a CSV file's bytes (read
    beside them with a positional join) and one SQL expression per target column.

    >>> sql = ColumnBatch(2, {"c0": np.zeros(2)}, ["c0", "c1"], ["c1"]).select_sql("v", "f.csv")
    >>> sql[:55], "columns={'c1': 'VARCHAR'}" in sql
    ("SELECT c0, c1 FROM v POSITIONAL JOIN read_csv('f.csv', ", True)
    """

    rows: int
    columns: dict[str, np.ndarray]
    exprs: list[str]
    text_columns: list[str] = field(default_factory=list)
    text_csv: bytes = b""  # one line per row: each value quoted with ``quote``, NULL empty
    quote: int = 1
    delim: int = 2
    longest_line: int = 0

    def select_sql(self, view: str, csv_path: str = "") -> str:
        sources = [view] if self.columns else []
        if self.text_columns:
            cols = ", ".join(f"'{c}': 'VARCHAR'" for c in self.text_columns)
            line = max(2 << 20, self.longest_line + 1024)
            sources.append(
                f"read_csv('{csv_path.replace(chr(39), chr(39) * 2)}', columns={{{cols}}}, header=false, "
                f"auto_detect=false, quote=chr({self.quote}), escape=chr({self.quote}), delim=chr({self.delim}), "
                f"nullstr='', allow_quoted_nulls=false, max_line_size={line}, buffer_size={max(16 << 20, 2 * line)})")
        return f"SELECT {', '.join(self.exprs)} FROM {' POSITIONAL JOIN '.join(sources)}"


class BinaryCopyDecoder:
    """PostgreSQL's binary COPY format, decoded in bulk with numpy.

    ``feed`` takes the stream in chunks of any size and answers the complete rows received
    so far as a :class:`ColumnBatch`, each field decoded by its target column's type OID as
    PostgreSQL's receive functions do: int2/4/8, float4/8, bool, numeric (base-10000 digits),
    text/varchar/bpchar/name, date (days since 2000-01-01), timestamp/timestamptz (µs since
    2000-01-01) without a Python object per value; bytea, uuid and other types value by value.
    Row boundaries are found without a loop over fields: every offset where the field count
    (int16) appears is a candidate row start whose end is computed for all candidates at
    once, column by column; the true rows are the chain of candidates from the first one.

    Errors are PostgreSQL's: 22P04 for the file's structure (signature, field count, field
    size, data after the trailer, truncated data), 22P03 for a field of the wrong size or an
    invalid numeric digit, 22021 for invalid UTF-8 or a zero byte in text.

    >>> d = BinaryCopyDecoder([types.INT4, types.TEXT])
    >>> data = binary_header() + binary_row([7, "x"], [types.encode_binary(types.INT4), types.encode_binary(types.TEXT)])
    >>> d.feed(data[:25]) is None  # a row split across messages waits for its rest
    True
    >>> b = d.feed(data[25:] + b"\\x00\\x02" + b"\\xff" * 8)  # and a row of two NULLs
    >>> b.rows, b.exprs, b.columns["c0"].tolist(), b.columns["n0"].tolist(), b.text_columns, b.text_csv
    (2, ['CASE WHEN n0 THEN NULL ELSE c0 END', 'c1'], [7, 0], [False, True], ['c1'], b'\\x01x\\x01\\n\\n')
    >>> d.feed(BINARY_TRAILER, final=True) is None, d.finished, d.rows
    (True, True, 2)
    """

    def __init__(self, oids: Sequence[int], table: str = "", names: Sequence[str] = ()) -> None:
        self.oids = list(oids)
        self.ncols = len(self.oids)
        self.sizes = [np.dtype(_FIXED[o]).itemsize if o in _FIXED else 0 for o in self.oids]  # 0: any size
        self.table = table
        self.names = list(names) or [f"column{i + 1}" for i in range(self.ncols)]
        self.pending = b""
        self.header_done = False
        self.finished = False
        self.rows = 0  # rows decoded so far

    def _error(self, message: str, sqlstate: str = "22P04", row: int | None = None,
               col: int | None = None) -> BackendError:
        detail = None
        if self.table:
            detail = f"COPY {self.table}" + (f", line {row}" if row is not None else "") + \
                (f", column {self.names[col]}" if col is not None else "")
        return BackendError(message, sqlstate=sqlstate, detail=detail)

    def feed(self, data: bytes | Sequence[bytes], *, final: bool = False) -> ColumnBatch | None:
        """Decode the complete rows of what is pending and ``data`` (bytes, or a list of the
        CopyData payloads received); ``final``: the stream ends here."""
        parts = [data] if isinstance(data, bytes | bytearray | memoryview) else list(data)
        padded = b"".join([self.pending, *parts, _PAD])  # one copy of the chunk
        n = len(padded) - len(_PAD)
        self.pending = b""
        if self.finished:
            if n:
                raise self._error("received copy data after EOF marker")
            return None
        pos = 0
        if not self.header_done:
            if n < 19 or n < 19 + max(_I.unpack_from(padded, 15)[0], 0):
                if padded[:min(n, 11)] != BINARY_SIGNATURE[:min(n, 11)]:
                    raise self._error("COPY file signature not recognized")
                if final:
                    raise self._error("invalid COPY file header (missing length)" if n >= 11
                                      else "COPY file signature not recognized")
                self.pending = padded[:n]
                return None
            if padded[:11] != BINARY_SIGNATURE:
                raise self._error("COPY file signature not recognized")
            (flags,) = _I.unpack_from(padded, 11)
            if flags & 0x10000:
                raise self._error("invalid COPY file header (WITH OIDS)")
            if flags >> 16:
                raise self._error("unrecognized critical flags in COPY file header")
            (ext,) = _I.unpack_from(padded, 15)
            if ext < 0:
                raise self._error("invalid COPY file header (wrong length)")
            pos = 19 + ext
            self.header_done = True
        lens, offs, stop = self._scan(padded, pos)
        self.pending = padded[stop:n]
        if final and self.pending:
            raise self._error("unexpected EOF in COPY data")
        rows = len(lens[0]) if lens else 0
        if not rows:
            return None
        batch = self._decode(padded, lens, offs)
        self.rows += rows
        return batch

    def _scan(self, buf: bytes, pos: int) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """Lengths and offsets (a column's array each) of the fields of the complete rows from
        ``pos`` in ``buf`` (zero-padded past its end), and where the undecoded rest starts.

        Candidates are the offsets holding the field count; each column's length prefix drops
        those that cannot start a complete, well-formed row (past the end, a size below -1, a
        fixed-size type of another size), which also drops the many candidates inside other
        rows' data.  The rows are the chain of links (a row's end is the next row's start) from
        the first; the row where the chain stops is examined alone (:meth:`_stop`)."""
        b = np.frombuffer(buf, np.uint8)
        n, ncols = len(b) - len(_PAD), self.ncols
        i32 = _be_view(b, ">i4")
        cand = np.flatnonzero(b[pos + 1:n] == ncols & 0xFF) + pos  # the count's low byte, then its high byte
        cand = cand[b[cand] == ncols >> 8]
        q = cand + 2
        lens: list[np.ndarray] = []
        offs: list[np.ndarray] = []
        for size in self.sizes:
            ln = i32[np.minimum(q, n)].astype(np.int32)
            fit = (q + 4 <= n) & ((ln == -1) | (ln == size) if size else ln >= -1)
            if np.count_nonzero(fit) < len(fit):
                cand, q, ln = cand[fit], q[fit], ln[fit]
                lens = [x[fit] for x in lens]
                offs = [x[fit] for x in offs]
            lens.append(ln)
            offs.append(q + 4)
            q = q + 4 + np.maximum(ln, 0)
        fit = q <= n
        if np.count_nonzero(fit) < len(fit):
            cand, q = cand[fit], q[fit]
            lens = [x[fit] for x in lens]
            offs = [x[fit] for x in offs]
        end = q
        k = len(cand)
        # a row's end is mostly the next candidate; the others are looked up
        link = np.full(k, -1, np.int64)
        link[:-1][end[:-1] == cand[1:]] = np.flatnonzero(end[:-1] == cand[1:]) + 1
        other = np.flatnonzero(link < 0)
        if len(other):
            at = np.searchsorted(cand, end[other])
            hit = at < k
            hit[hit] = cand[at[hit]] == end[other][hit]
            link[other[hit]] = at[hit]
        chain = np.zeros(0, np.int64)
        p = pos
        if k and cand[0] == pos:
            # the rows are the chain of links from the first candidate; a row start always has
            # a link into it, so candidates without one (inside a row's data) drop out
            keep = np.ones(k, bool)
            for _ in range(4):
                into = np.zeros(k, bool)
                into[link[keep & (link >= 0)]] = True
                into[0] = True
                if np.count_nonzero(into & keep) == np.count_nonzero(keep):
                    break
                keep &= into
            kept = np.flatnonzero(keep)
            step = link[kept]
            linked = step[:-1] == kept[1:]
            m = len(linked) if linked.all() else int(np.argmin(linked))
            rest = []
            i = int(step[m])
            while i >= 0:  # what the pruning left: followed one link at a time
                rest.append(i)
                i = int(link[i])
            chain = np.concatenate([kept[:m + 1], np.array(rest, np.int64)])
            p = int(end[chain[-1]])
        p = self._stop(buf, p, n, len(chain), i32)
        if len(chain) == k and (not k or chain[-1] == k - 1):  # every candidate left is a row
            return lens, offs, p
        return [x[chain] for x in lens], [x[chain] for x in offs], p

    def _stop(self, buf: bytes, p: int, n: int, rows: int, i32: np.ndarray) -> int:
        """Where the rows found end, at ``p``: the trailer, the start of a row that is not
        complete yet (returned: kept for the next chunk), or an error in the row there."""
        if n - p < 2:
            return p
        count = int(_H.unpack_from(buf, p)[0])
        row = self.rows + rows + 1
        if count == -1:
            self.finished = True
            if p + 2 < n:
                raise self._error("received copy data after EOF marker")
            return p + 2
        if count != self.ncols:
            raise self._error(f"row field count is {count}, expected {self.ncols}", row=row)
        q = p + 2
        for c, size in enumerate(self.sizes):
            if q + 4 > n:
                return p
            ln = int(i32[q])
            if ln < -1:
                raise self._error("invalid field size", row=row)
            if size and ln not in (-1, size):  # PostgreSQL's receive function runs out of, or leaves, bytes
                if ln < size:
                    raise self._error("insufficient data left in message", "08P01", row, c)
                raise self._error("incorrect binary data format", "22P03", row, c)
            q += 4 + max(ln, 0)
        return p  # its data goes on past the end of what has come

    def _decode(self, buf: bytes, lens: list[np.ndarray], offs: list[np.ndarray]) -> ColumnBatch:
        b = np.frombuffer(buf, np.uint8)
        cols: dict[str, np.ndarray] = {}
        exprs: list[str] = []
        text: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        for c, oid in enumerate(self.oids):
            name = f"c{c}"
            ln, off = lens[c], offs[c]
            null = ln == -1
            has_null = bool(null.any())
            if oid in _FIXED:
                fmt = _FIXED[oid]
                size = np.dtype(fmt).itemsize
                wrong = ~null & (ln != size)
                if wrong.any():
                    at = int(wrong.argmax())
                    if ln[at] < size:  # PostgreSQL's receive function runs out of bytes
                        raise self._error("insufficient data left in message", "08P01", self.rows + at + 1, c)
                    raise self._error("incorrect binary data format", "22P03", self.rows + at + 1, c)
                vals = _be_view(b, fmt)[np.where(null, 0, off)]
                if has_null:
                    vals[null] = 0
                expr = name
                if oid == types.BOOL:
                    cols[name] = vals != 0
                elif oid == types.DATE:
                    cols[name] = vals.astype(np.int32)
                    expr = f"(DATE '2000-01-01' + {name})"
                    if (~null & ((vals == _INT32_MAX) | (vals == -_INT32_MAX - 1))).any():
                        expr = (f"CASE WHEN {name} = {_INT32_MAX} THEN 'infinity'::DATE WHEN {name} = "
                                f"{-_INT32_MAX - 1} THEN '-infinity'::DATE ELSE {expr} END")
                elif oid in (types.TIMESTAMP, types.TIMESTAMPTZ):
                    vals = vals.astype(np.int64)
                    inf = (vals == _INT64_MAX) | (vals == -_INT64_MAX - 1)
                    if (~null & ~inf & (vals > _INT64_MAX - _EPOCH_US)).any():
                        raise self._error("timestamp out of range", "22008", col=c)
                    cols[name] = np.where(inf | null, 0, vals + _EPOCH_US).astype("datetime64[us]")
                    typ = "TIMESTAMP"
                    if oid == types.TIMESTAMPTZ:
                        expr, typ = f"timezone('UTC', {name})", "TIMESTAMPTZ"
                    if (~null & inf).any():
                        cols[f"i{c}"] = np.where(vals == _INT64_MAX, 1, np.where(vals < 0, -1, 0)).astype(np.int8)
                        expr = (f"CASE WHEN i{c} = 1 THEN 'infinity'::{typ} WHEN i{c} = -1 "
                                f"THEN '-infinity'::{typ} ELSE {expr} END")
                else:
                    cols[name] = vals.astype(vals.dtype.newbyteorder("="))
            elif oid in (types.TEXT, types.VARCHAR, types.BPCHAR, types.NAME, types.JSON):
                text.append((name, ln, off, null))
                exprs.append(name)
                continue
            elif oid == types.NUMERIC:
                numeric = self._numeric(b, ln, off, null, c)
                if numeric is None:
                    cols[name] = self._values(buf, ln, off, null, oid, c)
                    exprs.append(name)
                    continue
                cols[name], scale = numeric
                expr = f"{name}::DECIMAL(18,0)" if not scale else f"({name}::DECIMAL(18,0) * 0.{'0' * (scale - 1)}1)"
            else:
                cols[name] = self._values(buf, ln, off, null, oid, c)
                exprs.append(name)
                continue
            if has_null:
                cols[f"n{c}"] = null
                expr = f"CASE WHEN n{c} THEN NULL ELSE {expr} END"
            exprs.append(expr)
        batch = ColumnBatch(len(lens[0]) if lens else 0, cols, exprs)
        if text:
            self._text_csv(b, text, batch)
        return batch

    def _text_csv(self, b: np.ndarray, text: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                  batch: ColumnBatch) -> None:
        """The text columns as CSV lines DuckDB's reader loads in bulk: every value between
        two quote bytes, NULL as an empty field, quote and delimiter two control bytes that
        appear in no value of the batch (so nothing needs escaping); gathered with numpy."""
        rows, width = batch.rows, len(text)
        ln = np.stack([t[1] for t in text], axis=1).ravel()  # row-major: row 0's fields, row 1's ...
        off = np.stack([t[2] for t in text], axis=1).ravel()
        null = np.stack([t[3] for t in text], axis=1).ravel()
        size = np.where(null, 0, ln).astype(np.int64)
        seg = np.where(null, 0, size + 2) + 1  # quote, value, quote, then delimiter or newline
        ends = np.cumsum(seg)
        starts = ends - seg
        out = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
        total = int(size.sum())
        before = np.cumsum(size) - size
        idx = np.arange(total, dtype=np.int64)
        src = idx + np.repeat(off - before, size)
        data = b[src]
        counts = np.bincount(data, minlength=256)
        if counts[0]:
            raise self._error('invalid byte sequence for encoding "UTF8": 0x00', "22021")
        free = [x for x in range(1, 32) if x not in (10, 13) and not counts[x]]
        if len(free) < 2:
            raise self._error("text values use every control character", "0A000")
        batch.quote, batch.delim = free[0], free[1]
        out[idx + np.repeat(starts + 1 - before, size)] = data
        keep = ~null
        out[starts[keep]] = batch.quote
        out[ends[keep] - 2] = batch.quote
        sep = np.full(width, batch.delim, np.uint8)
        sep[-1] = 10
        out[ends - 1] = np.tile(sep, rows)
        csv = out.tobytes()
        try:
            csv.decode()
        except UnicodeDecodeError as e:
            raise self._error(_utf8_error(csv, e.start), "22021") from e
        line_ends = ends[width - 1::width]
        batch.longest_line = int(np.diff(line_ends, prepend=0).max()) if rows else 0
        batch.text_columns = [t[0] for t in text]
        batch.text_csv = csv

    def _numeric(self, b: np.ndarray, ln: np.ndarray, off: np.ndarray, null: np.ndarray,
                 c: int) -> tuple[np.ndarray, int] | None:
        """Numerics as int64 at one scale (a multiple of 4 digits) for the whole batch, or None
        when some value needs the value-by-value path (NaN, infinities, more than 16 digits,
        digits beyond its dscale that PostgreSQL truncates)."""
        at = np.where(null, 0, off)
        valid = ~null
        short = valid & (ln < 8)
        if short.any():
            raise self._error("incorrect binary data format", "22P03", self.rows + int(short.argmax()) + 1, c)
        u64 = _be_view(b, ">u8")
        head = u64[at]  # ndigits, weight, sign, dscale: four 16-bit fields in one read
        nd = (head >> 48).astype(np.int16)  # (a cast keeps the low 16 bits)
        weight = (head >> 32).astype(np.int16)
        sign = (head >> 16).astype(np.uint16)
        dscale = head.astype(np.int16)
        wrong = valid & (ln != 8 + 2 * nd.astype(np.int32))
        if wrong.any():
            raise self._error("incorrect binary data format", "22P03", self.rows + int(wrong.argmax()) + 1, c)
        if (valid & (((sign & 0xBFFF) != 0) | (dscale < 0))).any():  # NaN, infinities
            return None
        nz = valid & (nd > 0)
        if not nz.any():
            return np.zeros(len(ln), np.int64), 0
        nd_nz, weight_nz = nd[nz].astype(np.int32), weight[nz].astype(np.int32)
        groups = max(int((nd_nz - 1 - weight_nz).max()), 0)  # fractional base-10000 groups
        if groups > 4 or int(weight_nz.max()) + groups > 3:  # then also ndigits <= 4
            return None
        quad = u64[at + 8] & _DIGIT_MASK[np.where(nz, nd, 0)]  # the (up to) four digits, zero past ndigits
        d0, d1, d2, d3 = quad >> 48, (quad >> 32) & 0xFFFF, (quad >> 16) & 0xFFFF, quad & 0xFFFF
        if (np.maximum(np.maximum(d0, d1), np.maximum(d2, d3)) >= 10000).any():
            raise self._error('invalid digit in external "numeric" value', "22P03", col=c)
        whole = (((d0 * 10000 + d1) * 10000 + d2) * 10000 + d3).astype(np.int64)  # d0 as the 10000^3 digit
        value = whole // _POW10000[3 - np.clip(weight.astype(np.int32) + groups, 0, 3)]
        value = np.where(sign == 0x4000, -value, value)
        hidden = nz & (dscale < 4 * groups)
        if hidden.any() and (np.abs(value[hidden]) % _POW10[4 * groups - dscale[hidden].astype(np.int64)] != 0).any():
            return None
        return value, 4 * groups

    def _values(self, buf: bytes, ln: np.ndarray, off: np.ndarray, null: np.ndarray, oid: int,
                c: int) -> np.ndarray:
        """Fields decoded one by one: bytea as bytes, the other types as their text, which the
        INSERT casts to the column's type."""
        arr = np.empty(len(ln), object)
        raws = [None if n < 0 else buf[o:o + n] for o, n in zip(off.tolist(), ln.tolist(), strict=True)]
        if oid == types.BYTEA:
            arr[:] = raws
            return arr
        enc = types.encode_text(oid)
        out: list[str | None] = []
        for i, raw in enumerate(raws):
            if raw is None:
                out.append(None)
                continue
            try:
                if oid == types.NUMERIC:
                    text = _numeric_text(raw)
                    out.append(text if text is not None else enc(types.decode_param(oid, 1, raw)).decode())
                else:
                    out.append(enc(types.decode_param(oid, 1, raw)).decode())
            except (struct.error, ValueError, OverflowError, UnicodeDecodeError, SluiceError) as e:
                raise self._error(f"incorrect binary data format: {e}", "22P03", self.rows + i + 1, c) from e
        arr[:] = out
        return arr


def _utf8_error(data: bytes, at: int) -> str:
    """PostgreSQL's message for invalid UTF-8 at ``data[at]``: the bytes of the sequence that
    the lead byte announces.

    >>> _utf8_error(b"ab\\xc3(", 2)
    'invalid byte sequence for encoding "UTF8": 0xc3 0x28'
    """
    lead = data[at]
    size = 2 if lead & 0xE0 == 0xC0 else 3 if lead & 0xF0 == 0xE0 else 4 if lead & 0xF8 == 0xF0 else 1
    return 'invalid byte sequence for encoding "UTF8": ' + " ".join(f"0x{x:02x}" for x in data[at:at + size])


def _numeric_text(raw: bytes) -> str | None:
    """PostgreSQL's binary numeric as its text (digits beyond dscale truncated, as its
    numeric_recv does), None for NaN and infinities.

    >>> _numeric_text(bytes.fromhex("0003000000000004" "007b" "0d80" "0064"))  # 123.345600
    '123.3456'
    """
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(raw)
    if sign not in (0, 0x4000):
        return None
    if len(raw) != 8 + 2 * ndigits:
        raise ValueError("wrong length")
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
