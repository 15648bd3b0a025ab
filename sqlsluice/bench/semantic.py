"""Semantic scoring: each prediction against its gold SQL with the equivalence verifier, no database.

``sluice bench bird score --semantic`` (and ``bench spider score --semantic``) decides every
(prediction, gold) pair with :func:`~sqlsluice.verifiers.batch.verify_pair` in SQLite's
semantics over the schema alone (DDL files, a ``tables.json``, or the SQLite files' own DDL):

- **proved** (``EQUIVALENT``): the prediction returns the gold rows on every database of the
  schema (and of the constraints used: keys, NOT NULL, foreign keys, and with
  ``--data-constraints`` what the DDL comments state about the data), hence on the benchmark's
  own database.  ``proved / total`` is a **lower bound on EX** (it counts a proved prediction
  correct; EX may still count it wrong only if it times out or fails on the real database).
  Proofs of ``ORDER BY .. LIMIT`` queries "equal up to the order of ties" are not counted in the
  bound (the engine may pick different tied rows for the two queries); they are listed apart.
- **refuted** (``NOT_EQUIVALENT``): a generated database (the counterexample, kept in the JSON)
  on which they differ.  This shows the prediction is wrong *as a query*; it does **not** show
  that it is wrong on the benchmark's database (a wrong join key may happen to agree on the
  benchmark's rows, a missing DISTINCT may meet no duplicates).  So no upper bound on EX follows
  without the database: EX can be anything up to 100% whatever the refutations.  What refutations
  do bound is *semantic* accuracy (the share of predictions equivalent to the gold SQL on every
  database): at most ``(total - refuted) / total``.
- **undecided**: ``UNKNOWN`` (no proof, no counterexample within the budget) or ``ERROR``
  (SQLite rejects a query, an unknown table, a missing prediction).

So ``ex_lower_bound <= semantic accuracy <= semantic_upper_bound``, and ``ex_lower_bound <= EX``;
the two sides of EX meet only when the databases are at hand (``score`` without ``--semantic``).
BIRD's EX compares result *sets*; the pairs are verified under set semantics for BIRD and bag
semantics for Spider.

    >>> from sqlsluice.bench.semantic import bounds
    >>> bounds(proved=3, refuted=4, total=10)
    (30.0, 60.0)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlsluice.bench.evaluate import Prediction, Question
from sqlsluice.databases import Catalog, Column, ForeignKey, Table
from sqlsluice.errors import ConfigError, SluiceError
from sqlsluice.verifiers.compare import Semantics

KINDS = ("proved", "refuted", "undecided")
VERDICT_KIND = {"EQUIVALENT": "proved", "NOT_EQUIVALENT": "refuted", "UNKNOWN": "undecided", "ERROR": "undecided"}


@dataclass
class SemanticResult:
    """One question's verdict: the prediction against the gold SQL."""

    idx: int
    db_id: str
    difficulty: str
    verdict: str  # EQUIVALENT | NOT_EQUIVALENT | UNKNOWN | ERROR
    method: str = "none"
    reason: str = ""
    error: str = ""
    seconds: float = 0.0
    counterexample: dict[str, Any] | None = None
    missing: bool = False

    @property
    def kind(self) -> str:
        return VERDICT_KIND.get(self.verdict, "undecided")

    @property
    def up_to_ties(self) -> bool:
        """Proved only up to which tied rows an ``ORDER BY .. LIMIT`` keeps (not an EX guarantee)."""
        return self.verdict == "EQUIVALENT" and "up to the order of ties" in self.reason


def bounds(*, proved: int, refuted: int, total: int) -> tuple[float, float]:
    """``(lower, upper)`` in percent: proved / total (a lower bound on EX and on semantic accuracy)
    and (total - refuted) / total (an upper bound on semantic accuracy only, not on EX)."""
    if total <= 0:
        return 0.0, 0.0
    return round(100.0 * proved / total, 2), round(100.0 * (total - refuted) / total, 2)


# -- schemas -----------------------------------------------------------------------------------

