"""Server lifecycle shared by the three services.

`start_server` runs a `Service` on a `grpc.aio` server with the Herald interceptor, the health
service and reflection, and serves the service's metrics (`HERALD_<SERVICE>_METRICS_ADDR`);
its telemetry's interceptors trace and count every call. `run_service` is each service's
`__main__`: it sets up tracing when the OTEL_* variables ask for it, installs SIGTERM/SIGINT
handlers before announcing readiness and, on a signal, flips health to NOT_SERVING, ends open
streams with UNAVAILABLE, lets in-flight calls drain for `HERALD_SHUTDOWN_GRACE_S`, then
stops the service's background work and disposes its engine, and sends the spans still buffered.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.kit.clients import CHANNEL_OPTIONS
from services.kit.config import ConfigError, Settings, settings_from_env
from services.kit.errors import service_domain
from services.kit.interceptors import SHUTTING_DOWN, HeraldServerInterceptor
from services.kit.logs import setup_logging
from services.kit.metrics_endpoint import MetricsEndpoint
from services.kit.telemetry import Telemetry
from services.kit.tracing import setup_tracing, shutdown_tracing

log = logging.getLogger("herald.server")

# gRPC sets SO_REUSEPORT by default, so a second server on a taken port would start and share
# its calls with the first; off, the second fails to bind and says so.
SERVER_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)]

# Time given to health watchers to see NOT_SERVING before the server stops taking calls.
NOT_SERVING_NOTICE_S = 0.2

# A service's exit status when it cannot start; `herald serve` tells it from a crash.
EXIT_CANNOT_START = 3


class Service:
    """What a composition root (`build(settings, ...)`) returns: servicers plus background work."""

    name: str = "service"  # segment, campaign or delivery: its address setting and error domain
    # Its metrics and tracer, made by its composition root; None: neither (a test's probe service).
    telemetry: Telemetry | None = None

    def service_names(self) -> list[str]:
        """Full names of the gRPC services served (for health and reflection)."""
        raise NotImplementedError

    def register(self, server: grpc.aio.Server) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Creates tables and starts background work; called before the port opens."""

    async def stop(self) -> None:
        """Stops background work and disposes the engine; called after the server stopped."""


class _HealthServicer(health.aio.HealthServicer):
    """The standard health service, whose Watch streams end with UNAVAILABLE on shutdown like
    every other stream (instead of holding the server for the whole grace period)."""

    def __init__(self, shutdown: asyncio.Event) -> None:
        super().__init__()
        self._shutdown = shutdown

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext[health_pb2.HealthCheckRequest,
                                                      health_pb2.HealthCheckResponse]) -> None:
        watch = asyncio.ensure_future(super().Watch(request, context))
        stop = asyncio.ensure_future(self._shutdown.wait())
        await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not watch.done():
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        await watch


@dataclass
class RunningServer:
    service: Service
    server: grpc.aio.Server
    interceptor: HeraldServerInterceptor
    health: health.aio.HealthServicer
    port: int
    grace_s: float
    metrics: MetricsEndpoint | None = None  # None: metrics off

    @property
    def metrics_port(self) -> int | None:
        return self.metrics.port if self.metrics is not None else None

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.grace_s if grace_s is None else grace_s
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await asyncio.sleep(min(NOT_SERVING_NOTICE_S, grace))
        self.interceptor.shutdown.set()
        await self.server.stop(grace)
        await self.service.stop()
        if self.metrics is not None:  # last: a scrape still sees the drain
            await self.metrics.stop()

    async def _set_health(self, status: int) -> None:
        for name in ["", *self.service.service_names()]:
            await self.health.set(name, status)


async def start_server(service: Service, settings: Settings, addr: str) -> RunningServer:
    """Starts `service` listening on `addr` ("127.0.0.1:0" picks a free port)."""
    interceptor = HeraldServerInterceptor(settings.api_secret, domain=service_domain(service.name),
                                          caller_rate=settings.caller_rate_limit)
    telemetry = service.telemetry or Telemetry(service.name)
    server = grpc.aio.server(interceptors=[*telemetry.server_interceptors(), interceptor], options=SERVER_OPTIONS)
    service.register(server)
    health_servicer = _HealthServicer(interceptor.shutdown)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = service.service_names()
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)
    port = _listen(server, settings, addr)
    metrics = _serve_metrics(telemetry, settings.metrics_addr(service.name))
    try:
        await service.start()
        await server.start()
    except BaseException:
        if metrics is not None:
            await metrics.stop()
        raise
    running = RunningServer(service, server, interceptor, health_servicer, port, settings.shutdown_grace_s, metrics)
    await running._set_health(health_pb2.HealthCheckResponse.SERVING)
    return running


