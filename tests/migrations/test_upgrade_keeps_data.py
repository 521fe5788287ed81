"""A database holding rows written at the first revision keeps them through `migrate` to head,
as the services read them (through today's tables).

A new revision adds its own assertions here: rows it must carry over or backfill, checked after
the upgrade, and rows of the tables it adds (LATER_REVISION_ROWS, written once the database is at
that revision). Rows are written through the tables as their revision made them (reflected from
the database), so they stay valid whatever later revisions change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from typing import Any

from sqlalchemy import MetaData, null, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from migrations.helpers import SCHEMAS, first_revision, head_revision, upgrade_to
from services.delivery_svc import store
from services.delivery_svc.sequencer import Positions, Sequencer
from services.kit.db import make_sessionmaker, transaction
from services.kit.migrate import Schema, migrate

T = dt.datetime(2026, 7, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)
LATER = T + dt.timedelta(hours=1)

Rows = dict[str, list[dict[str, Any]]]

# One or two rows per table of revision 1, in an order that satisfies foreign keys.
REVISION_1_ROWS: dict[str, Rows] = {
    "segment": {
        "users": [{"id": "u1", "name": "Ada", "role": "admin", "teams": ["red", "blue"],
                   "custom": {"plan": "pro", "n": 3}, "doc": b"\n\x02u1", "created_at": T, "updated_at": LATER}],
        "channels": [{"cid": "messaging:c1", "type": "messaging", "id": "c1", "team": "red", "custom": {"topic": "x"},
                      "created_by_id": "u1", "created_at": T, "updated_at": T}],
        "channel_members": [{"cid": "messaging:c1", "user_id": "u1", "channel_role": "channel_moderator",
                             "hidden": True, "archived_at": LATER, "custom": {}, "created_at": T}],
        "segments": [
            {"id": "s1", "type": "user", "name": "Fans", "description": "d", "filter": None, "all_users": False,
             "all_sender_channels": False, "size": 1, "size_dirty": False, "created_at": T, "updated_at": T},
            {"id": "s2", "type": "user", "name": "Pros", "description": "", "filter": {"plan": {"$eq": "pro"}},
             "all_users": False, "all_sender_channels": False, "size": 7, "size_dirty": True, "created_at": T,
             "updated_at": LATER}],
        "segment_targets": [{"segment_id": "s1", "target_id": "u1", "created_at": T}],
        "ensured_channels": [{"campaign_id": "k1", "recipient_id": "u1", "cid": "messaging:c1", "created": True,
                              "skip_reason": "", "created_at": T}],
    },
    "campaign": {
        "campaigns": [{
            "id": "k1", "instance": "0b7c0f7e-3c1c-4f0e-9a4e-5d1f00000001", "name": "Launch", "description": "d",
            "sender_id": "u1", "segment_ids": ["s1"], "segment_type": "user", "user_ids": [], "sender_mode": 1,
            "sender_visibility": 2, "message_template": {"text": "Hi {{ receiver.name }}"},
            "channel_template": None, "create_channels": True, "show_channels": False, "skip_push": True,
            "skip_webhook": False, "status": "in_progress", "stop_reason": 0, "stop_message": "",
            "scheduled_for": T, "stop_at": None, "start_owner": "campaign-abc", "start_claimed_at": T,
            "delivery_started": True, "progress": 0.5, "stats_started_at": T, "stats_completed_at": None,
            "stats_messages_sent": 5, "stats_channels_created": 2, "stats_users_sent": 5, "stats_users_read": 1,
            "recipients_total": 10, "recipients_skipped": 1, "recipients_failed": 0, "created_at": T,
            "updated_at": LATER}],
        "campaign_segments": [{"campaign_id": "k1", "segment_id": "s1"}],
        "retired_campaign_ids": [{"id": "k0", "retired_at": T}],
        "campaign_users": [{"campaign_id": "k1", "user_id": "u1"}],
        "campaign_events": [{"id": "campaign.started:k1:1", "campaign_id": "k1", "type": "campaign.started",
                             "payload": b"\x0a\x02k1", "created_at": T, "published_at": None}],
    },
    "delivery": {
        "deliveries": [{"campaign_id": "k1", "snapshot": b"\x0a\x02k1", "status": 2, "stop_reason": 0,
                        "stop_message": "", "cursor": "opaque-cursor", "recipients_total": None, "sent": 5,
                        "skipped": 1, "failed": 0, "messages_sent": 5, "channels_created": 2, "users_sent": 5,
                        "started_at": T, "completed_at": None, "created_at": T, "updated_at": LATER}],
        "messages": [{"id": "m1", "cid": "messaging:c1", "type": "regular", "text": "Hi Ada", "user_id": "u1",
                      "attachments": [{"type": "image"}], "custom": {}, "poll_id": "", "created_by_campaign_id": "k1",
                      "created_at": T}],
        "recipient_log": [{"campaign_id": "k1", "target_id": "u1", "status": 1, "reason": "", "cid": "messaging:c1",
                           "message_id": "m1", "created_at": T}],
        "reads": [{"campaign_id": "k1", "user_id": "u1", "created_at": LATER}],
        "events": [{"sequence": 1, "id": "message.new:m1", "type": "message.new", "campaign_id": "k1",
                    "cid": "messaging:c1", "message_id": "m1", "user_ids": ["u1"], "payload": b"", "created_at": T}],
        "monthly_usage": [{"month": "2026-07", "messages": 5}],
    },
}


# Rows of the tables later revisions add: service → revision → rows, written at that revision.
LATER_REVISION_ROWS: dict[str, dict[str, Rows]] = {
    "segment": {
        "0002": {"devices": [
            {"user_id": "u1", "id": "ep_0123", "provider": "webpush", "endpoint": "https://push.example/s/1",
             "keys": {"p256dh": "BPub", "auth": "c2VjcmV0"}, "created_at": T, "updated_at": LATER},
            {"user_id": "u1", "id": "phone", "provider": "http", "endpoint": "https://gw.example/d/2", "keys": {},
             "created_at": T, "updated_at": T}]},
    },
    "delivery": {
        # One position per destination (revision 0008 makes each the one shard of one).
        "0003": {"dispatch_positions": [{"destination": "push", "position": 7, "updated_at": T},
                                        {"destination": "webhook", "position": 41, "updated_at": LATER}]},
    },
}


async def test_rows_written_at_each_revision_survive_the_upgrade_to_head(schema: Schema, new_engine):
    engine = await new_engine(schema.service)
    await upgrade_to(engine, schema, first_revision(schema))
    rows = REVISION_1_ROWS[schema.service]
    assert set(rows) == schema.first_revision_tables
    await write_as_built(engine, rows)
    for revision, added in LATER_REVISION_ROWS.get(schema.service, {}).items():
        await upgrade_to(engine, schema, revision)
        await write_as_built(engine, added)
        rows = {**rows, **added}

    assert await migrate(engine, schema) == head_revision(schema)

    for table, written in rows.items():
        assert await read_as_served(engine, schema, table, written) == written, table


# A later revision that SQLite can only make by copying the table and dropping the old one.
COPYING_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "copying"
down_revision = "{head}"


def upgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.alter_column("description", existing_type=sa.String(), nullable=True)
'''


async def test_a_later_revision_copying_a_table_keeps_the_rows_that_reference_it(new_engine, tmp_path):
    segment = SCHEMAS["segment"]
    scripts = tmp_path / "migrations"
    shutil.copytree(segment.script_location, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "copying.py").write_text(COPYING_REVISION.format(head=head_revision(segment)))
    engine = await new_engine("segment")
    await upgrade_to(engine, segment, first_revision(segment))
    rows = REVISION_1_ROWS["segment"]
    await write_as_built(engine, rows)

    assert await migrate(engine, dataclasses.replace(segment, script_location=scripts)) == "copying"

    # segment_targets references segments ON DELETE CASCADE: dropping the old copy must not empty it.
    targets = rows["segment_targets"]
    assert await read_as_served(engine, segment, "segment_targets", targets) == targets


async def write_as_built(engine: AsyncEngine, rows: Rows) -> None:
    """Inserts through the tables the database holds now (reflected), not today's models."""

    def write(connection: Connection) -> None:
        built = MetaData()
        built.reflect(connection, only=list(rows))
        for table, values in rows.items():
            # None is SQL NULL, as the services write it (not JSON null in a JSON column).
            nulls = [{column: null() if value is None else value for column, value in row.items()} for row in values]
            connection.execute(built.tables[table].insert().values(nulls))

    async with engine.begin() as connection:
        await connection.run_sync(write)


