"""The floor under issue 11's CPU target: what writing Herald's own rows costs with nothing else.

`bench.delivery_bench` compares Herald with the raw limit: bare sqlite3 writing one channel, two
members and one message per recipient. Herald's guarantees need more rows than that, in two
databases (each service owns its own):

- segment_svc (EnsureChannels): the recipients' users read by keyset, the existing channels
  looked up, then one channel, two members (with the index by user) and one `ensured_channels`
  row (what a replayed batch gets back: the same channel, `created` the same);
- delivery_svc (a batch's transaction): the replay check over the recipient log, then one
  recipient-log row (exactly once), one message (with its indexes by channel and by campaign),
  two outbox events (`channel.created`, `message.new`: the contract's, in the batch's
  transaction) positioned in the same transaction, their four in-app index rows (`event_users`:
  who each event is for, read by SubscribeEvents), and the per-batch counters, usage and
  sequencer rows.

This benchmark writes exactly those rows — the tables made from the services' own SQLAlchemy
metadata, so their columns and indexes are the real ones — with bare sqlite3, executemany,
1,000 recipients a transaction as Herald's batches, and prints the CPU-seconds per 1,000
recipients beside the raw limit's and issue 11's target of 0.07 summed over the services. No
gRPC, no templates, no protos, no SQLAlchemy at run time: any Herald that keeps these rows costs
at least this much. `python -m bench.floor_bench [--recipients N]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, create_engine

from bench.delivery_bench import RAW_PER_TRANSACTION, RAW_SCHEMA, write_raw_batch
from services.delivery_svc import store as delivery_store
from services.segment_svc import store as segment_store

TARGET_CPU_PER_1000 = 0.07  # issue 11: CPU-seconds per 1,000 recipients, summed over the services
SENDER = "sender"
# A Channel as EnsureChannels answers it, serialized: the events' payload (about this size).
PAYLOAD = b"\n" + bytes(160)


def fresh_database(directory: Path, name: str, metadata: MetaData | None = None,
                   script: str = "") -> sqlite3.Connection:
    """A WAL database with synchronous=NORMAL (as Herald's and the raw limit's), its tables made
    from `metadata` (a service's) or `script`."""
    path = directory / f"{name}.db"
    if metadata is not None:
        engine = create_engine(f"sqlite:///{path}")
        metadata.create_all(engine)
        engine.dispose()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    if script:
        db.executescript(script)
    return db


def cpu_per_1000(recipients: int, write_batch: Callable[[int, int, str], None]) -> float:
    """CPU-seconds of this process per 1,000 recipients, writing them a batch at a time."""
    started = time.process_time()
    for start in range(0, recipients, RAW_PER_TRANSACTION):
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        write_batch(start, min(start + RAW_PER_TRANSACTION, recipients), now)
    return (time.process_time() - started) / recipients * 1000


def raw_rows(db: sqlite3.Connection) -> Callable[[int, int, str], None]:
    """The raw limit's rows, written as bench.delivery_bench measures them."""
    return lambda first, end, now: write_raw_batch(db, first, end, now)


def add_users(db: sqlite3.Connection, recipients: int) -> None:
    """The audience (untimed): users with a stored document of about the size Herald keeps."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    db.execute("BEGIN")
    db.executemany("INSERT INTO users (id, name, role, teams, custom, doc, created_at, updated_at) "
                   "VALUES (?, ?, 'user', '[]', '{}', ?, ?, ?)",
                   [(f"user-{i:07d}", f"User {i}", bytes(60), now, now) for i in range(recipients)]
                   + [(SENDER, "The Sender", bytes(60), now, now)])
    db.execute("COMMIT")


def segment_rows(db: sqlite3.Connection) -> Callable[[int, int, str], None]:
    """segment_svc's part: the audience read, the lookup and the rows of EnsureChannels."""
    last_id = ""

    def write(first: int, end: int, now: str) -> None:
        nonlocal last_id
        users = db.execute("SELECT id, name, role, teams, custom, doc FROM users WHERE id > ? AND id != ? "
                           "ORDER BY id LIMIT ?", (last_id, SENDER, end - first)).fetchall()
        last_id = users[-1][0]
        cids = [f"messaging:!members-{user[0]}-{SENDER}" for user in users]
        db.execute("BEGIN")
        db.execute("SELECT cid FROM channels WHERE cid IN (SELECT value FROM json_each(?))",
                   (json.dumps(cids),)).fetchall()
        db.executemany("INSERT INTO channels (cid, type, id, team, custom, created_by_id, created_at, updated_at) "
                       "VALUES (?, 'messaging', ?, '', '{}', ?, ?, ?)",
                       [(cid, cid[10:], SENDER, now, now) for cid in cids])
        db.executemany("INSERT INTO channel_members (cid, user_id, channel_role, hidden, custom, created_at) "
                       "VALUES (?, ?, ?, 0, '{}', ?)",
                       [row for cid, user in zip(cids, users)
                        for row in ((cid, user[0], "channel_member", now), (cid, SENDER, "owner", now))])
        db.executemany("INSERT INTO ensured_channels (campaign_id, recipient_id, cid, created, skip_reason, "
                       "created_at) VALUES ('campaign', ?, ?, 1, '', ?)",
                       [(user[0], cid, now) for cid, user in zip(cids, users)])
        db.execute("COMMIT")
    return write


def delivery_rows(db: sqlite3.Connection) -> Callable[[int, int, str], None]:
    """delivery_svc's part: one batch's transaction."""
    db.execute("INSERT INTO deliveries (campaign_id, snapshot, status, stop_reason, stop_message, cursor, "
               "created_at, updated_at, generation, rate, rate_base, "
               + ", ".join(delivery_store.COUNTERS) + ") VALUES ('campaign', x'', 1, 0, '', '', '', '', 0, 0, 0, "
               + ", ".join("0" for _ in delivery_store.COUNTERS) + ")")
    db.execute("INSERT INTO event_sequencer (id, last_position) VALUES (?, 0)", (delivery_store.SEQUENCER_ROW,))
    position = 0

    def write(first: int, end: int, now: str) -> None:
        nonlocal position
        targets = [f"user-{i:07d}" for i in range(first, end)]
        cids = [f"messaging:!members-{target}-{SENDER}" for target in targets]
        messages = [str(uuid.uuid4()) for _ in targets]
        members = [json.dumps([SENDER, target]) for target in targets]
        db.execute("BEGIN")
        db.execute("UPDATE deliveries SET updated_at = ? WHERE campaign_id = 'campaign' AND status = 1", (now,))
        db.execute("SELECT target_id FROM recipient_log WHERE campaign_id = 'campaign' AND target_id BETWEEN ? AND ?",
                   (targets[0], targets[-1])).fetchall()
        db.executemany("INSERT INTO recipient_log (campaign_id, target_id, status, reason, cid, message_id, "
                       "created_at) VALUES ('campaign', ?, 1, '', ?, ?, ?)",
                       [(target, cid, mid, now) for target, cid, mid in zip(targets, cids, messages)])
        db.executemany("INSERT INTO messages (id, cid, type, text, user_id, attachments, custom, poll_id, "
                       "created_by_campaign_id, created_at) VALUES (?, ?, 'regular', ?, ?, '[]', '{}', '', "
                       "'campaign', ?)",
                       [(mid, cid, f"Hi User {target[5:]}, The Sender has news for you!", SENDER, now)
                        for target, cid, mid in zip(targets, cids, messages)])
        last = position
        db.executemany("INSERT INTO events (id, type, campaign_id, cid, message_id, user_ids, payload, created_at, "
                       "position) VALUES (?, ?, 'campaign', ?, ?, ?, ?, ?, ?)",
                       [row for n, (cid, mid, users) in enumerate(zip(cids, messages, members))
                        for row in ((f"channel.created:campaign:{cid}", "channel.created", cid, "", users, PAYLOAD,
                                     now, last + 2 * n + 1),
                                    (f"message.new:{mid}", "message.new", cid, mid, users, PAYLOAD, now,
                                     last + 2 * n + 2))])
        position = through = last + 2 * len(targets)
        db.execute("INSERT INTO event_users (user_id, position) SELECT DISTINCT value, position "
                   "FROM events JOIN json_each(events.user_ids) WHERE position > ? AND position <= ?",
                   (last, through))
        db.execute("UPDATE event_sequencer SET last_position = ? WHERE id = ?", (through, delivery_store.SEQUENCER_ROW))
        db.execute("INSERT INTO monthly_usage (month, messages) VALUES ('2026-12', ?) "
                   "ON CONFLICT (month) DO UPDATE SET messages = messages + excluded.messages", (len(targets),))
        db.execute("UPDATE deliveries SET sent = sent + ?, cursor = ? WHERE campaign_id = 'campaign'",
                   (len(targets), targets[-1]))
        db.execute("COMMIT")
    return write


@dataclass
class Floor:
    """CPU-seconds per 1,000 recipients."""
    raw: float  # the raw limit's rows
    segment: float  # Herald's rows, segment_svc's database
    delivery: float  # Herald's rows, delivery_svc's database

    @property
    def total(self) -> float:
        return self.segment + self.delivery


def measure(recipients: int, directory: Path) -> Floor:
    """Writes the raw limit's rows and Herald's for `recipients` into new databases in `directory`."""
    raw = cpu_per_1000(recipients, raw_rows(fresh_database(directory, "raw", script=RAW_SCHEMA)))
    segment_db = fresh_database(directory, "segment", segment_store.metadata)
    add_users(segment_db, recipients)
    segment = cpu_per_1000(recipients, segment_rows(segment_db))
    delivery = cpu_per_1000(recipients, delivery_rows(fresh_database(directory, "delivery", delivery_store.metadata)))
    return Floor(raw, segment, delivery)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-floor-") as tmp:
        floor = measure(args.recipients, Path(tmp))
    print(f"recipients: {args.recipients:,}, {RAW_PER_TRANSACTION:,} a transaction; CPU-seconds per 1,000 recipients:")
    print(f"raw limit's rows (a channel, 2 members, a message): {floor.raw:.4f}")
    print(f"Herald's rows, segment_svc : {floor.segment:.4f}")
    print(f"Herald's rows, delivery_svc: {floor.delivery:.4f}")
    print(f"Herald's rows, total       : {floor.total:.4f}  ({floor.total / floor.raw:.2f}× the raw limit's; "
          f"{floor.total / TARGET_CPU_PER_1000:.2f} of issue 11's target of {TARGET_CPU_PER_1000} for everything)")


if __name__ == "__main__":
    main()
