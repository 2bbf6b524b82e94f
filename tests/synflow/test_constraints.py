"""Constrained starts (``environment.start_blocks``, ``environment.scaffold``): config and library
errors that name the field, the environment's masks, and the exactness contract checked by brute
force on the tiny enumerable setting (the constrained environment's enumeration against the
unconstrained one filtered to allowed starts and scaffold matches)."""

from __future__ import annotations

import pickle
from collections import Counter, defaultdict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rdkit import Chem

from synflow.actors import ChemistrySpec
from synflow.assembly import constrained
from synflow.chemistry import SynthesisChemistry
from synflow.config import ConfigError, EnvironmentConfig, parse_run_config
from synflow.constraints import RouteConstraints, is_dead_end, query_elements, resolve_constraints
from synflow.env import EMPTY, Action, State, SynthesisEnv
from synflow.exact import backward_mass, enumerate_trajectories, exact_distribution
from synflow.objective import forward_log_probs
from synflow.trainer import Trainer
from synflow.trajectory import Trajectory
from tests.synflow.tiny_setting import BLOCKS, tiny_chemistry, tiny_config

# glycine by SMILES (written differently from the library's), benzylamine by catalogue ID
START = ["C(N)C(O)=O", "TINY02"]
PYRIDINE = "c1ccncc1"
GLYCINE, BENZYLAMINE = BLOCKS.index("NCC(=O)O"), BLOCKS.index("NCc1ccccc1")


def environment(**values: Any) -> EnvironmentConfig:
    return EnvironmentConfig(max_reactions=2, **values)


@pytest.fixture(scope="module")
def base() -> SynthesisChemistry:
    return tiny_chemistry()


@pytest.fixture(scope="module")
def unconstrained(base: SynthesisChemistry) -> list[Trajectory]:
    return enumerate_trajectories(SynthesisEnv(base))


def config_error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_run_config({"reward": {"components": [{"type": "qed"}]}, "environment": data})
    return caught.value


# -- errors ----------------------------------------------------------------------------------------
def test_the_config_names_a_bad_scaffold_and_bad_start_entries() -> None:
    error = config_error({"scaffold": "c1ccc("})
    assert error.errors[0][0] == "environment.scaffold" and "c1ccc(" in error.errors[0][1]
    error = config_error({"start_blocks": ["CCO", "  ", "CCO ethanol"]})
    fields = [field for field, _ in error.errors]
    assert fields == ["environment.start_blocks.1", "environment.start_blocks.2"]
    assert config_error({"start_blocks": []}).errors[0][0] == "environment.start_blocks"


def test_the_library_names_an_unknown_id_a_missing_smiles_and_an_unreadable_entry(base) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_constraints(environment(start_blocks=["TINY03", "NOPE-1", "CCCCCCCCO", "C1CC"]), base.library)
    fields = dict(caught.value.errors)
    assert set(fields) == {f"environment.start_blocks.{i}" for i in (1, 2, 3)}
    assert "'NOPE-1' is not a catalogue ID" in fields["environment.start_blocks.1"]
    assert "'CCCCCCCCO' is not a building block" in fields["environment.start_blocks.2"]
    unreadable = fields["environment.start_blocks.3"]
    assert "'C1CC'" in unreadable and "not a SMILES" in unreadable
    found = resolve_constraints(environment(start_blocks=START, scaffold=PYRIDINE), base.library)
    assert found == RouteConstraints((GLYCINE, BENZYLAMINE), PYRIDINE)


def test_a_start_block_that_fits_no_template_is_named(base) -> None:
    with pytest.raises(ConfigError) as caught:
        constrained(base, environment(start_blocks=["TINY00", "c1ccccc1"]))
    assert caught.value.errors[0][0] == "environment.start_blocks.1"
    assert "fits no reaction template" in str(caught.value)
    # with min_reactions = 0 a block may be the whole route: then it is a valid start
    zero = tiny_chemistry(min_reactions=0)
    chem = constrained(zero, EnvironmentConfig(max_reactions=2, min_reactions=0, start_blocks=["c1ccccc1"]))
    assert chem.start_blocks.tolist() == [BLOCKS.index("c1ccccc1")]


