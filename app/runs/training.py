"""The one module that knows the trainer: the rest of the service talks to ``synflow`` through here.

Keeps trainer internals out of the API and the worker: configs are validated to plain dicts, a run is
``run_training(config, checkpoint_dir, resume, callbacks)``, molecules arrive as ``MoleculeRecord``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.runs.store import MoleculeRecord

CHECKPOINT_NAME = "last.pt"  # what synflow.trainer.Trainer writes in its checkpoint_dir


class ConfigInvalid(ValueError):
    """A RunConfig that does not validate; ``errors`` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors))
        self.errors = errors


@dataclass
class TrainingCallbacks:
    """What a running job reports; ``should_stop`` is polled once per step."""

    on_molecules: Callable[[list[MoleculeRecord]], None]
    on_metrics: Callable[[int, dict[str, float]], None]
    on_progress: Callable[[int, int], None]
    on_checkpoint: Callable[[Path, int], None]
    should_stop: Callable[[], bool]


def preload() -> None:
    """Import the trainer stack (torch, RDKit, PyG: seconds) before the first run is claimed, and
    give torch one intra-op thread (measured faster for these small networks on 2 cores, and the
    other core stays free for the API and chemistry; ``SYNFLOW_TORCH_THREADS`` overrides)."""
    import synflow.trainer  # noqa: F401
    from synflow.runtime import configure_torch_threads

    configure_torch_threads()


def validate_run_config(data: Any) -> dict[str, Any]:
    """Validate against ``synflow.config.RunConfig``; returns the normalised config as JSON data."""
    from pydantic import ValidationError

    from synflow.config import RunConfig

    try:
        config = RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigInvalid(_field_errors(error)) from None
    return config.model_dump(mode="json")


def _field_errors(error: Any) -> list[tuple[str, str]]:
    out = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(root)"
        out.append((path, item["msg"]))
    return out


def total_steps(config: dict[str, Any]) -> int:
    return int(config.get("training", {}).get("steps", 0))


def resolve_device(config: dict[str, Any]) -> str:
    from synflow.runtime import resolve_device as _resolve

    return str(_resolve(config.get("training", {}).get("device", "auto")))


class _StopTraining(Exception):
    """Raised from the per-step hook to leave ``Trainer.run`` between two steps."""


def _callback_adapter(callbacks: TrainingCallbacks) -> Any:
    from synflow.callbacks import TrainerCallback

    class ServiceCallback(TrainerCallback):
        def on_samples(self, records: list[Any]) -> None:
            # every sample, not only new molecules: the store upserts by SMILES and counts
            # ``times_sampled`` once per sample, idempotently per step (a step written again after
            # a resume is not counted twice)
            callbacks.on_molecules([_record(r, r.step) for r in records])

        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            callbacks.on_metrics(step, metrics)

        def on_checkpoint(self, step: int, path: Path) -> None:
            callbacks.on_checkpoint(path, step)

    return ServiceCallback()


def _record(source: Any, step: int) -> MoleculeRecord:
    """From a trainer ``MoleculeRecord`` (route ``{"steps": [...]}``) or a ``Trajectory`` (a list)."""
    route = source.route
    if isinstance(route, list):
        route = {"steps": route}
    return MoleculeRecord(
        smiles=source.smiles,
        reward=float(source.reward),
        step=step,
        scores=dict(source.scores or {}),
        route=route,
        error=getattr(source, "error", None) or getattr(source, "reward_error", None),
    )


def _build_trainer(config: dict[str, Any], checkpoint_dir: Path | None, callbacks: list[Any]) -> Any:
    from synflow.config import RunConfig
    from synflow.trainer import Trainer

    return Trainer(RunConfig.model_validate(config), callbacks=callbacks, checkpoint_dir=checkpoint_dir)


def run_training(
    config: dict[str, Any],
    checkpoint_dir: Path,
    resume: bool,
    callbacks: TrainingCallbacks,
    checkpoint_every: int | None = None,
) -> None:
    """Train until done or ``should_stop``; raises on failure. Resumes from ``checkpoint_dir`` if asked."""
    if checkpoint_every is not None:
        config = {**config, "training": {**config.get("training", {}), "checkpoint_every": checkpoint_every}}
    import torch

    threads = torch.get_num_threads()  # a resumed checkpoint may set its own; the next run gets ours
    try:
        _train(config, checkpoint_dir, resume, callbacks)
    finally:
        torch.set_num_threads(threads)


def _train(config: dict[str, Any], checkpoint_dir: Path, resume: bool, callbacks: TrainingCallbacks) -> None:
    trainer = _build_trainer(config, checkpoint_dir, [_callback_adapter(callbacks)])
    checkpoint = checkpoint_dir / CHECKPOINT_NAME
    if resume and checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
    total = total_steps(config)
    callbacks.on_progress(trainer.step, total)

    def on_step(step: int, _info: dict[str, float]) -> None:
        callbacks.on_progress(step, total)
        if callbacks.should_stop():
            raise _StopTraining

    try:
        trainer.run(on_step=on_step)
    except _StopTraining:
        return


def run_sampling(
    config: dict[str, Any], checkpoint_dir: Path, count: int, callbacks: TrainingCallbacks
) -> None:
    """Draw ``count`` molecules from a trained run's final checkpoint, in batches of the run's size."""
    checkpoint = checkpoint_dir / CHECKPOINT_NAME
    if not checkpoint.exists():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    trainer = _build_trainer(config, None, [])
    trainer.load_checkpoint(checkpoint)
    batch = int(config.get("training", {}).get("batch_size", 64))
    chunks = -(-count // batch)
    drawn = 0
    for chunk in range(1, chunks + 1):
        n = min(batch, count - drawn)
        trajs = trainer.sample(n, float(config.get("training", {}).get("temperature", 1.0)))
        drawn += n
        callbacks.on_molecules([_record(t, chunk) for t in trajs if t.valid and t.smiles is not None])
        callbacks.on_progress(chunk, chunks)
        if callbacks.should_stop():
            return
