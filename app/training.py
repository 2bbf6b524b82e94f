"""The one module that knows the trainer: the rest of the service talks to ``synflow`` through here.

Keeps trainer internals out of the API and the worker: configs are validated to plain dicts, a run is
``run_training(config, checkpoint_dir, resume, callbacks)``, molecules arrive as ``MoleculeRecord``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.store import MoleculeRecord


class ConfigInvalid(ValueError):
    """A RunConfig that does not validate; ``errors`` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors))
        self.errors = errors


class TrainerUnavailable(RuntimeError):
    """The installed ``synflow`` has no trainer (or no sampler) this adapter can drive."""


@dataclass
class TrainingCallbacks:
    """What a running job reports; ``should_stop`` is polled once per step."""

    on_molecules: Callable[[list[MoleculeRecord]], None]
    on_metrics: Callable[[int, dict[str, float]], None]
    on_progress: Callable[[int, int], None]
    on_checkpoint: Callable[[Path, int], None]
    should_stop: Callable[[], bool]


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


def run_training(
    config: dict[str, Any],
    checkpoint_dir: Path,
    resume: bool,
    callbacks: TrainingCallbacks,
    checkpoint_every: int | None = None,
) -> None:
    """Train until done or ``should_stop``; raises on failure. Resumes from ``checkpoint_dir`` if asked."""
    raise TrainerUnavailable("synflow.trainer has not landed yet; this service cannot train")


def run_sampling(
    config: dict[str, Any], checkpoint_dir: Path, count: int, callbacks: TrainingCallbacks
) -> None:
    """Draw ``count`` molecules from a trained run's final checkpoint."""
    raise TrainerUnavailable("synflow.trainer has not landed yet; this service cannot sample")
