"""Build-time check: the installed torch is the project's pinned version and the requested variant.

    python docker/check_torch.py VARIANT PYPROJECT     (VARIANT: cpu, or a CUDA tag such as cu126)
    python docker/check_torch.py --pinned PYPROJECT    (prints the pinned version; no torch needed)

Exits non-zero, saying why, when torch.version.cuda does not match the variant (a CPU image that
pulled PyPI's CUDA build, or a CUDA image built against the wrong index) or the version is not the
one pyproject.toml pins.
"""

from __future__ import annotations

import re
import sys
import tomllib


def pinned_torch(pyproject: str) -> str:
    with open(pyproject, "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    for requirement in dependencies:
        match = re.fullmatch(r"torch==([\w.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(1)
    raise SystemExit(f"{pyproject}: no torch==VERSION pin among the dependencies")


def expected_cuda(variant: str) -> str | None:
    if variant == "cpu":
        return None
    match = re.fullmatch(r"cu(\d+)(\d)", variant)
    if not match:
        raise SystemExit(f"TORCH_VARIANT={variant!r}: expected cpu or a CUDA tag such as cu126")
    return f"{match.group(1)}.{match.group(2)}"


def main() -> None:
    variant, pyproject = sys.argv[1], sys.argv[2]
    if variant == "--pinned":
        print(pinned_torch(pyproject))
        return
    import torch

    version = torch.__version__.split("+")[0]
    want_version, want_cuda = pinned_torch(pyproject), expected_cuda(variant)
    problems = []
    if version != want_version:
        problems.append(f"torch {torch.__version__} installed, pyproject.toml pins {want_version}")
    if torch.version.cuda != want_cuda:
        problems.append(
            f"torch.version.cuda is {torch.version.cuda}, TORCH_VARIANT={variant} wants {want_cuda}"
        )
    if problems:
        raise SystemExit("torch check failed: " + "; ".join(problems))
    print(f"torch {torch.__version__} (cuda {torch.version.cuda}) matches TORCH_VARIANT={variant}")


if __name__ == "__main__":
    main()
