"""The CLI's exceptions: a failed operation whose message is shown to the user."""

from __future__ import annotations

from deep_tree_echo.errors import EchoError


class CLIError(EchoError):
    """A CLI operation failed; the message is shown to the user."""

    code = "cli_error"


class NotFound(CLIError):
    code = "not_found"
