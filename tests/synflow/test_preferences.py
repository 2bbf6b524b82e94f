"""Preference conditioning (multi-objective GFlowNets): the config, R_w from cached scores, w reaching
the sampler, the loss, replay and the records, and sampling a trained run at a chosen w.

That the trained sampler draws ∝ R_w at several w is checked exactly in test_exactness.py."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import QED

from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.config import ConfigError, SamplingConfig, parse_run_config, parse_sampling_config
from synflow.preferences import default_preference, preference_vector
from synflow.rewards import RewardConfig, build_reward
from synflow.trainer import Trainer
from synflow.trajectory import target_reward
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config

TWO = {"components": [{"type": "qed", "weight": 3.0}, {"type": "sa"}], "beta": 4.0}


def two_objectives(**sections: dict[str, Any]) -> dict[str, Any]:
    return {"reward": TWO, "conditioning": {"preferences": {}}, **sections}


def test_preferences_span_the_score_components_unless_named() -> None:
    config = parse_run_config(
        {
            "reward": {
                "components": [
                    {"type": "qed"},
                    {"type": "sa"},
                    {"type": "substructure", "forbidden": ["[N+]"]},
                ]
            },
            "conditioning": {"preferences": {"dirichlet_alpha": 0.5}},
        }
    )
    assert config.preference_components == ["qed", "sa"]  # the filter is not a preference component
    assert parse_run_config({"reward": TWO}).preference_components is None


@pytest.mark.parametrize(
    ("sections", "field"),
    [
        ({"loss": {"log_z": "devgrad"}}, r"loss\.log_z.*depends on the preference"),
        (
            {"conditioning": {"preferences": {"components": ["qed", "logp"]}}},
            r"conditioning\.preferences\.components: 'logp'",
        ),
        ({"conditioning": {"preferences": {"components": ["qed"]}}}, r"at least two"),
        (
            {"conditioning": {"preferences": {"dirichlet_alpha": 0}}},
            r"conditioning\.preferences\.dirichlet_alpha",
        ),
    ],
)
def test_bad_preference_configs_name_the_field(sections: dict[str, Any], field: str) -> None:
    data = two_objectives()
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    with pytest.raises(ConfigError, match=field):
        parse_run_config(data)


def test_a_sampling_preference_is_checked_against_the_run() -> None:
    config = parse_run_config(two_objectives())
    assert np.allclose(preference_vector(config, {"qed": 7, "sa": 3}), [0.7, 0.3])
    assert np.allclose(preference_vector(config, {"sa": 2.0}), [0.0, 1.0])  # left out: weight 0
    assert np.allclose(preference_vector(config, None), [0.75, 0.25])  # the configured weights 3 : 1
    assert np.allclose(default_preference(config), [0.75, 0.25])
    with pytest.raises(ConfigError, match=r"^preference\.logp: not a preference component.*qed, sa"):
        preference_vector(config, {"qed": 1, "logp": 1})
    with pytest.raises(ConfigError, match=r"^preference\.qed: Input should be greater than or equal to 0"):
        parse_sampling_config({"preference": {"qed": -1}})
    with pytest.raises(ConfigError, match=r"^preference: .*positive"):
        parse_sampling_config({"preference": {"qed": 0, "sa": 0}})
    unconditioned = parse_run_config({"reward": TWO})
    assert preference_vector(unconditioned, None) is None
    with pytest.raises(ConfigError, match=r"^preference: this run was not trained preference-conditioned"):
        preference_vector(unconditioned, {"qed": 1})


def test_reward_aggregate_with_weights_recomputes_from_scores_without_an_oracle_call() -> None:
    smiles = ["CC(=O)NCc1ccccc1", "CCO", "O=C(O)c1ccncc1"]
    for aggregation in ("geometric", "arithmetic"):
        reward = build_reward(RewardConfig.model_validate({**TWO, "aggregation": aggregation}))
        batch = reward.score(smiles)
        calls = reward.oracle_calls
        qed = np.array([QED.qed(Chem.MolFromSmiles(s)) for s in smiles])
        assert np.allclose(reward.aggregate(batch.scores, {"qed": 3.0, "sa": 1.0}), batch.reward)
        assert np.allclose(reward.aggregate(batch.scores, {"qed": 1.0}), qed)
        assert np.allclose(reward.aggregate(batch.scores, {"qed": 0.0, "sa": 1.0}), batch.scores["sa"])
        half = reward.aggregate(batch.scores, {"qed": 0.5, "sa": 0.5})
        sa = batch.scores["sa"]
        expected = np.sqrt(qed * sa) if aggregation == "geometric" else (qed + sa) / 2
        assert np.allclose(half, expected)
        assert reward.oracle_calls == calls
        with pytest.raises(KeyError, match="logp"):
            reward.aggregate(batch.scores, {"logp": 1.0})


class Samples(TrainerCallback):
    def __init__(self) -> None:
        self.samples: list[SampledMolecule] = []

    def on_samples(self, samples: list[SampledMolecule]) -> None:
        self.samples += samples


@pytest.fixture(scope="module")
def chemistry() -> Any:
    return tiny_chemistry()


def test_each_trajectory_trains_towards_its_own_preference(chemistry: Any) -> None:
    config = tiny_config(
        reward=TWO,
        conditioning={"preferences": {}},
        replay={"fraction": 0.5, "warmup": 4},
        training={"steps": 3, "batch_size": 8},
    )
    record = Samples()
    trainer = Trainer(config, callbacks=[record], chemistry=chemistry)
    trainer.run()
    assert trainer.model.preference_dim == 2
    stored = trainer.replay.probabilities()[0]
    assert stored and len({t.preference for t in stored}) == len(stored)  # a w drawn per trajectory
    for traj in stored:
        assert traj.preference is not None and np.isclose(sum(traj.preference), 1.0)
        w = dict(zip(["qed", "sa"], traj.preference, strict=True))
        expected = traj.scores["qed"] ** w["qed"] * traj.scores["sa"] ** w["sa"]
        assert np.isclose(traj.log_reward, max(4.0 * np.log(expected), config.reward.log_reward_floor))
        assert np.isclose(target_reward(trainer.reward, traj, ["qed", "sa"]), expected)
    # replay: copies with a fresh w and log R recomputed for it; the buffer's entries are untouched
    before = [(t.preference, t.log_reward) for t in stored]
    calls = trainer.reward.oracle_calls
    relabelled = trainer.relabel(stored)
    assert [(t.preference, t.log_reward) for t in stored] == before
    pairs = zip(relabelled, stored, strict=True)
    assert all(r.preference != s.preference and r.smiles == s.smiles for r, s in pairs)
    assert trainer.reward.oracle_calls == calls
    loss, figures = trainer.loss(relabelled)
    assert np.isfinite(float(loss.detach())) and np.isfinite(figures["log_z"])
    # every record says the w it was drawn at
    assert record.samples and all(m.preference is not None for m in record.samples)
    assert set(record.samples[0].preference or {}) == {"qed", "sa"}
    assert "preference" in record.samples[0].to_json()


def test_sampling_a_trained_run_at_a_chosen_preference(chemistry: Any) -> None:
    config = tiny_config(reward=TWO, conditioning={"preferences": {}}, training={"steps": 1, "batch_size": 8})
    record = Samples()
    trainer = Trainer(config, callbacks=[record], chemistry=chemistry)
    trainer.run()
    record.samples.clear()
    trainer.draw(SamplingConfig(count=10, preference={"qed": 0.7, "sa": 0.3}))
    assert record.samples
    assert all(m.preference == pytest.approx({"qed": 0.7, "sa": 0.3}) for m in record.samples)
    for m in record.samples:
        expected = m.scores["qed"] ** 0.7 * m.scores["sa"] ** 0.3
        assert m.log_reward == pytest.approx(max(4.0 * np.log(expected), config.reward.log_reward_floor))
    with pytest.raises(ConfigError, match=r"^preference\.logp"):
        trainer.draw(SamplingConfig(count=2, preference={"logp": 1.0}))


def test_an_unconditioned_run_refuses_a_preference_and_records_none(chemistry: Any) -> None:
    record = Samples()
    config = tiny_config(training={"steps": 1, "batch_size": 4})
    trainer = Trainer(config, callbacks=[record], chemistry=chemistry)
    trainer.run()
    assert trainer.model.preference_dim == 0
    assert record.samples and all(m.preference is None for m in record.samples)
    assert "preference" not in record.samples[0].to_json()
    with pytest.raises(ConfigError, match=r"^preference: this run was not trained preference-conditioned"):
        trainer.draw(SamplingConfig(count=2, preference={"qed": 1.0}))


def test_a_sampler_actor_draws_a_preference_per_trajectory_and_scores_r_w(chemistry: Any) -> None:
    from synflow.actors import ChemistrySpec, DrawRequest, SamplerWorker
    from synflow.sampler import SamplerSettings

    config = tiny_config(reward=TWO, conditioning={"preferences": {}}, training={"samplers": 2})
    trainer = Trainer(config, chemistry=chemistry)
    worker = SamplerWorker(config.model_dump(mode="json"), ChemistrySpec.of(chemistry), 0)
    weights = trainer.sampling_model.state_dict()
    result = worker.draw(DrawRequest(8, 0, (1, 2, 3), SamplerSettings(), weights))
    worker.close()
    valid = [t for t in result.trajectories if t.valid]
    assert valid and all(t.preference is not None for t in result.trajectories)
    assert len({t.preference for t in result.trajectories}) == len(result.trajectories)
    for traj in valid:
        w = dict(zip(["qed", "sa"], traj.preference or (), strict=True))
        expected = traj.scores["qed"] ** w["qed"] * traj.scores["sa"] ** w["sa"]
        assert np.isclose(traj.log_reward, max(4.0 * np.log(expected), config.reward.log_reward_floor))
    loss, _ = trainer.loss(result.trajectories)  # the learner trains on them as they are
    assert np.isfinite(float(loss.detach()))


def test_replayed_trajectories_of_checkpoints_older_than_preferences_still_load() -> None:
    """A checkpoint's replay buffer pickles trajectories; one written before ``preference`` existed
    lacks the field, and unpickling gives it its default (None) instead of an unset slot."""
    from synflow.trajectory import Trajectory

    traj = Trajectory([], 4.0, True, "CCO", [], scores={"qed": 0.4}, preference=(0.3, 0.7))
    reconstruct, args, (_, slots) = traj.__reduce_ex__(4)[:3]
    older = reconstruct(*args)
    older.__setstate__((None, {k: v for k, v in slots.items() if k != "preference"}))  # what pickle does
    assert older.preference is None and older.scores == {"qed": 0.4} and older.smiles == "CCO"
    assert pickle.loads(pickle.dumps(traj)).preference == (0.3, 0.7)
