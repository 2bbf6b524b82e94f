"""RunConfig: presets, overrides, the one error type, and validation without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from synflow.config import (
    DIVERGENCE_NAMES,
    PRESETS,
    ConfigError,
    RunConfig,
    load_run_config,
    parse_run_config,
    parse_sampling_config,
)
from tests.conftest import ROOT

QED = {"reward": {"components": [{"type": "qed"}]}}


def test_no_preset_means_sample_which_keeps_the_exactness_settings() -> None:
    config = parse_run_config(QED)
    assert config.preset == "sample"
    assert config.environment.backward_policy == "uniform"
    assert config.environment.blocks_per_template is None  # every compatible block: exact
    assert config.loss.log_z == "learned"
    assert parse_run_config({**QED, "preset": "sample"}) == config


def test_optimise_preset_fills_its_recipe_and_explicit_keys_win() -> None:
    config = parse_run_config({**QED, "preset": "optimise"})
    recipe = PRESETS["optimise"]
    assert config.environment.backward_policy == recipe["environment"]["backward_policy"] == "route"
    assert config.environment.blocks_per_template == recipe["environment"]["blocks_per_template"]
    assert config.reward.beta == recipe["reward"]["beta"]
    assert config.loss.divergence == "alpha" and config.loss.alpha_schedule is not None
    assert config.replay.fraction == recipe["replay"]["fraction"]
    assert config.reward.components[0].label == "qed"  # the user's section merges with the preset's
    mine = parse_run_config(
        {
            "preset": "optimise",
            "reward": {"components": [{"type": "qed"}], "beta": 4.0},
            "environment": {"backward_policy": "uniform"},
            "training": {"steps": 7},
        }
    )
    assert mine.reward.beta == 4.0 and mine.environment.backward_policy == "uniform"
    assert mine.environment.blocks_per_template == 64  # the rest of the section is the preset's
    assert mine.training.steps == 7 and mine.training.exploration == recipe["training"]["exploration"]


def test_the_stored_config_is_resolved_and_reads_back_unchanged() -> None:
    config = parse_run_config({**QED, "preset": "optimise", "training": {"steps": 3}})
    stored = json.loads(json.dumps(config.model_dump(mode="json")))
    assert stored["environment"]["backward_policy"] == "route"  # written out, not left to the preset
    assert RunConfig.model_validate(stored) == config


def test_errors_name_the_field_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config(
            {**QED, "preset": "fastest", "training": {"steps": -1}, "loss": {"divergance": "tv"}}
        )
    fields = {field for field, _ in caught.value.errors}
    assert {"preset", "training.steps", "loss.divergance"} <= fields
    assert "training.steps" in str(caught.value)
    with pytest.raises(ConfigError, match=r"loss\.divergence"):
        parse_run_config({**QED, "loss": {"divergence": "nope"}})
    with pytest.raises(ConfigError, match=r"^count: "):
        parse_sampling_config({"count": 0})


def test_devgrad_with_a_beta_range_is_refused() -> None:
    """One DevGrad shift per batch cannot serve trajectories whose log Z differs (log Z depends on β)."""
    with pytest.raises(ConfigError, match=r"loss\.log_z.*learned"):
        parse_run_config({**QED, "loss": {"log_z": "devgrad"}, "conditioning": {"beta_range": [1, 8]}})
    parse_run_config({**QED, "loss": {"log_z": "learned"}, "conditioning": {"beta_range": [1, 8]}})
    parse_run_config({**QED, "loss": {"log_z": "devgrad"}})


def test_a_bad_file_is_a_config_error_naming_it(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_run_config(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(QED))
    assert load_run_config(good, {"training": {"steps": 2}}).training.steps == 2


def test_divergence_names_agree_with_the_losses() -> None:
    from synflow.losses import divergence_names

    assert set(DIVERGENCE_NAMES) == set(divergence_names())


def test_validating_a_run_config_and_importing_the_api_load_no_torch() -> None:
    code = (
        "import sys\n"
        "from synflow.config import parse_run_config\n"
        "parse_run_config({'preset': 'optimise', 'reward': {'components': [{'type': 'qed'},"
        " {'type': 'similarity', 'references': ['CCO']}]}})\n"
        "import app.main\n"
        "app.main.create_app\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(len(loaded), loaded[:3])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.startswith("0 []"), out.stdout