class StartupError(Exception):
    """A service cannot start (its address is taken, its database unreachable): said in one line."""


def _listen(server: grpc.aio.Server, settings: Settings, addr: str) -> int:
    try:
        if settings.tls_cert_file and settings.tls_key_file:
            with open(settings.tls_key_file, "rb") as k, open(settings.tls_cert_file, "rb") as c:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            port = server.add_secure_port(addr, creds)
        else:
            port = server.add_insecure_port(addr)
    except RuntimeError:
        port = 0
    if not port:
        raise StartupError(f"cannot listen on {addr}: the address is in use or not available here")
    return port


def _serve_metrics(telemetry: Telemetry, addr: str | None) -> MetricsEndpoint | None:
    if telemetry.registry is None or addr is None:
        return None
    try:
        return MetricsEndpoint.start(addr, telemetry.registry)
    except (OSError, ValueError) as exc:
        cause = (exc.strerror or exc) if isinstance(exc, OSError) else exc
        raise StartupError(f"cannot serve metrics on {addr}: {cause} "
                           f"(HERALD_{telemetry.service.upper()}_METRICS_ADDR=off turns them off)") from None


def run_service(name: str, build: Callable[[Settings], Service]) -> None:
    """The body of `python -m services.<name>_svc`: serve until SIGTERM/SIGINT, exit 0."""
    try:
        settings = settings_from_env().require_shared_secrets().with_secret()
    except ConfigError as exc:  # a bad or missing variable: said in one line, before anything starts
        setup_logging()
        log.error("cannot start", extra={"service": name, "cause": str(exc)})
        sys.exit(EXIT_CANNOT_START)
    setup_logging(settings.log_level)
    tracer_provider = None
    try:
        tracer_provider = setup_tracing(name)  # before build: the service's telemetry uses it
        asyncio.run(_serve_until_signal(name, build, settings))
    except (StartupError, ConfigError) as exc:
        log.error("cannot start", extra={"service": name, "cause": str(exc)})
        sys.exit(EXIT_CANNOT_START)
    finally:
        shutdown_tracing(tracer_provider)


async def _serve_until_signal(name: str, build: Callable[[Settings], Service], settings: Settings) -> None:
    service = build(settings)  # inside the loop: grpc.aio channels bind to the running loop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    addr = settings.addr(name)
    try:
        running = await start_server(service, settings, addr)
    except Exception as exc:
        await service.stop()
        if isinstance(exc, StartupError):
            raise
        raise StartupError(_one_line(exc)) from exc
    log.info("serving", extra={"service": name, "addr": addr, "port": running.port,
                               "metrics_port": running.metrics_port})
    tune_garbage_collector()
    await stop.wait()
    log.info("shutting down", extra={"service": name, "grace_s": settings.shutdown_grace_s})
    await running.stop()
    log.info("stopped", extra={"service": name})


# The young generation's size: a batch's thousands of short-lived objects (protos, rows, dicts)
# die before it fills, instead of surviving a collection into the older generations, whose
# full passes are the costly ones.
GC_YOUNG_OBJECTS = 50_000


def tune_garbage_collector() -> None:
    """Once serving: what start-up made (the imports of grpc, SQLAlchemy, Jinja …, about 100,000
    objects) lives as long as the process, so it is frozen out of every later collection. With
    Python's defaults each full pass scanned it all: about a second of CPU per service in a
    60,000-recipient campaign."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])


def _one_line(exc: BaseException) -> str:
    """`Type: first line of the message` of an exception and its causes (the driver's error is
    usually the informative one: connection refused, authentication failed)."""
    parts: list[str] = []
    while exc is not None and len(parts) < 3:
        text = str(exc).strip().splitlines()
        parts.append(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(dict.fromkeys(parts))
