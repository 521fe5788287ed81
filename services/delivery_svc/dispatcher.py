"""The dispatcher: hands the event log to each destination (webhook, push), at least once, with
a stable id, and never loses an event.

Each destination keeps a durable position (`dispatch_positions`): every event at or before it
is done for that destination — delivered, not for it (type, skip flag), or dead-lettered with
its dead letter committed. A runner reads windows of positioned events after its position (at
most WINDOW events open at once: memory stays flat), turns them into handoffs, and a fixed
number of workers (HERALD_WEBHOOK_CONCURRENCY) make the attempts. A failed attempt is tried
again after an exponential, jittered backoff (or the receiver's Retry-After) without holding a
worker; past the last attempt, or at once on a refusal, it becomes a dead letter. The position
moves only past the longest prefix of done events, and is written every COMMIT_INTERVAL_S in a
one-row transaction: a crash or kill -9 anywhere re-sends at most what was in flight, with the
same ids, and loses nothing.

Dispatch yields to sending: its own tasks, small transactions, no lock shared with the batch
writer, a slow or dead receiver only fills its own window, and while a campaign is being sent
in this process dispatch keeps to a tenth of the event loop (YieldToSending). An event still
undelivered once older than HERALD_EVENT_RETENTION_H becomes a dead letter when read, so
retention can prune it.
Replicas on PostgreSQL take turns per destination (DESIGN §10.4): a destination is dispatched
by the replica holding its session-level advisory lock (kit.advisory.while_holding), released by
the server when that replica's connection dies; another replica, asking every HERALD_LEASE_S / 3,
then takes over from the stored position (at least once: what was in flight is sent again).
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
from services.kit.advisory import lock_key, while_holding
from services.kit.config import Settings
from services.kit.db import transaction, utcnow, write_transaction

log = logging.getLogger("herald.delivery.dispatch")

READ_BATCH = 500  # events read at once
WINDOW = 2000  # events open (read, not yet done) at once, per destination
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
# Each destination's turn among replicas (an advisory lock key per destination).
LOCK_KEYS = {"webhook": lock_key("dw"), "push": lock_key("dp")}


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
    replay_id: str = ""
    attempts: int = 0
    first_attempt_at: dt.datetime | None = None
    last_attempt_at: dt.datetime | None = None
    last: Attempt | None = None


class Progress:
    """Which events of a window are done; `passed` is the end of the longest done prefix."""

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

    def _settle(self) -> None:
        while self._open:
            position, left = next(iter(self._open.items()))
            if left:
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
    """What a runner did, for logs and tests."""

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


class DestinationRunner:
    """Dispatches the event log to one destination."""

    def __init__(self, destination: Destination, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 flags: SkipFlags, letters: LetterSink, settings: DispatchSettings, yielding: YieldToSending,
                 metrics: DeliveryMetrics | None = None) -> None:
        self.destination = destination
        self.yielding = yielding
        self.name = destination.name
        self.sessions = sessions
        self.outbox = outbox
        self.flags = flags
        self.letters = letters
        self.settings = settings
        self.counters = Counters()
        self.progress = Progress(0)  # replaced by the stored position in run()
        self.committed = 0
        self.head = 0  # the last position of the log this runner has seen
        self._attempted = metrics.attempts(self.name) if metrics is not None else None
        self._dead_lettered = metrics.dead_letters(self.name) if metrics is not None else None
        self._read_to = 0  # the last position read (kept across a restart of the reading loop)
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._progressed = asyncio.Event()
        self._replay_wake = asyncio.Event()
        self._replaying: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    def wake_replays(self) -> None:
        self._replay_wake.set()

    async def load(self) -> None:
        """Learns the stored position. Done before the service serves or resumes a campaign: a
        destination met for the first time starts at the end of the log (no backlog flood), and
        an event written after that point must not be mistaken for backlog."""
        async with transaction(self.sessions) as session:
            start = await store.last_position(session)
            self.committed = await store.dispatch_position(session, self.name, start, utcnow())
        self.progress = Progress(self.committed)
        self._read_to = self.head = self.committed

    async def take_turn(self) -> None:
        """Dispatches from the stored position, after another replica's turn (or none): what this
        replica held in memory from an earlier turn is dropped (the stored position covers it)."""
        self._jobs = asyncio.Queue()
        self._replaying.clear()
        self._timers.clear()
        await self.load()
        await self.run()

    async def run(self) -> None:
        loops: list[Callable[[], Any]] = [self._read, self._commit, self._feed_replays]
        loops += [self._work] * self.settings.concurrency
        tasks = [asyncio.create_task(_forever(loop, f"{self.name} dispatch")) for loop in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
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
            async with self.yielding.turn():
                async with transaction(self.sessions) as session:
                    # Read first: every event up to it that the query should see, it sees.
                    last = await store.last_position(session)
                    rows = await store.events_after(session, read_to, READ_BATCH,
                                                    types=sorted(self.destination.types or ()))
                self.head = max(self.head, last)
                if rows:
                    events = await self._outbox_events(rows)
                    await self._open(events)
                    self._read_to = events[-1].position
            if not rows:
                # None of its types up to `last`: the destination has passed the others too.
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
            job = Job(handoff, campaigns[handoff.event.sequence], handoff.event.sequence)
            if handoff.event.created_at.ToDatetime(dt.timezone.utc) < expired_before:
                self._dead_letter(job, EXPIRED)
            else:
                self._jobs.put_nowait(job)

    # --- attempts ---

    async def _work(self) -> None:
        while True:
            job = await self._jobs.get()
            now = utcnow()
            job.first_attempt_at = job.first_attempt_at or now
            job.last_attempt_at = now
            job.attempts += 1
            try:
                async with self.yielding.turn():
                    attempt = await self.destination.attempt(job.handoff, job.attempts)
            except Exception as exc:  # noqa: BLE001 — a destination's bug must not lose the job
                log.exception("an attempt failed unexpectedly", extra={"destination": self.name})
                attempt = Attempt(Result.RETRY, error=f"internal error ({type(exc).__name__})")
            job.last = attempt
            counters = self.counters
            counters.attempts += 1
            if self._attempted is not None:
                self._attempted[attempt.result].inc()
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
            self._jobs.put_nowait(job)

        timer = asyncio.get_running_loop().call_later(delay, again)
        self._timers.add(timer)

    def _dead_letter(self, job: Job, error: str | None = None) -> None:
        self.counters.dead_lettered += 1
        log.warning("dead letter", extra={"destination": self.name, "campaign_id": job.campaign_id,
                                          "webhook_id": job.handoff.webhook_id,
                                          "type": job.handoff.event.type, "attempts": job.attempts,
                                          "error": error or (job.last.error if job.last else "")})
        self.letters.add(dead_letter(self.name, job, error), job.replay_id, lambda: self._dead_letter_committed(job))

    def _dead_letter_committed(self, job: Job) -> None:
        if self._dead_lettered is not None:
            self._dead_lettered.inc()
        self._done(job)

    def _finish(self, job: Job) -> None:
        if job.replay_id:
            self.letters.add(None, job.replay_id, lambda: self._done(job))
        else:
            self._done(job)

    def backlog(self, head: int) -> int:
        """Events (positions, gaps included) between the log's head and this destination's position."""
        return max(0, max(head, self.head) - self.progress.passed)

    def _done(self, job: Job) -> None:
        if job.position is not None:
            self.progress.done(job.position)
            self._progressed.set()
        else:
            self._replaying.discard(job.replay_id)

    # --- the position ---

    async def _commit(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            await self.save_position()

    async def save_position(self) -> None:
        passed = self.progress.passed
        if passed > self.committed:
            async with write_transaction(self.sessions) as session:
                await store.move_dispatch_position(session, self.name, passed, utcnow())
            self.committed = passed

    # --- replays ---

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
        job = Job(handoff or Handoff(event, row.webhook_id, row.device_id, row.url), row.campaign_id, None, row.id)
        if handoff is None:
            self._finish(job)  # nothing to send any more (push: the device is gone)
        else:
            self._jobs.put_nowait(job)


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
    """The runners of the configured destinations and what they share."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox,
                 destinations: Sequence[Destination], settings: DispatchSettings, *,
                 sending: Callable[[], bool] = lambda: False, metrics: DeliveryMetrics | None = None,
                 lease_s: float = 10.0) -> None:
        self.sessions = sessions
        self.lease_s = lease_s
        self.outbox = outbox
        self.letters = LetterSink(sessions)
        flags = SkipFlags(sessions)
        yielding = YieldToSending(sending)
        self.runners = {d.name: DestinationRunner(d, sessions, outbox, flags, self.letters, settings, yielding, metrics)
                        for d in destinations}
        if metrics is not None:
            metrics.watch_backlog(self.backlog)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def destinations(self) -> list[str]:
        return list(self.runners)

    async def start(self) -> None:
        for runner in self.runners.values():
            await runner.load()
        self._tasks = [asyncio.create_task(self.letters.run(), name="dead-letters")]
        self._tasks += [asyncio.create_task(self._dispatch(runner), name=f"dispatch:{name}")
                        for name, runner in self.runners.items()]

    async def _dispatch(self, runner: DestinationRunner) -> None:
        """SQLite: the one replica dispatches. PostgreSQL: whichever replica has the destination's turn."""
        engine = self.sessions.kw["bind"]
        if engine.dialect.name != "postgresql":
            await runner.run()
            return
        await while_holding(engine, LOCK_KEYS[runner.name], runner.take_turn, retry_s=max(0.1, self.lease_s / 3),
                            what=f"{runner.name} dispatch")

    def wake_replays(self) -> None:
        for runner in self.runners.values():
            runner.wake_replays()

    def backlog(self) -> dict[str, int]:
        """Each destination's backlog, from what this process knows (no query: it is read at
        every scrape, from the metrics endpoint's thread)."""
        head = self.outbox.positions.last
        return {name: runner.backlog(head) for name, runner in self.runners.items()}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # What is done is kept: dead letters waiting for their batch, then the positions past them.
        started = time.monotonic()
        try:
            await self.letters.flush()
            for runner in self.runners.values():
                await runner.save_position()
        except Exception:  # noqa: BLE001 — at shutdown; the next start re-sends from the stored position
            log.exception("saving dispatch progress at shutdown failed",
                          extra={"seconds": round(time.monotonic() - started, 3)})
        for runner in self.runners.values():
            await runner.destination.aclose()
