"""The hypergrid check problem: reward layout, exact dynamic programme, gradient identity, training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from synflow.hypergrid import (
    Hypergrid,
    HypergridConfig,
    HypergridPolicy,
    HypergridTrainer,
    ReplayBuffer,
    Trajectories,
    exact_metrics,
    policy_log_probs_all_states,
    sample_trajectories,
    terminal_distribution,
    trajectories_from_actions,
    trajectory_log_probs,
)
from synflow.losses import divergence, divergence_names, ftb_loss

# Every named member, and the α family on both sides of 1.
FAMILY = [(name, {}) for name in divergence_names() if name != "alpha"] + [
    ("alpha", {"alpha": 0.5}),
    ("alpha", {"alpha": 1.5}),
]


def _policy(env: Hypergrid, seed: int, dtype: torch.dtype = torch.float32, **kw: object) -> HypergridPolicy:
    torch.manual_seed(seed)
    policy = HypergridPolicy(env.dim, env.side, hidden=32, layers=2, **kw).to(dtype)
    with torch.no_grad():  # a policy far from uniform, so the checks are not trivially symmetric
        for p in policy.parameters():
            p.mul_(3.0)
    return policy


# ---------------------------------------------------------------------------------------------
# Reward and modes.
# ---------------------------------------------------------------------------------------------


def test_reward_layout_h16_matches_the_standard_grid() -> None:
    env = Hypergrid(dim=2, side=16, r0=0.1)
    states = env.all_states()
    r = env.reward(states).reshape(16, 16)
    outer = {0, 1, 2, 3, 12, 13, 14, 15}
    band = {2, 13}
    for i, j in itertools.product(range(16), repeat=2):
        expected = 0.1 + 0.5 * (i in outer and j in outer) + 2.0 * (i in band and j in band)
        assert r[i, j].item() == pytest.approx(expected)
    ids = env.mode_id(states).reshape(16, 16)
    assert (
        ids[2, 2] == 0 and ids[13, 2] == 1 and ids[2, 13] == 2 and ids[13, 13] == 3
    )  # bit d: upper half of axis d
    assert (ids >= 0).sum() == 4


def test_modes_are_the_2_to_the_d_corner_cubes() -> None:
    env = Hypergrid(dim=3, side=64)
    ids = env.mode_id(env.all_states())
    counts = torch.bincount(ids[ids >= 0], minlength=env.n_modes)
    # |x/63 − ½| in (0.3, 0.4) ⇔ x ∈ {7…12} ∪ {51…56}: a 6-wide cube in each of the 8 corners.
    assert counts.tolist() == [6**3] * 8
    corner = torch.tensor([[7, 56, 12]])
    assert env.mode_id(corner).item() == 0b010
    assert env.reward(corner).item() == pytest.approx(1e-3 + 0.5 + 2.0)


def test_target_is_normalised_and_log_partition_matches() -> None:
    env = Hypergrid(dim=2, side=8, r0=0.01)
    target = env.target()
    assert target.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert env.log_partition() == pytest.approx(math.log(env.reward(env.all_states()).sum().item()))


# ---------------------------------------------------------------------------------------------
# The exact dynamic programme.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "side"), [(2, 5), (3, 4)])
def test_dp_terminal_distribution_sums_to_one_and_matches_monte_carlo(dim: int, side: int) -> None:
    env = Hypergrid(dim=dim, side=side)
    policy = _policy(env, seed=1)
    p = terminal_distribution(env, policy_log_probs_all_states(env, policy))
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (p >= 0).all()
    n = 40_000
    samples = sample_trajectories(env, policy, n, torch.Generator().manual_seed(0))
    empirical = torch.bincount(env.flat_index(samples.terminal), minlength=env.n_states).double() / n
    # Every state within 5 standard errors (plus a little slack for the float32 policy).
    tolerance = 5 * (p * (1 - p) / n).sqrt() + 1e-4
    assert ((empirical - p).abs() <= tolerance).all()
    assert (empirical - p).abs().sum().item() < 0.05


def test_dp_matches_brute_force_enumeration_of_trajectories() -> None:
    env = Hypergrid(dim=2, side=4)
    policy = _policy(env, seed=2, dtype=torch.float64)
    p = terminal_distribution(env, policy_log_probs_all_states(env, policy))
    batch = _all_trajectories(env)
    with torch.no_grad():
        lp = trajectory_log_probs(env, policy, batch)
    brute = torch.zeros(env.n_states, dtype=torch.float64)
    brute.index_add_(0, env.flat_index(batch.terminal), lp.log_pf.exp())
    torch.testing.assert_close(p, brute, rtol=1e-12, atol=1e-14)


def test_exact_metrics_of_the_target_and_of_a_point_mass() -> None:
    env = Hypergrid(dim=2, side=16)
    perfect = exact_metrics(env, env.target())
    assert perfect.l1 == pytest.approx(0.0, abs=1e-12)
    assert perfect.jsd == pytest.approx(0.0, abs=1e-12)
    assert perfect.modes_found == 4
    point = torch.zeros(env.n_states, dtype=torch.float64)
    point[0] = 1.0
    worst = exact_metrics(env, point)
    assert worst.modes_found == 0
    assert worst.l1 == pytest.approx(2 * (1 - env.target()[0].item()))
    assert 0 < worst.jsd < math.log(2)


# ---------------------------------------------------------------------------------------------
# Trajectory log-probabilities, sampling, replay.
# ---------------------------------------------------------------------------------------------


def _all_trajectories(env: Hypergrid) -> Trajectories:
    """Every complete trajectory of the grid as a padded action table (stop last)."""
    sequences: list[list[int]] = []
    for x in itertools.product(range(env.side), repeat=env.dim):
        moves = [d for d, count in enumerate(x) for _ in range(count)]
        for order in sorted(set(itertools.permutations(moves))):
            sequences.append([*order, env.stop])
    t = max(len(s) for s in sequences)
    actions = torch.tensor([s + [-1] * (t - len(s)) for s in sequences])
    return trajectories_from_actions(env, actions)


def test_uniform_backward_probabilities_sum_to_one_per_terminal_state() -> None:
    env = Hypergrid(dim=3, side=3)
    batch = _all_trajectories(env)
    lp = trajectory_log_probs(env, _policy(env, 0, torch.float64), batch)
    total = torch.zeros(env.n_states, dtype=torch.float64)
    total.index_add_(0, env.flat_index(batch.terminal), lp.log_pb.exp())
    torch.testing.assert_close(total, torch.ones_like(total))


def test_learned_backward_probabilities_sum_to_one_per_terminal_state() -> None:
    env = Hypergrid(dim=2, side=4)
    policy = _policy(env, 3, torch.float64, learn_backward=True)
    batch = _all_trajectories(env)
    with torch.no_grad():
        lp = trajectory_log_probs(env, policy, batch)
    total = torch.zeros(env.n_states, dtype=torch.float64)
    total.index_add_(0, env.flat_index(batch.terminal), lp.log_pb.exp())
    torch.testing.assert_close(total, torch.ones_like(total))
    assert lp.log_pb.std() > 0.1  # not uniform


@pytest.mark.parametrize("encoding", ["onehot", "thermometer"])
def test_rollout_logits_equal_the_module_forward(encoding: str) -> None:
    env = Hypergrid(dim=3, side=5)
    policy = _policy(env, 4, encoding=encoding, learn_backward=True)
    states = env.all_states()
    with torch.no_grad():
        torch.testing.assert_close(policy.rollout_logits()(states), policy(states)[:, :4])


def test_sampled_trajectories_are_valid_and_exploration_reaches_everywhere() -> None:
    env = Hypergrid(dim=2, side=6)
    policy = _policy(env, 5)
    batch = sample_trajectories(env, policy, 3000, torch.Generator().manual_seed(1), epsilon=1.0)
    lengths = batch.lengths()
    assert (batch.actions.gather(1, (lengths - 1)[:, None]) == env.stop).all()
    assert (batch.terminal <= env.side - 1).all()
    assert (batch.terminal.sum(1) + 1 == lengths).all()
    # ε = 1 is the uniform-action policy: every state is reached.
    assert torch.unique(env.flat_index(batch.terminal)).numel() == env.n_states


def test_replay_buffer_round_trips_trajectories() -> None:
    env = Hypergrid(dim=2, side=8)
    batch = sample_trajectories(env, _policy(env, 6), 50, torch.Generator().manual_seed(2), epsilon=0.5)
    buffer = ReplayBuffer(env, capacity=50)
    log_q = trajectory_log_probs(env, _policy(env, 6), batch).behaviour_log_prob(0.5)
    buffer.add(batch, log_q)
    replayed, replayed_log_q = buffer.sample(200, torch.Generator().manual_seed(3))
    stored = {tuple(row[row >= 0].tolist()): float(q) for row, q in zip(batch.actions, log_q, strict=True)}
    for row, q in zip(replayed.actions, replayed_log_q, strict=True):
        assert float(q) == pytest.approx(stored[tuple(row[row >= 0].tolist())], rel=1e-6)
    assert torch.equal(replayed.log_reward, env.log_reward(replayed.terminal))


@pytest.mark.parametrize("epsilon", [0.0, 0.3])
def test_the_behaviour_probability_of_the_epsilon_mixture_sums_to_one(epsilon: float) -> None:
    """q(τ) = Π (1−ε)π + ε/|legal| over every trajectory of a grid is a distribution: what the
    importance weights p_θ/q of off-policy trajectories divide by."""
    env = Hypergrid(dim=2, side=4)
    batch = _all_trajectories(env)
    with torch.no_grad():
        lp = trajectory_log_probs(env, _policy(env, 1, torch.float64), batch)
    assert float(lp.behaviour_log_prob(epsilon).exp().sum()) == pytest.approx(1.0, abs=1e-10)
    if epsilon == 0.0:
        torch.testing.assert_close(lp.behaviour_log_prob(0.0), lp.log_pf)


def test_trajectory_level_exploration_draws_the_mixture_it_reports() -> None:
    """With ε-noise on a fraction f of the trajectories, the sampler draws each trajectory with the
    probability behaviour_log_prob(ε, f) gives it (counted over 60,000 draws on a grid small enough
    to enumerate), that q sums to one, and p/q stays below 1/(1 − f) however long the trajectory."""
    env = Hypergrid(dim=2, side=3)
    policy = _policy(env, 4)
    everything = _all_trajectories(env)
    with torch.no_grad():
        lp = trajectory_log_probs(env, policy, everything)
    log_q = lp.behaviour_log_prob(0.6, 0.25).double()
    assert float(log_q.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    assert float((lp.log_pf.double() - log_q).exp().max()) <= 1 / 0.75 + 1e-6
    index = {tuple(row[row >= 0].tolist()): i for i, row in enumerate(everything.actions)}
    drawn = sample_trajectories(env, policy, 60_000, torch.Generator().manual_seed(5), 0.6, 0.25)
    counts = torch.zeros(len(index), dtype=torch.float64)
    for row in drawn.actions:
        counts[index[tuple(row[row >= 0].tolist())]] += 1
    assert float((counts / counts.sum() - log_q.exp()).abs().sum()) < 0.03
    # and it is not the all-trajectories ε-mixture nor the policy alone
    for other in (lp.behaviour_log_prob(0.6), lp.log_pf):
        assert float((counts / counts.sum() - other.double().exp()).abs().sum()) > 0.06


# ---------------------------------------------------------------------------------------------
# The on-policy gradient identity, exactly, on an enumerated hypergrid GFlowNet.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), FAMILY, ids=[f"{n}{p.get('alpha', '')}" for n, p in FAMILY])
def test_on_policy_expected_ftb_gradient_is_the_f_divergence_gradient(name: str, params: dict) -> None:
    """E_{P_F}[∇θ L_f(Δ(τ))] = ∇θ Σ_τ p*(τ) f(P_F(τ)/p*(τ)), p*(τ) = R(x)·P_B(τ|x)/Z, to 1e-10.

    Trajectories of a 2-D H=4 grid (70 of them) are enumerated; the left side is the f-TB loss with
    weights P_F(τ) (detached; they sum to 1) and the true log Z, the right side the divergence itself.
    """
    env = Hypergrid(dim=2, side=4, r0=0.05)
    policy = _policy(env, seed=7, dtype=torch.float64)
    batch = _all_trajectories(env)
    div = divergence(name, **params)
    log_z = torch.tensor(env.log_partition(), dtype=torch.float64)
    params_list = list(policy.parameters())

    lp = trajectory_log_probs(env, policy, batch)
    weights = lp.log_pf.detach().exp()
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)
    out = ftb_loss(lp.log_pf, lp.log_pb, batch.log_reward, div, log_z=log_z, weights=weights)
    lhs = torch.autograd.grad(out.loss, params_list)

    lp2 = trajectory_log_probs(env, policy, batch)
    p_model = lp2.log_pf.exp()
    p_target = (batch.log_reward + lp2.log_pb - log_z).exp()
    assert p_target.sum().item() == pytest.approx(1.0, abs=1e-12)
    rhs = torch.autograd.grad((p_target * div.f(p_model / p_target)).sum(), params_list)

    flat_l = torch.cat([g.reshape(-1) for g in lhs])
    flat_r = torch.cat([g.reshape(-1) for g in rhs])
    assert flat_r.norm() > 1e-3
    assert ((flat_l - flat_r).norm() / flat_r.norm()).item() < 1e-10


# ---------------------------------------------------------------------------------------------
# Training reaches the target.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"log_z": "devgrad"},
        {"log_z": "learned", "epsilon": 0.1, "replay_capacity": 2000, "replay_batch": 16},
    ],
    ids=["on_policy_devgrad", "off_policy_epsilon_replay_learned_log_z"],
)
def test_forward_kl_training_reaches_low_exact_l1_on_a_small_grid(extra: dict) -> None:
    cfg = HypergridConfig(
        dim=2, side=8, r0=0.01, hidden=64, divergence="forward_kl", lr=3e-3, batch_size=32, steps=600, **extra
    )
    trainer = HypergridTrainer(cfg)
    start = trainer.evaluate()
    for _ in range(cfg.steps):
        trainer.step()
    end = trainer.evaluate()
    assert start.l1 > 1.0
    assert end.l1 < 0.15, (start, end)
    assert end.modes_found == 4
