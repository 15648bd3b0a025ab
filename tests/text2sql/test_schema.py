"""Schema context: compact text, BIRD descriptions, schema linking on large schemas, value lookup."""

from __future__ import annotations

from pathlib import Path

from sqlsluice.text2sql.schema import (
    bird_descriptions,
    catalogs_from_tables_json,
    link_schema,
    lookup_values,
    schema_text,
)
from sqlsluice.text2sql.spider import spider_catalog


def test_spider_loader_builds_typed_tables_with_keys(concert_db) -> None:
    cat = concert_db.catalog()
    singer = cat.table("singer")
    assert singer is not None and singer.primary_key == ["Singer_ID"] and singer.row_count == 6
    sic = cat.table("singer_in_concert")
    assert sic is not None and {fk.ref_table for fk in sic.foreign_keys} == {"singer", "concert"}
    assert concert_db.execute("SELECT Name FROM singer WHERE Singer_ID = 1").rows == [("Joe Sharp",)]


def test_schema_text_has_types_keys_samples(concert_db) -> None:
    from sqlsluice.text2sql.schema import sample_values

    cat = concert_db.catalog()
    text = schema_text(cat, samples=sample_values(concert_db, cat))
    assert "#stadium (9 rows)" in text
    assert "  Stadium_ID INTEGER PK" in text
    assert "FK Stadium_ID -> stadium.Stadium_ID" in text
    assert "Country VARCHAR  -- e.g. 'France'" in text


def test_value_lookup_maps_literals_to_stored_values(concert_db) -> None:
    cat = concert_db.catalog()
    hits = lookup_values(concert_db, cat, "Which singers come from the netherlands or France?")
    assert {(h.table, h.column, h.value) for h in hits} >= {("singer", "Country", "Netherlands"),
                                                            ("singer", "Country", "France")}


def test_bird_descriptions_and_linking_keep_large_schemas_small(shared_data: Path) -> None:
    cats = catalogs_from_tables_json(shared_data / "bird" / "dev_tables.json")
    cat = cats["card_games"]
    total = sum(len(t.columns) for t in cat.tables)
    assert total > 100
    desc = bird_descriptions("card_games", shared_data)
    assert "cards" in desc and desc["cards"]
    q = "What is the border color of the card named 'Ancestor''s Chosen' in the foreign language German?"
    linked = link_schema(q, cat, descriptions=desc, max_columns=40)
    assert "cards" in linked.tables and "foreign_data" in linked.tables
    assert linked.n_columns <= 45 and not linked.whole
    text = schema_text(cat, linked, descriptions=desc)
    assert "borderColor" in text and "language" in text
    assert text.count("\n") < 80


def test_spider_catalog_translates_mysql_ddl(shared_data: Path) -> None:
    cat = spider_catalog(shared_data / "spider" / "databases" / "pets_1")
    assert {t.name for t in cat.tables} == {"Student", "Has_Pet", "Pets"}


def test_bird_descriptions_are_found_by_database_name(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    """A DuckDB file named after a BIRD database gets BIRD's column descriptions in its schema text."""
    from sqlsluice.databases import connect
    from sqlsluice.text2sql.api import workspace

    monkeypatch.setenv("SLUICE_SHARED", str(shared_data.parent))
    b = connect(f"duckdb:///{tmp_path / 'superhero.duckdb'}")
    try:
        b.execute("CREATE TABLE superhero (id INTEGER PRIMARY KEY, superhero_name VARCHAR, full_name VARCHAR)")
        b.execute("INSERT INTO superhero VALUES (1, '3-D Man', 'Charles Chandler')")
        ws = workspace(b, "What is the full name of 3-D Man?", samples=False)
        assert "full_name VARCHAR  -- full name" in ws.schema
    finally:
        b.close()
