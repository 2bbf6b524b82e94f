"""After training, the exact distribution of what the sampler draws (every trajectory enumerated) is
within L1 0.05 of R/Z, on the tiny setting of tiny_setting.py, for the members and options whose
optimum is p ∝ R: several divergences on- and off-policy, DevGrad log Z, β drawn from a range
(checked at two β), the maximum-likelihood backward policy. The route backward policy's optimum is
∝ R × n(x), n(x) counted by enumeration. Block subsampling (k < N) is approximate: its bias is
measured, not hidden.

Each case is a training run of tens of seconds: ``make test-exact`` (marker ``exact``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from synflow.exact import enumerate_trajectories, exact_distribution, terminal_key
from synflow.preferences import default_preference
from synflow.trainer import Trainer
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config

pytestmark = pytest.mark.exact
TOLERANCE = 0.05
PREFERENCE_STEPS = 1500


def target_and_model(
    trainer: Trainer, beta: float | None = None, preference: tuple[float, ...] | None = None
) -> tuple[dict[Any, float], dict[Any, float]]:
    """R/Z and the model's exact terminal distribution, at ``beta`` (default: the reward's β) and,
    for a preference-conditioned run, at ``preference`` (default: the reward's configured weights)."""
    trajs = enumerate_trajectories(trainer.env, beta=trainer.config.reward.beta if beta is None else beta)
    if trainer.preferences is not None:
        w = preference or tuple(map(float, default_preference(trainer.config)))
        for traj in trajs:
            traj.preference = w
    trainer.score(trajs)
    reward = {terminal_key(t): float(np.exp(t.log_reward)) for t in trajs}
    z = sum(reward.values())
    return {k: r / z for k, r in reward.items()}, exact_distribution(trainer.runner, trainer.model, trajs)


def l1(target: dict[Any, float], model: dict[Any, float]) -> float:
    return sum(abs(model.get(k, 0.0) - p) for k, p in target.items())


def l1_to_target(
    trainer: Trainer, beta: float | None = None, preference: tuple[float, ...] | None = None
) -> float:
    return l1(*target_and_model(trainer, beta, preference))


def train(steps: int, off_policy: bool = False, **sections: dict[str, Any]) -> Trainer:
    training = {
        "steps": steps,
        "lr": 5e-3,
        "lr_schedule": "cosine",
        "exploration": 0.3 if off_policy else 0.0,
    }
    replay = {"fraction": 0.5 if off_policy else 0.0, "warmup": 32, "sampling": "reward"}
    config = tiny_config(
        **{**sections, "training": {**training, **sections.get("training", {})}, "replay": replay}
    )
    trainer = Trainer(config, chemistry=tiny_chemistry())
    assert l1_to_target(trainer) > 0.3, "the untrained model is far from the target"
    trainer.run()
    return trainer


# (divergence, loss parameters, policy, steps): each verified to pass on the development machine;
# mass-covering members converge more slowly on-policy than TB.
MEMBERS = [
    ("reverse_kl", {}, "on", 600),
    ("reverse_kl", {}, "off", 1000),
    ("hellinger", {}, "on", 1200),
    ("hellinger", {}, "off", 600),
    ("forward_kl", {}, "on", 1200),
    ("forward_kl", {}, "off", 1200),
    ("pearson", {}, "on", 600),
    ("js", {}, "on", 900),
    ("js", {}, "off", 900),
    ("tv", {}, "on", 900),
    ("tv", {}, "off", 900),
    ("alpha", {"alpha_schedule": {"start": 0.75, "end": 1.2, "steps": 400}}, "on", 900),
]


@pytest.mark.parametrize(
    ("divergence", "params", "policy", "steps"), MEMBERS, ids=[f"{m[0]}-{m[2]}" for m in MEMBERS]
)
def test_trained_sampler_draws_molecules_in_proportion_to_the_reward(
    divergence: str, params: dict[str, Any], policy: str, steps: int
) -> None:
    trainer = train(steps, off_policy=policy == "off", loss={"divergence": divergence, **params})
    assert l1_to_target(trainer) < TOLERANCE, (divergence, policy)
    # and the run's own diagnostic agrees: p(x) estimated from backward trajectories ∝ R(x)^β
    balance = trainer.sampler_balance(enumerated_molecules(trainer))
    assert balance["log_p_corr"] > 0.95 and balance["log_p_error"] < 0.2, balance


def test_two_sampler_processes_train_to_the_same_optimum() -> None:
    """Actor–learner (``training.samplers: 2``): batches drawn with weights up to ``max_staleness``
    learner steps old are off-policy data, and f-TB's minimiser is still p ∝ R."""
    trainer = train(600, training={"samplers": 2, "max_staleness": 4})
    assert sum(trainer.staleness.values()) == 600 and max(trainer.staleness) <= 4
    assert sum(k * v for k, v in trainer.staleness.items()) > 0, "some batches were stale"
    assert l1_to_target(trainer) < TOLERANCE


def enumerated_molecules(trainer: Trainer) -> list[Any]:
    """One scored trajectory per valid molecule of the setting."""
    trajs = [t for t in enumerate_trajectories(trainer.env, beta=trainer.config.reward.beta) if t.valid]
    trainer.score(trajs)
    return list({t.smiles: t for t in trajs}.values())


def test_devgrad_log_z() -> None:
    trainer = train(600, loss={"divergence": "reverse_kl", "log_z": "devgrad"})
    assert l1_to_target(trainer) < TOLERANCE


def test_beta_drawn_from_a_range_is_exact_at_every_beta() -> None:
    """β ~ U(1, 6) per trajectory, reaching the network and a learned log Z(β): exact at β = 1.5 and 6."""
    trainer = train(1500, conditioning={"beta_range": [1.0, 6.0]}, loss={"divergence": "reverse_kl"})
    for beta in (1.5, 6.0):
        assert l1_to_target(trainer, beta) < TOLERANCE, beta


def test_preference_conditioned_sampler_is_exact_at_every_preference() -> None:
    """Two score components (QED, SA), w ~ Dirichlet(1) per trajectory reaching the network and a
    learned log Z(w), off-policy (ε-exploration, replay relabelled with a fresh w and its log R_w
    recomputed): after training, the exact distribution at
    w = (1, 0), (½, ½) and (0, 1) is R_w/Z_w, three targets far apart, from one network."""
    reward = {"components": [{"type": "qed"}, {"type": "sa"}], "beta": 4.0}
    trainer = train(PREFERENCE_STEPS, off_policy=True, reward=reward, conditioning={"preferences": {}})
    targets = [target_and_model(trainer, preference=w)[0] for w in ((1.0, 0.0), (0.0, 1.0))]
    assert l1(*targets) > 0.3, "the objectives disagree: one distribution cannot serve both"
    for w in ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0)):
        assert l1_to_target(trainer, preference=w) < TOLERANCE, w


