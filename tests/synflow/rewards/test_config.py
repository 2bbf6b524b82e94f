from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from synflow.rewards import (
    RewardConfig,
    component_catalogue,
    component_registry,
    load_reward_config,
    transform_catalogue,
)
from synflow.rewards.chem import FINGERPRINT_KINDS
from synflow.rewards.components import FingerprintKind, PhyschemDescriptor, PmoTask
from synflow.rewards.factory import BUILDERS
from synflow.rewards.molecular import descriptor_functions
from synflow.rewards.pmo import pmo_tasks

REQUIRED_TYPES = {
    "qed", "sa", "physchem", "similarity", "substructure", "pmo", "python", "command", "docking",
    "assay_model", "alerts", "purchasable",
}


def locations(data: dict) -> list[str]:
    with pytest.raises(ValidationError) as info:
        RewardConfig.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_registry_lists_every_component_with_a_schema() -> None:
    assert set(component_registry()) == REQUIRED_TYPES
    catalogue = {entry["type"]: entry for entry in component_catalogue()}
    assert set(catalogue) == REQUIRED_TYPES
    for entry in catalogue.values():
        assert entry["description"]
        assert entry["schema"]["properties"]["type"]["const"] == entry["type"]
        assert {"weight", "transform", "name", "role"} <= set(entry["schema"]["properties"])
    task_enum = catalogue["pmo"]["schema"]["properties"]["task"]["enum"]
    assert len(task_enum) == 20
    json.dumps(component_catalogue())  # the service serves it as JSON
    assert {t["type"] for t in transform_catalogue()} >= {
        "sigmoid", "reverse_sigmoid", "double_sigmoid", "step", "gaussian", "clip"}


def test_literals_match_implementations() -> None:
    assert set(PmoTask.__args__) == set(pmo_tasks())
    assert set(PhyschemDescriptor.__args__) == set(descriptor_functions())
    assert set(FingerprintKind.__args__) == set(FINGERPRINT_KINDS)


def test_factory_builds_every_component_type() -> None:
    assert set(BUILDERS) == set(component_registry().values())


def test_invalid_chemistry_errors_name_the_input_and_the_reason() -> None:
    with pytest.raises(ValidationError) as info:
        RewardConfig.model_validate({"components": [{"type": "similarity", "references": ["CCO", "C1CC"]}]})
    assert "components.0.references.1" in str(info.value)
    assert "'C1CC' is not valid SMILES: unclosed ring" in str(info.value)
    substructure = {"type": "substructure", "forbidden": ["c1ccccc1", "[C"]}
    with pytest.raises(ValidationError) as info:
        RewardConfig.model_validate({"components": [substructure]})
    assert "components.0.forbidden.1" in str(info.value) and "'[C' is not valid SMARTS" in str(info.value)


def test_errors_carry_field_paths_without_union_tags() -> None:
    data = {"components": [
        {"type": "qed"},
        {"type": "sa"},
        {"type": "physchem", "descriptor": "mw", "transform": {"type": "sigmoid", "low": "x", "high": 1}},
    ]}
    assert locations(data) == ["components.2.transform.low"]
    assert locations({"components": [{"type": "nope"}]}) == ["components.0.type"]
    assert locations({"components": [{"type": "pmo", "task": "drd2"}]}) == ["components.0.task"]
    assert locations({"components": [{"type": "physchem", "descriptor": "mw"}]}) == ["components.0.transform"]
    assert locations({"components": [{"type": "qed"}, {"type": "qed"}]}) == ["components.1.name"]
    assert locations({"components": [{"type": "substructure", "forbidden": ["[C"]}]}) == [
        "components.0.forbidden.0"]
    assert locations({"components": [{"type": "similarity", "references": ["C1CC"]}]}) == [
        "components.0.references.0"]
    assert locations({"components": [{"type": "python", "target": "no colon"}]}) == ["components.0.target"]
    same_ends = {"type": "qed", "transform": {"type": "clip", "low": 1, "high": 1}}
    assert locations({"components": [same_ends]}) == ["components.0.transform"]
    assert locations({"components": [{"type": "qed", "wieght": 2}]}) == ["components.0.wieght"]
    assert locations({"components": []}) == ["components"]
    assert locations({"components": [{"type": "substructure"}]}) == ["components.0"]


def test_round_trip_and_fingerprint() -> None:
    config = RewardConfig.model_validate({"components": [
        {"type": "pmo", "task": "median1"},
        {"type": "physchem", "descriptor": "tpsa", "transform": {"type": "gaussian", "low": 60, "high": 90,
                                                                "sigma": 10}},
        {"type": "command", "command": "python -c 'print(1)'"},
    ], "beta": 8, "budget": 100})
    again = RewardConfig.model_validate_json(config.model_dump_json())
    assert again == config and again.fingerprint() == config.fingerprint()
    assert config.components[2].command == ["python", "-c", "print(1)"]
    assert config.names == ["median1", "tpsa", "python"]
    other = config.model_copy(update={"beta": 9.0})
    assert other.fingerprint() != config.fingerprint()


def test_load_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"components": [{"type": "qed"}], "beta": 2}))
    (tmp_path / "r.toml").write_text(
        'aggregation = "arithmetic"\n[[components]]\ntype = "pmo"\ntask = "qed"\nweight = 2.0\n'
        '[[components]]\ntype = "sa"\n[components.transform]\ntype = "clip"\nlow = 0.2\nhigh = 0.8\n'
    )
    (tmp_path / "run.toml").write_text('[training]\nsteps = 10\n[reward]\nbeta = 4\n[[reward.components]]\n'
                                       'type = "qed"\n')
    assert load_reward_config(tmp_path / "r.json").beta == 2
    toml = load_reward_config(tmp_path / "r.toml")
    assert toml.aggregation == "arithmetic" and toml.components[1].transform.high == 0.8
    assert load_reward_config(tmp_path / "run.toml").beta == 4
