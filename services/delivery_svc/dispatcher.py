"""The dispatcher: hands the event log to each destination (webhook, push), at least once, with
a stable id, and never loses an event.

Each destination's log is cut into shards (HERALD_DISPATCH_SHARDS, K): shard k holds the events
whose position % K = k, but for the campaigns' own events (campaign.*, a few per campaign), which
all go to shard 0. Each shard keeps a durable position (`dispatch_positions`): every event
of the shard at or before it is done for the destination — delivered, not for it (type, skip
flag), or dead-lettered with its dead letter committed. A shard's runner reads windows of its
events after its position (at most WINDOW events open at once: memory stays flat) and turns them
into handoffs; a fixed number of workers per destination (HERALD_WEBHOOK_CONCURRENCY) make the
attempts of every shard this replica runs. A failed attempt is tried again after an
exponential, jittered backoff (or the receiver's Retry-After) without holding a worker; past the
last attempt, or at once on a refusal, it becomes a dead letter. A position moves only past the
longest prefix of done events, and is written every COMMIT_INTERVAL_S in a one-row transaction:
a crash or kill -9 anywhere re-sends at most what was in flight, with the same ids, and loses
nothing.

Why shards by position modulo K, not by a hash of the channel or the campaign: a campaign's events
spread evenly over the shards, so one big campaign's webhooks go out through every replica (by
campaign, a campaign would stay on one replica), and a shard is a plain SQL condition on both
backends (a hash would need a key stored with each event). Nothing promised is lost. Receivers
were promised no arrival order among messages — HERALD_WEBHOOK_CONCURRENCY POSTs are in flight
at once and a retried event arrives after later ones, so even a channel's channel.created and
message.new could cross — but a campaign's own events come in their order, and its end after
its messages (DESIGN §10.1). So the campaign events all go through shard 0, queued in log
order and sent one at a time (each once the one before it is done), and a campaign's end or
pause (campaign.completed / stopped / paused, each written after the batches it follows) is a
fence: it is attempted only once every earlier event of its shard is done and every other
shard's stored position has reached it (delivered or dead-lettered, each).

Dispatch yields to sending: its own tasks, small transactions, no lock shared with the batch
writer, a slow or dead receiver only fills its own window, and while a campaign is being sent
in this process dispatch keeps to a tenth of the event loop (YieldToSending). An event still
undelivered once older than HERALD_EVENT_RETENTION_H becomes a dead letter when read, so
retention can prune it. Replayed dead letters are sent by whoever runs shard 0.

Replicas on PostgreSQL share the shards (DESIGN §10.4): a shard is dispatched by the replica
holding its session-level advisory lock, and the replicas alive share each destination's shards
evenly (kit.advisory.SharedTurns, looking every HERALD_LEASE_S / 3); the server releases a dead
replica's locks with its connection, and another replica takes its shards over from their
stored positions (at least once: what was in flight is sent again). On SQLite the one replica
runs every shard.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.campaign.v1 import campaign_pb2
from herald.delivery.v1 import delivery_pb2
from services.delivery_svc import convert, store
from services.delivery_svc.destinations import Attempt, Destination, Handoff, OutboxEvent, Result
from services.delivery_svc.letter_sink import LetterSink
from services.delivery_svc.metrics import DeliveryMetrics
from services.delivery_svc.outbox import Outbox
from services.kit.advisory import SharedTurns, lock_key, numbered_lock_key
from services.kit.config import Settings
from services.kit.db import transaction, utcnow, write_transaction
from services.kit.event_types import CAMPAIGN_COMPLETED, CAMPAIGN_EVENTS, CAMPAIGN_PAUSED, CAMPAIGN_STOPPED

log = logging.getLogger("herald.delivery.dispatch")

READ_BATCH = 500  # events read at once
WINDOW = 2000  # events open (read, not yet done) at once, per shard
COMMIT_INTERVAL_S = 0.25  # how often a moved position is written
IDLE_WAIT_S = 5.0  # a runner with nothing to read waits this long for new positions (woken sooner)
REPLAY_POLL_S = 1.0  # how often the replay queue is looked at (ReplayDeadLetters wakes it sooner)
REPLAYS_IN_FLIGHT = 500
RETRY_AFTER_CAP_S = 600.0  # the longest Retry-After honoured
ERROR_BACKOFF_S = 1.0
FLAGS_CACHED = 10_000  # campaigns whose skip flags are kept in memory
# While a campaign is being sent in this process, dispatch takes at most this share of the event
# loop (it shares the process with the sending; a POST costs about a millisecond of CPU).
SHARE_WHILE_SENDING = 0.1
EXPIRED = "not delivered within HERALD_EVENT_RETENTION_H"
# A shard's turn among replicas: an advisory lock per (destination, shard count, shard).
LOCK_TAGS = {"webhook": "dw", "push": "dp"}
PRESENCE_KEY = lock_key("dr")  # held shared by every dispatching replica: counts the replicas alive
# A campaign's end or pause, written once its batches committed: attempted only once every earlier
# event of every shard is done (the fence).
FENCED = frozenset({CAMPAIGN_COMPLETED, CAMPAIGN_STOPPED, CAMPAIGN_PAUSED})
FENCE_POLL_S = 0.1  # how often a fenced event looks at the other shards' positions
PEERS_REFRESH_S = 2.0  # how often the other shards' positions are read for the backlog metric


@dataclass(frozen=True)
class DispatchSettings:
    max_attempts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    concurrency: int = 16
    retention_h: float = 24.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchSettings:
        return cls(max(1, settings.webhook_max_attempts), max(0.0, settings.webhook_backoff_s),
                   max(0.0, settings.webhook_backoff_max_s), max(1, settings.webhook_concurrency),
                   settings.event_retention_h)

    def backoff(self, attempts: int, retry_after_s: float | None) -> float:
        """The wait before attempt `attempts + 1`: exponential, full-jittered in its upper half,
        and never less than the receiver's Retry-After."""
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempts - 1))
        delay = random.uniform(delay / 2, delay)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, RETRY_AFTER_CAP_S))
        return delay


