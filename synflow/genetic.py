"""Genetic search on synthesis routes: offspring of the best molecules seen, as trajectories.

A route here is the linear action list of the MDP: a ``start`` block, then reactions, each
unimolecular or with one library block. The operators edit that list and replay it through the
chemistry (``synflow.routes.replay_actions``), so every offspring is made by the same templates and
blocks as a sampled molecule, within ``max_reactions``, and carries its replayable route:

* **swap a leaf block**: replace the start block or one reaction's block by one of the
  ``neighbours`` most similar blocks (Morgan Tanimoto) among those that fit the same template slot;
* **change a reaction**: at one reaction, take another (template, slot) that applies to the
  intermediate (with, for a bimolecular one, a block similar to the old one when it fits, else a
  random compatible block) and keep as much of the rest of the route as still applies;
* **grow**: add a reaction at the end; **shrink**: drop the last reaction.
* **crossover**: parent A's route up to one of its intermediates, then parent B's reactions from a
  step whose (template, slot) applies to that intermediate (the level-1 choices recorded in A's
  trajectory say which do), as far as they keep applying. SynGA joins two subtrees of a synthesis
  *tree* under a bimolecular template; in this MDP every reaction partner is a library block, so the
  splice of two linear routes is the crossover that stays inside it.

Mutation operators are drawn with weights 2 : 2 : 1 : 1 (swap, change, grow, shrink), as SynGA's
(change a leaf / change a reaction / grow / shrink). Parents come from the replay pool with its own
weights (rank weights 1/(kN + rank) under ``replay.sampling = "rank"``). Offspring whose molecule is
already known are dropped: they would cost nothing and teach nothing new.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synflow.config import GeneticConfig
from synflow.env import Action, State, SynthesisEnv
from synflow.routes import actions_of, replay_actions
from synflow.trajectory import Trajectory

__all__ = ["MUTATIONS", "RouteGenetics"]

MUTATIONS = ("swap_block", "change_reaction", "grow", "shrink")
_MUTATION_WEIGHTS = np.array([2.0, 2.0, 1.0, 1.0]) / 6.0


class RouteGenetics:
    def __init__(
        self,
        env: SynthesisEnv,
        config: GeneticConfig,
        rng: np.random.Generator,
        blocks_per_template: int | None = None,
    ) -> None:
        self.env = env
        self.chem = env.chem
        self.config = config
        self.rng = rng
        self.blocks_per_template = blocks_per_template
        self.stats = {op: 0 for op in (*MUTATIONS, "crossover")}  # offspring made by each operator
        self.tries = 0

    # -- offspring ---------------------------------------------------------------------------
    def offspring(
        self,
        pool: list[Trajectory],
        weights: np.ndarray,
        n: int,
        betas: list[float],
        known: Callable[[str], bool],
    ) -> list[Trajectory]:
        """Up to ``n`` offspring of parents drawn from ``pool`` with probabilities ``weights``, each
        a new molecule (not ``known``, not another offspring's), trajectory i at ``betas[i]``."""
        pool_ok = [i for i, t in enumerate(pool) if t.valid and t.steps]
        if not pool_ok or n == 0:
            return []
        p = weights[pool_ok] / weights[pool_ok].sum()
        out: list[Trajectory] = []
        made: set[str] = set()
        for _ in range(n):
            beta = betas[len(out)]
            for _attempt in range(self.config.attempts):
                self.tries += 1
                child, op = self._one(pool, pool_ok, p, beta)
                if child is None or child.smiles is None:
                    continue
                if child.smiles in made or known(child.smiles):
                    continue
                made.add(child.smiles)
                self.stats[op] += 1
                out.append(child)
                break
        return out

    def _one(
        self, pool: list[Trajectory], rows: list[int], p: np.ndarray, beta: float
    ) -> tuple[Trajectory | None, str]:
        first = pool[rows[int(self.rng.choice(len(rows), p=p))]]
        if len(rows) > 1 and self.rng.random() < self.config.crossover:
            second = pool[rows[int(self.rng.choice(len(rows), p=p))]]
            if second is not first:
                return self.crossover(first, second, beta), "crossover"
        op = MUTATIONS[int(self.rng.choice(len(MUTATIONS), p=_MUTATION_WEIGHTS))]
        return self.mutate(first, op, beta), op

    # -- operators ---------------------------------------------------------------------------
    def mutate(self, parent: Trajectory, op: str, beta: float) -> Trajectory | None:
        actions = actions_of(parent)
        states = [s.state for s in parent.steps]  # states[i]: the state action i is taken in
        if op == "swap_block":
            return self._swap_block(actions, beta)
        if op == "change_reaction":
            return self._change_reaction(actions, states, beta)
        if op == "grow":
            final = parent.steps[-1].state
            if final.depth >= self.env.max_reactions:
                return None
            added = self._random_reaction(final, actions[0].block, exclude=None, like=None)
            return None if added is None else self._replay([*actions, added], beta)
        if op == "shrink":
            if len(actions) - 1 <= self.env.min_reactions:
                return None
            return self._replay(actions[:-1], beta)
        raise ValueError(f"unknown mutation {op!r}; expected one of {MUTATIONS}")

    def crossover(self, a: Trajectory, b: Trajectory, beta: float) -> Trajectory | None:
        """A's route to one of its intermediates, then B's reactions from a step that applies there."""
        acts_a, acts_b = actions_of(a), actions_of(b)
        options = []
        for i in range(1, len(acts_a) + 1):  # keep A's first i actions (its start and i − 1 reactions)
            legal = set(a.steps[i].level1)  # the choices recorded at the state after them
            depth = a.steps[i].state.depth
            for j in range(1, len(acts_b)):
                if acts_b[j].level1 in legal and depth < self.env.max_reactions:
                    options.append((i, j))
        if not options:
            return None
        i, j = options[int(self.rng.integers(len(options)))]
        room = self.env.max_reactions - a.steps[i].state.depth
        child = [*acts_a[:i], *acts_b[j : j + room]]
        return self._replay(child, beta, partial=True)

    def _swap_block(self, actions: list[Action], beta: float) -> Trajectory | None:
        leaves = [i for i, a in enumerate(actions) if a.kind in ("start", "bi")]
        i = leaves[int(self.rng.integers(len(leaves)))]
        old = actions[i]
        if old.kind == "start":
            nxt = actions[1] if len(actions) > 1 else None
            if nxt is None:
                candidates = self.chem.start_blocks
            else:
                candidates = self.chem.start_blocks_for(nxt.template, nxt.slot)
        else:
            candidates = self.chem.partners(old.template, old.slot)
        near = self.chem.similar_blocks(old.block, candidates, self.config.neighbours)
        if not near.size:
            return None
        block = int(near[int(self.rng.integers(near.size))])
        changed = Action(old.kind, old.template, old.slot, block)
        return self._replay([*actions[:i], changed, *actions[i + 1 :]], beta)

    def _change_reaction(self, actions: list[Action], states: list[State], beta: float) -> Trajectory | None:
        reactions = [i for i, a in enumerate(actions) if a.kind in ("uni", "bi")]
        if not reactions:
            return None
        i = reactions[int(self.rng.integers(len(reactions)))]
        old = actions[i]
        new = self._random_reaction(states[i], actions[0].block, exclude=old.level1, like=old)
        if new is None:
            return None
        return self._replay([*actions[:i], new, *actions[i + 1 :]], beta, partial=True)

    def _random_reaction(
        self, state: State, start_block: int, exclude: int | None, like: Action | None
    ) -> Action | None:
        """A reaction that applies at ``state`` (not ``exclude``), with a block near ``like``'s when
        the new slot accepts blocks like it, else a random compatible one."""
        legal = [c for c in self.env.level1_choices(state, start_block) if c != 0 and c != exclude]
        if not legal:
            return None
        action = self.env.decode_level1(legal[int(self.rng.integers(len(legal)))])
        if action.kind == "uni":
            return action
        partners = self.env.block_candidates(state, action)
        if not partners.size:
            return None
        if like is not None and like.block >= 0:
            near = self.chem.similar_blocks(like.block, partners, self.config.neighbours)
            if near.size:
                partners = near
        block = int(partners[int(self.rng.integers(partners.size))])
        return Action("bi", action.template, action.slot, block)

    def _replay(self, actions: list[Action], beta: float, partial: bool = False) -> Trajectory | None:
        return replay_actions(self.env, actions, beta, self.rng, self.blocks_per_template, partial=partial)