def catalog_from_tables_json(entry: dict[str, Any]) -> Catalog:
    """One database of a Spider/BIRD ``tables.json`` as a SQLite catalog (types, PKs, FKs).

    >>> c = catalog_from_tables_json({"db_id": "d", "table_names_original": ["t"],
    ...     "column_names_original": [[-1, "*"], [0, "id"], [0, "x"]], "column_types": ["text", "number", "text"],
    ...     "primary_keys": [1], "foreign_keys": []})
    >>> [(col.name, col.type) for col in c.tables[0].columns], c.tables[0].primary_key
    ([('id', 'INTEGER'), ('x', 'TEXT')], ['id'])
    """
    types = {"number": "INTEGER", "text": "TEXT", "time": "TEXT", "boolean": "INTEGER", "others": "TEXT"}
    names = entry["table_names_original"]
    cols = entry["column_names_original"]
    ctypes = entry.get("column_types", [])
    tables = [Table(name=n) for n in names]
    for i, (ti, cname) in enumerate(cols):
        if ti < 0:
            continue
        ty = types.get(str(ctypes[i]).lower(), "TEXT") if i < len(ctypes) else "TEXT"
        tables[ti].columns.append(Column(name=cname, type=ty))
    for pk in entry.get("primary_keys", []):
        group = pk if isinstance(pk, list) else [pk]
        ti = cols[group[0]][0]
        tables[ti].primary_key = [cols[c][1] for c in group]
        for c in group:
            col = tables[ti].column(cols[c][1])
            if col is not None:
                col.nullable = False
    for a, b in entry.get("foreign_keys", []):
        ta, tb = cols[a][0], cols[b][0]
        tables[ta].foreign_keys.append(ForeignKey(columns=[cols[a][1]], ref_table=names[tb], ref_columns=[cols[b][1]]))
    return Catalog(tables=tables, dialect="sqlite")


_CREATE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\"([^\"]+)\"|`([^`]+)`|\[([^\]]+)\]|([\w.]+))",
                     re.IGNORECASE)
_NO_NULLS = re.compile(r"\bStats:\s*0(?:\.0+)?% null\b")
_ALL_UNIQUE = re.compile(r"\b100(?:\.0+)?% unique\b")
_FK = re.compile(r"^(.+)\.(.+) \(many-to-one\)$")


def data_constraints(ddl: str, cat: Catalog) -> dict[str, int]:
    r"""Constraints that the comments of annotated DDL (BIRD's ``schemas/<db>.sql``) state about the
    database's rows, added to ``cat``: ``Stats: 0% null`` -> NOT NULL, with ``100% unique`` -> a
    unique key, ``Foreign keys: t.c (many-to-one)`` -> a foreign key.  They hold for that
    database's data (what EX is measured on), not for every database of the schema.

    >>> ddl = "CREATE TABLE p (id integer);\nCREATE TABLE t (\n-- Stats: 0% null 100% unique\nid integer,\n"
    >>> ddl += "-- Stats: 0% null 5% unique\n-- Foreign keys: p.id (many-to-one)\n\"p id\" integer\n);"
    >>> cat = Catalog.from_ddl(ddl, "sqlite")
    >>> data_constraints(ddl, cat), cat.table("t").unique, cat.table("t").foreign_keys[0].ref_table
    ({'not_null': 2, 'unique': 1, 'foreign_keys': 1}, [['id']], 'p')
    """
    counts = {"not_null": 0, "unique": 0, "foreign_keys": 0}
    table: Table | None = None
    comments: list[str] = []
    for raw in ddl.splitlines():
        line = raw.strip()
        m = _CREATE.match(line)
        if m:
            table, comments = cat.table(next(g for g in m.groups() if g).split(".")[-1]), []
            continue
        if line.startswith("--"):
            comments.append(line)
            continue
        if table is None or not line or line.startswith(")"):
            table = None if line.startswith(")") else table
            continue
        q = line[0]
        name = line[1:line.index({"[": "]"}.get(q, q), 1)] if q in "\"`[" and len(line) > 1 else line.split()[0]
        col = table.column(name.rstrip(","))
        text, comments = " ".join(comments), []
        if col is None:
            continue
        if _NO_NULLS.search(text) and col.nullable:
            col.nullable = False
            counts["not_null"] += 1
        if _NO_NULLS.search(text) and _ALL_UNIQUE.search(text) and [col.name] not in table.keys:
            table.unique.append([col.name])
            counts["unique"] += 1
        fk_part = text.split("Foreign keys:", 1)[1] if "Foreign keys:" in text else ""
        for item in fk_part.split("--")[0].split(","):
            fm = _FK.match(item.strip())
            ref = cat.table(fm.group(1).strip().strip('"`')) if fm else None
            ref_col = ref.column(fm.group(2).strip().strip('"`')) if ref is not None and fm else None
            if ref is None or ref_col is None:
                continue
            if any(fk.columns == [col.name] and fk.ref_table == ref.name for fk in table.foreign_keys):
                continue
            table.foreign_keys.append(ForeignKey(columns=[col.name], ref_table=ref.name, ref_columns=[ref_col.name]))
            counts["foreign_keys"] += 1
    return counts