async def read_as_served(engine: AsyncEngine, schema: Schema, table: str,
                         written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The written rows' columns, read back through the service's own table, in key order."""
    served = schema.metadata.tables[table]
    async with engine.connect() as connection:
        result = await connection.execute(select(served).order_by(*served.primary_key.columns))
        return [{column: row[column] for column in written[0]} for row in result.mappings()]


async def test_events_from_before_positions_get_theirs_from_the_sequencer(new_engine):
    # Revision 0002: events written before positions existed are positioned, in insertion order.
    delivery = SCHEMAS["delivery"]
    engine = await new_engine("delivery")
    await upgrade_to(engine, delivery, first_revision(delivery))
    await write_as_built(engine, {"events": [
        {**REVISION_1_ROWS["delivery"]["events"][0], "sequence": n, "id": f"message.new:m{n}"} for n in (1, 2)]})
    await migrate(engine, delivery)

    sessions = make_sessionmaker(engine)
    assert await Sequencer(sessions, Positions()).sequence_once() == 2
    async with transaction(sessions) as session:
        rows = await store.events_after(session, 0, 10)
    assert [row.id for row in rows] == ["message.new:m1", "message.new:m2"]


async def test_a_destination_s_position_from_before_shards_is_where_its_shards_start(new_engine):
    # Revision 0008: the one position of a destination becomes shard 0 of 1, and shards of any
    # count then start there: no event sent again, none skipped.
    delivery = SCHEMAS["delivery"]
    engine = await new_engine("delivery")
    await upgrade_to(engine, delivery, "0007")
    await write_as_built(engine, LATER_REVISION_ROWS["delivery"]["0003"])
    await migrate(engine, delivery)

    async with transaction(make_sessionmaker(engine)) as session:
        assert await store.shard_positions(session, "webhook", 1) == {0: 41}
        assert await store.claim_dispatch_shards(session, "webhook", 4, 0, LATER) == {0: 41, 1: 41, 2: 41, 3: 41}
        assert await store.dispatch_positions_of(session, ["webhook", "push"]) == {"webhook": 41, "push": 7}
