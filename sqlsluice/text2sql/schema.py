"""Schema context for prompts: compact schema text, schema linking, value lookup.

* :func:`schema_text` renders tables as one line per column with type, key and
  foreign-key markers, a few sample values and descriptions when present (BIRD's
  ``column_descriptions/<db>/<table>.csv``).
* :func:`link_schema` keeps the tables and columns a question needs, scored by lexical
  overlap of the question and evidence with table/column names, descriptions and the
  values found by :func:`lookup_values`; foreign-key bridges between kept tables are kept
  too.  Small schemas are kept whole; large ones are cut to a column budget so the
  prompt stays bounded.
* :func:`lookup_values` maps literals of the question (quoted strings, capitalised words,
  numbers, n-grams) to values stored in text columns (case-insensitive exact match).

>>> words("What is the Average_Age of singers in 'New York'?")[:4]
['what', 'is', 'the', 'average']
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlsluice.config import shared_data_dir
from sqlsluice.databases import Backend, Catalog, Column, ForeignKey, Table
from sqlsluice.errors import SluiceError

_WORD = re.compile(r"[A-Za-z]+|\d+(?:\.\d+)?")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_QUOTED = re.compile(r"'([^']{1,80})'|\"([^\"]{1,80})\"")
STOP = frozenset("""a an the of in on at to for from by with and or not no is are was were be been being do does did
what which who whom whose how many much list show give tell find all any each every that this these those there their
its it as than then please name names me i we you they them per into over under between among more most less least
have has had can could should would will shall may might must also only just both either neither other such same so
if when where why whether about above below up down out off again further once here s id""".split())
_TEXT_TYPES = ("VARCHAR", "TEXT", "CHAR", "STRING", "CHARACTER")




def words(text: str) -> list[str]:
    """Lower-cased word tokens, camelCase and snake_case split."""
    return [w.lower() for w in _WORD.findall(_CAMEL.sub(" ", text.replace("_", " ")))]


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in words(text) if w not in STOP and len(w) > 1}


def _stem(w: str) -> str:
    for suf in ("ies", "es", "s"):
        if len(w) > 4 and w.endswith(suf):
            return w[: -len(suf)] + ("y" if suf == "ies" else "")
    return w


@dataclass
class ValueMatch:
    table: str
    column: str
    value: str
    literal: str


@dataclass
class LinkedSchema:
    """Tables and columns kept for one question, with the evidence of the link."""

    tables: dict[str, list[str]]  # table -> kept columns (catalog spelling), all shown in the prompt
    linked: list[str] = field(default_factory=list)  # tables the question names (+ join bridges)
    scores: dict[str, float] = field(default_factory=dict)  # table -> link score
    column_hits: int = 0  # columns matched by name/description
    value_matches: list[ValueMatch] = field(default_factory=list)
    join_edges: int = 0  # foreign-key edges among kept tables
    total_tables: int = 0
    total_columns: int = 0
    whole: bool = False  # the schema was small enough to keep whole

    @property
    def n_tables(self) -> int:
        """Number of linked tables (what the ``tables`` router counts)."""
        return len(self.linked) if self.linked else len(self.tables)

    @property
    def n_columns(self) -> int:
        return sum(len(c) for c in self.tables.values())


# -- descriptions -------------------------------------------------------------------------

Descriptions = dict[str, dict[str, str]]  # table(lower) -> column(lower) -> text


def load_descriptions(directory: str | os.PathLike[str] | None) -> Descriptions:
    """BIRD's ``<table>.csv`` column descriptions in ``directory`` (empty when absent)."""
    out: Descriptions = {}
    if directory is None:
        return out
    d = Path(directory)
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.csv")):
        cols: dict[str, str] = {}
        with open(f, encoding="utf-8-sig", errors="replace", newline="") as fh:
            for row in csv.DictReader(fh):
                name = (row.get("original_column_name") or "").strip()
                if not name:
                    continue
                parts = []
                full = (row.get("column_name") or "").strip()
                desc = (row.get("column_description") or "").strip()
                vdesc = (row.get("value_description") or "").strip()
                if full and full.lower() != name.lower():
                    parts.append(full)
                if desc and desc.lower() not in (name.lower(), full.lower()):
                    parts.append(desc)
                if vdesc:
                    parts.append(vdesc)
                if parts:
                    cols[name.lower()] = re.sub(r"\s+", " ", "; ".join(parts))[:200]
        out[f.stem.lower()] = cols
    return out


