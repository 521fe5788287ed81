"""The shutdown wrapper every response stream runs through (services.kit.interceptors)."""

from __future__ import annotations

import asyncio

from services.kit.interceptors import _until_shutdown


async def test_a_cancelled_stream_closes_its_handler_without_error():
    """A call cancelled while its handler waits for the next item (client gone, server stopping):
    the handler's generator is closed cleanly, not hit by `aclose(): asynchronous generator is
    already running`."""
    waiting, closed = asyncio.Event(), asyncio.Event()

    async def handler():
        try:
            yield 1
            waiting.set()
            await asyncio.Event().wait()  # a watch with nothing new to say
            yield 2
        finally:
            closed.set()

    async def relay():
        async for _ in _until_shutdown(handler(), asyncio.Event()):
            pass

    task = asyncio.ensure_future(relay())
    await asyncio.wait_for(waiting.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done, "the relay did not end after its cancellation"
    assert task.cancelled(), f"the relay ended with {task.exception()!r} instead of its cancellation"
    assert closed.is_set()


async def test_shutdown_ends_a_waiting_stream():
    shutdown = asyncio.Event()

    async def handler():
        yield 1
        await asyncio.Event().wait()

    items, ended = [], None
    async def relay():
        async for item in _until_shutdown(handler(), shutdown):
            items.append(item)
            shutdown.set()

    try:
        await asyncio.wait_for(relay(), 10)
    except Exception as exc:  # noqa: BLE001 — the wrapper's signal to answer UNAVAILABLE
        ended = type(exc).__name__
    assert items == [1] and ended == "_ShutdownError"