class SchemaSource:
    """Catalogs by ``db_id`` from, in this order: a folder of ``<db>.sql`` DDL files (BIRD's
    ``schemas/``), a ``tables.json``, or the BIRD layout's ``dev_databases/<db>/<db>.sqlite``."""

    def __init__(self, schemas: Path | None = None, data: Path | None = None, *,
                 data_constraints: bool = True) -> None:
        self.use_data_constraints = data_constraints
        self.applied: dict[str, dict[str, int]] = {}  # db -> constraints taken from DDL comments
        self.dirs: list[Path] = []
        self.tables_json: dict[str, dict[str, Any]] = {}
        self.data = data
        self._cache: dict[str, Catalog | SluiceError] = {}
        for p in (schemas, data):
            if p is None:
                continue
            if p.is_file():
                self._read_tables_json(p)
                continue
            if p.is_dir():
                self.dirs.append(p)
                for name in ("dev_tables.json", "tables.json"):
                    if (p / name).is_file():
                        self._read_tables_json(p / name)
        if schemas is not None and not schemas.exists():
            raise ConfigError(f"--schemas {schemas}: no such file or folder")

    def _read_tables_json(self, path: Path) -> None:
        for entry in json.loads(path.read_text(encoding="utf-8")):
            self.tables_json.setdefault(entry["db_id"], entry)

    def catalog(self, db_id: str) -> Catalog:
        """The catalog of ``db_id``; raises :class:`SluiceError` when no source has it."""
        if db_id not in self._cache:
            try:
                self._cache[db_id] = self._load(db_id)
            except SluiceError as e:
                self._cache[db_id] = e
        got = self._cache[db_id]
        if isinstance(got, SluiceError):
            raise got
        return got

    def _load(self, db_id: str) -> Catalog:
        from sqlsluice.verifiers import load_schema

        for d in self.dirs:
            for cand in (d / f"{db_id}.sql", d / "schemas" / f"{db_id}.sql", d / db_id / "schema.sql"):
                if cand.is_file():
                    cat = load_schema(cand, "sqlite")
                    if self.use_data_constraints:
                        self.applied[db_id] = data_constraints(cand.read_text(encoding="utf-8"), cat)
                    return cat
        if db_id in self.tables_json:
            return catalog_from_tables_json(self.tables_json[db_id])
        for d in self.dirs:
            for cand in (d / "dev_databases" / db_id / f"{db_id}.sqlite", d / db_id / f"{db_id}.sqlite"):
                if cand.is_file():
                    return load_schema(cand, "sqlite")
        raise ConfigError(f"no schema for database {db_id!r}: give --schemas with {db_id}.sql, a tables.json, "
                          "or --data in BIRD's layout")


# -- scoring -----------------------------------------------------------------------------------

