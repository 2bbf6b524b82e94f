"""Run configs at the service's edge: the checks the RunConfig schema cannot make, and the typed
configs read back from a stored run row (validated once when the run was created)."""

from __future__ import annotations

from collections.abc import Collection
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from app.core.models import Run
from synflow.config import ConfigError, RunConfig, SamplingConfig
from synflow.rewards.components import DockingComponent

__all__ = [
    "CodeNotAllowed",
    "check_code_allowed",
    "check_paths",
    "check_storable",
    "run_config_of",
    "sampling_config_of",
]


class CodeNotAllowed(ConfigError):
    """A config from an API caller names code the operator has not allowed (HTTP 403)."""


_FILE_FIELDS = ("building_blocks", "templates", "cache_dir")


def check_paths(config: RunConfig, data_dir: Path, embedded: Collection[str] = ()) -> None:
    """A run must not read or write outside the server's data directory: every file the config
    names must resolve (symlinks followed, ``..`` collapsed) inside it (the environment's files, a
    docking component's ``receptor`` and ``pose_dir``). A receptor read from anywhere would also
    leave the server inside the run's generator file (``synflow.bundle`` embeds it). ``embedded``:
    fields (``reward.components.<i>.receptor``) an imported generator file carries, written under
    the data directory when it is stored. Assay models and catalogues are resolved by name
    (``app.libraries``). Raises ``ConfigError``."""
    root = data_dir.resolve()
    outside = f"must be a path inside the data directory ({root})"
    errors = []
    for key in _FILE_FIELDS:
        value = getattr(config.environment, key)
        if value is not None and not _inside(value, root):
            errors.append((f"environment.{key}", outside))
    for i, component in enumerate(config.reward.components):
        if not isinstance(component, DockingComponent):
            continue
        if f"reward.components.{i}.receptor" not in embedded and not _inside(Path(component.receptor), root):
            errors.append((f"reward.components.{i}.receptor", outside))
        if component.pose_dir is not None and not _inside(component.pose_dir, root):
            errors.append((f"reward.components.{i}.pose_dir", outside))
    if errors:
        raise ConfigError(errors)


def check_code_allowed(
    config: RunConfig, python_targets: list[str], commands: list[str], ray_address: str | None = None
) -> None:
    """Every ``python`` reward target must match an allowed pattern (exact, or ``module:*``) and every
    ``command`` reward's executable must be an allowed one, exactly; a command may not set ``env``
    (LD_PRELOAD and friends would run other code). A run may name no Ray cluster but the server's own
    (``ray_address``): a worker unpickles what the cluster's actors send back, so a cluster of the
    caller's choosing could run code on it. Raises ``CodeNotAllowed`` naming each field."""
    errors = []
    wanted = config.training.ray_address
    if wanted is not None and wanted != ray_address:
        errors.append(
            ("training.ray_address", "a run can only use the server's Ray cluster (leave it unset)")
        )
    for i, component in enumerate(config.reward.components):
        where = f"reward.components.{i}"
        if component.type == "python" and not any(fnmatchcase(component.target, p) for p in python_targets):
            errors.append(
                (f"{where}.target", f"python target {component.target!r} is not on the server's allowlist")
            )
        elif component.type == "command":
            if component.command[0] not in commands:
                errors.append(
                    (f"{where}.command", f"command {component.command[0]!r} is not on the server's allowlist")
                )
            if component.env:
                errors.append((f"{where}.env", "a command's environment cannot be set through the API"))
    if errors:
        raise CodeNotAllowed(errors)


def check_storable(config: RunConfig) -> None:
    """PostgreSQL's JSONB and text refuse NUL characters: name every field that holds one."""
    bad = _nul_fields(config.model_dump(mode="json"))
    if bad:
        raise ConfigError([(field, "must not contain NUL characters") for field in bad[:20]])


def _nul_fields(value: Any, path: str = "") -> list[str]:
    if isinstance(value, str):
        return [path or "(body)"] if "\x00" in value else []
    if isinstance(value, dict):
        found = [f"{path}.{k}".lstrip(".") for k in value if isinstance(k, str) and "\x00" in k]
        for key, item in value.items():
            found += _nul_fields(item, f"{path}.{key}".lstrip("."))
        return found
    if isinstance(value, list):
        return [f for i, item in enumerate(value) for f in _nul_fields(item, f"{path}.{i}".lstrip("."))]
    return []


def _inside(value: Path, root: Path) -> bool:
    try:
        return value.resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return False


def run_config_of(run: Run) -> RunConfig:
    """The typed RunConfig of a training run (stored resolved, as validated at creation)."""
    return RunConfig.model_validate(run.config)


def sampling_config_of(run: Run) -> SamplingConfig:
    """The typed SamplingConfig of a sampling job."""
    return SamplingConfig.model_validate(run.config)
