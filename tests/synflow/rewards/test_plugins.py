from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rdkit import Chem

from synflow.rewards import RewardConfig, RewardPluginError, build_reward

TARGETS = "tests.synflow.rewards.plugin_targets"
SMILES = ["CCO", "c1ccccc1CCN", "bad(", "CCO"]


def python_reward(function: str, **extra: object) -> RewardConfig:
    return RewardConfig.model_validate({"components": [
        {"type": "python", "target": f"{TARGETS}:{function}", "name": "plug", **extra}]})


def test_python_plugin_scores_valid_canonical_molecules() -> None:
    reward = build_reward(python_reward("heavy_atom_fraction", kwargs={"scale": 10.0}))
    batch = reward.score(SMILES)
    assert batch.reward.tolist() == pytest.approx([0.3, 0.9, 0.0, 0.3])
    assert batch.scores["plug"].tolist() == pytest.approx([0.3, 0.9, 0.0, 0.3])


def test_python_plugin_with_transform_keeps_raw_values() -> None:
    config = python_reward("length", transform={"type": "clip", "low": 0, "high": 20})
    batch = build_reward(config).score(["CCO", "c1ccccc1CCN"])
    assert batch.scores["plug_raw"].tolist() == [3.0, float(len(Chem.MolToSmiles(Chem.MolFromSmiles(
        "c1ccccc1CCN"))))]
    assert batch.scores["plug"][0] == pytest.approx(3 / 20)


@pytest.mark.parametrize(("function", "message"), [
    ("returns_nan", "NaN"), ("raises", "model file missing"), ("one_short", "1 values for 2 molecules"),
    ("length", r"outside \[0, 1\]"),
])
def test_python_plugin_failures_are_loud_and_named(function: str, message: str) -> None:
    reward = build_reward(python_reward(function))
    with pytest.raises(RewardPluginError, match=message) as info:
        reward.score(["CCO", "CCN"])
    assert "'plug'" in str(info.value) and info.value.component == "plug"


def test_python_plugin_timeout() -> None:
    reward = build_reward(python_reward("sleeps", timeout_s=0.2))
    with pytest.raises(RewardPluginError, match="timed out"):
        reward.score(["CCO"])


def test_python_plugin_that_cannot_be_imported() -> None:
    with pytest.raises(RewardPluginError, match="cannot load"):
        build_reward(python_reward("missing_function"))


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "plugin.py"
    path.write_text("import sys\n" + body)
    return [sys.executable, str(path)]


def command_reward(command: list[str], **extra: object) -> RewardConfig:
    return RewardConfig.model_validate({"components": [
        {"type": "command", "command": command, "name": "ext", **extra}]})


def test_command_plugin_reads_one_score_per_line(tmp_path: Path) -> None:
    command = script(tmp_path, "for line in sys.stdin:\n    print(min(1.0, len(line.strip()) / 10))\n")
    batch = build_reward(command_reward(command)).score(["CCO", "CCCCCCCCCCCC", "bad(", "OCC"])
    assert batch.reward.tolist() == pytest.approx([0.3, 1.0, 0.0, 0.3])


@pytest.mark.parametrize(("body", "message"), [
    ("sys.stdin.read()\nprint('nan')\nprint('nan')\n", "NaN"),
    ("sys.stdin.read()\nprint('0.5')\n", "1 values for 2 molecules"),
    ("sys.stdin.read()\nprint('oops')\nprint('0.5')\n", "not a number"),
    ("sys.stdin.read()\nsys.stderr.write('license expired')\nsys.exit(3)\n", "status 3: license expired"),
    ("import time\ntime.sleep(5)\n", "timed out"),
])
def test_command_plugin_failures_are_loud_and_named(tmp_path: Path, body: str, message: str) -> None:
    reward = build_reward(command_reward(script(tmp_path, body), timeout_s=1.0))
    with pytest.raises(RewardPluginError, match=message) as info:
        reward.score(["CCO", "CCN"])
    assert info.value.component == "ext"


def test_missing_command_is_loud() -> None:
    reward = build_reward(command_reward(["/nonexistent/scorer"]))
    with pytest.raises(RewardPluginError, match="cannot run"):
        reward.score(["CCO"])
