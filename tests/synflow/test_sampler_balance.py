"""The sampler's p(x) estimated from backward trajectories (the ``log_p_corr`` / ``log_p_error``
diagnostics) against p(x) computed exactly by enumerating every forward trajectory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synflow.callbacks import TrainerCallback
from synflow.exact import enumerate_trajectories, exact_distribution, terminal_key
from synflow.sampler import backward_trajectory
from synflow.trainer import Trainer
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    return Trainer(tiny_config(training={"steps": 2, "batch_size": 8}), chemistry=tiny_chemistry())


def test_backward_trajectories_have_the_uniform_backward_probability(trainer: Trainer) -> None:
    """A backward draw is one of the enumerated forward trajectories to x, and its log P_B is the
    one the loss uses for that trajectory; over all draws every route of x appears."""
    trajs = [t for t in enumerate_trajectories(trainer.env) if t.valid]
    by_molecule: dict[str, dict[tuple, float]] = {}
    for t in trajs:
        key = tuple((s.state, s.action) for s in t.steps)
        by_molecule.setdefault(str(t.smiles), {})[key] = t.uniform_log_pb
    smiles = max(by_molecule, key=lambda s: len(by_molecule[s]))
    assert len(by_molecule[smiles]) > 1, "the setting has a molecule with several routes"
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        found = backward_trajectory(trainer.env, smiles, 4.0, rng)
        assert found is not None
        traj, log_pb = found
        key = tuple((s.state, s.action) for s in traj.steps)
        assert key in by_molecule[smiles]
        assert log_pb == pytest.approx(by_molecule[smiles][key])
        seen.add(key)
    assert seen == set(by_molecule[smiles])


def test_the_estimate_of_log_p_matches_the_enumerated_probability(trainer: Trainer) -> None:
    trajs = enumerate_trajectories(trainer.env, beta=trainer.config.reward.beta)
    exact = exact_distribution(trainer.runner, trainer.sampling_model, trajs)
    molecules = list({str(t.smiles): t for t in trajs if t.valid}.values())
    estimate = trainer.estimate_log_p(molecules, 400, np.random.default_rng(1))
    truth = np.array([math.log(exact[terminal_key(t)]) for t in molecules])
    assert np.abs(estimate.numpy() - truth).max() < 0.1
    # one draw per molecule is a noisier but still unbiased estimate of p(x)
    single = trainer.estimate_log_p(molecules, 1, np.random.default_rng(2))
    assert np.isfinite(single.numpy()).all()


def test_training_reports_the_backward_estimate(trainer: Trainer) -> None:
    seen: list[dict[str, float]] = []

    class Metrics(TrainerCallback):
        def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
            seen.append(metrics)

    run = Trainer(
        tiny_config(training={"steps": 2, "batch_size": 16, "log_every": 1}),
        chemistry=tiny_chemistry(),
        callbacks=[Metrics()],
    )
    run.run()
    assert len(seen) == 2
    assert all(-1.0 <= m["log_p_corr"] <= 1.0 and m["log_p_error"] >= 0 for m in seen)
    route = Trainer(
        tiny_config(training={"steps": 1, "batch_size": 8}, environment={"backward_policy": "route"}),
        chemistry=tiny_chemistry(),
    )
    assert route.sampler_balance(route.sample(8, 1.0, 0.0)) == {}, "P_B = 1 along a route: no estimate"
