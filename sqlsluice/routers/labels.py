"""EllieSQL's released per-question pipeline labels joined with BIRD dev questions and schemas.

``ellie_pipeline_labels.jsonl`` gives, for each of the 1,534 BIRD dev questions, the
cheapest of three pipelines (BASIC=1, INTERMEDIATE=2, ADVANCED=3) that solved it, or
UNSOLVED=4, and the linked schema their router saw.  The evidence comes from
``dev.json`` (joined on database and question text); schemas from ``dev_tables.json``
and BIRD's column descriptions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlsluice.errors import InvalidParameterValue
from sqlsluice.routers.features import RouteInput
from sqlsluice.text2sql.schema import bird_descriptions, catalogs_from_tables_json, link_schema

LABELS = {"BASIC": 1, "INTERMEDIATE": 2, "ADVANCED": 3, "UNSOLVED": 4}
TIER_NAMES = {1: "basic", 2: "decompose", 3: "ensemble"}  # our pipeline for each tier


@dataclass
class LabeledQuestion:
    question_id: int
    db_id: str
    question: str
    evidence: str
    label: int  # 1..3 cheapest tier that solved it, 4 unsolved
    difficulty: str
    link_tables: list[dict[str, Any]]  # EllieSQL's linked schema (tables with columns)
    inp: RouteInput


def load_labels(path: str | os.PathLike[str], *, bird_dir: str | os.PathLike[str] | None = None,
                limit: int | None = None) -> list[LabeledQuestion]:
    """Labels joined with ``dev.json`` evidence and schema-link statistics."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    bird = Path(bird_dir) if bird_dir else p.parent
    dev_path = bird / "dev.json"
    tables_path = bird / "dev_tables.json"
    evidence: dict[tuple[str, str], str] = {}
    if dev_path.exists():
        for d in json.loads(dev_path.read_text()):
            evidence[(d["db_id"], d["question"].strip())] = d.get("evidence") or ""
    catalogs = catalogs_from_tables_json(tables_path) if tables_path.exists() else {}
    descs: dict[str, Any] = {}
    out: list[LabeledQuestion] = []
    with open(p) as fh:
        for ln, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                label = int(rec["label"])
                db = rec["db_id"]
                q = rec["question"].strip()
            except (json.JSONDecodeError, KeyError, ValueError) as e:
                raise InvalidParameterValue(f"{p}:{ln}: not a label record ({e})") from e
            ev = evidence.get((db, q), rec.get("evidence") or "")
            link = (rec.get("enhanced_linked_schema_wo_info") or {}).get("tables") or []
            cat = catalogs.get(db)
            ours = None
            if cat is not None:
                if db not in descs:
                    descs[db] = bird_descriptions(db, bird.parent)
                ours = link_schema(q, cat, evidence=ev, descriptions=descs[db], whole_below=0)
            inp = RouteInput(
                question=q, evidence=ev,
                linked_tables=len(link) if link else (ours.n_tables if ours else 1),
                linked_columns=sum(len(t.get("columns") or []) for t in link) if link else
                (ours.n_columns if ours else 1),
                column_hits=ours.column_hits if ours else 0,
                join_edges=ours.join_edges if ours else 0,
                value_matches=0,
                total_tables=ours.total_tables if ours else 1,
                total_columns=ours.total_columns if ours else 1,
                db=db,
                extra={"our_linked_tables": float(ours.n_tables) if ours else 0.0},
            )
            out.append(LabeledQuestion(int(rec.get("question_id", ln)), db, q, ev, label,
                                       rec.get("difficulty", ""), link, inp))
            if limit is not None and len(out) >= limit:
                break
    if not out:
        raise InvalidParameterValue(f"{p}: no label records")
    return out
