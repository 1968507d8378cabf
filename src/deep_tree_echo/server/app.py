"""The FastAPI application: ``create_app(settings, gateway=...)``.

Routes: ``POST /v1/process`` (``server/routes/process.py``), ``/v1/memories``,
``/v1/replica/records`` (node-to-node replication), ``WS /v1/ws``, ``/v1/status``,
``/v1/events``, ``/healthz``, ``/readyz``, ``/metrics``, the web console at ``/console`` and the
OpenAPI docs at ``/docs``.
Middleware, outermost first: Prometheus timing, API-key auth, per-client rate limit on
``/v1/*``, and the request-body cap.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from deep_tree_echo import __version__
from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.observability import (
    EchoMetrics,
    PrometheusMiddleware,
    attach_monitor,
    render_latest,
)
from deep_tree_echo.observability import monitor as default_monitor
from deep_tree_echo.plugins.manager import PluginManager
from deep_tree_echo.resilience import RateLimiter
from deep_tree_echo.resilience.api import set_default_on_result
from deep_tree_echo.server._metrics import NatsBridgeCollector, ServerCollector
from deep_tree_echo.server._status import StatusHistory
from deep_tree_echo.server.handlers import install_exception_handlers
from deep_tree_echo.server.middleware import (
    APIKeyAuthMiddleware,
    BodyLimitMiddleware,
    RateLimitMiddleware,
)
from deep_tree_echo.server.openapi import install_openapi
from deep_tree_echo.server.outbox import outbox_for
from deep_tree_echo.server.outbox.relay import EventRelay, RelayCollector
from deep_tree_echo.server.principals import KeyRing
from deep_tree_echo.server.routes import (
    console,
    events,
    health,
    memories,
    process,
    replication,
    restore,
    status,
    ws,
)
from deep_tree_echo.server.websocket import ConnectionManager
from deep_tree_echo.server.workers import (
    WorkerHeaderMiddleware,
    announce_ready,
    exit_with_supervisor,
    service_node_id,
    worker_process_settings,
)

logger = logging.getLogger("deep_tree_echo.server")

PUBLIC_PATHS = ("/healthz", "/readyz")
#: The API description and its viewer: public, so /docs works and can then send a key.
DOCS_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")

RenderMetrics = Callable[[], tuple[bytes, str]]


def _rate_limiter(settings: EchoSettings) -> RateLimiter | None:
    """One limit for the whole service: shared through Redis when ``redis_url`` is set, else
    each of the ``workers`` processes enforces its share (``limit // workers``, at least 1)."""
    if settings.rate_limit_requests <= 0:
        return None
    if settings.redis_url:
        from deep_tree_echo.resilience.redis_backends import RedisRateLimitBackend

        return RateLimiter(settings.rate_limit_requests, settings.rate_limit_window, name="http",
                           backend=RedisRateLimitBackend(settings.redis_url))
    share = max(1, settings.rate_limit_requests // settings.workers)
    return RateLimiter(share, settings.rate_limit_window, name="http")


async def _start_event_relay(
    app: FastAPI, stack: AsyncExitStack, gw: AARGateway, manager: ConnectionManager,
    settings: EchoSettings,
) -> None:
    """Gateway agent.message / memory.update -> the store's event outbox -> WebSocket clients
    of the session, on every worker and node that shares the store."""
    outbox = outbox_for(settings)
    await outbox.open()
    stack.push_async_callback(outbox.close)
    relay = EventRelay(outbox, manager, gw.event_bus, retention=settings.event_retention)
    await relay.start()
    stack.push_async_callback(relay.stop)  # detaches the change log first
    relay.log_changes_of(gw.memory.store)
    app.state.event_relay = relay
    registry: CollectorRegistry = app.state.metrics.registry
    collector = RelayCollector(relay)
    registry.register(collector)
    stack.callback(registry.unregister, collector)


def keyring_from(settings: EchoSettings) -> KeyRing:
    """Every credential ``settings`` configures: client keys, the keys file, the cluster key."""
    return KeyRing.from_settings(
        settings.api_keys, keys_file=settings.api_keys_file, cluster_key=settings.cluster_key
    )


def _fastapi_telemetry() -> TelemetryConfig | None:
    """FastAPI's OpenTelemetry bridge, on (its defaults) only when an OTel SDK is installed.

    The bridge asks the global OTel providers on every request whether they are configured
    (environment lookups: ~8 us, about a tenth of the HTTP layer's cost per request); without
    ``opentelemetry-sdk`` they can only be the API's no-op proxies, so the answer is always no.
    """
    try:
        sdk = importlib.util.find_spec("opentelemetry.sdk")
    except ModuleNotFoundError:  # no ``opentelemetry`` package at all
        sdk = None
    if sdk is not None:
        return None
    return {"tracing": False, "metrics": False, "logs": False}


def _setup_metrics(
    gateway: AARGateway, manager: ConnectionManager
) -> tuple[RenderMetrics, EchoMetrics]:
    """The app's own registry (never the global one), fed at scrape time by its sources."""
    registry = CollectorRegistry()
    registry.register(ServerCollector(manager))  # rate-limit rejections: the limiter registry
    metrics = EchoMetrics(registry)
    metrics.add_source("event_bus", gateway.event_bus)
    metrics.add_source("memory", gateway.memory)
    engine_latency = metrics.engine_latency
    bounds = engine_latency.bounds
    series: dict[str, list[float]] = {}  # engine -> its series: no label lookup per call

    def observe(engine: str, seconds: float, ok: bool) -> None:
        cell = series.get(engine)
        if cell is None:
            cell = series[engine] = engine_latency.series(str(engine))
        cell[-2] += seconds  # observe_into(), inlined
        if seconds == seconds:
            cell[bisect_left(bounds, seconds)] += 1.0

    gateway.engine_observers.append(observe)
    return (lambda: render_latest(registry)), metrics


async def _start_nats_bridge(
    app: FastAPI, stack: AsyncExitStack, gw: AARGateway, settings: EchoSettings
) -> None:
    """Share the gateway's bus events with other nodes over NATS (``DTE_NATS_URL``)."""
    from deep_tree_echo.server.nats_bridge import NatsEventBridge

    assert settings.nats_url is not None
    bridge = NatsEventBridge(gw.event_bus, settings.nats_url, node_id=service_node_id(gw.node_id),
                             token=settings.nats_token)
    await bridge.start()  # fails startup loudly: a node configured for NATS must reach it
    stack.push_async_callback(bridge.stop)
    registry: CollectorRegistry = app.state.metrics.registry
    collector = NatsBridgeCollector(bridge)
    registry.register(collector)
    stack.callback(registry.unregister, collector)
    app.state.nats_bridge = bridge


class _EchoAPI(FastAPI):
    """The service's FastAPI app: its middleware stack lets ``POST /v1/process`` skip
    FastAPI's per-request exit stack (:func:`process.bypass_exit_stack`)."""

    def build_middleware_stack(self) -> ASGIApp:
        return process.bypass_exit_stack(super().build_middleware_stack(), self)


def create_app(
    settings: EchoSettings | None = None,
    *,
    gateway: AARGateway | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the service around ``gateway`` (created from ``settings`` when not given).

    The lifespan initialises the gateway (cleans it up only if this app created it), wires
    gateway events to WebSocket clients and starts/stops plugins. ``freeze_gc`` (set by
    ``serve``, one app per process) moves every object alive after start-up out of the cyclic
    garbage collector's reach (:func:`gc.freeze`): full collections then scan only what requests
    create, which is what sets a request's p99 otherwise.
    """
    if settings is None:
        settings = gateway.settings if gateway is not None else EchoSettings.coerce(None)
    owns_gateway = gateway is None
    gw = gateway if gateway is not None else AARGateway(settings)
    manager = ConnectionManager(
        settings.ws_queue_size,
        ping_interval=settings.ws_ping_interval,
        max_subscriptions=settings.ws_max_subscriptions,
    )
    limiter = _rate_limiter(settings)
    # resilient API clients (the OpenAI engine's...) report their calls to the monitor
    set_default_on_result(default_monitor.record_request)
    keyring = keyring_from(settings)
    own_limits = settings.api_keys_file is not None  # keys of the file may have their own

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if owns_gateway:
                stack.push_async_callback(gw.cleanup)
            await gw.initialize()
            # integration alerts -> the gateway's bus (and the webhook, when configured)
            detach_alerts = attach_monitor(default_monitor, gw.event_bus,
                                           settings.alert_webhook_url)
            stack.push_async_callback(detach_alerts)
            stack.push_async_callback(manager.close_all)
            # gateway agent.message / memory.update -> the outbox -> WebSocket clients of the
            # session, on every worker and node sharing the store
            await _start_event_relay(app, stack, gw, manager, settings)
            if limiter is not None and limiter.backend is not None:
                stack.push_async_callback(limiter.backend.aclose)
            if settings.nats_url:
                await _start_nats_bridge(app, stack, gw, settings)
            plugins = PluginManager(gw, settings)
            await plugins.start()
            stack.push_async_callback(plugins.stop)
            app.state.plugins = plugins
            history = StatusHistory(default_monitor)  # the console's chart
            app.state.status_history = await stack.enter_async_context(history.running())
            if freeze_gc:
                gc.collect()
                gc.freeze()
            if settings.workers > 1:
                await stack.enter_async_context(exit_with_supervisor())
                announce_ready()
            yield

    app = _EchoAPI(
        title="Deep Tree Echo",
        version=__version__,
        summary="Integration gateway of the Deep Tree Echo cognitive core",
        lifespan=lifespan,
        telemetry=_fastapi_telemetry(),
    )
    app.state.settings = settings
    app.state.gateway = gw
    app.state.ws_manager = manager
    app.state.rate_limiter = limiter
    app.state.plugins = None
    app.state.nats_bridge = None
    app.state.status_history = None
    app.state.event_relay = None
    install_exception_handlers(app)

    app.include_router(health.router)
    app.include_router(process.router)  # POST /v1/process: served and documented
    app.include_router(memories.router)
    app.include_router(restore.router)
    if keyring.cluster_configured:  # without a cluster key, peers have no routes at all
        app.include_router(replication.router)
    app.include_router(ws.router)
    app.include_router(status.router)
    app.include_router(events.router)
    app.include_router(console.router)
    process.install_fast_path(app)  # the hot route first, served without FastAPI's detours

    # add_middleware wraps: the last one added is the outermost
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if limiter is not None or own_limits:
        app.add_middleware(RateLimitMiddleware, limiter=limiter, own_limits=own_limits)
    # the console page and the API docs hold no data: public
    public = (*PUBLIC_PATHS, *DOCS_PATHS, *console.console_paths(),
              *(("/metrics",) if settings.metrics_public else ()))
    app.state.keyring = keyring  # follows the keys file (KeyRing.refresh)
    app.add_middleware(APIKeyAuthMiddleware, keyring=keyring, public_paths=public,
                       app_of_routes=app)
    install_openapi(app, keyring, limited=limiter is not None or own_limits,
                    metrics_public=settings.metrics_public)
    render, metrics = _setup_metrics(gw, manager)
    app.state.render_metrics = render
    app.state.metrics = metrics
    app.add_middleware(PrometheusMiddleware, metrics=metrics)
    if settings.workers > 1:
        app.add_middleware(WorkerHeaderMiddleware)
    return app


def create_worker_app() -> FastAPI:
    """The uvicorn app factory of a worker process (``serve --workers N``)."""
    return create_app(worker_process_settings(), freeze_gc=True)
