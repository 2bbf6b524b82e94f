"""``synflow train CONFIG --out DIR`` and ``synflow sample CHECKPOINT -n N``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.config import ConfigError, load_run_config, parse_sampling_config


class JsonlWriter(TrainerCallback):
    """Appends new molecules and metrics to ``molecules.jsonl`` / ``metrics.jsonl`` in ``out`` and
    moves a progress bar."""

    def __init__(self, out: Path, progress: Any = None, task: Any = None) -> None:
        self.molecules = (out / "molecules.jsonl").open("a")
        self.metrics = (out / "metrics.jsonl").open("a")
        self.progress, self.task = progress, task
        self.last: dict[str, float] = {}

    def on_molecules(self, molecules: list[SampledMolecule]) -> None:
        for molecule in molecules:
            self.molecules.write(json.dumps(molecule.to_json()) + "\n")
        self.molecules.flush()

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.last = metrics
        self.metrics.write(json.dumps({"step": step, **metrics}) + "\n")
        self.metrics.flush()

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        if self.progress is None:
            return
        m = self.last
        live = (
            f"loss {info.get('loss', float('nan')):.3g} logZ {info.get('log_z', float('nan')):.2f} "
            f"unique {m.get('unique', 0):.0f} top10 {m.get('top10_reward', 0):.3f} "
            f"modes {m.get('modes', 0):.0f}"
        )
        self.progress.update(self.task, completed=step, total=total, live=live)

    def close(self) -> None:
        self.molecules.close()
        self.metrics.close()


class SampleWriter(TrainerCallback):
    """Writes every sampled molecule (route and scores) as one JSON line."""

    def __init__(self, sink: IO[str]) -> None:
        self.sink = sink
        self.count = 0

    def on_samples(self, samples: list[SampledMolecule]) -> None:
        for molecule in samples:
            line = {
                "smiles": molecule.smiles,
                "reward": molecule.reward,
                "scores": molecule.scores,
                "route": molecule.route,
            }
            if molecule.preference is not None:  # a preference-conditioned run: the w drawn at
                line["preference"] = molecule.preference
            self.sink.write(json.dumps(line) + "\n")
        self.count += len(samples)


def register(cli: typer.Typer) -> None:
    @cli.command("train")
    def train(
        config: Path = typer.Argument(..., exists=True, dir_okay=False, help="RunConfig as .toml or .json"),
        out: Path = typer.Option(..., "--out", help="output folder (molecules, metrics, checkpoints)"),
        steps: int | None = typer.Option(None, "--steps", min=0, help="override training.steps"),
        resume: bool = typer.Option(True, help="continue from OUT/checkpoints/last.pt when present"),
    ) -> None:
        """Train a SynFlowNet without the service, with a progress bar."""
        # torch and PyG load here, not at start-up: 2.6 s measured (-X importtime) that
        # `synflow --help` and the service commands would otherwise pay
        from synflow.runtime import configure_torch_threads
        from synflow.trainer import Trainer

        configure_torch_threads()
        try:
            run_config = load_run_config(
                config, {"training": {"steps": steps}} if steps is not None else None
            )
        except ConfigError as error:
            raise typer.BadParameter(str(error), param_hint="CONFIG") from None
        out.mkdir(parents=True, exist_ok=True)
        # docked poses (molecules.jsonl's notes.pose names them) under OUT/poses unless the config says
        run_config = run_config.model_copy(
            update={"reward": run_config.reward.with_pose_dir((out / "poses").resolve())}
        )
        (out / "config.json").write_text(run_config.to_json())
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[live]}"),
        ]
        # The progress bar goes to stderr: stdout carries only the JSON summary, for scripts.
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task("training", total=run_config.training.steps, live="")
            writer = JsonlWriter(out, progress, task)
            try:
                with Trainer(run_config, callbacks=[writer], checkpoint_dir=out / "checkpoints") as trainer:
                    if resume:
                        trainer.resume()
                    outcome = trainer.run()
            finally:
                writer.close()
        summary = {**outcome.metrics, "step": outcome.step, "stop_reason": outcome.message}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        typer.echo(json.dumps(summary))

    @cli.command("sample")
    def sample(
        checkpoint: Path = typer.Argument(
            ..., exists=True, dir_okay=False, help="a checkpoint written by `synflow train`"
        ),
        n: int = typer.Option(100, "-n", min=1, help="number of molecules to draw"),
        temperature: float = typer.Option(1.0, help="sampling temperature (1: the trained distribution)"),
        out: Path | None = typer.Option(None, "--out", help="JSON lines file (default: stdout)"),
        preference: str | None = typer.Option(
            None,
            "--preference",
            help="a preference-conditioned run: the weights to draw at, e.g. qed=0.7,sa=0.3 "
            "(default: the reward's configured weights)",
        ),
    ) -> None:
        """Draw N molecules (with routes and rewards) from a trained checkpoint."""
        from synflow.runtime import configure_torch_threads  # torch: 2.6 s, see train
        from synflow.trainer import Trainer

        configure_torch_threads()
        try:
            weights = None if preference is None else parse_preference(preference)
            sampling = parse_sampling_config(
                {"count": n, "temperature": temperature, "preference": weights}
            )
        except ConfigError as error:
            raise typer.BadParameter(str(error), param_hint="--preference") from None
        sink = out.open("w") if out else sys.stdout
        try:
            writer = SampleWriter(sink)
            trainer = Trainer.from_checkpoint(checkpoint, callbacks=[writer])
            try:
                outcome = trainer.draw(sampling)
            except ConfigError as error:  # a component this run was not conditioned on
                raise typer.BadParameter(str(error), param_hint="--preference") from None
            finally:
                trainer.close()
        finally:
            if out:
                sink.close()
        typer.echo(f"{writer.count} molecules ({outcome.message})", err=True)


def parse_preference(text: str) -> dict[str, float]:
    """``qed=0.7,sa=0.3`` → ``{"qed": 0.7, "sa": 0.3}``; ``ConfigError`` naming ``preference`` or
    ``preference.<name>`` for a malformed entry."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError([("preference", f"{item!r} is not name=weight (e.g. qed=0.7,sa=0.3)")])
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError([(f"preference.{name}", f"{value.strip()!r} is not a number")]) from None
    if not out:
        raise ConfigError([("preference", "no name=weight pairs (e.g. qed=0.7,sa=0.3)")])
    return out