def bird_descriptions(db_id: str, data_dir: Path | None = None) -> Descriptions:
    return load_descriptions((data_dir or shared_data_dir()) / "bird" / "column_descriptions" / db_id)


def catalogs_from_tables_json(path: str | os.PathLike[str]) -> dict[str, Catalog]:
    """Catalogs from a BIRD/Spider ``tables.json`` (no database needed)."""
    out: dict[str, Catalog] = {}
    for db in json.loads(Path(path).read_text()):
        tabs = [Table(name=n) for n in db["table_names_original"]]
        cols: list[tuple[int, str]] = []
        for (ti, cname), ctype in zip(db["column_names_original"], db["column_types"], strict=True):
            cols.append((ti, cname))
            if ti >= 0:
                tabs[ti].columns.append(Column(name=cname, type=str(ctype).upper()))
        for pk in db["primary_keys"]:
            ids = pk if isinstance(pk, list) else [pk]
            ti = cols[ids[0]][0]
            tabs[ti].primary_key = [cols[i][1] for i in ids]
        for a, b in db["foreign_keys"]:
            ta, ca = cols[a]
            tb, cb = cols[b]
            tabs[ta].foreign_keys.append(ForeignKey(columns=[ca], ref_table=tabs[tb].name, ref_columns=[cb]))
        out[db["db_id"]] = Catalog(tables=tabs, dialect="sqlite")
    return out


# -- value lookup -------------------------------------------------------------------------

def question_literals(question: str) -> list[str]:
    """Candidate literals: quoted strings, capitalised runs, numbers and 1-3 word n-grams."""
    lits: list[str] = []
    for a, b in _QUOTED.findall(question):
        lits.append(a or b)
    toks = re.findall(r"[A-Za-z0-9][\w.\-']*", question)
    for n in (3, 2, 1):
        for i in range(len(toks) - n + 1):
            gram = toks[i:i + n]
            if n == 1 and (gram[0].lower() in STOP or len(gram[0]) < 2):
                continue
            lits.append(" ".join(gram))
    seen: set[str] = set()
    out = []
    for x in lits:
        k = x.lower().strip(" .,?'")
        if k and k not in seen:
            seen.add(k)
            out.append(x.strip(" .,?"))
    return out[:200]


def lookup_values(backend: Backend, catalog: Catalog, question: str, *, max_columns: int = 200,
                  timeout_s: float = 5.0, budget_s: float = 5.0) -> list[ValueMatch]:
    """Values stored in text columns that equal (case-insensitively) a literal of the question.

    Bounded: at most ``max_columns`` columns, ``timeout_s`` per query and ``budget_s`` in all
    (large databases get a partial lookup rather than a slow question)."""
    import time

    deadline = time.monotonic() + budget_s
    lits = question_literals(question)
    if not lits:
        return []
    by_lower = {x.lower(): x for x in lits}
    placeholders = ", ".join(f"${i + 1}" for i in range(len(by_lower)))
    params = list(by_lower)
    out: list[ValueMatch] = []
    n = 0
    for t in catalog.tables:
        for c in t.columns:
            if not c.type.upper().startswith(_TEXT_TYPES):
                continue
            n += 1
            if n > max_columns or time.monotonic() > deadline:
                return out
            qt = _qident(t.name, backend.dialect)
            qc = _qident(c.name, backend.dialect)
            sql = (f"SELECT DISTINCT {qc} FROM {qt} WHERE lower(CAST({qc} AS VARCHAR)) IN ({placeholders}) "
                   f"LIMIT 5")
            try:
                rows = backend.execute(sql, params, timeout=timeout_s).rows
            except SluiceError:
                continue
            for (v,) in rows:
                out.append(ValueMatch(t.name, c.name, str(v), by_lower.get(str(v).lower(), str(v))))
    return out


