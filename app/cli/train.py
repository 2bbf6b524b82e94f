"""``synflow train CONFIG --out DIR`` and ``synflow sample CHECKPOINT -n N``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


class _JsonlWriter:
    """Appends new molecules and metrics to ``molecules.jsonl`` / ``metrics.jsonl`` in ``out``."""

    def __init__(self, out: Path) -> None:
        self.molecules = (out / "molecules.jsonl").open("a")
        self.metrics = (out / "metrics.jsonl").open("a")
        self.last: dict[str, float] = {}

    def on_molecules(self, records: list[Any]) -> None:
        for r in records:
            self.molecules.write(json.dumps(r.to_json()) + "\n")
        self.molecules.flush()

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.last = metrics
        self.metrics.write(json.dumps({"step": step, **metrics}) + "\n")
        self.metrics.flush()

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass

    def close(self) -> None:
        self.molecules.close()
        self.metrics.close()


def register(cli: typer.Typer) -> None:
    @cli.command("train")
    def train(
        config: Path = typer.Argument(..., help="RunConfig as .toml or .json"),
        out: Path = typer.Option(..., "--out", help="output folder (molecules, metrics, checkpoints)"),
        resume: bool = typer.Option(True, help="continue from OUT/checkpoints/last.pt when present"),
    ) -> None:
        """Train a SynFlowNet without the service, with a progress bar."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from synflow.config import ConfigError, load_run_config
        from synflow.runtime import configure_torch_threads
        from synflow.trainer import Trainer

        configure_torch_threads()
        try:
            run_config = load_run_config(config)
        except ConfigError as error:
            raise typer.BadParameter(str(error), param_hint="CONFIG") from None
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(run_config.to_json())
        writer = _JsonlWriter(out)
        trainer = Trainer(run_config, callbacks=[writer], checkpoint_dir=out / "checkpoints")  # type: ignore[list-item]
        last = out / "checkpoints" / "last.pt"
        if resume and last.exists():
            trainer.load_checkpoint(last)
        total = run_config.training.steps
        columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[live]}")]
        with Progress(*columns) as progress:
            task = progress.add_task("training", total=total, completed=trainer.step, live="")

            def on_step(step: int, info: dict[str, float]) -> None:
                m = writer.last
                live = (f"loss {info['loss']:.3g} logZ {info['log_z']:.2f} unique {m.get('unique', 0):.0f} "
                        f"top10 {m.get('top10_reward', 0):.3f} modes {m.get('modes', 0):.0f}")
                progress.update(task, completed=step, live=live)

            summary = trainer.run(on_step=on_step)
        writer.close()
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        typer.echo(json.dumps(summary))

    @cli.command("sample")
    def sample(
        checkpoint: Path = typer.Argument(..., help="a checkpoint written by `synflow train`"),
        n: int = typer.Option(100, "-n", help="number of molecules to draw"),
        temperature: float = typer.Option(1.0, help="sampling temperature"),
        out: Path | None = typer.Option(None, "--out", help="JSON lines file (default: stdout)"),
    ) -> None:
        """Draw N molecules (with routes and rewards) from a trained checkpoint."""
        from synflow.runtime import configure_torch_threads
        from synflow.trainer import Trainer

        configure_torch_threads()
        trainer = Trainer.from_checkpoint(checkpoint)
        lines = []
        for traj in trainer.sample(n, temperature=temperature):
            if traj.valid:
                lines.append(json.dumps({"smiles": traj.smiles, "reward": traj.reward, "scores": traj.scores,
                                         "route": {"steps": traj.route}}))
        text = "\n".join(lines) + "\n"
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text)
