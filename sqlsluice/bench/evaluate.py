"""Score text-to-SQL predictions on BIRD-layout data: EX, VES, R-VES, Soft-F1, Spider EX.

A data directory in BIRD's layout holds the questions (``dev.json``, ``mini_dev_<dialect>.json``)
and ``dev_databases/<db>/<db>.sqlite``; for PostgreSQL a connection URL replaces the files
(``{db_id}`` in the URL is replaced by the question's database; otherwise the connection's
``search_path`` is set to the database's schema, then ``public``).

    >>> from sqlsluice.bench.evaluate import parse_prediction
    >>> parse_prediction("SELECT 1\\t----- bird -----\\tfinancial")
    ('SELECT 1', 'financial')

Predictions are matched to questions by position (the key of BIRD's JSON format), as the
official scripts pair them; a missing prediction counts as wrong.  Every question runs with
a deadline: a prediction still running at the deadline is interrupted and counted wrong,
exactly like an error.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlsluice.bench import metrics
from sqlsluice.errors import ConfigError, InvalidParameterValue, SluiceError

BIRD_SEP = "\t----- bird -----\t"
ALL_METRICS = ("ex", "ves", "rves", "f1")


class MissingDatabase(SluiceError):
    sqlstate = "3D000"  # invalid_catalog_name


class QueryTimeout(SluiceError):
    sqlstate = "57014"


class ResultTooLarge(SluiceError):
    sqlstate = "54000"  # program_limit_exceeded


MAX_ROWS = 2_000_000
"""Rows fetched per query before it counts as wrong (BIRD's largest gold results are far smaller)."""


@dataclass
class Question:
    idx: int
    question_id: Any
    db_id: str
    question: str
    evidence: str
    sql: str
    difficulty: str
    hardness: str | None = None


@dataclass
class Prediction:
    idx: int
    sql: str
    db_id: str | None


@dataclass
class QuestionResult:
    idx: int
    db_id: str
    difficulty: str
    ex: int = 0
    f1: float = 0.0
    time_ratio: float = 0.0
    ves: float = 0.0
    rves: float = 0.0
    error: str | None = None
    timeout: bool = False
    seconds: float = 0.0
    missing: bool = False


@dataclass
class Report:
    """Everything a score run measured; :meth:`summary` is the JSON the CLI writes."""

    benchmark: str
    dialect: str
    metrics: tuple[str, ...]
    levels: tuple[str, ...]
    results: list[QuestionResult]
    predictions_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        levels = [r.difficulty for r in self.results]
        out: dict[str, Any] = {"benchmark": self.benchmark, "dialect": self.dialect}
        for m in self.metrics:
            if m == "ex":
                scores = [100.0 * r.ex for r in self.results]
            elif m == "f1":
                scores = [100.0 * r.f1 for r in self.results]
            elif m == "ves":
                scores = [r.ves for r in self.results]
            else:
                scores = [r.rves for r in self.results]
            out[m] = metrics.by_level(scores, levels, self.levels)
        out["count"] = metrics.count_by_level(levels, self.levels)
        out["errors"] = sum(1 for r in self.results if r.error and not r.timeout and not r.missing)
        out["timeouts"] = sum(1 for r in self.results if r.timeout)
        out["missing_predictions"] = sum(1 for r in self.results if r.missing)
        out.update(self.extra)
        out["per_question"] = [asdict(r) for r in self.results]
        return out


# -- loading -------------------------------------------------------------------------------

def parse_prediction(value: Any) -> tuple[str, str | None]:
    """``"<sql>\\t----- bird -----\\t<db_id>"`` -> ``(sql, db_id)``; plain SQL -> ``(sql, None)``."""
    if not isinstance(value, str):
        return "", None
    if BIRD_SEP in value:
        sql, _, db = value.rpartition(BIRD_SEP)
        return sql.strip(), db.strip() or None
    return value.strip(), None


def load_predictions(path: Path, questions: Sequence[Question] | None = None) -> dict[int, Prediction]:
    """Read BIRD's JSON (``{"<idx>": "<sql>\\t----- bird -----\\t<db>"}``) or JSONL predictions.

    JSONL lines carry ``sql`` (or ``SQL``/``predicted_sql``) and ``idx`` (position) or
    ``question_id`` (matched against ``questions``), optionally ``db_id``.
    """
    text = Path(path).read_text(encoding="utf-8")
    out: dict[int, Prediction] = {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        for key, value in data.items():
            try:
                idx = int(key)
            except ValueError as e:
                raise InvalidParameterValue(f"{path}: prediction key {key!r} is not a question index") from e
            sql, db = parse_prediction(value)
            out[idx] = Prediction(idx, sql, db)
        return out
    if isinstance(data, list):
        lines: list[Any] = data
    else:
        lines = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InvalidParameterValue(f"{path}:{n}: not JSON: {e.msg}") from e
    by_qid = {str(q.question_id): q.idx for q in questions or []}
    for n, obj in enumerate(lines):
        if not isinstance(obj, dict):
            raise InvalidParameterValue(f"{path}: prediction {n} is not an object")
        raw = obj.get("sql", obj.get("SQL", obj.get("predicted_sql", "")))
        sql, db = parse_prediction(raw)
        db = obj.get("db_id", db)
        if "idx" in obj:
            idx = int(obj["idx"])
        elif "question_id" in obj and str(obj["question_id"]) in by_qid:
            idx = by_qid[str(obj["question_id"])]
        elif "question_id" in obj and questions is not None:
            raise InvalidParameterValue(f"{path}: question_id {obj['question_id']!r} is not in the questions file")
        else:
            idx = n
        out[idx] = Prediction(idx, sql, db)
    return out


def find_questions_file(data_dir: Path, dialect: str = "sqlite", predictions: Path | None = None) -> Path:
    """``dev.json``, else ``mini_dev_<dialect>.json``, else ``mini_dev_sqlite.json``.

    When several exist and ``predictions`` is given, the one with as many questions as the
    predictions file has entries wins (mini-dev's 500 against dev's 1,534).
    """
    names = ["dev.json", f"mini_dev_{dialect}.json", "mini_dev_sqlite.json"]
    found = [data_dir / n for n in dict.fromkeys(names) if (data_dir / n).is_file()]
    if not found:
        raise ConfigError(f"no questions file in {data_dir}: expected one of {', '.join(names)}")
    if len(found) > 1 and predictions is not None and predictions.is_file():
        n = len(load_predictions(predictions))
        for f in found:
            try:
                if len(json.loads(f.read_text(encoding="utf-8"))) == n:
                    return f
            except (json.JSONDecodeError, TypeError):
                continue
    return found[0]


def load_questions(path: Path, *, spider_hardness: bool = False) -> list[Question]:
    """BIRD's question JSON (a list, or JSONL) -> :class:`Question` list in file order."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON list of questions")
    out = []
    for i, q in enumerate(data):
        try:
            out.append(Question(
                idx=i, question_id=q.get("question_id", i), db_id=q["db_id"], question=q.get("question", ""),
                evidence=q.get("evidence", "") or "", sql=q.get("SQL", q.get("query", "")),
                difficulty=q.get("difficulty", "simple"), hardness=q.get("hardness")))
        except (KeyError, AttributeError) as e:
            raise ConfigError(f"{path}: question {i} lacks db_id") from e
    return out


def sqlite_path(data_dir: Path, db_id: str) -> Path:
    """BIRD layout ``dev_databases/<db>/<db>.sqlite`` (``<db>/<db>.sqlite`` also accepted)."""
    for cand in (data_dir / "dev_databases" / db_id / f"{db_id}.sqlite", data_dir / db_id / f"{db_id}.sqlite"):
        if cand.is_file():
            return cand
    raise MissingDatabase(f"database {db_id!r} not found: expected {data_dir / 'dev_databases' / db_id / (db_id + '.sqlite')}")


# -- execution -----------------------------------------------------------------------------

def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, default=str)
    if isinstance(v, memoryview):
        return bytes(v)
    return v


class Executor:
    """One connection to one question's database; ``run`` obeys the deadline set by ``arm``."""

    def run(self, sql: str) -> list[metrics.Row]:
        raise NotImplementedError

    _timer: threading.Timer | None = None
    _fired = False

    def arm(self, seconds: float) -> None:
        """Stop the running statement (``_stop``) once ``seconds`` have passed."""
        self.disarm()
        self._fired = False
        self._timer = threading.Timer(seconds, self._on_deadline)
        self._timer.daemon = True
        self._timer.start()

    def _on_deadline(self) -> None:
        self._fired = True
        self._stop()

    def _stop(self) -> None:
        raise NotImplementedError

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def fired(self) -> bool:
        return self._fired

    def timed(self, sql: str) -> float:
        """Seconds to run ``sql`` and fetch its rows."""
        t0 = time.perf_counter()
        self.run(sql)
        return time.perf_counter() - t0

    def close(self) -> None:
        raise NotImplementedError


class SqliteExecutor(Executor):
    """Read-only SQLite connection; a timer calls ``interrupt()`` at the deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = self._connect()
        self._active = self.conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        conn.text_factory = lambda b: b.decode(errors="ignore")
        return conn

    def _stop(self) -> None:
        self._active.interrupt()

    def timed(self, sql: str) -> float:
        """As the official VES script: connect, execute, fetch, close, timed together.

        A fresh connection per run also keeps SQLite's statement cache from favouring the
        second of two identical queries.
        """
        t0 = time.perf_counter()
        conn = self._connect()
        self._active = conn
        try:
            self.run(sql, conn)
        finally:
            conn.close()
            self._active = self.conn
        return time.perf_counter() - t0

    def run(self, sql: str, conn: sqlite3.Connection | None = None) -> list[metrics.Row]:
        if self._fired:
            raise QueryTimeout("deadline passed")
        cur = (conn or self.conn).cursor()
        try:
            cur.execute(sql)
            rows: list[metrics.Row] = []
            while chunk := cur.fetchmany(10000):
                rows.extend(chunk)
                if len(rows) > MAX_ROWS:  # an endless recursive CTE would fill memory before the deadline
                    raise ResultTooLarge(f"more than {MAX_ROWS} rows")
            return rows
        except sqlite3.OperationalError as e:
            if self._fired:
                raise QueryTimeout("interrupted at the deadline") from e
            raise
        finally:
            cur.close()

    def close(self) -> None:
        self.disarm()
        self.conn.close()


class PostgresExecutor(Executor):
    """A PostgreSQL connection in a read-only transaction, cancelled at the deadline."""

    def __init__(self, url: str, db_id: str) -> None:
        import psycopg

        self._psycopg = psycopg
        target = url.replace("{db_id}", db_id)
        try:
            self.conn = psycopg.connect(target, autocommit=False, connect_timeout=10)
        except psycopg.Error as e:
            raise MissingDatabase(f"cannot connect for database {db_id!r}: {str(e).strip().splitlines()[0]}") from e
        if "{db_id}" not in url:
            with self.conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (db_id,))
                if cur.fetchone() is None and db_id != "public" and not _bird_public(cur):
                    self.conn.close()
                    raise MissingDatabase(f"database {db_id!r} not found: no schema {db_id!r} at the PostgreSQL URL")
                cur.execute(f'SET search_path TO "{db_id}", public')
            self.conn.commit()

    def _stop(self) -> None:
        try:
            self.conn.cancel()
        except self._psycopg.Error:
            pass

    def run(self, sql: str) -> list[metrics.Row]:
        if self._fired:
            raise QueryTimeout("deadline passed")
        try:
            with self.conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(sql.encode())  # type: ignore[arg-type]
                rows = cur.fetchall() if cur.description else []
            return [tuple(_hashable(v) for v in r) for r in rows]
        except self._psycopg.errors.QueryCanceled as e:
            raise QueryTimeout("cancelled at the deadline") from e
        finally:
            self.conn.rollback()

    def close(self) -> None:
        self.disarm()
        self.conn.close()


def _bird_public(cur: Any) -> bool:
    """BIRD's official PostgreSQL dump keeps every database's tables in ``public``."""
    cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    row = cur.fetchone()
    return bool(row and row[0])


ExecutorFactory = Callable[[str], Executor]


def executor_factory(data: str | Path, dialect: str) -> ExecutorFactory:
    if dialect == "sqlite":
        root = Path(data)
        return lambda db_id: SqliteExecutor(sqlite_path(root, db_id))
    if dialect == "postgresql":
        url = str(data)
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("--dialect postgresql needs a postgresql:// URL as the database location (--db-url)")
        return lambda db_id: PostgresExecutor(url, db_id)
    raise InvalidParameterValue(f"unknown dialect {dialect!r}: use sqlite or postgresql")


@dataclass
class ScoreOptions:
    metrics: tuple[str, ...] = ("ex",)
    timeout: float = 30.0
    ves_repeats: int = 100
    spider: bool = False  # Spider's execution match instead of BIRD's set equality
    keep_distinct: bool = False  # Spider's default removes DISTINCT before comparing


def score_question(q: Question, pred: Prediction | None, factory: ExecutorFactory,
                   opts: ScoreOptions) -> QuestionResult:
    level = q.hardness if opts.spider and q.hardness else q.difficulty
    res = QuestionResult(idx=q.idx, db_id=q.db_id, difficulty=level)
    if pred is None:
        res.missing, res.error = True, "no prediction"
        return res
    t0 = time.perf_counter()
    ex = factory(q.db_id)
    try:
        p_sql, g_sql = pred.sql, q.sql
        if opts.spider:
            from sqlsluice.bench.spider import remove_distinct, spider_postprocess

            p_sql, g_sql = spider_postprocess(p_sql), spider_postprocess(g_sql)
            if not opts.keep_distinct:
                p_sql, g_sql = remove_distinct(p_sql), remove_distinct(g_sql)
        ex.arm(opts.timeout)  # as the official scripts: one deadline for prediction + gold
        try:
            if not p_sql.strip():
                raise InvalidParameterValue("empty prediction")
            p_rows = ex.run(p_sql)
            g_rows = ex.run(g_sql)
        finally:
            ex.disarm()
        if opts.spider:
            res.ex = int(metrics.spider_result_eq(g_rows, p_rows, order_matters="order by" in g_sql.lower()))
        else:
            res.ex = metrics.ex_match(p_rows, g_rows)
        if "f1" in opts.metrics:
            try:
                res.f1 = metrics.soft_f1(p_rows, g_rows)
            except ZeroDivisionError:
                res.f1 = 0.0
        if res.ex and ("ves" in opts.metrics or "rves" in opts.metrics) and opts.ves_repeats > 0:
            ex.arm(opts.timeout * opts.ves_repeats)
            try:
                p_times, g_times = [], []
                for _ in range(opts.ves_repeats):
                    p_times.append(ex.timed(p_sql))
                    g_times.append(ex.timed(g_sql))
            finally:
                ex.disarm()
            res.time_ratio = metrics.time_ratio(g_times, p_times)
            res.ves = metrics.ves_score(res.time_ratio)
            res.rves = metrics.rves_score(res.time_ratio)
    except QueryTimeout:
        res.ex, res.f1, res.timeout, res.error = 0, 0.0, True, f"timeout after {opts.timeout:g} s"
        res.time_ratio = res.ves = res.rves = 0.0
    except Exception as e:  # like the official scripts: any error (driver, decoding, memory) is wrong, not a crash
        res.ex, res.f1, res.error = 0, 0.0, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        res.time_ratio = res.ves = res.rves = 0.0
    finally:
        ex.close()
        res.seconds = round(time.perf_counter() - t0, 6)
    return res


def score(questions: Sequence[Question], predictions: dict[int, Prediction], factory: ExecutorFactory,
          opts: ScoreOptions, *, concurrency: int = 4,
          progress: Callable[[int, int], None] | None = None) -> list[QuestionResult]:
    """Score every question (in parallel threads); results in question order."""
    # Fail early and clearly on a missing database, before any work.
    for db_id in sorted({q.db_id for q in questions}):
        factory(db_id).close()
    results: list[QuestionResult | None] = [None] * len(questions)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futs = {pool.submit(score_question, q, predictions.get(q.idx), factory, opts): i
                for i, q in enumerate(questions)}
        for fut in as_completed(futs):
            results[futs[fut]] = fut.result()
            done += 1
            if progress is not None:
                progress(done, len(questions))
    return [r for r in results if r is not None]


def db_id_mismatches(questions: Sequence[Question], predictions: dict[int, Prediction]) -> list[int]:
    """Indices whose prediction names a different database than its question."""
    return [q.idx for q in questions
            if q.idx in predictions and predictions[q.idx].db_id and predictions[q.idx].db_id != q.db_id]


def format_table(summary: dict[str, Any], levels: Sequence[str]) -> str:
    """The official scripts' table: counts, then one line per metric, two decimals."""
    cols = [*levels, "total"]
    lines = ["{:20} ".format("") + " ".join(f"{c:20}" for c in cols)]
    lines.append("{:20} ".format("count") + " ".join(f"{summary['count'][c]!s:<20}" for c in cols))
    names = {"ex": "EX", "ves": "VES", "rves": "R-VES", "f1": "Soft-F1"}
    for m in ALL_METRICS:
        if m in summary:
            vals = [summary[m][c] for c in cols]
            lines.append(f"{names[m]:20} " + " ".join(
                f"{v:<20.2f}" if v is not None else f"{'-':<20}" for v in vals))
    return "\n".join(lines)


def _tables_read(sql: str, dialect: str) -> set[str] | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    if tree is None:
        return None
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table)} - ctes


def check_predictions(questions: Sequence[Question], predictions: dict[int, Prediction],
                      dialect: str = "sqlite") -> dict[str, Any]:
    """Without executing: do predictions line up with their questions?

    Counts predictions, db_id agreement, how many sqlglot parses, and how many read a table
    that their own question's gold SQL reads, against the same for the next question's gold
    (a shifted file scores about as high on both).
    """
    read = "postgres" if dialect in ("postgresql", "postgres") else dialect
    gold = [_tables_read(q.sql, read) or set() for q in questions]
    parsed = own = nxt = 0
    for i, q in enumerate(questions):
        p = predictions.get(q.idx)
        t = _tables_read(p.sql, read) if p is not None and p.sql else None
        if t is None:
            continue
        parsed += 1
        own += bool(t & gold[i])
        nxt += bool(t & gold[(i + 1) % len(questions)])
    return {"questions": len(questions), "predictions": sum(1 for q in questions if q.idx in predictions),
            "extra_predictions": len(set(predictions) - {q.idx for q in questions}),
            "db_id_aligned": sum(1 for q in questions if q.idx in predictions and predictions[q.idx].db_id == q.db_id),
            "parsed": parsed, "shares_table_with_own_gold": own, "shares_table_with_next_gold": nxt}
