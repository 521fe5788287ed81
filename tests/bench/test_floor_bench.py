"""bench.floor_bench writes the rows it says it measures, into the services' own tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.floor_bench import measure


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_each_recipient_gets_the_rows_herald_writes(tmp_path: Path):
    recipients = 2_500  # three transactions, the last one partial
    floor = measure(recipients, tmp_path)
    assert min(floor.raw, floor.segment, floor.delivery) > 0
    segment, delivery = tmp_path / "segment.db", tmp_path / "delivery.db"
    assert [count(segment, t) for t in ("channels", "channel_members", "ensured_channels")] == [
        recipients, 2 * recipients, recipients]
    assert [count(delivery, t) for t in ("recipient_log", "messages", "events", "event_users")] == [
        recipients, recipients, 2 * recipients, 4 * recipients]
    with sqlite3.connect(delivery) as db:
        assert db.execute("SELECT sent, cursor FROM deliveries").fetchone() == (recipients, f"user-{recipients - 1:07d}")
        positions = [p for (p,) in db.execute("SELECT position FROM events ORDER BY position")]
    assert positions == list(range(1, 2 * recipients + 1))
