"""A webhook receiver for the benchmarks, run as its own process: answers every POST 204 at once,
and counts them. `GET /stats` says how many POSTs and distinct X-Webhook-Ids it took, and the
wall-clock times (time.time()) of the first and the last.

    python -m bench.webhook_receiver PORT
"""

from __future__ import annotations

import sys
import time

from aiohttp import web


class Counts:
    def __init__(self) -> None:
        self.posts = 0
        self.ids: set[str] = set()
        self.first = 0.0
        self.last = 0.0

    async def take(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.time()
        self.posts += 1
        self.ids.add(request.headers.get("x-webhook-id", ""))
        self.first = self.first or now
        self.last = now
        return web.Response(status=204)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"posts": self.posts, "ids": len(self.ids), "first": self.first, "last": self.last})

    async def reset(self, request: web.Request) -> web.Response:
        self.__init__()  # type: ignore[misc]
        return web.Response(status=204)


def main() -> None:
    counts = Counts()
    app = web.Application()
    app.router.add_get("/stats", counts.stats)
    app.router.add_delete("/stats", counts.reset)
    app.router.add_post("/{tail:.*}", counts.take)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
