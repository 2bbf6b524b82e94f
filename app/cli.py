"""The ``synflow`` command line. Each group of commands lives in its own module and is added here."""

from __future__ import annotations

import typer

cli = typer.Typer(
    name="synflow",
    help="SynFlowNet: design synthesisable molecules with their routes.",
    no_args_is_help=True,
    add_completion=False,
)


@cli.callback()
def _root() -> None:
    """SynFlowNet: design synthesisable molecules with their routes."""


def _register() -> None:
    # Imported here, not at module import, so `synflow --help` stays fast and imports stay lazy.
    from app import cli_hypergrid, cli_library, cli_score, cli_service, cli_train

    cli_hypergrid.register(cli)
    cli_library.register(cli)
    cli_score.register(cli)
    cli_service.register(cli)
    cli_train.register(cli)


def main() -> None:
    _register()
    cli()
