"""``synflow reward-model fit|list``: the service's fit on a CSV of this machine, written to a file or
stored as the next version in the service's database (both dialects), and errors naming the option."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from typer.testing import CliRunner, Result

from app.cli.main import build_cli
from app.core.db import Database
from app.core.settings import Settings
from app.libraries.reward_models import resolve_assay_models
from synflow.config import ConfigError, parse_run_config
from synflow.rewards.assay import load_assay_model
from tests.synflow.rewards.assay_data import logp, write_logp_csv, zinc_smiles

N = 30
BAD_ROWS = [["bad", "C1CC(", "1.0"], ["nan", "CCO", "n/a"]]  # CSV lines N + 2 and N + 3


@pytest.fixture(scope="module")
def logp_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logp_csv(tmp_path_factory.mktemp("assay") / "logp.csv", zinc_smiles(N), BAD_ROWS)


def synflow(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), list(args))


def test_fit_writes_a_model_file_that_predicts_the_measured_values(logp_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "logp.npz"
    result = synflow("reward-model", "fit", str(logp_csv), "--value-column", "logp", "-o", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["molecules"] == N and summary["rejected"] == 2
    assert set(summary["cv"]) == {"random_forest", "gaussian_process"}
    assert summary["estimator"] in summary["cv"]
    assert summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    # the rejected rows, by CSV line (header = line 1), on stderr
    assert f"rejected line {N + 2}: 'C1CC('" in result.stderr and f"rejected line {N + 3}" in result.stderr
    model = load_assay_model(out, summary["sha256"])
    smiles = zinc_smiles(N)
    mean, _ = model.predict([Chem.MolFromSmiles(s) for s in smiles])
    assert np.corrcoef(mean, [logp(s) for s in smiles])[0, 1] > 0.9  # it learnt its training data


def test_fit_name_stores_versions_the_service_resolves(
    logp_csv: Path, settings: Settings, db: Database
) -> None:
    before = logp_csv.read_bytes()
    options = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    references = []
    for _ in range(2):
        result = synflow(
            "reward-model", "fit", str(logp_csv), "--value-column", "logp", "--direction", "lower",
            "--name", "logp", *options,
        )
        assert result.exit_code == 0, result.output
        references.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert [r["reference"] for r in references] == ["logp@1", "logp@2"]
    assert logp_csv.read_bytes() == before  # the user's file is copied, never moved
    stored = Path(references[1]["file"])
    assert stored.parent == (settings.data_dir / "reward-models" / "logp").resolve()
    assert stored.with_suffix(".csv").read_bytes() == before
    listed = synflow("reward-model", "list", *options)
    assert listed.exit_code == 0 and listed.stdout.startswith("logp@2\t2 version(s)\t")

    config = parse_run_config({"reward": {"components": [{"type": "assay_model", "model": "logp@1"}]}})
    with db.session() as session:
        pinned = resolve_assay_models(config, session).reward.components[0]
        with pytest.raises(ConfigError, match="has no version 3"):
            resolve_assay_models(
                parse_run_config({"reward": {"components": [{"type": "assay_model", "model": "logp@3"}]}}),
                session,
            )
    assert pinned.reference == "logp@1" and pinned.sha256 == references[0]["sha256"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "option", "message"),
    [
        (["--value-column", "pIC50", "-o", "m.npz"], "--value-column", "'pIC50'"),
        (["--value-column", "logp", "--smiles-column", "SMILES", "-o", "m.npz"], "--smiles-column",
         "'SMILES'"),
        (["--value-column", "logp"], "-o/--name", "give one of"),
        (["--value-column", "logp", "-o", "m.pkl"], "-o", "must end with .npz"),
        (["--value-column", "logp", "--name", "../x"], "--name", "letters, digits"),
        (["--value-column", "logp", "--direction", "up", "-o", "m.npz"], "--direction", "higher or lower"),
        (["--value-column", "logp", "--max-rows", "10", "-o", "m.npz"], "CSV", "more than 10 data rows"),
    ],
)
def test_bad_options_are_refused_naming_them(
    logp_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], option: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = synflow("reward-model", "fit", str(logp_csv), *extra)
    assert result.exit_code == 2, result.output
    assert option in result.output and message in result.output
    assert not list(tmp_path.glob("m.*"))  # nothing written
