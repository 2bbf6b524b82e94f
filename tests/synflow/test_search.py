"""Learning more per oracle call: rank-weighted replay, inner updates, genetic and local search.

Real chemistry throughout: the tiny enumerable setting where exactness is checked, the bundled
library and templates where the operators need room to work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.config import EnvironmentConfig, GeneticConfig
from synflow.env import EMPTY, Action, SynthesisEnv
from synflow.genetic import MUTATIONS, RouteGenetics
from synflow.objective import forward_log_probs
from synflow.replay import ReplayBuffer
from synflow.routes import actions_of, replay_actions
from synflow.sampler import SamplerSettings
from synflow.trainer import Trainer, load_chemistry
from synflow.trajectory import Trajectory
from tests.synflow.test_synthesis_env import replay_route
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config


@pytest.fixture(scope="module")
def chemistry():
    return tiny_chemistry()


@pytest.fixture(scope="module")
def bundled():
    """The bundled library and templates, with the route backward policy (no retro-analysis)."""
    return load_chemistry(EnvironmentConfig(max_reactions=3))


def _trainer(chemistry, **overrides) -> Trainer:
    return Trainer(tiny_config(**overrides), chemistry=chemistry)


@pytest.mark.parametrize("backward", ["uniform", "route"])
def test_a_route_replayed_from_its_actions_is_the_sampled_trajectory(chemistry, backward) -> None:
    trainer = _trainer(chemistry, environment={"backward_policy": backward, "max_reactions": 2})
    sampled = [t for t in trainer.sample(48) if t.valid]
    rebuilt = [replay_actions(trainer.env, actions_of(t), t.beta, trainer.rng) for t in sampled]
    assert all(r is not None for r in rebuilt)
    for t, r in zip(sampled, rebuilt, strict=True):
        assert r is not None
        assert (r.smiles, r.route) == (t.smiles, t.route)
        assert [s.level1 for s in r.steps] == [s.level1 for s in t.steps]
        assert [s.action for s in r.steps] == [s.action for s in t.steps]
        if backward == "uniform":
            assert r.uniform_log_pb == pytest.approx(t.uniform_log_pb)
    with torch.no_grad():
        a = forward_log_probs(trainer.runner, trainer.model, sampled)
        b = forward_log_probs(trainer.runner, trainer.model, [r for r in rebuilt if r is not None])
    assert torch.allclose(a, b)


def test_an_illegal_route_is_refused_and_partial_replay_keeps_the_legal_prefix(chemistry) -> None:
    trainer = _trainer(chemistry)
    env = trainer.env
    two = next(t for t in trainer.sample(64) if t.valid and t.n_reactions == 2)
    actions = actions_of(two)
    assert replay_actions(env, actions[1:], 4.0, trainer.rng) is None  # no start
    # a block that is not a partner of the slot: not legal there
    bad = actions[2]
    outsider = next(b for b in range(chemistry.n_blocks) if b not in set(env.block_candidates(
        two.steps[2].state, bad).tolist())) if bad.kind == "bi" else None
    if outsider is not None:
        broken = [*actions[:2], type(bad)(bad.kind, bad.template, bad.slot, outsider)]
        assert replay_actions(env, broken, 4.0, trainer.rng) is None
        kept = replay_actions(env, broken, 4.0, trainer.rng, partial=True)
        assert kept is not None and kept.n_reactions == 1
        assert kept.smiles == two.steps[2].state.smiles
    assert replay_actions(env, actions[:1], 4.0, trainer.rng) is None  # below min_reactions = 1


def test_subsampled_blocks_always_offer_the_chosen_one(bundled) -> None:
    env = SynthesisEnv(bundled, verify_retro=False)
    rng = np.random.default_rng(0)
    pool = _pool(env, rng, 30)
    for traj in pool:
        t = replay_actions(env, actions_of(traj), 32.0, rng, blocks_per_template=64)
        assert t is not None and t.smiles == traj.smiles
        for step in t.steps:
            if step.candidates is not None:
                assert step.action.block in step.candidates
                assert len(step.candidates) == min(64, step.n_total)
                assert np.all(np.diff(step.candidates) > 0)


def _start(block: int) -> Action:
    return Action("start", block=block)


def _pool(env: SynthesisEnv, rng: np.random.Generator, n: int) -> list[Trajectory]:
    """Random valid routes of the bundled chemistry, grown by the operators themselves."""
    genetics = RouteGenetics(env, GeneticConfig(), rng)
    pool: list[Trajectory] = []
    while len(pool) < n:
        start = int(env.chem.start_blocks[rng.integers(env.chem.start_blocks.size)])
        state = env.step(EMPTY, _start(start))
        actions = [_start(start)]
        for _ in range(int(rng.integers(1, 4))):
            assert state is not None
            added = genetics._random_reaction(state, start, None, None)
            if added is None:
                break
            nxt = env.step(state, added)
            if nxt is None:
                break
            actions.append(added)
            state = nxt
        traj = replay_actions(env, actions, 32.0, rng)
        if traj is not None:
            pool.append(traj)
    return pool


def test_every_operator_makes_valid_replayable_routes_within_the_rules(bundled) -> None:
    env = SynthesisEnv(bundled, verify_retro=False)
    rng = np.random.default_rng(1)
    pool = _pool(env, rng, 40)
    genetics = RouteGenetics(env, GeneticConfig(neighbours=8), rng, blocks_per_template=64)
    made: dict[str, list[Trajectory]] = {op: [] for op in (*MUTATIONS, "crossover")}
    for _ in range(300):
        a, b = (pool[i] for i in rng.choice(len(pool), size=2, replace=False))
        op = str(rng.choice([*MUTATIONS, "crossover"]))
        child = genetics.crossover(a, b, 32.0) if op == "crossover" else genetics.mutate(a, op, 32.0)
        if child is not None:
            made[op].append(child)
    for op, children in made.items():
        assert len(children) >= 5, (op, len(children))
        for child in children:
            assert child.valid and child.smiles is not None
            assert bundled.min_reactions <= child.n_reactions <= bundled.max_reactions
            assert replay_route({"steps": child.route}) == child.smiles
            rebuilt = replay_actions(env, actions_of(child), 32.0, rng)
            assert rebuilt is not None and rebuilt.smiles == child.smiles
    # the operators change what they say they change
    for child in made["shrink"]:
        assert child.n_reactions >= 1
    swapped = made["swap_block"]
    assert any(c.smiles not in {p.smiles for p in pool} for c in swapped)


def test_a_leaf_swap_picks_among_the_most_similar_compatible_blocks(bundled) -> None:
    from rdkit import DataStructs

    lib = bundled.library
    template, slot = next(
        (t.index, s) for t in bundled.templates for s in range(t.arity)
        if t.arity == 2 and bundled.partners(t.index, s).size > 200
    )
    candidates = bundled.partners(template, slot)
    block = int(candidates[17])
    near = bundled.similar_blocks(block, candidates, 10)
    assert block not in near and set(near.tolist()) <= set(candidates.tolist())

    def fp(i: int):
        return DataStructs.CreateFromBinaryText(np.packbits(lib.dense_fingerprints([i])[0]).tobytes())

    sims = DataStructs.BulkTanimotoSimilarity(fp(block), [fp(int(c)) for c in candidates if c != block])
    tenth = sorted(sims, reverse=True)[9]
    for c in near:
        assert DataStructs.TanimotoSimilarity(fp(block), fp(int(c))) >= tenth - 1e-9


def test_offspring_are_new_molecules_and_budgets_hold(bundled) -> None:
    budget = 70
    config = tiny_config(
        reward={"components": [{"type": "qed"}], "beta": 4.0, "budget": budget},
        environment={"backward_policy": "route", "max_reactions": 3, "blocks_per_template": 64},
        replay={"sampling": "rank", "fraction": 0.25, "warmup": 4},
        training={"steps": 100, "batch_size": 8, "inner_steps": 3},
        search={"genetic": {"offspring": 12}, "local": {"candidates": 4}},
    )
    records: list[SampledMolecule] = []

    class Collect(TrainerCallback):
        def on_molecules(self, molecules: list[SampledMolecule]) -> None:
            records.extend(molecules)

    trainer = Trainer(config, callbacks=[Collect()], chemistry=bundled)
    outcome = trainer.run()
    assert outcome.reason == "budget_spent"
    assert trainer.reward.oracle_calls == budget == len(trainer.metrics.rewards)
    assert len(records) == budget and len({r.smiles for r in records}) == budget
    assert sum(trainer.genetics.stats.values()) > 0
    for record in records:
        assert replay_route(record.route) == record.smiles


def test_the_inner_loop_count_is_honoured(chemistry) -> None:
    steps, inner = 4, 3
    trainer = _trainer(
        chemistry,
        replay={"sampling": "rank", "fraction": 0.25, "warmup": 1},
        training={"steps": steps, "batch_size": 8, "inner_steps": inner, "lr_schedule": "cosine"},
    )
    calls: list[int] = []
    original = trainer.optimise

    def counted(batch: list[Trajectory], schedule: bool = True, **dead_ends: Any) -> dict[str, float]:
        calls.append(len(batch))
        return original(batch, schedule, **dead_ends)

    trainer.optimise = counted  # type: ignore[method-assign]
    trainer.run()
    assert len(calls) == steps * inner
    assert all(n == 8 for n in calls)
    assert trainer.scheduler.last_epoch == steps  # the learning-rate schedule counts training steps


def test_rank_weights_follow_the_reward_rank() -> None:
    buffer = ReplayBuffer(capacity=5, sampling="rank", rank_k=0.5)
    trajs = [
        Trajectory(steps=[], beta=1.0, valid=True, smiles=f"C{'C' * i}", route=[], reward=r)
        for i, r in enumerate([0.3, 0.9, 0.1, 0.5, 0.7, 0.2])
    ]
    buffer.add(trajs)
    items, p = buffer.probabilities()
    rewards = [t.reward for t in items]
    assert sorted(rewards) == [0.2, 0.3, 0.5, 0.7, 0.9]  # the lowest (0.1) was evicted
    ranks = np.argsort(np.argsort(-np.array(rewards)))
    expected = 1.0 / (0.5 * 5 + ranks)
    assert np.allclose(p, expected / expected.sum())
    drawn = buffer.sample(20_000, np.random.default_rng(0))
    freq = np.array([sum(t is d for d in drawn) for t in items]) / 20_000
    assert np.allclose(freq, p, atol=0.01)


def test_local_search_keeps_the_prefix_and_trains_only_on_improvements(chemistry) -> None:
    trainer = _trainer(chemistry, environment={"backward_policy": "route", "max_reactions": 2})
    pool = [t for t in trainer.sample(32) if t.valid and t.n_reactions == 2]
    regrown = trainer.sampler.regrow(trainer.model, [(t, 2) for t in pool], SamplerSettings())
    for parent, child in zip(pool, regrown, strict=True):
        assert child.steps[:2] == parent.steps[:2]
        assert child.route[:2] == parent.route[:2]
    weights = np.ones(len(pool))
    scored, kept = trainer._local_search(pool, weights, lambda smiles: False, set())
    by_smiles = {t.smiles: t for t in scored}
    assert all(t.smiles in by_smiles for t in kept)
    assert len({t.smiles for t in scored}) == len(scored)




def test_a_run_with_search_resumes_bit_exactly(chemistry, tmp_path) -> None:
    config = tiny_config(
        environment={"backward_policy": "route", "max_reactions": 2},
        replay={"sampling": "rank", "fraction": 0.25, "warmup": 4},
        training={"steps": 6, "batch_size": 8, "inner_steps": 2, "exploration": 0.1},
        search={"genetic": {"offspring": 4}, "local": {"candidates": 2}},
    )
    straight = Trainer(config, chemistry=chemistry)
    straight.run()
    first = Trainer(config, chemistry=chemistry)
    first.run(steps=3)
    first.save_checkpoint(tmp_path / "mid.pt")
    resumed = Trainer(config, chemistry=chemistry)
    resumed.load_checkpoint(tmp_path / "mid.pt")
    resumed.run()
    assert straight.metrics.rewards == resumed.metrics.rewards
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
