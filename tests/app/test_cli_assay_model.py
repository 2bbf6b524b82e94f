"""``synflow score`` and ``synflow train`` with an ``assay_model`` reward that names a model file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from rdkit import Chem
from typer.testing import CliRunner

from app.cli import score as cli_score
from tests.synflow.rewards.assay_data import save_logp_model

ROOT = Path(__file__).resolve().parents[2]
PAGE_DATA = ROOT / "tests" / "app" / "pages" / "data"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "logp.npz"
    save_logp_model(path, 40)
    return path


def _score(tmp_path: Path, component: dict[str, object], smiles: list[str]) -> tuple[int, list[dict], str]:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    cli_score.register(app)
    (tmp_path / "reward.json").write_text(json.dumps({"components": [component]}))
    (tmp_path / "m.smi").write_text("\n".join(smiles) + "\n")
    result = CliRunner().invoke(app, ["score", str(tmp_path / "reward.json"), str(tmp_path / "m.smi")])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr


def test_score_with_a_model_file_ranks_by_the_predicted_value(model_file: Path, tmp_path: Path) -> None:
    low, high = "CC(=O)NCC(=O)O", "CCCCCCCCCCc1ccc(Cl)cc1Cl"  # logP about -1 and 7
    code, lines, err = _score(
        tmp_path, {"type": "assay_model", "model": str(model_file)}, [low, high, "bad("]
    )
    assert code == 0, err
    assert [line["valid"] for line in lines] == [True, True, False]
    assert 0 <= lines[0]["scores"]["logp"] < lines[1]["scores"]["logp"] <= 1
    assert lines[2]["reward"] == 0.0


def test_score_with_a_missing_model_file_says_which(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    code, _, err = _score(tmp_path, {"type": "assay_model", "model": str(missing)}, ["CCO"])
    assert code == 2 and f"reward model file '{missing}' cannot be read" in err


@pytest.mark.slow
def test_train_with_a_model_file_scores_every_molecule_with_it(model_file: Path, tmp_path: Path) -> None:
    config = {
        "name": "assay-cli",
        "reward": {
            "components": [{"type": "assay_model", "model": str(model_file), "uncertainty_bonus": 1.0}]
        },
        "environment": {
            "building_blocks": str(PAGE_DATA / "blocks.smi"),
            "templates": str(PAGE_DATA / "templates.txt"),
        },
        "training": {"steps": 2, "batch_size": 4, "device": "cpu", "log_every": 1},
    }
    (tmp_path / "run.json").write_text(json.dumps(config))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.cli.main import main; main()",
            "train",
            str(tmp_path / "run.json"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["step"] == 2
    molecules = [json.loads(line) for line in (tmp_path / "out" / "molecules.jsonl").read_text().splitlines()]
    assert molecules
    from synflow.rewards.assay import load_assay_model

    model = load_assay_model(model_file)
    expected = model.score([Chem.MolFromSmiles(m["smiles"]) for m in molecules], 1.0)
    np.testing.assert_allclose([m["scores"]["logp"] for m in molecules], expected, atol=1e-9)
