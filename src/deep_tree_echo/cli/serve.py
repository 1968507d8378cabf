"""``serve``: run the HTTP/WebSocket server, owning the data dir while it runs."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Annotated, Any

import typer

from deep_tree_echo import __version__
from deep_tree_echo.cli._options import ConfigOpt, DataDirOpt
from deep_tree_echo.cli._output import err, fail
from deep_tree_echo.cli._settings import build_settings
from deep_tree_echo.config import EchoSettings
from deep_tree_echo.errors import ConfigurationError


def serve(
    host: Annotated[str | None, typer.Option(help="bind address \\[default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[default: 8000]")] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="worker processes on one port \\[default: 1]"),
    ] = None,
) -> None:
    """Run the HTTP/WebSocket server (uvicorn), in one or several worker processes."""
    import uvicorn

    from deep_tree_echo.server._uvicorn import ServiceServer
    from deep_tree_echo.server.app import create_app
    from deep_tree_echo.server.datadir_lock import DataDirLock, server_url
    from deep_tree_echo.server.errors import DataDirLockedError

    try:
        settings = build_settings(
            config, host=host, port=port, data_dir=data_dir, log_level=log_level,
            workers=workers,
        )
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
    if settings.workers > 1 and settings.store_kind == "memory":
        raise fail(
            "--workers needs a store the workers share: the in-memory store lives in one "
            "process; use the sqlite store (--data-dir) or postgres (DTE_MEMORY_STORE=postgres)",
            2,
        )
    level = settings.log_level.upper()
    logging.basicConfig(level=level, format="%(levelname)-9s %(name)s: %(message)s")
    lock: DataDirLock | None = None
    if settings.store_kind == "sqlite" and settings.data_dir is not None:
        # this server owns the data dir: CLI commands must go through it (--url)
        lock = DataDirLock(
            settings.data_dir, exclusive=True, url=server_url(settings.host, settings.port)
        )
        try:
            lock.acquire()
        except DataDirLockedError as exc:
            raise fail(exc.message, 2) from None
    try:
        err.print(
            f"deep-tree-echo {__version__}: store={settings.store_kind}"
            + (f" in {settings.data_dir}" if settings.store_kind == "sqlite" else "")
            + f", engine={settings.engine}"
            + f", auth={'on' if settings.api_keys or settings.api_keys_file else 'off'}"
            + (", cluster key set" if settings.cluster_key else "")
            + (f", workers={settings.workers}" if settings.workers > 1 else ""),
            highlight=False,
        )
        options: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "log_level": settings.log_level.lower(),
            "ws_ping_interval": settings.ws_ping_interval,
            "ws_ping_timeout": settings.ws_ping_interval,
            "ws_max_size": settings.max_body_bytes,
            "lifespan": "on",
            "server_header": False,
            "timeout_graceful_shutdown": 10,
        }
        if settings.workers > 1:
            started = _run_workers(settings, options)
        else:
            app = create_app(settings, freeze_gc=True)
            server = ServiceServer(uvicorn.Config(app, **options))
            server.run()
            started = server.started
    finally:
        if lock is not None:
            lock.release()
    if not started:
        raise typer.Exit(1)


def _node_id(settings: EchoSettings) -> str:
    """The node's id, kept in ``data_dir/node_id`` like a single-process server keeps it."""
    if settings.node_id:
        return settings.node_id
    fresh = f"node-{uuid.uuid4().hex[:8]}"
    if settings.store_kind != "sqlite" or settings.data_dir is None:
        return fresh
    path = settings.data_dir / "node_id"
    try:
        return path.read_text(encoding="utf-8").strip() or fresh
    except FileNotFoundError:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(fresh + "\n", encoding="utf-8")
        return fresh


def _run_workers(settings: EchoSettings, options: dict[str, Any]) -> bool:
    """uvicorn's supervisor with ``settings.workers`` processes sharing one socket.

    The workers import the app factory and read the settings from the environment; each gets
    its own node id suffix, so the versions two workers stamp never tie. True once it served.
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from deep_tree_echo.server._uvicorn import run_workers
    from deep_tree_echo.server.workers import SETTINGS_ENV

    settings = settings.model_copy(update={"node_id": _node_id(settings)})
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    config = uvicorn.Config(
        "deep_tree_echo.server.app:create_worker_app",
        factory=True,
        workers=settings.workers,
        **options,
    )
    supervisor = run_workers(config)
    return not any(p.process.exitcode == STARTUP_FAILURE for p in supervisor.processes)
