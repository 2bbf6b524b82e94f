"""The ``synflow`` command line. Each group of commands lives in its own module and is added here.

Heavy imports (torch, RDKit, the trainer) happen inside the commands that need them, so
``synflow --help`` and the service commands start fast.
"""

from __future__ import annotations

import typer

from app.cli import generator, hypergrid, library, reward_model, score, service, train


def build_cli() -> typer.Typer:
    """A fresh command tree with every command registered."""
    cli = typer.Typer(
        name="synflow",
        help="SynFlowNet: design synthesisable molecules with their routes.",
        no_args_is_help=True,
        add_completion=False,
    )

    @cli.callback()
    def _root() -> None:
        """SynFlowNet: design synthesisable molecules with their routes."""

    for module in (generator, hypergrid, library, reward_model, score, service, train):
        module.register(cli)
    return cli


def main() -> None:
    build_cli()()