def verify_one(pred_sql: str, gold_sql: str, catalog: Catalog, *, budget_s: float, semantics: Semantics,
               seed: int = 0) -> tuple[str, str, str, str, float, dict[str, Any] | None]:
    """``(verdict, method, reason, error, seconds, counterexample)`` for one pair; never raises."""
    from sqlsluice.verifiers.batch import verify_pair

    v = verify_pair(pred_sql, gold_sql, catalog, "sqlite", semantics=semantics, time_budget_s=budget_s, seed=seed)
    cex = v.counterexample.model_dump(mode="json") if v.counterexample is not None else None
    return v.verdict, v.method, v.reason[:500], v.error[:500], round(v.seconds, 4), cex


def semantic_score(questions: Sequence[Question], predictions: dict[int, Prediction], schemas: SchemaSource, *,
                   budget_s: float = 1.0, semantics: Semantics = "set",
                   progress: Callable[[int, int], None] | None = None) -> list[SemanticResult]:
    """Verify every question's prediction against its gold SQL (in question order)."""
    out: list[SemanticResult] = []
    for n, q in enumerate(questions):
        p = predictions.get(q.idx)
        r = SemanticResult(idx=q.idx, db_id=q.db_id, difficulty=q.hardness or q.difficulty, verdict="ERROR")
        if p is None or not p.sql.strip():
            r.error, r.missing = "no prediction", True
        else:
            try:
                cat = schemas.catalog(q.db_id)
            except SluiceError as e:
                r.error = e.message
            else:
                r.verdict, r.method, r.reason, r.error, r.seconds, r.counterexample = verify_one(
                    p.sql, q.sql, cat, budget_s=budget_s, semantics=semantics)
        out.append(r)
        if progress is not None:
            progress(n + 1, len(questions))
    return out


ERROR_SOURCES = ("sqlite", "missing_prediction", "schema", "verifier")


def error_source(r: SemanticResult) -> str:
    """Who rejected an ERROR pair: SQLite itself (its own message), a missing prediction, the schema
    source, or the verifier (sqlglot cannot parse what SQLite may accept, a table check, a bug)."""
    if r.missing:
        return "missing_prediction"
    from sqlsluice.verifiers.batch import SQLITE_REJECTS

    if r.error.startswith("SQLite: ") or SQLITE_REJECTS in r.error:
        return "sqlite"
    if r.error.startswith("no schema for database"):
        return "schema"
    return "verifier"


def summarize(results: Sequence[SemanticResult], levels: Sequence[str]) -> dict[str, Any]:
    """Counts per kind and verdict, overall and per difficulty level, with the EX bounds."""

    def block(rs: Sequence[SemanticResult]) -> dict[str, Any]:
        counts = {k: sum(1 for r in rs if r.kind == k) for k in KINDS}
        verdicts = {v: sum(1 for r in rs if r.verdict == v) for v in VERDICT_KIND}
        ties = sum(1 for r in rs if r.up_to_ties)
        lo, hi = bounds(proved=counts["proved"] - ties, refuted=counts["refuted"], total=len(rs))
        share = (lambda n: round(100.0 * n / len(rs), 2) if rs else 0.0)  # noqa: E731
        return {"total": len(rs), **counts, "verdicts": verdicts, "proved_up_to_ties": ties, "ex_lower_bound": lo,
                "semantic_upper_bound": hi, "decided_share": share(counts["proved"] + counts["refuted"]),
                "proved_share": share(counts["proved"])}

    seen = [lv for lv in levels if any(r.difficulty == lv for r in results)]
    seen += sorted({r.difficulty for r in results} - set(seen))
    return {"all": block(results), "by_level": {lv: block([r for r in results if r.difficulty == lv]) for lv in seen}}


