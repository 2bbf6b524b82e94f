"""``synflow hypergrid``: the hypergrid demo (an exact check problem for the f-TB family)."""

from __future__ import annotations

import typer


def register(cli: typer.Typer) -> None:
    @cli.command("hypergrid")
    def hypergrid(
        steps: int = typer.Option(2000, help="training steps (batches of trajectories)"),
        dim: int = typer.Option(2, help="number of dimensions D"),
        side: int = typer.Option(16, help="side length H"),
        divergence: str = typer.Option("forward_kl", help="member of the f-TB family"),
        alpha: float | None = typer.Option(None, help="alpha, for divergence=alpha"),
        batch_size: int = typer.Option(16),
        seed: int = typer.Option(0),
    ) -> None:
        """Train a GFlowNet on the hypergrid and report the exact L1 distance to the target."""
        from synflow.hypergrid import run_hypergrid_demo  # torch: 2.6 s at start-up otherwise (-X importtime)

        run_hypergrid_demo(
            steps=steps, dim=dim, side=side, divergence=divergence, alpha=alpha,
            batch_size=batch_size, seed=seed,
        )
