"""A run's docked poses as the service finds them: the pose directory its docking component wrote
to (its ``pose_dir``, which the API only accepts inside the data directory, else DATA_DIR/poses,
the worker's default), a molecule's pose file in it, the receptor kept beside the pose and the
docking set-up (box) it was docked with. Nothing here reads a path a caller names: a molecule's
stored pose name must have the pose-name form, and a pose directory outside the data directory
is never read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.core.models import Molecule, Run
from synflow.config import RunConfig
from synflow.rewards.components import DockingComponent
from synflow.rewards.poses import receptor_of, resolve_pose, setup_of

__all__ = [
    "DockedPose", "docked_pose", "pose_molblock", "pose_record", "pose_root", "run_pose_dir",
]

_AFFINITY = re.compile(r"^>\s*<vina_affinity>.*\n(.+)$", re.MULTILINE)


def pose_root(data_dir: Path) -> Path:
    """Where the service's docking components keep poses unless a run says otherwise."""
    return data_dir / "poses"


def run_pose_dir(session: Session, run: Run, data_dir: Path) -> Path | None:
    """The pose directory of ``run``'s docking (a sampling job's: its training run's); None when it
    lies outside the data directory (a row the API did not create)."""
    if run.kind == "sample" and run.parent_id is not None:
        parent = session.get(Run, run.parent_id)
        run = parent if parent is not None else run
    chosen = pose_root(data_dir)
    try:
        config = RunConfig.model_validate(run.config)
    except ValueError:  # a sampling job whose training run is gone: the default directory
        config = None
    if config is not None:
        # with several docking components the last one's pose is kept (notes merge in order)
        for component in config.reward.components:
            if isinstance(component, DockingComponent) and component.pose_dir is not None:
                chosen = component.pose_dir
    try:
        inside = chosen.resolve().is_relative_to(data_dir.resolve())
    except (OSError, RuntimeError):
        inside = False
    return chosen if inside else None


@dataclass(frozen=True)
class DockedPose:
    """A molecule's kept pose: its SDF file, the receptor beside it, the set-up it was docked in."""

    sdf: Path
    receptor: Path | None
    setup: dict[str, Any]

    def affinity(self) -> float | None:
        """Vina's affinity (kcal/mol) written in the pose's record."""
        found = _AFFINITY.search(self.sdf.read_text())
        try:
            return float(found.group(1)) if found else None
        except ValueError:
            return None


def docked_pose(session: Session, mol: Molecule, data_dir: Path) -> DockedPose | None:
    """``mol``'s pose, or None when it has none (never docked, no pose kept, the file is gone)."""
    if mol.pose is None:
        return None
    run = session.get(Run, mol.run_id)
    pose_dir = None if run is None else run_pose_dir(session, run, data_dir)
    sdf = None if pose_dir is None else resolve_pose(pose_dir, mol.pose)
    if sdf is None:
        return None
    try:
        setup = setup_of(sdf)
    except (OSError, ValueError):
        setup = {}
    return DockedPose(sdf, receptor_of(sdf), setup)


def pose_molblock(pose_dir: Path, name: str) -> str | None:
    """The molecule block (3-D, through ``M  END``) of pose ``name`` under ``pose_dir``; None when
    there is no such pose or it cannot be read."""
    sdf = resolve_pose(pose_dir, name)
    if sdf is None:
        return None
    try:
        text = sdf.read_text()
    except OSError:
        return None
    end = text.find("M  END")
    return text[: end + len("M  END")] if end >= 0 else None


def pose_record(molblock: str, title: str, props: dict[str, Any]) -> str:
    """An SDF record of a pose's molecule block titled ``title``, with ``props`` as data fields
    (None values left out), laid out as ``app.chem.render.sdf_record`` lays them out."""
    _, _, rest = molblock.partition("\n")
    lines = [title.replace("\n", " "), rest]
    for key, value in props.items():
        if value is not None:
            lines += [f">  <{key}>", str(value), ""]
    return "\n".join([*lines, "$$$$", ""])
