from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import typer
from rdkit import Chem
from rdkit.Chem import QED
from typer.testing import CliRunner

from app.cli import score as cli_score


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    cli_score.register(app)
    return app


def run(cli: typer.Typer, *args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(cli, ["score", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr


def test_scores_a_smiles_file_to_json_lines(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('[[components]]\ntype = "qed"\n[[components]]\ntype = "pmo"\n'
                                     'task = "celecoxib_rediscovery"\n')
    celecoxib = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"
    (tmp_path / "m.smi").write_text(f"CCO ethanol\n{celecoxib}\nbad(\n")
    code, lines, err = run(cli, str(tmp_path / "r.toml"), str(tmp_path / "m.smi"))
    assert code == 0, err
    assert [line["smiles"] for line in lines] == ["CCO", lines[1]["smiles"], "bad("]
    assert lines[0]["scores"]["qed"] == pytest.approx(QED.qed(Chem.MolFromSmiles("CCO")))
    assert lines[1]["scores"]["celecoxib_rediscovery"] == pytest.approx(1.0)
    assert lines[2] == {**lines[2], "reward": 0.0, "valid": False}
    assert "scored 2 unique molecules" in err


def test_reads_gzipped_csv_and_writes_output_file(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"components": [
        {"type": "physchem", "descriptor": "heavy_atoms",
         "transform": {"type": "clip", "low": 0, "high": 10}}]}))
    with gzip.open(tmp_path / "m.csv.gz", "wt") as handle:
        handle.write("id,SMILES\n1,CCO\n2,c1ccccc1\n")
    out = tmp_path / "o.jsonl"
    code, _, err = run(cli, str(tmp_path / "r.json"), str(tmp_path / "m.csv.gz"), "-o", str(out))
    assert code == 0, err
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [x["scores"]["heavy_atoms_raw"] for x in lines] == [3.0, 6.0]
    assert [x["reward"] for x in lines] == pytest.approx([0.3, 0.6])


def test_reads_sdf_and_names_an_unreadable_file(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('[[components]]\ntype = "qed"\n')
    with Chem.SDWriter(str(tmp_path / "m.sdf")) as writer:
        for smiles in ("CCO", "c1ccccc1O"):
            writer.write(Chem.MolFromSmiles(smiles))
    code, lines, err = run(cli, str(tmp_path / "r.toml"), str(tmp_path / "m.sdf"))
    assert code == 0, err
    assert [line["canonical_smiles"] for line in lines] == ["CCO", "Oc1ccccc1"]
    (tmp_path / "m.csv").write_text("name,value\na,1\n")
    code, _, err = run(cli, str(tmp_path / "r.toml"), str(tmp_path / "m.csv"))
    assert code == 2 and "m.csv" in err and "no SMILES column" in err


def test_invalid_config_reports_field_path(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"components": [
        {"type": "qed"}, {"type": "sa", "transform": {"type": "sigmoid", "low": "x", "high": 1}}]}))
    (tmp_path / "m.smi").write_text("CCO\n")
    code, lines, err = run(cli, str(tmp_path / "r.json"), str(tmp_path / "m.smi"))
    assert code == 2 and not lines
    assert "components.1.transform.low" in err


def test_plugin_failure_exits_non_zero_with_its_name(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"components": [
        {"type": "python", "target": "tests.synflow.rewards.plugin_targets:raises", "name": "mymodel"}]}))
    (tmp_path / "m.smi").write_text("CCO\n")
    code, _, err = run(cli, str(tmp_path / "r.json"), str(tmp_path / "m.smi"))
    assert code == 1 and "mymodel" in err and "model file missing" in err
