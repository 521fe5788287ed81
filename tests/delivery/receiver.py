"""A real HTTP server on 127.0.0.1, port 0, standing in for push services and webhook receivers:
it records every request and answers each path as told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int = 0  # what it was answered


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # path → (status, headers); any other path answers 201 Created, as push services do.
    answers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    delay_s: float = 0.0  # how long each answer takes (a slow receiver)
    # X-Webhook-Id → statuses its next requests are answered, one each, before the path's answer.
    first_answers: dict[str, list[int]] = field(default_factory=dict)

    def answer(self, path: str, status: int, **headers: str) -> None:
        self.answers[path] = (status, {name.replace("_", "-"): value for name, value in headers.items()})

    def answer_first(self, webhook_id: str, *statuses: int) -> None:
        """Answers the next requests of one webhook id with `statuses`, in turn."""
        self.first_answers[webhook_id] = list(statuses)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        status, headers = self.answers.get(request.path, (201, {}))
        first = self.first_answers.get(request.headers.get("x-webhook-id", ""))
        if first:
            status, headers = first.pop(0), {}
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.requests.append(Received(request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
                                      await request.read(), status))
        return web.Response(status=status, headers=headers, text="" if status < 300 else f"answer {status}")


@asynccontextmanager
async def receiving(port: int = 0) -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1:`port` (0: a free one)."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