def test_maximum_likelihood_backward_policy() -> None:
    """A learned P_B (trained by −log P_B, seeing the parent molecule) keeps the optimum p ∝ R."""
    trainer = train(2000, environment={"backward_policy": "maximum_likelihood"})
    assert l1_to_target(trainer) < TOLERANCE


def test_route_backward_policy_optimum_is_reward_times_number_of_routes() -> None:
    """P_B = 1 along the sampled route: every route is its own object, so p(x) ∝ R(x) · n(x)."""
    trainer = train(900, environment={"backward_policy": "route"})
    beta = trainer.config.reward.beta
    trajs = enumerate_trajectories(trainer.env, beta=beta)
    trainer.score(trajs)
    routes = Counter(terminal_key(t) for t in trajs)
    reward = {terminal_key(t): float(np.exp(t.log_reward)) for t in trajs}
    weighted = {k: reward[k] * routes[k] for k in reward}
    z = sum(weighted.values())
    model = exact_distribution(trainer.runner, trainer.model, trajs)
    assert any(n > 1 for n in routes.values()), "some molecule has several routes"
    assert l1({k: w / z for k, w in weighted.items()}, model) < TOLERANCE
    proportional_to_reward = {k: r / sum(reward.values()) for k, r in reward.items()}
    assert l1(proportional_to_reward, model) > 2 * TOLERANCE, "and not ∝ R"


def test_block_subsampling_is_approximate_and_its_bias_is_measured() -> None:
    """k = 1 of N start blocks offered per choice, the importance-corrected loss: the drawn
    distribution (Monte Carlo over the subsets the sampler really draws) misses R/Z by far more than
    the exact choice does. This is why subsampling is an explicit approximate mode."""
    trainer = train(600, environment={"blocks_per_template": 1}, loss={"divergence": "reverse_kl"})
    target, _ = target_and_model(trainer)
    drawn: Counter[Any] = Counter()
    n = 0
    while n < 6000:
        for traj in trainer.sample(500):
            drawn[terminal_key(traj)] += 1
        n += 500
    empirical = {k: c / n for k, c in drawn.items()}
    bias = l1(target, empirical)
    assert bias > 0.15, bias  # measured 0.3-0.6 in the audit that found it; Monte Carlo noise ≈ 0.05