def sample_values(backend: Backend, catalog: Catalog, *, per_column: int = 3,
                  tables: set[str] | None = None) -> dict[tuple[str, str], list[str]]:
    """A few distinct non-null values of each column (``(table, column) -> values``)."""
    out: dict[tuple[str, str], list[str]] = {}
    for t in catalog.tables:
        if tables is not None and t.name not in tables:
            continue
        for c in t.columns:
            qt = _qident(t.name, backend.dialect)
            qc = _qident(c.name, backend.dialect)
            try:
                rows = backend.execute(
                    f"SELECT DISTINCT {qc} FROM (SELECT {qc} FROM {qt} LIMIT 1000) AS s WHERE {qc} IS NOT NULL "
                    f"ORDER BY 1 LIMIT {per_column}", timeout=5.0).rows
            except SluiceError:
                continue
            out[(t.name, c.name)] = [_short(v) for (v,) in rows]
    return out


def _short(v: Any) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    s = str(v)
    return repr(s if len(s) <= 40 else s[:37] + "...")


def _qident(name: str, dialect: str) -> str:
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql(dialect)


# -- linking --------------------------------------------------------------------------------

def link_schema(question: str, catalog: Catalog, *, evidence: str | None = None,
                descriptions: Descriptions | None = None, values: list[ValueMatch] | None = None,
                max_columns: int = 60, whole_below: int = 40, max_tables: int = 6) -> LinkedSchema:
    """Keep the tables and columns ``question`` (and ``evidence``) need.

    Schemas with at most ``whole_below`` columns are kept whole (the link statistics are
    still computed).  Otherwise tables are kept when a name, description or value matches,
    plus foreign-key bridges between them; each kept table keeps its keys and matched
    columns, then the rest up to ``max_columns`` in total.
    """
    descriptions = descriptions or {}
    values = values or []
    q = content_words(question + " " + (evidence or ""))
    raw = (question + " " + (evidence or "")).lower()
    tscore: dict[str, float] = {}
    chits: dict[str, set[str]] = {}
    core: set[str] = set()
    total_cols = 0
    for t in catalog.tables:
        total_cols += len(t.columns)
        tw = content_words(t.name)
        name_overlap = len(tw & q) / max(len(tw), 1)
        s = 2.0 * name_overlap
        is_core = name_overlap >= 0.99
        hits: set[str] = set()
        fk_cols = {c.lower() for fk in t.foreign_keys for c in fk.columns}
        keys = {c.lower() for c in t.primary_key} | fk_cols
        tdesc = descriptions.get(t.name.lower(), {})
        for c in t.columns:
            cw = content_words(c.name)
            exact = c.name.lower() in raw and len(c.name) > 2
            overlap = len(cw & q) / max(len(cw), 1)
            d = tdesc.get(c.name.lower())
            dover = len(content_words(d) & q) / max(len(content_words(d)), 1) if d else 0.0
            if exact or overlap >= 0.5 or dover >= 0.5:
                hits.add(c.name)
                s += 1.0 if exact or overlap >= 0.99 else 0.5
                # a key column named after another table links that table, not this one
                if c.name.lower() not in keys and (exact or overlap >= 0.99):
                    is_core = True
        for v in values:
            if v.table == t.name:
                hits.add(v.column)
                s += 1.5
                is_core = True
        tscore[t.name] = s
        chits[t.name] = hits
        if is_core:
            core.add(t.name)
    linked = sorted(core, key=lambda n: -tscore[n])
    if not linked and catalog.tables:
        linked = [max(tscore, key=lambda n: tscore[n])]
    # foreign-key bridges: a table adjacent to two linked tables joins them
    adj = _adjacency(catalog)
    kept = set(linked)
    for t in catalog.tables:
        if t.name not in kept and len(adj.get(t.name, set()) & kept) >= 2:
            kept.add(t.name)
    edges = sum(1 for a in kept for b in adj.get(a, set()) if b in kept) // 2
    col_hits = sum(len(chits[n]) for n in kept)
    core_and_bridges = sorted(kept, key=lambda n: -tscore[n])
    # recall for the prompt: also keep the next best partially matching tables (not counted as linked)
    for name in sorted(tscore, key=lambda n: -tscore[n]):
        if len(kept) >= max_tables:
            break
        if tscore[name] > 0:
            kept.add(name)
    whole = total_cols <= whole_below
    tables: dict[str, list[str]] = {}
    if whole:
        tables = {t.name: [c.name for c in t.columns] for t in catalog.tables}
    else:
        budget = max_columns
        order = sorted(kept, key=lambda n: -tscore.get(n, 0))
        for name in order:
            tb = catalog.table(name)
            assert tb is not None
            must = set(tb.primary_key) | chits[name] | {c for fk in tb.foreign_keys for c in fk.columns
                                                       if fk.ref_table in kept}
            cols = [c.name for c in tb.columns if c.name in must]
            tables[name] = cols
            budget -= len(cols)
        for name in order:
            tb = catalog.table(name)
            assert tb is not None
            for c in tb.columns:
                if budget <= 0:
                    break
                if c.name not in tables[name]:
                    tables[name].append(c.name)
                    budget -= 1
            # keep catalog column order
            pos = {c.name: i for i, c in enumerate(tb.columns)}
            tables[name].sort(key=lambda c: pos[c])
    return LinkedSchema(tables=tables, linked=core_and_bridges, scores={n: tscore[n] for n in kept},
                        column_hits=col_hits,
                        value_matches=values, join_edges=edges, total_tables=len(catalog.tables),
                        total_columns=total_cols, whole=whole)


