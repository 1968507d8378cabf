"""The ``deep-tree-echo`` (alias ``dte``) command: serve, ask, memory put/get/search/export/import.

Every command works in-process on ``--data-dir`` (SQLite) or, with ``--url``, against a running
server over HTTP; both paths return the same shapes (the HTTP API's). Settings come from CLI
flags, then ``DTE_*`` environment variables, then the ``--config`` TOML file.

Start-up stays light: the core, FastAPI and uvicorn are imported only by the commands that need
them, never by ``--help`` or ``--url`` commands.
"""

from __future__ import annotations

from deep_tree_echo.cli._app import app, main
from deep_tree_echo.cli._backends import Backend, HttpBackend, LocalBackend
from deep_tree_echo.cli._memory_import import (
    ImportLine,
    ImportReport,
    import_file,
    parse_import_line,
    validate_import_file,
)
from deep_tree_echo.cli._settings import DEFAULT_DATA_DIR, build_settings
from deep_tree_echo.cli.errors import CLIError, NotFound
from deep_tree_echo.cli.memory import memory_app

__all__ = [
    "DEFAULT_DATA_DIR",
    "Backend",
    "CLIError",
    "HttpBackend",
    "ImportLine",
    "ImportReport",
    "LocalBackend",
    "NotFound",
    "app",
    "build_settings",
    "import_file",
    "main",
    "memory_app",
    "parse_import_line",
    "validate_import_file",
]
