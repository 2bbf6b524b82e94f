"""`synflow library build` end to end, in a subprocess (tests do not import the app package)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from reactions.index import build_compatibility_index
from reactions.storage import open_library
from reactions.templates import load_template_set

BLOCKS = ("SMILES\tID\nOC(=O)c1ccccc1\tacid\nNCc1ccccc1\tamine\nC1CC\tbroken\nCCCC\tbutane\n"
          "Brc1ccccc1\tbromide\n")
TEMPLATES = "[C:1](=[O:2])[OH].[NH2:3]>>[C:1](=[O:2])[N:3]\tamide\n[c:1][Br].[NH2:2]>>[c:1][N:2]\tarylation\n"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from app.cli.main import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_library_build_prints_summary_and_writes_reusable_outputs(tmp_path: Path) -> None:
    (tmp_path / "blocks.smi").write_text(BLOCKS)
    (tmp_path / "t.txt").write_text(TEMPLATES)
    out = tmp_path / "out"
    result = run_cli("library", "build", str(tmp_path / "blocks.smi"), "--templates", str(tmp_path / "t.txt"),
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["building_blocks"] == 4 and summary["rejected"] == 1
    assert summary["templates"] == 2 and summary["bimolecular"] == 2
    assert summary["compatible_pairs"] == 4  # acid, amine | bromide, amine
    assert summary["unmatched_blocks"] == 1 and summary["unmatched_examples"][0]["id"] == "butane"
    assert [t["blocks_per_slot"] for t in summary["per_template"]] == [[1, 1], [1, 1]]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "unmatched.smi").read_text() == "CCCC\tbutane\n"
    rejected = (out / "library" / "rejected.tsv").read_text().splitlines()
    assert rejected[1].startswith("3\t4\tbroken\tC1CC\t'C1CC' is not valid SMILES")

    # The saved library reopens without re-standardising, and its index comes from the cache.
    library = open_library(out / "library")
    assert library.ids == ["acid", "amine", "butane", "bromide"]
    assert np.array_equal(library.dense_fingerprints().sum(axis=1) > 0, [True] * 4)
    index = build_compatibility_index(library, load_template_set(tmp_path / "t.txt"), cache_dir=out / "index")
    assert index.from_cache and index.blocks_for(1, 0).tolist() == [3]


def test_library_build_reports_a_bad_template_line(tmp_path: Path) -> None:
    (tmp_path / "blocks.smi").write_text(BLOCKS)
    (tmp_path / "t.txt").write_text("[C:1]=O>>[C:1]\n[C:1](=O\n")
    result = run_cli("library", "build", str(tmp_path / "blocks.smi"), "--templates", str(tmp_path / "t.txt"),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "line 2" in result.stderr