def _adjacency(catalog: Catalog) -> dict[str, set[str]]:
    adj: dict[str, set[str]] = {}
    for t in catalog.tables:
        for fk in t.foreign_keys:
            rt = catalog.table(fk.ref_table)
            if rt is None or rt.name == t.name:
                continue
            adj.setdefault(t.name, set()).add(rt.name)
            adj.setdefault(rt.name, set()).add(t.name)
    return adj


def schema_text(catalog: Catalog, linked: LinkedSchema | None = None, *,
                samples: dict[tuple[str, str], list[str]] | None = None,
                descriptions: Descriptions | None = None) -> str:
    """Compact schema text: one header per table, one line per kept column.

    ``#singer (6 rows)`` / ``  Singer_ID INTEGER PK`` /
    ``  Country VARCHAR  -- e.g. 'France', 'Netherlands'`` / ``  FK Stadium_ID -> stadium.Stadium_ID``
    """
    descriptions = descriptions or {}
    samples = samples or {}
    lines: list[str] = []
    for t in catalog.tables:
        if linked is not None and t.name not in linked.tables:
            continue
        keep = set(linked.tables[t.name]) if linked is not None else None
        rows = f" ({t.row_count} rows)" if t.row_count is not None else ""
        lines.append(f"#{t.name}{rows}")
        tdesc = descriptions.get(t.name.lower(), {})
        for c in t.columns:
            if keep is not None and c.name not in keep:
                continue
            flags = " PK" if c.name in t.primary_key else ""
            notes = []
            d = tdesc.get(c.name.lower())
            if d:
                notes.append(d)
            vals = samples.get((t.name, c.name))
            if vals:
                notes.append("e.g. " + ", ".join(vals))
            note = ("  -- " + "; ".join(notes)) if notes else ""
            lines.append(f"  {_show(c.name)} {c.type}{flags}{note}")
        for fk in t.foreign_keys:
            if linked is None or fk.ref_table in linked.tables:
                lines.append(f"  FK {', '.join(map(_show, fk.columns))} -> {_show(fk.ref_table)}."
                             f"{', '.join(map(_show, fk.ref_columns))}")
    return "\n".join(lines)


def _show(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f'"{name}"'


def values_text(values: list[ValueMatch]) -> str:
    """Value-lookup hits as prompt lines (``singer.Country = 'France'``)."""
    seen = set()
    out = []
    for v in values:
        k = (v.table, v.column, v.value)
        if k in seen:
            continue
        seen.add(k)
        out.append(f"{_show(v.table)}.{_show(v.column)} = '{v.value}'")
    return "\n".join(out[:20])
