"""A small sample of EllieSQL's BIRD dev labels for router tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlsluice.routers.labels import LabeledQuestion, load_labels


@pytest.fixture(scope="session")
def labels_path(shared_data: Path) -> Path:
    return shared_data / "bird" / "ellie_pipeline_labels.jsonl"


@pytest.fixture(scope="session")
def label_sample(labels_path: Path) -> list[LabeledQuestion]:
    return load_labels(labels_path, limit=300)
