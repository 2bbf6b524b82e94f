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
    from app.cli import hypergrid, library, score, service, train

    hypergrid.register(cli)
    library.register(cli)
    score.register(cli)
    service.register(cli)
    train.register(cli)


def main() -> None:
    _register()
    cli()
