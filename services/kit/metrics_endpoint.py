"""A service's `/metrics`: its registry in the Prometheus text format, over HTTP.

Served by prometheus_client's own server (`start_http_server`), which runs in a daemon thread
rather than on the event loop: a scrape is answered even while the loop is busy writing a batch,
or stuck (when metrics matter most), and rendering the text never queues behind the calls on the
loop. Every path answers with the metrics; Prometheus asks for `/metrics`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from services.kit.config import split_host_port


@dataclass
class MetricsEndpoint:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @classmethod
    def start(cls, addr: str, registry: CollectorRegistry) -> MetricsEndpoint:
        """Serves `registry` on `addr` (port 0: a free one); OSError when it cannot listen there."""
        host, port = split_host_port(addr)
        server, thread = start_http_server(port, host, registry)
        return cls(server, thread)

    async def stop(self) -> None:
        # shutdown() waits for the serving loop's next poll (up to half a second): not on the loop.
        await asyncio.to_thread(self.server.shutdown)
        self.server.server_close()
