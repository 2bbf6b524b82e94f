"""Exact terminal distributions on small environments, by enumerating every trajectory.

For tests and sanity checks: with no block subsampling, the model's probability of a terminal
object is the sum of P_F over all trajectories that end in it, and the backward policy's
probabilities over those trajectories must sum to one for every object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable

import numpy as np
import torch

from synflow.env import EMPTY, Action, State, SynthesisEnv
from synflow.objective import forward_log_probs
from synflow.policy_runner import PolicyRunner
from synflow.sampler import backward_choices
from synflow.trajectory import Step, Trajectory

__all__ = ["enumerate_trajectories", "exact_distribution", "terminal_key"]


def terminal_key(traj: Trajectory) -> Hashable:
    """The terminal object: the molecule, or for an invalid end the (state, action) that failed."""
    if traj.valid:
        return traj.smiles
    last = traj.steps[-1]
    return ("invalid", last.state, last.action)


def enumerate_trajectories(env: SynthesisEnv, beta: float = 1.0) -> list[Trajectory]:
    """Every complete trajectory from the empty state (no subsampling: every block offered)."""
    out: list[Trajectory] = []
    _extend(env, EMPTY, -1, [], [], beta, out)
    for traj in out:
        traj.backward = backward_choices(env, traj)
    return out


def _extend(
    env: SynthesisEnv,
    state: State,
    start_block: int,
    steps: list[Step],
    route: list[dict],
    beta: float,
    out: list[Trajectory],
) -> None:
    if state.is_empty:
        cands = env.chem.start_blocks
        for b in cands:
            action = Action("start", block=int(b))
            _advance(
                env,
                state,
                Step(state, action, candidates=cands, n_total=cands.size),
                int(b),
                steps,
                route,
                beta,
                out,
            )
        return
    legal = tuple(env.level1_choices(state, start_block))
    if not legal:
        out.append(Trajectory([*steps, Step(state, Action("stop"))], beta, False, None, list(route)))
        return
    for index in legal:
        action = env.decode_level1(index)
        if action.kind == "stop":
            out.append(
                Trajectory([*steps, Step(state, action, level1=legal)], beta, True, state.smiles, list(route))
            )
        elif action.kind == "uni":
            _advance(env, state, Step(state, action, level1=legal), start_block, steps, route, beta, out)
        else:
            cands = env.block_candidates(state, action)
            for b in cands:
                full = Action("bi", action.template, action.slot, int(b))
                step = Step(state, full, level1=legal, candidates=cands, n_total=cands.size)
                _advance(env, state, step, start_block, steps, route, beta, out)


def _advance(
    env: SynthesisEnv,
    state: State,
    step: Step,
    start_block: int,
    steps: list[Step],
    route: list[dict],
    beta: float,
    out: list[Trajectory],
) -> None:
    nxt = env.step(state, step.action)
    if nxt is None:
        out.append(Trajectory([*steps, step], beta, False, None, list(route)))
        return
    assert nxt.smiles is not None
    route_step = env.route_step(state, step.action, nxt.smiles)
    _extend(env, nxt, start_block, [*steps, step], [*route, route_step], beta, out)


@torch.no_grad()
def exact_distribution(
    runner: PolicyRunner, model: torch.nn.Module, trajs: list[Trajectory]
) -> dict[Hashable, float]:
    """The model's exact probability of each terminal object (sums to one)."""
    log_pf = forward_log_probs(runner, model, trajs).double().exp().cpu().numpy()  # type: ignore[arg-type]
    probs: dict[Hashable, float] = defaultdict(float)
    for traj, p in zip(trajs, log_pf, strict=True):
        probs[terminal_key(traj)] += float(p)
    return dict(probs)


def backward_mass(trajs: list[Trajectory]) -> dict[Hashable, float]:
    """Σ over trajectories of the uniform P_B(τ | x), per terminal object (should all be 1)."""
    mass: dict[Hashable, float] = defaultdict(float)
    for traj in trajs:
        mass[terminal_key(traj)] += float(np.exp(traj.uniform_log_pb))
    return dict(mass)
