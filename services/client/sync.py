"""`HeraldSyncClient`: every `HeraldClient` method for code without an event loop.

    with HeraldSyncClient.from_env() as herald:
        herald.upsert_users([{"id": "ann", "name": "Ann"}])
        for campaign in herald.watch_campaign("hi"):
            print(campaign.stats.progress)

The async client runs on an event loop of its own in a background thread (grpc's asyncio
channels belong to the loop that made them); a call blocks until its result is there, an async
iterator becomes a plain one. The raw stubs are the async client's only.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from services.client.client import HeraldClient
from services.kit.config import Settings, settings_from_env

_T = TypeVar("_T")


class HeraldSyncClient:
    def __init__(self, make_client: Callable[[], HeraldClient]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="herald-client", daemon=True)
        self._thread.start()
        self._client = self._run(_made(make_client))

    @classmethod
    def from_settings(cls, settings: Settings, subject: str = "client", **options: Any) -> "HeraldSyncClient":
        settings = settings.with_existing_secret()  # the error here, in the caller's thread
        return cls(lambda: HeraldClient.from_settings(settings, subject, **options))

    @classmethod
    def from_env(cls, subject: str = "client", **options: Any) -> "HeraldSyncClient":
        return cls.from_settings(settings_from_env(), subject, **options)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name.startswith("_") or not callable(method):
            return method
        if inspect.iscoroutinefunction(method):
            return lambda *args, **kwargs: self._run(method(*args, **kwargs))
        return lambda *args, **kwargs: self._iterate(method(*args, **kwargs))

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {n for n in dir(self._client) if not n.startswith("_")})

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "HeraldSyncClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, awaitable: Awaitable[_T]) -> _T:
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self._loop).result()

    def _iterate(self, items: Any) -> Iterator[Any]:
        """A plain iterator over an async one, each step run on the client's loop."""
        try:
            while True:
                try:
                    yield self._run(items.__anext__())
                except StopAsyncIteration:
                    return
        finally:  # a consumer that stops early closes the stream
            if not self._loop.is_closed():
                self._run(items.aclose())


async def _made(make_client: Callable[[], HeraldClient]) -> HeraldClient:
    return make_client()


async def _awaited(awaitable: Awaitable[_T]) -> _T:
    return await awaitable