@dataclass(slots=True)
class Job:
    """One handoff on its way, with the history its dead letter would tell."""

    handoff: Handoff
    campaign_id: str
    position: int | None  # None: a replay
    owner: ShardRunner
    turn: int  # the owner's turn it belongs to: a job of an ended turn is dropped
    replay_id: str = ""
    in_order: bool = False  # a campaign event, sent after the one before it was done
    attempts: int = 0
    first_attempt_at: dt.datetime | None = None
    last_attempt_at: dt.datetime | None = None
    last: Attempt | None = None


class Progress:
    """Which events of a shard's window are done; `passed` is the end of the longest done prefix,
    up to the position before the first event still open (events come in position order, so
    none of the shard's is between)."""

    def __init__(self, passed: int) -> None:
        self.passed = passed
        self._open: collections.OrderedDict[int, int] = collections.OrderedDict()  # position → handoffs left

    @property
    def open(self) -> int:
        return len(self._open)

    def add(self, position: int, handoffs: int) -> None:
        self._open[position] = handoffs
        self._settle()

    def skip_to(self, position: int) -> None:
        """Nothing for the destination up to `position`: passed, once what is open is done."""
        if position > self.passed:
            self.add(position, 0)

    def done(self, position: int) -> None:
        self._open[position] -= 1
        self._settle()

    def first_open(self) -> int | None:
        return next(iter(self._open), None)

    def _settle(self) -> None:
        while self._open:
            position, left = next(iter(self._open.items()))
            if left:
                self.passed = max(self.passed, position - 1)
                return
            self._open.popitem(last=False)
            self.passed = position