def report(results: Sequence[SemanticResult], levels: Sequence[str], *, benchmark: str, budget_s: float,
           semantics: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON ``--semantic`` writes: the summary, the ERROR messages and every question."""
    s = summarize(results, levels)
    errors: dict[str, int] = {}
    error_list = []
    for r in results:
        if r.verdict == "ERROR":
            key = r.error.split(" in query ")[0][:160]
            errors[key] = errors.get(key, 0) + 1
            error_list.append({"idx": r.idx, "db_id": r.db_id, "error": r.error, "source": error_source(r)})
    return {
        "benchmark": benchmark, "mode": "semantic", "dialect": "sqlite", "semantics": semantics,
        "budget_s": budget_s, **s,
        "note": "ex_lower_bound = (proved - proved_up_to_ties)/total: those predictions return the gold rows on "
                "every database satisfying the schema's constraints, so on the benchmark's too (EX >= it). "
                "semantic_upper_bound = (total - refuted)/total bounds the share of predictions equivalent to "
                "the gold SQL, NOT EX: a refuted prediction differs on a generated database and may still "
                "return the gold rows on the benchmark's own data; without the databases EX has no upper "
                "bound below 100%",
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "error_sources": {k: sum(1 for e in error_list if e["source"] == k) for k in ERROR_SOURCES},
        "error_list": error_list,
        "seconds_verifying": round(sum(r.seconds for r in results), 2),
        **(extra or {}),
        "per_question": [asdict(r) for r in results],
    }


def format_table(summary: dict[str, Any]) -> str:
    """A Markdown table: one row per level, then all."""
    lines = ["| level | total | proved | refuted | undecided (unknown / error) | EX >= | semantic accuracy <= |",
             "|---|---|---|---|---|---|---|"]
    rows = [*summary["by_level"].items(), ("all", summary["all"])]
    for name, b in rows:
        v = b["verdicts"]
        lines.append(f"| {name} | {b['total']} | {b['proved']} | {b['refuted']} | {b['undecided']} "
                     f"({v['UNKNOWN']} / {v['ERROR']}) | {b['ex_lower_bound']:.1f}% | {b['semantic_upper_bound']:.1f}% |")
    return "\n".join(lines)


def run_semantic(*, benchmark: str, data: Path | None, predictions: Path, questions_file: Path | None,
                 schemas: Path | None, budget_s: float = 1.0, limit: int | None = None,
                 use_data_constraints: bool = True,
                 progress: Callable[[str], Iterator[Callable[[int, int], None]]] | None = None) -> dict[str, Any]:
    """Load questions, predictions and schemas, verify every pair, and return :func:`report`'s JSON."""
    from sqlsluice.bench import evaluate as ev
    from sqlsluice.bench.metrics import LEVELS, SPIDER_LEVELS
    from sqlsluice.errors import InvalidParameterValue

    if budget_s <= 0:
        raise InvalidParameterValue("--budget must be positive")
    if questions_file is None and data is None:
        raise InvalidParameterValue("--semantic needs the questions: --questions FILE or --data DIR")
    qpath = questions_file or ev.find_questions_file(data, "sqlite", predictions)  # type: ignore[arg-type]
    questions = ev.load_questions(qpath)
    if limit:
        questions = questions[:limit]
    preds = ev.load_predictions(predictions, questions)
    if schemas is None and data is None:
        raise InvalidParameterValue("--semantic needs the schemas: --schemas DIR (<db>.sql files) or tables.json, "
                                    "or --data DIR")
    source = SchemaSource(schemas, data, data_constraints=use_data_constraints)
    semantics: Semantics = "bag" if benchmark == "spider" else "set"
    if progress is None:
        results = semantic_score(questions, preds, source, budget_s=budget_s, semantics=semantics)
    else:
        for update in progress(f"verifying {len(questions)} predictions"):
            results = semantic_score(questions, preds, source, budget_s=budget_s, semantics=semantics,
                                     progress=update)
    levels = SPIDER_LEVELS if benchmark == "spider" and all(q.hardness for q in questions) else LEVELS
    return report(results, levels, benchmark=benchmark, budget_s=budget_s, semantics=semantics,
                  extra={"predictions": str(predictions), "questions": str(qpath),
                         "schemas": str(schemas or data), "constraints_from_ddl_comments": source.applied,
                         "name": f"{benchmark} {Path(predictions).stem} semantic",
                         "missing_predictions": sum(1 for r in results if r.missing),
                         "db_id_mismatches": len(ev.db_id_mismatches(questions, preds))})
