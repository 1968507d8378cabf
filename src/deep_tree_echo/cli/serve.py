"""``serve``: run the HTTP/WebSocket server, owning the data dir while it runs."""

from __future__ import annotations

import logging
from types import FrameType
from typing import Annotated, Any

import typer

from deep_tree_echo import __version__
from deep_tree_echo.cli._options import ConfigOpt, DataDirOpt
from deep_tree_echo.cli._output import err, fail
from deep_tree_echo.cli._settings import build_settings
from deep_tree_echo.errors import ConfigurationError


def _server_class() -> type[Any]:
    import uvicorn

    from deep_tree_echo.server._event_feed import close_event_streams

    class Server(uvicorn.Server):
        """Ends the console's event streams as shutdown begins: uvicorn waits for open
        responses, and an event stream never finishes by itself."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            close_event_streams(self.config.app)
            super().handle_exit(sig, frame)

    return Server


def serve(
    host: Annotated[str | None, typer.Option(help="bind address \\[default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port \\[default: 8000]")] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level")] = None,
) -> None:
    """Run the HTTP/WebSocket server (uvicorn)."""
    import uvicorn

    from deep_tree_echo.server.app import create_app
    from deep_tree_echo.server.datadir_lock import DataDirLock, server_url
    from deep_tree_echo.server.errors import DataDirLockedError

    try:
        settings = build_settings(
            config, host=host, port=port, data_dir=data_dir, log_level=log_level
        )
    except ConfigurationError as exc:
        raise fail(exc.message, 2) from None
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
            + (", cluster key set" if settings.cluster_key else ""),
            highlight=False,
        )
        server = _server_class()(
            uvicorn.Config(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level.lower(),
                ws_ping_interval=settings.ws_ping_interval,
                ws_ping_timeout=settings.ws_ping_interval,
                ws_max_size=settings.max_body_bytes,
                lifespan="on",
                server_header=False,
                timeout_graceful_shutdown=10,
            )
        )
        server.run()
    finally:
        if lock is not None:
            lock.release()
    if not server.started:
        raise typer.Exit(1)