class SkipFlags:
    """Campaigns' skip_push / skip_webhook, read from their delivery's snapshot once each (they
    cannot change once a campaign started). A campaign without a delivery yet (tested before it
    started, or stopped before it began) has those of its latest test send, read every time: its
    flags may still change, and it may start."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._known: dict[str, tuple[bool, bool]] = {}

    async def of(self, campaign_ids: set[str]) -> dict[str, tuple[bool, bool]]:
        missing = [c for c in campaign_ids if c and c not in self._known]
        tested: dict[str, tuple[bool, bool]] = {}
        if missing:
            if len(self._known) + len(missing) > FLAGS_CACHED:
                self._known.clear()
            async with transaction(self.sessions) as session:
                for row in await store.get_deliveries(session, missing):
                    snapshot = campaign_pb2.Campaign.FromString(row.snapshot)
                    self._known[row.campaign_id] = (snapshot.skip_push, snapshot.skip_webhook)
                unstarted = [c for c in missing if c not in self._known]
                if unstarted:
                    tested = await store.test_send_flags(session, unstarted)
        return {c: self._known.get(c) or tested.get(c, (False, False)) for c in campaign_ids}


def dead_letter(destination: str, job: Job, error: str | None = None) -> dict[str, Any]:
    """The dead_letters row of a job that failed every attempt, was refused, or expired."""
    handoff, last = job.handoff, job.last
    return {"id": str(uuid.uuid4()), "destination": destination, "webhook_id": handoff.webhook_id,
            "event_id": handoff.event.id, "type": handoff.event.type, "campaign_id": job.campaign_id,
            "device_id": handoff.device_id, "url": handoff.url, "attempts": job.attempts,
            "last_http_status": last.http_status if last else 0,
            "last_error": error if error is not None else (last.error if last else ""),
            "event": handoff.event.SerializeToString(), "first_attempt_at": job.first_attempt_at,
            "last_attempt_at": job.last_attempt_at, "created_at": utcnow()}


@dataclass
class Counters:
    """What a destination's attempts did on this replica, for logs and tests."""

    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    attempts: int = 0


class YieldToSending:
    """Dispatch yields to sending: while `sending()` says a campaign is being sent in this process,
    dispatch work goes one turn at a time, each followed by a pause long enough to keep it to
    SHARE_WHILE_SENDING of the time; otherwise turns run freely."""

    def __init__(self, sending: Callable[[], bool], share: float = SHARE_WHILE_SENDING) -> None:
        self.sending = sending
        self.pause_factor = 1 / share - 1
        self._turn = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if not self.sending():
            yield
            return
        async with self._turn:
            started = time.monotonic()
            try:
                yield
            finally:
                await asyncio.sleep((time.monotonic() - started) * self.pause_factor)


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `number` of a destination's `count`: the events whose position % count = number."""

    destination: str
    number: int
    count: int

    @property
    def lock_key(self) -> int:
        return numbered_lock_key(LOCK_TAGS[self.destination], self.count << 8 | self.number)

    def __str__(self) -> str:
        return f"{self.destination} {self.number}/{self.count}"


