"""Where docked poses live: a pose directory holds one folder per docking set-up (receptor content,
box, search settings), named by their digest, with the receptor it was docked in
(``receptor.pdbqt``), the set-up (``docking.json``: box centre and edges, search settings) and one
SDF per molecule named by its canonical SMILES' digest. Two runs docking the same molecule in the
same set-up share the file (Vina is seeded, so they would write the same pose).

A pose is named by its path relative to the pose directory (``<setup>/<ligand>.sdf``); that is what
a molecule's notes and the service's database hold. Files are written atomically (a temporary file,
then a rename), so a reader never sees half a pose. No RDKit, Vina or meeko here: the service reads
poses with this module alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "RECEPTOR_FILE",
    "SETUP_FILE",
    "ligand_file",
    "receptor_of",
    "resolve_pose",
    "setup_digest",
    "setup_of",
    "write_atomic",
]

RECEPTOR_FILE = "receptor.pdbqt"
SETUP_FILE = "docking.json"
# ``<16 hex>/<24 hex>.sdf``: the only names a pose may have, so a stored name cannot leave the folder
_POSE_NAME = re.compile(r"^[0-9a-f]{16}/[0-9a-f]{24}\.sdf$")


def setup_digest(receptor_text: str, setup: dict[str, Any]) -> str:
    """16 hex digits naming a docking set-up: the receptor's content and ``setup`` (box, search)."""
    payload = json.dumps(setup, sort_keys=True) + "\n" + receptor_text
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def ligand_file(smiles: str) -> str:
    """The file name of a molecule's pose (its canonical SMILES' digest)."""
    return hashlib.sha256(smiles.encode()).hexdigest()[:24] + ".sdf"


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text, or bytes as they are) to ``path`` through a temporary file in the
    same folder and a rename: a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as handle:
            handle.write(content)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def resolve_pose(pose_dir: Path, name: str) -> Path | None:
    """The file of pose ``name`` under ``pose_dir``; None when the name is not a pose name or the
    file is missing (a stored name never reaches outside the folder)."""
    if not _POSE_NAME.match(name):
        return None
    path = pose_dir / name
    return path if path.is_file() else None


def receptor_of(pose: Path) -> Path | None:
    """The receptor a pose was docked in (kept beside it), None if it is missing."""
    path = pose.parent / RECEPTOR_FILE
    return path if path.is_file() else None


def setup_of(pose: Path) -> dict[str, Any]:
    """The docking set-up a pose was docked with (box ``center`` and ``size``, search settings)."""
    data: dict[str, Any] = json.loads((pose.parent / SETUP_FILE).read_text())
    return data
