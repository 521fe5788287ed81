"""The sending engine: one asyncio task per in-progress delivery (run.py says what a run
guarantees), launched, resumed after a restart, stopped and cancelled here.

PostgreSQL replicas (DESIGN §10.4) share a delivery by partitions: ranges of its audience's
target ids (store.partitions), each with its own checkpoint and lease (`owner`, `lease_until`).
The replica that starts a delivery holds the delivery itself until its run has cut it into
partitions; every replica's run of the delivery then takes one unheld partition after another
(`FOR UPDATE SKIP LOCKED`) and sends it. Every JOIN_INTERVAL_S a replica looks for partitions no
replica holds (new deliveries, or a dead replica's whose lease expired) and deliveries never cut
(their starter died first), and runs those deliveries too. A replica renews its holds every
HERALD_LEASE_S / 3 (and with every batch, which is fenced by it: writer.py); a run whose
partition another replica took over is cancelled. A replica stopping gives its holds up, so that
another takes them at once. SQLite has one replica: no leases, no partitions; every in-progress
delivery is resumed as the service starts.

A pause ends the delivery's run here at once (other replicas' runs end at their next batch: the
pause is committed first); a resume launches the delivery's next generation with the campaign's
new snapshot, after ending any run of an older one (run.py: a run writes only in its generation).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from herald.campaign.v1 import campaign_pb2
from services.delivery_svc import store
from services.delivery_svc.render import CampaignTemplates
from services.delivery_svc.run import DeliveryRun, EngineDeps
from services.kit.db import transaction, write_transaction

log = logging.getLogger("herald.delivery")

# How often a PostgreSQL replica looks for partitions to send that no replica holds.
JOIN_INTERVAL_S = 1.0


class Engine:
    """The registry of running deliveries."""

    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps
        self.runs: dict[str, DeliveryRun] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def launch(self, campaign: campaign_pb2.Campaign, templates: CampaignTemplates | None = None,
               generation: int = 0) -> None:
        """Starts sending the campaign (the delivery's `generation` of it), with its templates
        when they are compiled already; a run of it going here already is left going."""
        if campaign.id in self._tasks:
            return
        run = DeliveryRun(campaign, self.deps, templates, generation)
        self.runs[campaign.id] = run
        task = asyncio.create_task(run.run(), name=f"delivery:{campaign.id}")
        self._tasks[campaign.id] = task
        task.add_done_callback(functools.partial(self._forget, campaign.id))

    async def relaunch(self, campaign: campaign_pb2.Campaign, templates: CampaignTemplates, generation: int) -> None:
        """Sends a resumed delivery's new generation, ending a run of an older one first."""
        await self.pause(campaign.id)
        self.launch(campaign, templates, generation)

    async def pause(self, campaign_id: str) -> None:
        """Ends the delivery's run here, if one is going (the delivery is paused: what the run
        had not committed is replayed on resume)."""
        task = self._tasks.get(campaign_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _forget(self, campaign_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(campaign_id) is task:  # not a later run of the same delivery
            del self._tasks[campaign_id]
            self.runs.pop(campaign_id, None)
        self.deps.notifier.notify(campaign_id)  # watchers wait for the run's end (is_running)

    async def resume_all(self) -> None:
        """Relaunches every in-progress delivery (after a restart or a crash); with leases, those
        with work no live replica holds."""
        lease = self.deps.lease
        if lease is not None:
            async with write_transaction(self.deps.sessions) as session:
                rows = await store.claim_unheld(session, lease)
                joinable = [i for i in [*await store.claimable_campaign_ids(session),
                                        *await store.uncompleted_campaign_ids(session)] if i not in self._tasks]
                rows += await store.get_deliveries(session, joinable) if joinable else []
        else:
            async with transaction(self.deps.sessions) as session:
                ids = await store.in_progress_campaign_ids(session)
                rows = await store.get_deliveries(session, ids)
        rows = [row for row in rows if row.campaign_id not in self._tasks]
        for row in rows:
            self.launch(campaign_pb2.Campaign.FromString(row.snapshot), generation=row.generation)
        if rows:
            log.info("running deliveries", extra={"count": len(rows), "campaign_ids": [r.campaign_id for r in rows]})

    async def keep_leases(self) -> None:
        """PostgreSQL replicas: renews this replica's leases and takes over unheld deliveries,
        until cancelled."""
        lease = self.deps.lease
        if lease is None:
            return
        await asyncio.gather(_every(lease.seconds / 3, self._renew, "renewing leases"),
                             _every(min(JOIN_INTERVAL_S, lease.seconds / 2), self.resume_all, "joining deliveries"))

    async def _renew(self) -> None:
        lease, running = self.deps.lease, list(self._tasks)
        if lease is None or not running:
            return
        sending = {i: self.runs[i].writer.partition for i in running if i in self.runs}
        async with write_transaction(self.deps.sessions) as session:
            held = await store.renew_leases(session, lease, running)
        for campaign_id, partition in sending.items():
            run, task = self.runs.get(campaign_id), self._tasks.get(campaign_id)
            # Only a run still on the partition it was sending (not one between partitions).
            if campaign_id not in held and partition is not None and run is not None \
                    and run.writer.partition is partition and task is not None:
                # Taken over (this replica stalled past its lease): its writes are fenced anyway.
                log.warning("partition taken over by another replica", extra={"campaign_id": campaign_id})
                task.cancel()

    async def wait_ended(self, campaign_id: str, timeout_s: float) -> None:
        """Waits (at most `timeout_s`) until the delivery's run, if one is going, has ended and
        committed all it writes."""
        task = self._tasks.get(campaign_id)
        if task is not None:
            await asyncio.wait([task], timeout=timeout_s)

    def is_running(self, campaign_id: str) -> bool:
        return campaign_id in self._tasks

    async def stop(self, campaign_id: str, reason: campaign_pb2.StopReason, message: str, timeout_s: float) -> None:
        """Asks the delivery's run to stop and waits (at most `timeout_s`) until it has ended:
        it commits the stop itself, together with the channels of its unwritten batches."""
        run, task = self.runs.get(campaign_id), self._tasks.get(campaign_id)
        if run is None or task is None:
            return
        run.request_stop(reason, message)
        await asyncio.wait([task], timeout=timeout_s)  # a timeout leaves the run going

    def request_stop(self, campaign_id: str, reason: campaign_pb2.StopReason, message: str) -> None:
        run = self.runs.get(campaign_id)
        if run is not None:
            run.request_stop(reason, message)

    def rate(self, campaign_id: str) -> float | None:
        run = self.runs.get(campaign_id)
        return run.rate() if run is not None else None

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lease = self.deps.lease
        if lease is not None and tasks:
            try:
                async with write_transaction(self.deps.sessions) as session:
                    await store.release_leases(session, lease)
            except Exception:  # noqa: BLE001 — at shutdown: the leases then expire instead
                log.exception("giving up the leases failed")


async def _every(interval_s: float, job: Callable[[], Awaitable[None]], what: str) -> None:
    """Runs `job` every `interval_s` until cancelled; a failed round (the database away) is logged."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — the next round tries again
            log.exception(f"{what} failed")