class Attempts:
    """A destination's attempts on this replica: HERALD_WEBHOOK_CONCURRENCY workers taking the
    jobs of every shard it runs from one queue; each outcome goes back to the job's shard."""

    def __init__(self, destination: Destination, settings: DispatchSettings, yielding: YieldToSending,
                 metrics: DeliveryMetrics | None) -> None:
        self.destination = destination
        self.settings = settings
        self.yielding = yielding
        self.counters = Counters()
        self.attempted = metrics.attempts(destination.name) if metrics is not None else None
        self.dead_lettered = metrics.dead_letters(destination.name) if metrics is not None else None
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()

    async def run(self) -> None:
        workers = [asyncio.create_task(_forever(self._work, f"{self.destination.name} attempts"))
                   for _ in range(self.settings.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            job = await self.jobs.get()
            if not job.owner.holds(job):
                continue  # its shard's turn ended: whoever has it now sends it again
            now = utcnow()
            job.first_attempt_at = job.first_attempt_at or now
            job.last_attempt_at = now
            job.attempts += 1
            try:
                async with self.yielding.turn():
                    attempt = await self.destination.attempt(job.handoff, job.attempts)
            except Exception as exc:  # noqa: BLE001 — a destination's bug must not lose the job
                log.exception("an attempt failed unexpectedly", extra={"destination": self.destination.name})
                attempt = Attempt(Result.RETRY, error=f"internal error ({type(exc).__name__})")
            job.last = attempt
            self.counters.attempts += 1
            if self.attempted is not None:
                self.attempted[attempt.result].inc()
            if job.turn == job.owner.turn:
                job.owner.settle(job, attempt)


class ShardPositions:
    """The stored positions of a destination's shards, as last read: what a fence waits for, and
    the backlog of the shards another replica runs."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], destination: str, count: int) -> None:
        self.sessions = sessions
        self.destination = destination
        self.count = count
        self.stored: dict[int, int] = {}
        self._read_at = -float("inf")

    async def refresh(self, max_age_s: float = 0.0) -> None:
        """Reads them again, unless read within `max_age_s` (one shard: nothing to read)."""
        if self.count > 1 and time.monotonic() - self._read_at >= max_age_s:
            async with transaction(self.sessions) as session:
                self.stored = await store.shard_positions(session, self.destination, self.count)
            self._read_at = time.monotonic()

    def others_reached(self, shard: int, position: int) -> bool:
        """Whether every shard but `shard` has passed every event of its before `position`."""
        return all(self.stored.get(other, 0) >= position - 1 for other in range(self.count) if other != shard)


class ShardRunner:
    """Dispatches one shard of a destination, while this replica has its turn."""

    def __init__(self, shard: Shard, attempts: Attempts, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 flags: SkipFlags, letters: LetterSink, peers: ShardPositions) -> None:
        self.shard = shard
        self.attempts = attempts
        self.destination = attempts.destination
        self.name = shard.destination
        self.settings = attempts.settings
        self.sessions = sessions
        self.outbox = outbox
        self.flags = flags
        self.letters = letters
        self.peers = peers
        self.turn = 0  # this replica's turns at the shard, counted; 0: not running it
        self.running = False
        self.progress = Progress(0)
        self.committed = 0
        self.head = 0  # the last position of the log this runner has seen
        self._read_to = 0  # the last position read (kept across a restart of the reading loop)
        self._progressed = asyncio.Event()
        # Campaign events, sent one at a time in log order; ends and pauses after every earlier event.
        self._held: collections.deque[Job] = collections.deque()
        self._held_out = 0  # the campaign event sent and not done yet (0 or 1)
        self._held_wake = asyncio.Event()
        self._replay_wake = asyncio.Event()
        self._replaying: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    def start_at(self, position: int) -> None:
        """Starts a turn at the shard's stored position: what an earlier turn held is dropped."""
        self.turn += 1
        self.committed = position
        self.progress = Progress(position)
        self._read_to = self.head = position
        self._held.clear()
        self._held_out = 0
        self._replaying.clear()
        self._timers.clear()

    def holds(self, job: Job) -> bool:
        """Whether the job is still this replica's to attempt (its turn at the shard goes on)."""
        return self.running and job.turn == self.turn

    def wake_replays(self) -> None:
        self._replay_wake.set()

    @property
    def passed(self) -> int:
        return self.progress.passed

    async def take_turn(self) -> None:
        """Dispatches from the stored position, after another replica's turn (or none); the
        position reached is stored as the turn ends (given up, or the service stopping)."""
        async with transaction(self.sessions) as session:
            start = await store.last_position(session)
            positions = await store.claim_dispatch_shards(session, self.name, self.shard.count, start, utcnow())
        self.start_at(positions[self.shard.number])
        try:
            await self.run()
        finally:
            with contextlib.suppress(Exception):  # the database away: the next turn re-sends a little more
                await self.save_position()

    async def run(self) -> None:
        loops: list[Callable[[], Any]] = [self._read, self._commit, self._release_held]
        if self.shard.number == 0:
            loops.append(self._feed_replays)
        tasks = [asyncio.create_task(_forever(loop, f"{self.shard} dispatch")) for loop in loops]
        self.running = True
        try:
            await asyncio.gather(*tasks)
        finally:
            self.running = False
            for task in tasks:
                task.cancel()
            for timer in self._timers:
                timer.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- reading the log ---

    async def _read(self) -> None:
        progress = self.progress
        while True:
            read_to = self._read_to
            # Refill a whole read at a time: one query per event done would cost more than the POSTs.
            if WINDOW - progress.open < READ_BATCH:
                self._progressed.clear()
                await self._progressed.wait()
                continue
            async with self.attempts.yielding.turn():
                async with transaction(self.sessions) as session:
                    # Read first: every event up to it that the query should see, it sees.
                    last = await store.last_position(session)
                    rows = await store.events_after(session, read_to, READ_BATCH,
                                                    types=sorted(self.destination.types or ()),
                                                    shard=(self.shard.number, self.shard.count))
                self.head = max(self.head, last)
                if rows:
                    events = await self._outbox_events(rows)
                    await self._open(events)
                    self._read_to = events[-1].position
            if not rows:
                # None of its types up to `last`: the shard has passed the others too.
                if last > read_to:
                    progress.skip_to(last)
                    self._read_to = last
                await self.outbox.wait_for_more(max(read_to, last), IDLE_WAIT_S)

    async def _outbox_events(self, rows: Sequence[Any]) -> list[OutboxEvent]:
        flags = await self.flags.of({row.campaign_id for row in rows})
        return [OutboxEvent(row.position, convert.event(row), row.campaign_id, *flags[row.campaign_id])
                for row in rows]

    async def _open(self, events: list[OutboxEvent]) -> None:
        """Queues the handoffs of the events the destination takes; the others are done at once.
        A destination that cannot say its handoffs (push: the directory down) is asked again."""
        taken = [e for e in events if self.destination.takes(e)]
        while True:
            try:
                handoffs = await self.destination.handoffs(taken) if taken else []
                break
            except Exception:  # noqa: BLE001 — the same window again, after a pause
                log.exception("preparing handoffs failed", extra={"destination": self.name})
                await asyncio.sleep(ERROR_BACKOFF_S)
        per_event = collections.Counter(h.event.sequence for h in handoffs)
        campaigns = {e.position: e.campaign_id for e in events}
        expired_before = utcnow() - dt.timedelta(hours=self.settings.retention_h)
        for event in events:
            self.progress.add(event.position, per_event[event.position])
        for handoff in handoffs:
            job = Job(handoff, campaigns[handoff.event.sequence], handoff.event.sequence, self, self.turn)
            if handoff.event.created_at.ToDatetime(dt.timezone.utc) < expired_before:
                self._dead_letter(job, EXPIRED)
            elif handoff.event.type in CAMPAIGN_EVENTS:
                self._held.append(job)
                self._held_wake.set()
            else:
                self.attempts.jobs.put_nowait(job)

    async def _release_held(self) -> None:
        """Hands the campaign events to the workers one at a time, in log order, each once the one
        before it is done; a campaign's end or pause once every earlier event of this shard is
        done and every other shard's stored position has reached it (looked at every
        FENCE_POLL_S, and whenever an event of this shard is done)."""
        while True:
            self._held_wake.clear()
            if not self._held or self._held_out:
                await self._held_wake.wait()
                continue
            job = self._held[0]
            assert job.position is not None
            if job.handoff.event.type not in FENCED or await self._fence_passed(job.position):
                job.in_order = True
                self._held_out += 1
                self.attempts.jobs.put_nowait(self._held.popleft())
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._held_wake.wait(), FENCE_POLL_S)

    async def _fence_passed(self, position: int) -> bool:
        if self.progress.first_open() != position:
            return False
        await self.peers.refresh(FENCE_POLL_S)
        return self.peers.others_reached(self.shard.number, position)

    # --- outcomes ---

    def settle(self, job: Job, attempt: Attempt) -> None:
        counters = self.attempts.counters
        if attempt.result in (Result.DELIVERED, Result.GONE):
            counters.delivered += 1
            self._finish(job)
        elif attempt.result is Result.RETRY and job.attempts < self.settings.max_attempts:
            counters.retried += 1
            self._retry_later(job, self.settings.backoff(job.attempts, attempt.retry_after_s))
        else:
            self._dead_letter(job)

    def _retry_later(self, job: Job, delay: float) -> None:
        def again() -> None:
            self._timers.discard(timer)
            self.attempts.jobs.put_nowait(job)

        timer = asyncio.get_running_loop().call_later(delay, again)
        self._timers.add(timer)

    def _dead_letter(self, job: Job, error: str | None = None) -> None:
        self.attempts.counters.dead_lettered += 1
        log.warning("dead letter", extra={"destination": self.name, "campaign_id": job.campaign_id,
                                          "webhook_id": job.handoff.webhook_id,
                                          "type": job.handoff.event.type, "attempts": job.attempts,
                                          "error": error or (job.last.error if job.last else "")})
        self.letters.add(dead_letter(self.name, job, error), job.replay_id, lambda: self._dead_letter_committed(job))

    def _dead_letter_committed(self, job: Job) -> None:
        if self.attempts.dead_lettered is not None:
            self.attempts.dead_lettered.inc()
        self._done(job)

    def _finish(self, job: Job) -> None:
        if job.replay_id:
            self.letters.add(None, job.replay_id, lambda: self._done(job))
        else:
            self._done(job)

    def _done(self, job: Job) -> None:
        if job.turn != self.turn:
            return  # done in an earlier turn: the position that turn stored did not count on it
        if job.position is not None:
            self.progress.done(job.position)
            self._progressed.set()
        else:
            self._replaying.discard(job.replay_id)
        if job.in_order:
            self._held_out -= 1
        if self._held:
            self._held_wake.set()

    # --- the position ---

    async def _commit(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await self.save_position()

    async def save_position(self) -> None:
        passed = self.progress.passed
        if passed > self.committed:
            shard = self.shard
            async with write_transaction(self.sessions) as session:
                await store.move_dispatch_position(session, shard.destination, shard.count, shard.number, passed,
                                                   utcnow())
            self.committed = passed

    # --- replays (shard 0's) ---

    async def _feed_replays(self) -> None:
        after: tuple[dt.datetime, str] | None = None
        while True:
            room = REPLAYS_IN_FLIGHT - len(self._replaying)
            rows = []
            if room > 0:
                async with transaction(self.sessions) as session:
                    rows = await store.queued_replays(session, self.name, after, room)
            if not rows:
                after = None  # from the start again next time: the queue's order is by queueing time
                self._replay_wake.clear()
                try:
                    await asyncio.wait_for(self._replay_wake.wait(), REPLAY_POLL_S)
                except TimeoutError:
                    pass
                continue
            after = (rows[-1].created_at, rows[-1].id)
            for row in rows:
                if row.id not in self._replaying:
                    await self._replay(row)

    async def _replay(self, row: Any) -> None:
        event = delivery_pb2.Event.FromString(row.event)
        handoff = await self.destination.replay(event, row.webhook_id, row.device_id)
        self._replaying.add(row.id)
        job = Job(handoff or Handoff(event, row.webhook_id, row.device_id, row.url), row.campaign_id, None, self,
                  self.turn, row.id)
        if handoff is None:
            self._finish(job)  # nothing to send any more (push: the device is gone)
        else:
            self.attempts.jobs.put_nowait(job)


async def _forever(loop: Callable[[], Any], what: str) -> None:
    """Runs a runner's loop; an unexpected failure (the database restarting) restarts it."""
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — dispatch must outlive a failed round
            log.exception("dispatch loop failed; restarting it", extra={"loop": what})
            await asyncio.sleep(ERROR_BACKOFF_S)



class Dispatcher:
    """The shards of the configured destinations, their workers, and what they share."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 destinations: Sequence[Destination], settings: DispatchSettings, *,
                 sending: Callable[[], bool] = lambda: False, metrics: DeliveryMetrics | None = None,
                 lease_s: float = 10.0, shards: int = 1) -> None:
        self.sessions = sessions
        self.lease_s = lease_s
        self.outbox = outbox
        self.shard_count = max(1, shards)
        self.letters = LetterSink(sessions)
        flags = SkipFlags(sessions)
        yielding = YieldToSending(sending)
        self.attempts = {d.name: Attempts(d, settings, yielding, metrics) for d in destinations}
        self.peers = {d.name: ShardPositions(sessions, d.name, self.shard_count) for d in destinations}
        self.shards = {name: [ShardRunner(Shard(name, number, self.shard_count), attempts, sessions, outbox, flags,
                                          self.letters, self.peers[name]) for number in range(self.shard_count)]
                       for name, attempts in self.attempts.items()}
        if metrics is not None:
            metrics.watch_backlog(self.backlog)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def destinations(self) -> list[str]:
        return list(self.attempts)

    def counters(self, destination: str) -> Counters:
        return self.attempts[destination].counters

    async def start(self) -> None:
        """Fixes every shard's position before the service serves: a destination met for the first
        time starts at the end of the log (no backlog flood), and an event written after that
        point must not be mistaken for backlog."""
        async with transaction(self.sessions) as session:
            start = await store.last_position(session)
            for name, runners in self.shards.items():
                positions = await store.claim_dispatch_shards(session, name, self.shard_count, start, utcnow())
                for runner in runners:
                    runner.start_at(positions[runner.shard.number])
                self.peers[name].stored = positions
        self._tasks = [asyncio.create_task(self.letters.run(), name="dead-letters")]
        self._tasks += [asyncio.create_task(attempts.run(), name=f"dispatch:{name}")
                        for name, attempts in self.attempts.items()]
        self._tasks.append(asyncio.create_task(self._dispatch(), name="dispatch-shards"))

    async def _dispatch(self) -> None:
        """SQLite: the one replica runs every shard. PostgreSQL: the shards whose turns it holds."""
        engine = self.sessions.kw["bind"]
        if engine.dialect.name != "postgresql":
            await asyncio.gather(*(runner.run() for runners in self.shards.values() for runner in runners))
            return
        by_key = {runner.shard.lock_key: runner for runners in self.shards.values() for runner in runners}
        turns = SharedTurns(engine, [[runner.shard.lock_key for runner in runners] for runners in self.shards.values()],
                            lambda key: by_key[key].take_turn(), presence=PRESENCE_KEY,
                            retry_s=max(0.1, self.lease_s / 3), what="event dispatch")
        await asyncio.gather(turns.run(), _forever(self._refresh_peers, "dispatch positions"))

    async def _refresh_peers(self) -> None:
        """Keeps the positions of the shards other replicas run fresh enough for the backlog metric."""
        while True:
            await asyncio.sleep(PEERS_REFRESH_S)
            for peers in self.peers.values():
                await peers.refresh()

    def wake_replays(self) -> None:
        for runners in self.shards.values():
            runners[0].wake_replays()

    def backlog(self) -> dict[str, int]:
        """Each destination's backlog: positions between the log's head and its slowest shard's
        position, from what this process knows (no query: it is read at every scrape, from the
        metrics endpoint's thread; the shards other replicas run, as last read)."""
        head = self.outbox.positions.last
        backlog = {}
        for name, runners in self.shards.items():
            stored = self.peers[name].stored
            passed = min(runner.passed if runner.running else max(runner.passed, stored.get(runner.shard.number, 0))
                         for runner in runners)
            backlog[name] = max(0, max(head, *(runner.head for runner in runners)) - passed)
        return backlog

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # What is done is kept: dead letters waiting for their batch, then the positions past them.
        started = time.monotonic()
        try:
            await self.letters.flush()
            for runners in self.shards.values():
                for runner in runners:
                    await runner.save_position()
        except Exception:  # noqa: BLE001 — at shutdown; the next start re-sends from the stored position
            log.exception("saving dispatch progress at shutdown failed",
                          extra={"seconds": round(time.monotonic() - started, 3)})
        for attempts in self.attempts.values():
            await attempts.destination.aclose()
