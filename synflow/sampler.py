"""Batched sampling of trajectories from the policy, in lock-step over the batch.

Each round encodes every active state in one graph batch, draws the level-1 decision (stop or a
(template, slot)) and, for the start and bimolecular actions, the building block among a subsample
of the compatible ones; then the environment applies the chemistry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from models.policy import SynthesisPolicy
from synflow.env import EMPTY, Action, State, SynthesisEnv
from synflow.policy_runner import BlockRequest, PolicyRunner
from synflow.trajectory import BackwardChoice, Step, Trajectory

__all__ = ["SamplerSettings", "TrajectorySampler", "backward_choices", "backward_trajectory"]


@dataclass(frozen=True)
class SamplerSettings:
    blocks_per_template: int | None = None  # None: every compatible block (exact); k: a subsample
    temperature: float = 1.0
    exploration: float = 0.0


@dataclass(slots=True)
class _Walk:
    beta: float
    preference: tuple[float, ...] | None = None  # w of a preference-conditioned run
    state: State = EMPTY
    start_block: int = -1
    steps: list[Step] | None = None
    route: list[dict] | None = None
    done: bool = False
    valid: bool = False


class TrajectorySampler:
    def __init__(self, env: SynthesisEnv, runner: PolicyRunner, rng: np.random.Generator) -> None:
        self.env = env
        self.runner = runner
        self.rng = rng
        self.timers = {"chemistry": 0.0, "network": 0.0}

    def subsample(self, candidates: np.ndarray, k: int | None) -> np.ndarray:
        if k is None or candidates.size <= k:
            return candidates
        return np.sort(self.rng.choice(candidates, size=k, replace=False))

    def _pick(self, log_probs: torch.Tensor, epsilon: float) -> int:
        """Draw from ``log_probs`` (already tempered), or uniformly among legal entries with prob ε."""
        if epsilon > 0 and self.rng.random() < epsilon:
            legal = torch.nonzero(torch.isfinite(log_probs)).flatten()
            return int(legal[self.rng.integers(len(legal))])
        return int(torch.multinomial(log_probs.exp(), 1))

    @torch.no_grad()
    def sample(
        self,
        model: SynthesisPolicy,
        betas: list[float],
        settings: SamplerSettings,
        preferences: np.ndarray | None = None,
    ) -> list[Trajectory]:
        """One trajectory per β; ``preferences`` [n, dim]: the w each is conditioned on (a
        preference-conditioned model needs them)."""
        if preferences is not None and len(preferences) != len(betas):
            raise ValueError(f"{len(preferences)} preferences for {len(betas)} trajectories")
        prefs = [None] * len(betas) if preferences is None else [tuple(map(float, w)) for w in preferences]
        walks = [_Walk(beta=b, preference=w, steps=[], route=[]) for b, w in zip(betas, prefs, strict=True)]
        return self._walk(model, walks, settings)

    @torch.no_grad()
    def regrow(
        self, model: SynthesisPolicy, prefixes: list[tuple[Trajectory, int]], settings: SamplerSettings
    ) -> list[Trajectory]:
        """Trajectories that keep the first ``n`` actions of each given valid trajectory (its start
        and n − 1 reactions, n ≥ 1) and continue from there with the policy (at the trajectory's β
        and preference)."""
        walks = []
        for traj, n in prefixes:
            if not traj.valid or not 1 <= n < len(traj.steps):
                raise ValueError(f"cannot keep {n} actions of a trajectory with {len(traj.steps) - 1}")
            walks.append(
                _Walk(
                    beta=traj.beta,
                    preference=traj.preference,
                    state=traj.steps[n].state,
                    start_block=traj.steps[0].action.block,
                    steps=list(traj.steps[:n]),
                    route=list(traj.route[:n]),
                )
            )
        return self._walk(model, walks, settings)

    def _walk(
        self, model: SynthesisPolicy, walks: list[_Walk], settings: SamplerSettings
    ) -> list[Trajectory]:
        while True:
            active = [w for w in walks if not w.done]
            if not active:
                break
            self._round(model, active, settings)
        return [self._finish(w) for w in walks]

    def _round(self, model: SynthesisPolicy, active: list[_Walk], settings: SamplerSettings) -> None:
        t0 = time.perf_counter()
        beta = torch.tensor([w.beta for w in active], device=self.runner.device)
        preference = None
        if active[0].preference is not None:
            preference = torch.tensor([w.preference for w in active], device=self.runner.device)
        z = self.runner.embed(model, [w.state for w in active], beta, preference)
        pending: list[tuple[_Walk, Step]] = []
        requests: list[tuple[BlockRequest, Step]] = []
        rows, choices = [], []
        chem_s = 0.0
        for i, walk in enumerate(active):
            if walk.state.is_empty:
                cands = self.env.chem.start_blocks
                offered = self.subsample(cands, settings.blocks_per_template)
                step = Step(walk.state, Action("start"), n_total=int(cands.size), candidates=offered)
                requests.append((BlockRequest(i, model.start_slot, offered, step.n_total), step))
                pending.append((walk, step))
                continue
            tc = time.perf_counter()  # pattern matching is chemistry, not network time
            legal = tuple(self.env.level1_choices(walk.state, walk.start_block))
            chem_s += time.perf_counter() - tc
            if legal:
                rows.append(i)
                choices.append(legal)
            else:  # a dead end (depth < min_reactions, nothing applies): an invalid terminal
                pending.append((walk, Step(walk.state, Action("stop"))))
        if rows:
            # one copy to the CPU per round (on a GPU, a read per walk would wait on the device each time)
            lp = self.runner.level1_log_probs(model, z[rows], choices, settings.temperature).cpu()
            for j, i in enumerate(rows):
                walk = active[i]
                action = self.env.decode_level1(self._pick(lp[j], settings.exploration))
                step = Step(walk.state, action, level1=choices[j])
                if action.kind == "bi":
                    cands = self.env.block_candidates(walk.state, action)
                    step.candidates = self.subsample(cands, settings.blocks_per_template)
                    step.n_total = int(cands.size)
                    requests.append((BlockRequest(i, action.tslot, step.candidates, step.n_total), step))
                pending.append((walk, step))
        if requests:
            self._pick_blocks(model, z, requests, settings)
        t1 = time.perf_counter()
        for walk, step in pending:
            self._apply(walk, step)
        self.timers["network"] += t1 - t0 - chem_s
        self.timers["chemistry"] += time.perf_counter() - t1 + chem_s

    def _pick_blocks(
        self,
        model: SynthesisPolicy,
        z: torch.Tensor,
        requests: list[tuple[BlockRequest, Step]],
        settings: SamplerSettings,
    ) -> None:
        lp, _ = self.runner.block_log_probs(model, z, [r for r, _ in requests], settings.temperature)
        lp = lp.cpu()
        start = 0
        for req, step in requests:
            stop = start + len(req.candidates)
            pos = self._pick(lp[start:stop], settings.exploration)
            step.action = Action(
                step.action.kind, step.action.template, step.action.slot, int(req.candidates[pos])
            )
            start = stop

    def _apply(self, walk: _Walk, step: Step) -> None:
        assert walk.steps is not None and walk.route is not None
        walk.steps.append(step)
        if step.action.kind == "stop":
            walk.done, walk.valid = True, bool(step.level1)  # a stop without choices marks a dead end
            return
        nxt = self.env.step(walk.state, step.action)
        if nxt is None:
            walk.done = True
            return
        assert nxt.smiles is not None
        walk.route.append(self.env.route_step(walk.state, step.action, nxt.smiles))
        if step.action.kind == "start":
            walk.start_block = step.action.block
        walk.state = nxt

    def _finish(self, walk: _Walk) -> Trajectory:
        t0 = time.perf_counter()
        assert walk.steps is not None and walk.route is not None
        traj = Trajectory(
            steps=walk.steps,
            beta=walk.beta,
            valid=walk.valid,
            smiles=walk.state.smiles if walk.valid else None,
            route=walk.route,
            preference=walk.preference,
        )
        if self.env.verify_retro:  # the ``route`` backward policy has P_B = 1: no choices to record
            traj.backward = backward_choices(self.env, traj)
        self.timers["chemistry"] += time.perf_counter() - t0
        return traj


def backward_choices(env: SynthesisEnv, traj: Trajectory) -> list[BackwardChoice]:
    """The backward decisions that retrace ``traj`` (P_B's support), verified by retro-analysis."""
    out: list[BackwardChoice] = []
    states = [s.state for s in traj.steps]
    if traj.valid:
        final = states[-1]
        assert final.smiles is not None
        options = env.stop_parents(final.smiles)
        out.append(BackwardChoice(final, [(s, None) for s in options], options.index(final)))
    # reaction transitions s_i → s_{i+1} (the start transition has the empty state as only parent)
    for i in range(1, len(states)):
        child, parent, action = states[i], states[i - 1], traj.steps[i - 1].action
        if child.depth == 0:
            continue
        parents = env.parents(child)
        out.append(BackwardChoice(child, list(parents), parents.index((parent, action))))
    return out


def backward_trajectory(
    env: SynthesisEnv,
    smiles: str,
    beta: float,
    rng: np.random.Generator,
    preference: tuple[float, ...] | None = None,
) -> tuple[Trajectory, float] | None:
    """A trajectory ending in ``smiles``, drawn backward with the uniform P_B over verified parents,
    and its log P_B(τ | x); recorded like a forward one (every block offered), so its log P_F can be
    scored. None when the molecule has no verified route, or a parent step is one the forward policy
    cannot take (then P_F(τ) = 0 and the draw adds nothing to the estimate of p(x))."""
    ends = env.stop_parents(smiles)
    if not ends:
        return None
    final = ends[int(rng.integers(len(ends)))]
    log_pb = -float(np.log(len(ends)))
    chain: list[tuple[State, Action]] = []
    state = final
    while not state.is_empty:
        parents = env.parents(state)
        if not parents:
            return None
        log_pb -= float(np.log(len(parents)))
        state, action = parents[int(rng.integers(len(parents)))]
        chain.append((state, action))
    chain.reverse()
    start_block = chain[0][1].block
    steps: list[Step] = []
    for parent, action in chain:
        if parent.is_empty:
            cands = env.chem.start_blocks
            step = Step(parent, action, candidates=cands, n_total=int(cands.size))
        else:
            legal = tuple(env.level1_choices(parent, start_block))
            if action.level1 not in legal:
                return None
            step = Step(parent, action, level1=legal)
            if action.kind == "bi":
                step.candidates = env.block_candidates(parent, action)
                step.n_total = int(step.candidates.size)
        if step.candidates is not None and not np.isin(action.block, step.candidates):
            return None
        steps.append(step)
    legal = tuple(env.level1_choices(final, start_block))
    if 0 not in legal:
        return None
    steps.append(Step(final, Action("stop"), level1=legal))
    return Trajectory(steps, beta, True, smiles, [], preference=preference), log_pb