@pytest.mark.parametrize(
    ("scaffold", "why"),
    [
        ("[Si]", "must be Si"),
        ("[Cl,Br]c1ccccc1", "must be Br, Cl"),
        ("C" * 60, "has 60 atoms"),
    ],
)
def test_a_scaffold_no_molecule_can_contain_is_named(base, scaffold: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        constrained(base, environment(scaffold=scaffold))
    assert caught.value.errors[0][0] == "environment.scaffold" and why in str(caught.value)


def test_the_scaffold_check_refuses_only_what_is_impossible(base) -> None:
    # formed by a reaction only (no block has an ester of furfuryl alcohol), so it must be accepted
    for scaffold in ("C(=O)OCc1ccco1", "[!#6]", "*~*", "[$(C=O)]", PYRIDINE):
        assert constrained(base, environment(scaffold=scaffold)).constraints.scaffold == scaffold
    query = Chem.MolFromSmarts("[c,n;H1][C;!#7][!C;!N]")
    assert [query_elements(a) for a in query.GetAtoms()] == [frozenset({6, 7}), frozenset({6}), None]


# -- masks -----------------------------------------------------------------------------------------
def test_only_allowed_blocks_start_and_backward_parents_start_from_them(base) -> None:
    chem = constrained(base, environment(start_blocks=START))
    env = SynthesisEnv(chem)
    assert chem.start_blocks.tolist() == [BENZYLAMINE, GLYCINE]
    assert env.block_candidates(EMPTY, Action("start")).tolist() == [BENZYLAMINE, GLYCINE]
    # isonicotinoyl benzylamide: made from the acid or from the amine in one step; only the route
    # that starts with benzylamine (the acid as its partner) remains a parent
    product = "O=C(NCc1ccccc1)c1ccncc1"
    free = SynthesisEnv(base).parents(State(product, 1))
    assert {a.block for _, a in free} == {BLOCKS.index("OC(=O)c1ccncc1"), BENZYLAMINE}
    ((parent, action),) = env.parents(State(product, 1))
    assert parent == State("NCc1ccccc1", 0) and action.block == BLOCKS.index("OC(=O)c1ccncc1")
    # a molecule only a disallowed block starts has no stop depth at all
    assert env.stop_parents("CC(=O)OCc1ccco1") == []


def test_stop_is_masked_without_the_scaffold_and_dead_ends_are_invalid(base) -> None:
    env = SynthesisEnv(constrained(base, environment(scaffold=PYRIDINE)))
    assert 0 not in env.level1_choices(State("CC(=O)NCc1ccccc1", 1))
    assert 0 in env.level1_choices(State("O=C(NCc1ccccc1)c1ccncc1", 1))
    assert env.level1_choices(State("CC(=O)NCC(=O)NCc1ccccc1", 2)) == [], "a dead end: nothing is legal"
    assert env.stop_parents("CC(=O)NCc1ccccc1") == []
    trajs = enumerate_trajectories(env)
    dead = [t for t in trajs if not t.valid]
    assert dead and all(t.smiles is None and t.steps[-1].action.kind == "stop" for t in dead)
    assert all(not t.steps[-1].level1 for t in dead), "a dead end is never given a stop to take"


def test_constraints_travel_with_the_pickled_chemistry_spec(base) -> None:
    chem = constrained(base, environment(start_blocks=START, scaffold=PYRIDINE))
    rebuilt = pickle.loads(pickle.dumps(ChemistrySpec.of(chem))).build()
    assert rebuilt.constraints == chem.constraints
    assert rebuilt.start_blocks.tolist() == chem.start_blocks.tolist()
    assert not rebuilt.has_scaffold("CC(=O)NCc1ccccc1") and rebuilt.has_scaffold(PYRIDINE)


def test_the_store_never_mixes_constrained_and_unconstrained_reachability(base, tmp_path: Path) -> None:
    """A molecule only acetic acid can start is reachable without constraints and not with them, each
    chemistry reading the same store after the other wrote it."""
    molecule = "CC(=O)OCc1ccco1"
    free = tiny_chemistry()
    free.store_dir = tmp_path
    assert free.reachable(molecule, 1) and free.stop_depths(molecule) == [1]
    free.flush_store()
    fixed = constrained(tiny_chemistry(), environment(start_blocks=START, cache_dir=tmp_path))
    fixed.store_dir = tmp_path
    assert not fixed.reachable(molecule, 1) and fixed.stop_depths(molecule) == []
    assert fixed.stats["stored_retro"] + fixed.stats["retro"] > 0
    fixed.flush_store()
    again = tiny_chemistry()
    again.store_dir = tmp_path
    assert again.reachable(molecule, 1)


# -- exactness by brute force ----------------------------------------------------------------------
def actions(traj: Trajectory) -> tuple[Action, ...]:
    return tuple(s.action for s in traj.steps)


def allowed_prefix_transitions(
    trajs: list[Trajectory], starts: set[int]
) -> dict[State, set[tuple[State, Action]]]:
    """Every (parent, action) → child transition on a trajectory that begins with an allowed block."""
    parents: dict[State, set[tuple[State, Action]]] = defaultdict(set)
    for traj in trajs:
        if traj.steps[0].action.block not in starts:
            continue
        states = [s.state for s in traj.steps]
        for i in range(1, len(states)):
            parents[states[i]].add((states[i - 1], traj.steps[i - 1].action))
    return parents


@pytest.mark.parametrize(
    "constraints",
    [{"start_blocks": START}, {"scaffold": PYRIDINE}, {"start_blocks": START, "scaffold": "C(=O)N"}],
    ids=["start", "scaffold", "both"],
)
def test_the_constrained_enumeration_is_the_filtered_unconstrained_one(
    base, unconstrained: list[Trajectory], constraints: dict[str, Any]
) -> None:
    chem = constrained(base, environment(**constraints))
    env = SynthesisEnv(chem)
    trajs = enumerate_trajectories(env)
    starts = set(chem.start_blocks.tolist())
    query = Chem.MolFromSmarts(constraints.get("scaffold", "*"))

    def kept(t: Trajectory) -> bool:
        return t.steps[0].action.block in starts and Chem.MolFromSmiles(t.smiles).HasSubstructMatch(query)

    # the same valid trajectories, action for action, as the unconstrained ones that pass the filter
    expected = Counter(actions(t) for t in unconstrained if t.valid and kept(t))
    assert Counter(actions(t) for t in trajs if t.valid) == expected
    assert 0 < expected.total() < sum(t.valid for t in unconstrained)
    # P_B: each parent set is exactly the brute-force one (transitions from allowed starts), and
    # the backward policy is a distribution over every constrained trajectory of every terminal
    truth = allowed_prefix_transitions(unconstrained, starts)
    for traj in trajs:
        for choice in traj.backward:
            if choice.child.depth > 0 and choice.parents[0][1] is not None:
                assert set(choice.parents) == truth[choice.child], choice.child
    assert all(abs(m - 1.0) < 1e-9 for m in backward_mass(trajs).values())
    # dead ends (scaffold only): the allowed states without the scaffold that have nothing left to do
    dead = {t.steps[-1].state for t in trajs if not t.valid}
    want = {
        s for s in truth
        if not Chem.MolFromSmiles(s.smiles).HasSubstructMatch(query) and not env.level1_choices(s)
    }
    assert dead == want
    if "scaffold" in constraints:  # the scaffold really removes molecules of allowed starts
        assert any(t.steps[0].action.block in starts and not kept(t) for t in unconstrained if t.valid)
    if constraints == {"scaffold": PYRIDINE}:
        assert dead, "acids that never meet isonicotinic acid end in dead ends"


def test_the_forward_policy_is_a_distribution_over_the_constrained_terminals(base) -> None:
    config = tiny_config(environment={"start_blocks": START, "scaffold": "C(=O)N"})
    trainer = Trainer(config, chemistry=base)
    assert trainer.chem.constraints == RouteConstraints((GLYCINE, BENZYLAMINE), "C(=O)N")
    trajs = enumerate_trajectories(trainer.env, beta=4.0)
    probs = exact_distribution(trainer.runner, trainer.model, trajs)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
    molecules: dict[Hashable, float] = {k: p for k, p in probs.items() if isinstance(k, str)}
    assert molecules and all(p > 0 for p in molecules.values())
    query = Chem.MolFromSmarts("C(=O)N")
    assert all(Chem.MolFromSmiles(str(m)).HasSubstructMatch(query) for m in molecules)
    # what the trainer samples and stores obeys the constraints too
    for traj in trainer.sample(64):
        assert traj.steps[0].action.block in (GLYCINE, BENZYLAMINE)
        if traj.valid:
            assert traj.route[0]["building_block"]["id"] in ("TINY05", "TINY02")
            assert Chem.MolFromSmiles(traj.smiles).HasSubstructMatch(query)
    assert np.isfinite(trainer.chem.max_atoms(2))


# -- exactness after training (``make test-exact``) -------------------------------------------------
def molecule_l1(target: dict[Hashable, float], model: dict[Hashable, float]) -> float:
    """L1 between R/Z and the model's distribution given that it draws a molecule (not a dead end)."""
    molecules = [k for k in target if isinstance(k, str)]
    z, drawn = sum(target[k] for k in molecules), sum(model[k] for k in molecules)
    return sum(abs(model[k] / drawn - target[k] / z) for k in molecules)


def untrained_dead_mass(trainer: Trainer) -> float:
    trajs = enumerate_trajectories(trainer.env)
    return sum(p for k, p in exact_distribution(trainer.runner, trainer.model, trajs).items()
               if not isinstance(k, str))


def test_the_dead_end_term_is_reinforce_of_the_dead_end_probability_with_a_baseline(base) -> None:
    """Over n on-policy draws, a fraction b dead ends, the loss gains λ/n·Σ_τ (1_dead − b) log P_F(τ):
    its expected gradient is λ∇P(dead end)."""
    constraints = {"start_blocks": START, "scaffold": PYRIDINE}
    trainer = Trainer(tiny_config(environment=constraints, loss={"dead_end_weight": 0.5}), chemistry=base)
    trajs = trainer.sample(48)
    trainer.score(trajs)
    dead = [t for t in trajs if is_dead_end(t)]
    molecules = [t for t in trajs if t.valid]
    assert dead and molecules
    plain, _ = trainer._loss(molecules)
    with_dead, figures = trainer._loss(molecules, dead, len(molecules))
    log_pf = forward_log_probs(trainer.runner, trainer.model, dead)
    n, b = len(molecules) + len(dead), len(dead) / (len(molecules) + len(dead))
    valid_log_pf = forward_log_probs(trainer.runner, trainer.model, molecules)
    expected = 0.5 / n * ((1 - b) * log_pf.sum() - b * valid_log_pf.sum())
    assert float((with_dead - plain).detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert figures()["dead_end_term"] == pytest.approx(float(expected.detach()), rel=1e-5)
    # its gradient lowers the dead ends' log-probability: one SGD step on the term alone
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(with_dead - plain, params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            if g is not None:
                p -= 0.1 * g
    assert float(forward_log_probs(trainer.runner, trainer.model, dead).sum()) < float(log_pf.sum())


@pytest.mark.exact
def test_the_trained_sampler_draws_the_constrained_molecules_in_proportion_to_the_reward(base) -> None:
    """Fixed start blocks and a scaffold, with dead ends (states without the scaffold where nothing is
    legal, left out of the loss): after training, the molecules the sampler draws (the exact terminal
    distribution given a molecule) are within L1 0.05 of R/Z over the constrained set, and it has no
    terminal outside that set."""
    from tests.synflow.test_exactness import TOLERANCE, target_and_model, train

    constraints = {"start_blocks": START, "scaffold": PYRIDINE}
    untrained = Trainer(tiny_config(environment=constraints), chemistry=base)
    assert molecule_l1(*target_and_model(untrained)) > 0.2, "the untrained model is far from R/Z"
    trainer = train(600, environment=constraints, loss={"divergence": "reverse_kl"})
    target, model = target_and_model(trainer)
    molecules = {k for k in target if isinstance(k, str)}
    assert len(molecules) == 6 and len(target) > len(molecules), "dead ends exist"
    pyridine = Chem.MolFromSmarts(PYRIDINE)
    assert all(Chem.MolFromSmiles(k).HasSubstructMatch(pyridine) for k in molecules)
    assert set(model) == set(target), "the model's terminals are exactly the constrained ones"
    assert molecule_l1(target, model) < TOLERANCE
    # the dead-end term (loss.dead_end_weight, default 0.1) steered the sampler away from them:
    # 19.8 % of its samples without it (λ = 0), 0.05 % with it (measured)
    dead_mass = sum(p for k, p in model.items() if not isinstance(k, str))
    assert dead_mass < 0.01 and untrained_dead_mass(untrained) > 0.1
