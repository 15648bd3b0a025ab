"""Type mapping (DuckDB type name -> PostgreSQL type OID) and value codecs.

Encoders turn Python values (as DuckDB returns them) into PostgreSQL text or binary
wire format; decoders turn Bind parameters back into Python values for DuckDB.
Encoders are chosen once per result column (:func:`encoders_for`), so the per-row path is
one function call per cell.

>>> oid_for("DECIMAL(15,2)"), oid_for("INTEGER[]"), oid_for("VARCHAR")
(1700, 1007, 25)
>>> encode_text(1700)(__import__("decimal").Decimal("1E+2"))
b'100'
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from sqlsluice.errors import InvalidParameterValue

# --- OIDs ------------------------------------------------------------------------------
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, UNKNOWN, VARCHAR, BPCHAR = 114, 700, 701, 705, 1043, 1042
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = 1082, 1083, 1114, 1184, 1186, 1266
NUMERIC, UUID, JSONB, REGCLASS, REGTYPE, REGPROC = 1700, 2950, 3802, 2205, 2206, 24
ARRAY_OF = {BOOL: 1000, BYTEA: 1001, CHAR: 1002, NAME: 1003, INT2: 1005, INT4: 1007, TEXT: 1009,
            VARCHAR: 1015, INT8: 1016, FLOAT4: 1021, FLOAT8: 1022, OID: 1028, TIMESTAMP: 1115,
            DATE: 1182, TIME: 1183, TIMESTAMPTZ: 1185, INTERVAL: 1187, NUMERIC: 1231, UUID: 2951,
            JSON: 199, JSONB: 3807}
ELEMENT_OF = {v: k for k, v in ARRAY_OF.items()}

# PostgreSQL type names (for format_type / casts) by OID
PG_NAME = {BOOL: "boolean", BYTEA: "bytea", CHAR: "\"char\"", NAME: "name", INT8: "bigint", INT2: "smallint",
           INT4: "integer", TEXT: "text", OID: "oid", JSON: "json", FLOAT4: "real", FLOAT8: "double precision",
           VARCHAR: "character varying", BPCHAR: "character", DATE: "date", TIME: "time without time zone",
           TIMESTAMP: "timestamp without time zone", TIMESTAMPTZ: "timestamp with time zone",
           INTERVAL: "interval", NUMERIC: "numeric", UUID: "uuid", JSONB: "jsonb", UNKNOWN: "unknown"}
TYPE_SIZE = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8, TIMESTAMP: 8,
             TIMESTAMPTZ: 8, INTERVAL: 16, UUID: 16, OID: 4, CHAR: 1, NAME: 64}

_SCALAR = {
    "BOOLEAN": BOOL, "BOOL": BOOL, "TINYINT": INT2, "SMALLINT": INT2, "INT2": INT2, "UTINYINT": INT2,
    "INTEGER": INT4, "INT": INT4, "INT4": INT4, "USMALLINT": INT4, "BIGINT": INT8, "INT8": INT8,
    "UINTEGER": INT8, "UBIGINT": NUMERIC, "HUGEINT": NUMERIC, "UHUGEINT": NUMERIC, "VARINT": NUMERIC,
    "BIGNUM": NUMERIC, "FLOAT": FLOAT4, "REAL": FLOAT4, "FLOAT4": FLOAT4, "DOUBLE": FLOAT8,
    "FLOAT8": FLOAT8, "VARCHAR": TEXT, "TEXT": TEXT, "STRING": TEXT, "CHAR": TEXT, "BPCHAR": TEXT,
    "DATE": DATE, "TIME": TIME, "TIMESTAMP": TIMESTAMP, "DATETIME": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "TIMESTAMPTZ": TIMESTAMPTZ, "TIME WITH TIME ZONE": TIMETZ, "TIMETZ": TIMETZ, "INTERVAL": INTERVAL,
    "BLOB": BYTEA, "BYTEA": BYTEA, "UUID": UUID, "JSON": JSON, "NULL": TEXT, '"NULL"': TEXT,
    "OID": INT8, "REGCLASS": TEXT, "REGTYPE": TEXT, "REGPROC": TEXT, "REGNAMESPACE": TEXT, "NAME": TEXT,
}
_ARRAY_SUFFIX = re.compile(r"\[\d*\]$")


def oid_for(duck_type: str) -> int:
    """The PostgreSQL OID that best represents a DuckDB type name; unknown shapes -> text."""
    t = duck_type.strip().upper()
    m = _ARRAY_SUFFIX.search(t)
    if m:
        inner = t[:m.start()]
        if _ARRAY_SUFFIX.search(inner):
            return TEXT  # nested lists go out as text
        return ARRAY_OF.get(oid_for(inner), TEXT)
    if t.startswith(("DECIMAL", "NUMERIC")):
        return NUMERIC
    if t.startswith(("VARCHAR", "CHAR")):
        return TEXT
    return _SCALAR.get(t, TEXT)


_PG_TO_DUCK = {
    BOOL: "BOOLEAN", INT2: "SMALLINT", INT4: "INTEGER", INT8: "BIGINT", FLOAT4: "FLOAT", FLOAT8: "DOUBLE",
    NUMERIC: "DECIMAL(38,10)", TEXT: "VARCHAR", VARCHAR: "VARCHAR", BPCHAR: "VARCHAR", NAME: "VARCHAR",
    DATE: "DATE", TIME: "TIME", TIMESTAMP: "TIMESTAMP", TIMESTAMPTZ: "TIMESTAMPTZ", INTERVAL: "INTERVAL",
    BYTEA: "BLOB", UUID: "UUID", JSON: "JSON", JSONB: "JSON", OID: "BIGINT",
}


def duck_type_for(oid: int) -> str | None:
    """A DuckDB type name for a PostgreSQL OID (used to cast untyped parameters)."""
    if oid in ELEMENT_OF:
        inner = duck_type_for(ELEMENT_OF[oid])
        return f"{inner}[]" if inner else None
    return _PG_TO_DUCK.get(oid)


def type_size(oid: int) -> int:
    return TYPE_SIZE.get(oid, -1)


def type_modifier(duck_type: str) -> int:
    """typmod for NUMERIC(p,s) (``((p << 16) | s) + 4``), else -1."""
    m = re.match(r"(?:DECIMAL|NUMERIC)\((\d+),\s*(\d+)\)", duck_type.strip().upper())
    if m:
        return ((int(m.group(1)) << 16) | int(m.group(2))) + 4
    return -1


# --- text encoders ---------------------------------------------------------------------
Encoder = Callable[[Any], bytes]
PG_EPOCH_DATE = dt.date(2000, 1, 1)
PG_EPOCH = dt.datetime(2000, 1, 1)
PG_EPOCH_TZ = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = PG_EPOCH_DATE.toordinal()


def _t_bool(v: Any) -> bytes:
    return b"t" if v else b"f"


def _t_int(v: Any) -> bytes:
    return str(int(v)).encode()


def _shortest_float4(f: float) -> str:
    """The shortest decimal that reads back as the float4 ``f`` (|f| > 0), as PostgreSQL's
    Ryu-based float4out chooses it: the fewest digits strictly inside the rounding interval
    (a decimal exactly halfway to a neighbour is not taken), correctly rounded."""
    a = Fraction(abs(f))
    bits = struct.unpack("<I", struct.pack("<f", abs(f)))[0]
    lo = Fraction(struct.unpack("<f", struct.pack("<I", bits - 1))[0]) if bits > 0 else Fraction(0)
    hi = Fraction(struct.unpack("<f", struct.pack("<I", bits + 1))[0])
    low, high = (a + lo) / 2, (a + hi) / 2
    for p in range(1, 10):
        s = f"{abs(f):.{p - 1}e}"
        if low < Fraction(s) < high:
            return s
    return f"{abs(f):.8e}"


def pg_float_text(v: Any, *, single: bool = False) -> str:
    """float8 / float4 as PostgreSQL 12+ writes them (extra_float_digits = 1, the default): the
    shortest digits that read back exactly, fixed notation for decimal exponents -4 to 14
    (float4: -4 to 5), else ``d.ddde+XX``; ``100`` not ``100.0``, ``1e+15``, ``-0``, ``NaN``,
    ``Infinity``.  Checked against PostgreSQL 15 in tests/middleware/test_float_text.py."""
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if not single:
        # the common case, straight from repr (the same shortest digits): both write d.ddde-XX
        # below 1e-4 and d.ddde+XX from 1e16, and fixed notation between, where PostgreSQL drops
        # a trailing ".0"; only 1e15 <= |f| < 1e16 (fixed in Python, 1e+15 in PostgreSQL) goes on
        r = repr(f)
        if "e" in r:
            return r
        if abs(f) < 1e15:
            return r[:-2] if r.endswith(".0") else r
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    if single:
        sci = _shortest_float4(f)
    else:  # float8: Python's repr is the shortest round-trip digits
        r = repr(abs(f))
        if "e" in r:
            sci = r
        else:
            ip, _, fp = r.partition(".")
            digits = (ip + fp).lstrip("0")
            e = len(ip.lstrip("0")) - 1 if ip.strip("0") else -(len(fp) - len(fp.lstrip("0")) + 1)
            sci = f"{digits[:1]}.{digits[1:] or '0'}e{e}"
    mant, _, exp = sci.partition("e")
    e = int(exp)
    digits = mant.replace(".", "").rstrip("0") or "0"
    if -4 <= e < (6 if single else 15):
        if e >= 0:
            ip, frac = digits[:e + 1].ljust(e + 1, "0"), digits[e + 1:]
        else:
            ip, frac = "0", "0" * (-e - 1) + digits
        body = ip + ("." + frac if frac else "")
    else:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + ("e+" if e >= 0 else "e-") + f"{abs(e):02d}"
    return ("-" if f < 0 else "") + body


def _t_float(v: Any) -> bytes:
    return pg_float_text(v).encode()


def _t_float4(v: Any) -> bytes:
    return pg_float_text(v, single=True).encode()


def _t_numeric(v: Any) -> bytes:
    if isinstance(v, decimal.Decimal):
        if v.is_nan():
            return b"NaN"
        if v.is_infinite():
            return b"Infinity" if v > 0 else b"-Infinity"
        return format(v, "f").encode()
    return str(v).encode()


def _t_str(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else str(v).encode()


def _t_date(v: Any) -> bytes:
    return v.isoformat().encode() if isinstance(v, dt.date) else str(v).encode()


def _t_timestamp(v: Any) -> bytes:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ").encode()
    return str(v).encode()


def _t_timestamptz(v: Any) -> bytes:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            return v.isoformat(sep=" ").encode() + b"+00"
        return v.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ").encode() + b"+00"
    return str(v).encode()


def _interval_parts(v: Any) -> tuple[int, int, int]:
    """(months, days, microseconds) of a timedelta or duckdb interval value."""
    if isinstance(v, dt.timedelta):
        return 0, v.days, v.seconds * 1_000_000 + v.microseconds
    raise InvalidParameterValue(f"cannot encode interval value {v!r}")


def _t_interval(v: Any) -> bytes:
    months, days, us = _interval_parts(v)
    parts = []
    if months:
        parts.append(f"{months} mons")
    sign = "-" if us < 0 else ""
    us = abs(us)
    if days:
        parts.append(f"{days} days")
    secs, frac = divmod(us, 1_000_000)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    if us or not parts:
        t = f"{sign}{h:02d}:{m:02d}:{s:02d}"
        if frac:
            t += f".{frac:06d}".rstrip("0")
        parts.append(t)
    return " ".join(parts).encode()


def _t_bytea(v: Any) -> bytes:
    return b"\\x" + bytes(v).hex().encode()


def _t_json(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else json.dumps(v, default=str).encode()


_NEEDS_QUOTE = re.compile(r'[{},"\\\s]|^$|^null$', re.I)


def _array_text(elem: Encoder) -> Encoder:
    def enc(v: Any) -> bytes:
        out = []
        for x in v:
            if x is None:
                out.append(b"NULL")
                continue
            b = elem(x)
            s = b.decode()
            if _NEEDS_QUOTE.search(s):
                s = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out.append(s.encode())
        return b"{" + b",".join(out) + b"}"
    return enc


_TEXT_ENC: dict[int, Encoder] = {
    BOOL: _t_bool, INT2: _t_int, INT4: _t_int, INT8: _t_int, OID: _t_int, FLOAT4: _t_float4, FLOAT8: _t_float,
    NUMERIC: _t_numeric, TEXT: _t_str, VARCHAR: _t_str, NAME: _t_str, BPCHAR: _t_str, CHAR: _t_str,
    DATE: _t_date, TIME: _t_date, TIMETZ: _t_date, TIMESTAMP: _t_timestamp, TIMESTAMPTZ: _t_timestamptz,
    INTERVAL: _t_interval, BYTEA: _t_bytea, UUID: _t_str, JSON: _t_json, JSONB: _t_json,
}


INT2VECTOR, OIDVECTOR = 22, 30  # catalog columns (pg_index.indkey, indoption, indclass): '1 2'


def _t_vector(v: Any) -> bytes:
    return " ".join(str(x) for x in v).encode()


def encode_text(oid: int) -> Encoder:
    if oid in (INT2VECTOR, OIDVECTOR):
        return _t_vector
    if oid in ELEMENT_OF:
        return _array_text(encode_text(ELEMENT_OF[oid]))
    return _TEXT_ENC.get(oid, _t_str)


# --- binary encoders -------------------------------------------------------------------
_h, _i, _q, _f, _d = (struct.Struct(f).pack for f in ("!h", "!i", "!q", "!f", "!d"))


def _b_bool(v: Any) -> bytes:
    return b"\x01" if v else b"\x00"


def _b_int2(v: Any) -> bytes:
    return _h(v)


def _b_int4(v: Any) -> bytes:
    return _i(v)


def _b_int8(v: Any) -> bytes:
    return _q(v)


def _b_float4(v: Any) -> bytes:
    return _f(v)


def _b_float8(v: Any) -> bytes:
    return _d(v)


_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN = 0x0000, 0x4000, 0xC000
_NUMERIC_PINF, _NUMERIC_NINF = 0xD000, 0xF000


def _b_numeric(v: Any) -> bytes:
    """PostgreSQL binary NUMERIC: ndigits, weight, sign, dscale, base-10000 digits."""
    d = v if isinstance(v, decimal.Decimal) else decimal.Decimal(str(v))
    if d.is_nan():
        return struct.pack("!hhHh", 0, 0, _NUMERIC_NAN, 0)
    if d.is_infinite():
        return struct.pack("!hhHh", 0, 0, _NUMERIC_PINF if d > 0 else _NUMERIC_NINF, 0)
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    dscale = max(-exp, 0)
    # integer part and fraction part as decimal digit strings
    ds = "".join(map(str, digits))
    if exp >= 0:
        int_part, frac_part = ds + "0" * exp, ""
    else:
        pad = max(-exp - len(ds), 0)
        ds = "0" * pad + ds
        int_part, frac_part = ds[:exp], ds[exp:]
    int_part = int_part.lstrip("0")
    # group into base-10000 digits aligned on the decimal point
    if int_part:
        lead = (-len(int_part)) % 4
        int_part = "0" * lead + int_part
    if frac_part:
        frac_part = frac_part + "0" * ((-len(frac_part)) % 4)
    groups = [int(int_part[i:i + 4]) for i in range(0, len(int_part), 4)]
    weight = len(groups) - 1
    groups += [int(frac_part[i:i + 4]) for i in range(0, len(frac_part), 4)]
    # strip leading zero groups (adjust weight) and trailing zero groups
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHh{len(groups)}H", len(groups), weight,
                       _NUMERIC_NEG if sign and groups else _NUMERIC_POS, dscale, *groups)


def _b_text(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else str(v).encode()


def _b_date(v: Any) -> bytes:
    return _i(v.toordinal() - _EPOCH_ORDINAL)


def _b_time(v: Any) -> bytes:
    return _q(((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _b_timestamp(v: Any) -> bytes:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return _q(_micros(v - PG_EPOCH))


def _b_timestamptz(v: Any) -> bytes:
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    return _q(_micros(v - PG_EPOCH_TZ))


def _b_interval(v: Any) -> bytes:
    months, days, us = _interval_parts(v)
    return struct.pack("!qii", us, days, months)


def _b_bytea(v: Any) -> bytes:
    return bytes(v)


def _b_uuid(v: Any) -> bytes:
    return v.bytes if isinstance(v, uuid.UUID) else uuid.UUID(str(v)).bytes


def _b_json(v: Any) -> bytes:
    return _t_json(v)


def _b_jsonb(v: Any) -> bytes:
    return b"\x01" + _t_json(v)


def _array_binary(elem_oid: int, elem: Encoder) -> Encoder:
    def enc(v: Any) -> bytes:
        has_null = any(x is None for x in v)
        parts = [struct.pack("!iiiii", 1, 1 if has_null else 0, elem_oid, len(v), 1)]
        for x in v:
            if x is None:
                parts.append(_i(-1))
            else:
                b = elem(x)
                parts.append(_i(len(b)))
                parts.append(b)
        return b"".join(parts)
    return enc


_BIN_ENC: dict[int, Encoder] = {
    BOOL: _b_bool, INT2: _b_int2, INT4: _b_int4, INT8: _b_int8, OID: _b_int4, FLOAT4: _b_float4,
    FLOAT8: _b_float8, NUMERIC: _b_numeric, TEXT: _b_text, VARCHAR: _b_text, NAME: _b_text, BPCHAR: _b_text,
    CHAR: _b_text, DATE: _b_date, TIME: _b_time, TIMESTAMP: _b_timestamp, TIMESTAMPTZ: _b_timestamptz,
    INTERVAL: _b_interval, BYTEA: _b_bytea, UUID: _b_uuid, JSON: _b_json, JSONB: _b_jsonb,
}


def encode_binary(oid: int) -> Encoder:
    if oid in (INT2VECTOR, OIDVECTOR):  # PostgreSQL sends these as one-dimensional arrays
        return _array_binary(INT2 if oid == INT2VECTOR else OID, _BIN_ENC[INT2 if oid == INT2VECTOR else OID])
    if oid in ELEMENT_OF:
        e = ELEMENT_OF[oid]
        return _array_binary(e, encode_binary(e))
    return _BIN_ENC.get(oid, _b_text)


def encoders_for(oids: Sequence[int], formats: Sequence[int]) -> list[Encoder]:
    """One encoder per column; ``formats`` is the Bind result-format list (0, 1 or n codes)."""
    n = len(oids)
    fmts = [0] * n if not formats else [formats[0]] * n if len(formats) == 1 else list(formats)
    return [encode_binary(o) if f == 1 else encode_text(o) for o, f in zip(oids, fmts, strict=True)]


def result_formats(n: int, formats: Sequence[int]) -> list[int]:
    return [0] * n if not formats else [formats[0]] * n if len(formats) == 1 else list(formats)


def encode_rows(rows: Sequence[Sequence[Any]], encoders: Sequence[Encoder]) -> bytes:
    """DataRow messages for a batch of rows, concatenated (the hot path)."""
    from sqlsluice.middleware.codec import data_row

    out = []
    try:
        for row in rows:
            out.append(data_row([None if v is None else e(v) for v, e in zip(row, encoders, strict=True)]))
    except (ValueError, TypeError, AttributeError, OverflowError, struct.error) as e:
        raise InvalidParameterValue(f"cannot encode result value: {e}", sqlstate="22P02") from e
    return b"".join(out)


# --- parameter decoders (Bind) ----------------------------------------------------------
def _bad(oid: int, raw: bytes) -> InvalidParameterValue:
    name = PG_NAME.get(oid, str(oid))
    return InvalidParameterValue(f"invalid input syntax for type {name}: {raw[:40]!r}", sqlstate="22P02")


_TRUE = {"t", "true", "yes", "on", "1", "y"}
_FALSE = {"f", "false", "no", "off", "0", "n"}


def _parse_bool(s: str) -> bool:
    s2 = s.strip().lower()
    if s2 in _TRUE:
        return True
    if s2 in _FALSE:
        return False
    raise ValueError(s)


def _parse_ts(s: str) -> dt.datetime:
    s = s.strip().replace("T", " ")
    m = re.match(r"^(.*?)([+-]\d{2})(?::?(\d{2}))?$", s) if re.search(r"\d[+-]\d{2}(:?\d{2})?$", s) else None
    if m:
        base = dt.datetime.fromisoformat(m.group(1))
        off = int(m.group(2)) * 60 + (int(m.group(3) or 0) * (1 if m.group(2)[0] == "+" else -1))
        return base.replace(tzinfo=dt.timezone(dt.timedelta(minutes=off)))
    return dt.datetime.fromisoformat(s)


def _parse_array(s: str, elem: Callable[[str], Any] | None) -> list[Any]:
    """A one-dimensional PostgreSQL array literal (``{1,2}``, ``{"a b",NULL}``) as a list."""
    s = s.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise ValueError(s)
    out: list[Any] = []
    for m in re.finditer(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^,{}"]*?))\s*(?:,|$)', s[1:-1]):
        if m.end() == m.start():
            break
        quoted, plain = m.group(1), m.group(2)
        if quoted is None and plain.upper() == "NULL":
            out.append(None)
            continue
        v = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        out.append(elem(v) if elem is not None else v)
    return out


def _text_dec(oid: int) -> Callable[[str], Any] | None:
    if oid in ELEMENT_OF:  # '{1,2}' for an int4[] parameter (DuckDB cannot cast that text)
        elem = _text_dec(ELEMENT_OF[oid])
        return lambda s: _parse_array(s, elem)
    if oid in (INT2, INT4, INT8, OID):
        return int
    if oid in (FLOAT4, FLOAT8):
        return float
    if oid == NUMERIC:
        return decimal.Decimal
    if oid == BOOL:
        return _parse_bool
    if oid == DATE:
        return dt.date.fromisoformat
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        return _parse_ts
    if oid == TIME:
        return dt.time.fromisoformat
    if oid == UUID:
        return uuid.UUID
    if oid == BYTEA:
        return lambda s: bytes.fromhex(s[2:]) if s.startswith("\\x") else s.encode()
    return None


def decode_param(oid: int, fmt: int, raw: bytes | None) -> Any:
    """A Bind parameter as a Python value DuckDB accepts."""
    if raw is None:
        return None
    try:
        if fmt == 0:
            s = raw.decode()
            dec = _text_dec(oid)
            return dec(s) if dec is not None else s
        return _decode_binary(oid, raw)
    except (ValueError, struct.error, UnicodeDecodeError, decimal.InvalidOperation) as e:
        raise _bad(oid, raw) from e


def _decode_binary(oid: int, raw: bytes) -> Any:
    if oid == BOOL:
        return raw != b"\x00"
    if oid == INT2:
        return struct.unpack("!h", raw)[0]
    if oid in (INT4, OID):
        return struct.unpack("!i", raw)[0]
    if oid == INT8:
        return struct.unpack("!q", raw)[0]
    if oid == FLOAT4:
        return struct.unpack("!f", raw)[0]
    if oid == FLOAT8:
        return struct.unpack("!d", raw)[0]
    if oid == NUMERIC:
        return _decode_numeric(raw)
    if oid == DATE:
        return dt.date.fromordinal(struct.unpack("!i", raw)[0] + _EPOCH_ORDINAL)
    if oid == TIMESTAMP:
        return PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
    if oid == TIMESTAMPTZ:
        return PG_EPOCH_TZ + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
    if oid == TIME:
        us = struct.unpack("!q", raw)[0]
        return (dt.datetime.min + dt.timedelta(microseconds=us)).time()
    if oid == INTERVAL:
        us, days, months = struct.unpack("!qii", raw)
        return dt.timedelta(days=days + 30 * months, microseconds=us)
    if oid == UUID:
        return uuid.UUID(bytes=raw)
    if oid == BYTEA:
        return raw
    if oid == JSONB:
        return raw[1:].decode()
    if oid in ELEMENT_OF:
        return _decode_array(raw)
    return raw.decode()


def _decode_numeric(raw: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", raw)
    if sign == _NUMERIC_NAN:
        return decimal.Decimal("NaN")
    if sign == _NUMERIC_PINF:
        return decimal.Decimal("Infinity")
    if sign == _NUMERIC_NINF:
        return decimal.Decimal("-Infinity")
    digits = struct.unpack_from(f"!{ndigits}H", raw, 8)
    v = decimal.Decimal(0)
    for i, g in enumerate(digits):
        v += decimal.Decimal(g).scaleb(4 * (weight - i))
    if sign == _NUMERIC_NEG:
        v = -v
    return v.quantize(decimal.Decimal(1).scaleb(-dscale)) if dscale else v.quantize(decimal.Decimal(1))


def _decode_array(raw: bytes) -> list[Any]:
    ndim, _flags, elem = struct.unpack_from("!iii", raw)
    if ndim == 0:
        return []
    if ndim != 1:
        raise ValueError("only one-dimensional arrays are supported")
    n, _lb = struct.unpack_from("!ii", raw, 12)
    pos = 20
    out: list[Any] = []
    for _ in range(n):
        (ln,) = struct.unpack_from("!i", raw, pos)
        pos += 4
        if ln == -1:
            out.append(None)
        else:
            out.append(_decode_binary(elem, raw[pos:pos + ln]))
            pos += ln
    return out
