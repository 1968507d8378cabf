"""The ``deep-tree-echo`` Typer app: every command, registered in the order ``--help`` lists."""

from __future__ import annotations

import typer

from deep_tree_echo import __version__
from deep_tree_echo.cli._output import out
from deep_tree_echo.cli.ask import ask
from deep_tree_echo.cli.keys import keys_app
from deep_tree_echo.cli.memory import memory_app
from deep_tree_echo.cli.serve import serve

app = typer.Typer(
    name="deep-tree-echo",
    help="Deep Tree Echo: the cognitive gateway service and its memory tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(memory_app, name="memory")
app.add_typer(keys_app, name="keys")
app.command()(serve)
app.command()(ask)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(f"deep-tree-echo {__version__}", highlight=False)


def main() -> None:
    """Console-script entry point (``deep-tree-echo`` and ``dte``)."""
    app(prog_name="deep-tree-echo")
