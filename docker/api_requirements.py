"""The project's dependencies the API alone needs: pyproject.toml's list without the training stack.

    python docker/api_requirements.py pyproject.toml > requirements-api.txt

The slim ``api`` image installs these and the project with ``--no-deps``; tests/app/test_api_without_torch.py
runs every API route and page against a server that cannot import torch.
"""

from __future__ import annotations

import re
import sys
import tomllib

# torch and PyG (the networks), and the docking stack: used by training workers only
TRAINING_ONLY = {"torch", "torch-geometric", "vina", "meeko", "gemmi"}


def api_requirements(pyproject: str) -> list[str]:
    with open(pyproject, "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    kept = []
    for requirement in dependencies:
        match = name.match(requirement)
        if match is None or match.group(0).lower() not in TRAINING_ONLY:
            kept.append(requirement)
    return kept


if __name__ == "__main__":
    print("\n".join(api_requirements(sys.argv[1])))
