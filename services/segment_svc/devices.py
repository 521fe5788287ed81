"""Push devices of users (the logic behind UpsertDevices, ListDevices, DeleteDevices).

A device is matched by user_id + id. A user keeps at most MAX_DEVICES_PER_USER: browsers make a
new subscription now and then without telling anyone the old one is dead, so the least recently
upserted devices beyond the limit are removed rather than kept forever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from itertools import groupby

from sqlalchemy.ext.asyncio import AsyncSession

from herald.segment.v1 import directory_pb2
from services.kit import reasons as kit_reasons
from services.kit.endpoints import EndpointRefused, ResolveUnavailable, ip_literal, public_addresses
from services.kit.errors import FieldViolation, InvalidArgument, Unavailable, Violations
from services.segment_svc import reasons, store
from services.segment_svc.convert import device_message
from services.kit.limits import MAX_DEVICES_PER_USER
from services.segment_svc.validate import MAX_VIOLATIONS, DeviceInput

# Host names resolved at once while checking one UpsertDevices call.
RESOLVES_AT_ONCE = 16


async def check_hosts(devices: Sequence[DeviceInput], *, allow_private: bool) -> None:
    """Refuses devices whose endpoint host does not resolve or resolves to a private address
    (host names only: an address given as such was checked with the URL)."""
    if allow_private:
        return
    hosts = list(dict.fromkeys((d.host, d.port) for d in devices if ip_literal(d.host) is None))
    limit = asyncio.Semaphore(RESOLVES_AT_ONCE)

    async def problem(host: str, port: int) -> str | None:
        async with limit:
            try:
                await public_addresses(host, port, allow_private=False)
            except EndpointRefused as refused:
                return str(refused)
        return None

    try:
        problems = dict(zip(hosts, await asyncio.gather(*(problem(host, port) for host, port in hosts))))
    except ResolveUnavailable as exc:
        raise Unavailable(f"cannot check the endpoints now: {exc}; retry",
                          reason=kit_reasons.DEPENDENCY_UNAVAILABLE) from None
    v = Violations()
    for device in devices:
        found = problems.get((device.host, device.port))
        if found:
            v.add(f"devices[{device.index}].endpoint", found, reasons.ENDPOINT_NOT_ALLOWED)
    v.raise_if_any()


async def upsert_devices(session: AsyncSession, devices: Sequence[DeviceInput],
                         now: dt.datetime) -> list[directory_pb2.Device]:
    """Stores the devices (their users must exist), trims each user's devices to the limit and
    returns the stored devices in the order given."""
    user_ids = list(dict.fromkeys(d.user_id for d in devices))
    existing = await store.existing_user_ids(session, user_ids)
    unknown = [d for d in devices if d.user_id not in existing]
    if unknown:
        raise InvalidArgument(violations=[
            FieldViolation(f"devices[{d.index}].user_id", f"names no user ({d.user_id!r})", reasons.USER_NOT_FOUND)
            for d in unknown[:MAX_VIOLATIONS]])
    await store.upsert_devices(session, [store.DeviceRow(d.user_id, d.id, d.provider, d.endpoint, d.keys, now)
                                         for d in devices])
    await _keep_newest(session, devices)
    stored = {(row.user_id, row.id): row for row in await store.devices_of(session, user_ids)}
    return [device_message(stored[(d.user_id, d.id)]._mapping) for d in devices]


async def _keep_newest(session: AsyncSession, devices: Sequence[DeviceInput]) -> None:
    """Removes the least recently upserted devices of users now over the limit; the devices of
    this call stay (validation caps them at the limit per user)."""
    over = await store.users_over_device_limit(session, {d.user_id for d in devices}, MAX_DEVICES_PER_USER)
    if not over:
        return
    fresh = {(d.user_id, d.id) for d in devices}
    for user_id, rows in groupby(await store.devices_of(session, over), key=lambda row: row.user_id):
        rows = list(rows)
        kept_fresh = sum(1 for row in rows if (user_id, row.id) in fresh)
        older = sorted((row for row in rows if (user_id, row.id) not in fresh),
                       key=lambda row: (row.updated_at, row.id), reverse=True)
        stale = [row.id for row in older[MAX_DEVICES_PER_USER - kept_fresh:]]
        await store.delete_devices(session, user_id, stale)


async def list_devices(session: AsyncSession, user_ids: Sequence[str]) -> list[directory_pb2.Device]:
    return [device_message(row._mapping) for row in await store.devices_of(session, dict.fromkeys(user_ids))]


async def delete_devices(session: AsyncSession, user_id: str, ids: Sequence[str]) -> int:
    return await store.delete_devices(session, user_id, list(dict.fromkeys(ids)))
