"""Routes as action lists, and trajectories rebuilt from them by running the chemistry forward.

Genetic search and local search edit a molecule's route (its ``start`` block and reaction steps)
and need the result as a trajectory the f-TB loss can score: every state, every legal level-1
choice and a block subsample that contains the chosen block, recorded exactly as the sampler would
have. ``replay_actions`` builds that by applying each action with ``SynthesisEnv.step``, so every
product of an edited route is made by the same chemistry as a sampled one (and, under the uniform
backward policy, verified by retro-analysis); a step the chemistry refuses gives None.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synflow.env import EMPTY, Action, State, SynthesisEnv
from synflow.sampler import backward_choices
from synflow.trajectory import Step, Trajectory

__all__ = ["actions_of", "offered_blocks", "replay_actions"]


def actions_of(traj: Trajectory) -> list[Action]:
    """The start and reaction actions of a trajectory (its stop left out)."""
    return [s.action for s in traj.steps if s.action.kind != "stop"]


def offered_blocks(
    candidates: np.ndarray, block: int, k: int | None, rng: np.random.Generator
) -> np.ndarray:
    """The blocks a choice of ``block`` among ``candidates`` is recorded with: all of them, or a
    sorted subsample of ``k`` that contains ``block`` (the sampler's subsample, conditioned on the
    block it chose)."""
    if k is None or candidates.size <= k:
        return candidates
    others = candidates[candidates != block]
    picked = rng.choice(others, size=k - 1, replace=False)
    return np.sort(np.append(picked, block).astype(candidates.dtype))


def replay_actions(
    env: SynthesisEnv,
    actions: Sequence[Action],
    beta: float,
    rng: np.random.Generator,
    blocks_per_template: int | None = None,
    partial: bool = False,
) -> Trajectory | None:
    """The trajectory that takes ``actions`` (a ``start`` then reactions) and stops, or None when an
    action is not legal where it is taken (a block outside the compatible list, a template that does
    not match, more than ``max_reactions``, a stop below ``min_reactions``) or its reaction gives no
    (verified) product. With ``partial`` the trajectory stops before the first such action instead
    (None only when that leaves it below ``min_reactions``). Recorded like a sampled trajectory: its
    log P_F can be scored, its route is in DESIGN.md's format, and under the uniform backward policy
    its backward choices are filled."""
    if not actions or actions[0].kind != "start":
        return None
    state = EMPTY
    start_block = actions[0].block
    steps: list[Step] = []
    route: list[dict] = []
    for action in actions:
        step = _recorded_step(env, state, action, start_block, blocks_per_template, rng)
        nxt = env.step(state, action) if step is not None else None
        if step is None or nxt is None or nxt.smiles is None:
            if partial and not state.is_empty:
                break
            return None
        route.append(env.route_step(state, action, nxt.smiles))
        steps.append(step)
        state = nxt
    legal = tuple(env.level1_choices(state, start_block))
    if 0 not in legal:  # below min_reactions
        return None
    steps.append(Step(state, Action("stop"), level1=legal))
    traj = Trajectory(steps=steps, beta=beta, valid=True, smiles=state.smiles, route=route)
    if env.verify_retro:
        traj.backward = backward_choices(env, traj)
    return traj


def _recorded_step(
    env: SynthesisEnv,
    state: State,
    action: Action,
    start_block: int,
    blocks_per_template: int | None,
    rng: np.random.Generator,
) -> Step | None:
    """``action`` at ``state`` recorded as the sampler records it, or None when it is not legal."""
    if action.kind == "start":
        cands = env.chem.start_blocks
        if not state.is_empty or not np.isin(action.block, cands):
            return None
        offered = offered_blocks(cands, action.block, blocks_per_template, rng)
        return Step(state, action, candidates=offered, n_total=int(cands.size))
    if action.kind not in ("uni", "bi") or state.is_empty:
        return None
    legal = tuple(env.level1_choices(state, start_block))
    if action.level1 not in legal:
        return None
    step = Step(state, action, level1=legal)
    if action.kind == "bi":
        cands = env.block_candidates(state, action)
        if not np.isin(action.block, cands):
            return None
        step.candidates = offered_blocks(cands, action.block, blocks_per_template, rng)
        step.n_total = int(cands.size)
    return step
