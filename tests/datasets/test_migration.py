"""Migration 0002 adds format, meta and source_path to datasets, keeping existing rows readable."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from server.db import dispose_engines
from server.migrate import alembic_config, upgrade

ROW = (
    "INSERT INTO datasets (name, kind, sample_count, input_shape, num_classes, sha256, size_bytes, blob_key, "
    "created_at) VALUES ('old', 'uploaded', 3, '[4]', 2, :sha, 10, :sha, CURRENT_TIMESTAMP)"
)


def test_existing_rows_become_npz_with_empty_meta_and_downgrade_works(db_url):
    command.downgrade(alembic_config(db_url), "0001_initial")
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(ROW), {"sha": "a" * 64})
    upgrade(db_url)
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT format, meta, source_path FROM datasets")).one()
    assert row[0] == "npz" and row[1] in ({}, "{}") and row[2] is None
    command.downgrade(alembic_config(db_url), "0001_initial")
    with engine.begin() as conn:
        assert "format" not in {c["name"] for c in sa.inspect(conn).get_columns("datasets")}
    upgrade(db_url)
    engine.dispose()
    dispose_engines()
