"""The synthesis environment: states, forward and backward actions, masks, routes.

A state is the empty start or a molecule with the number of reactions made so far (its depth);
the route so far is kept by the trajectory. Forward actions:
- ``start``: pick a first building block (from the empty start; only blocks that fit some
  template when ``min_reactions`` ≥ 1, so no start is a dead end);
- ``uni``: apply a unimolecular template;
- ``bi``: apply a bimolecular template with the molecule in ``slot`` and a library block in the other;
- ``stop``: end the trajectory (allowed at depth ≥ ``min_reactions`` in a molecule that contains
  the run's scaffold, if it has one; the only action at ``max_reactions``).
Constrained starts (``synflow.constraints``): the start blocks offered are the allowed ones, and a
molecule without the required scaffold cannot stop; a state left with no legal action (a *dead end*)
ends its trajectory as an invalid terminal, never forced to stop.
A reaction whose product cannot be made (no product, or a product whose retro-analysis does not
give back this very step) ends the trajectory in an *invalid* terminal, which gets the reward floor.
The second case is counted per template and warned about once (``unverified``); ``synflow.retro_audit``
measures how often it happens for a template set.
Backward actions mirror them: un-stop to a depth at which the molecule is reachable, un-react to a
verified, reachable parent, un-start to the empty state.

The level-1 decision index of an action is ``models.actions``' encoding.

Backward policies (``environment.backward_policy``): ``uniform`` (the default) is uniform over the
verified, reachable parents, so it is a fixed P_B whose support is exactly the forward DAG: the f-TB
objective is stationary and its minimiser is exactly p ∝ R (the exactness tests check that the
P_B mass over all trajectories to each molecule is 1). ``maximum_likelihood`` learns P_B by
−log P_B on the trained trajectories (detached inside f-TB, as in SynFlowNet); it can prefer
shorter or easier routes but adds a moving target, so it is the option, not the default.
``route`` sets P_B = 1 along the sampled route: every route counts as its own object, so at the
optimum a molecule is sampled ∝ R × (its number of routes), not ∝ R. It needs no retro-analysis at
all (``verify_retro=False``: no parent sets, no reachability), which makes sampling several times
faster; it is the choice for reward optimisation (e.g. the PMO benchmark), where the exact
distribution over molecules matters less than speed, and every sampled molecule still has its route.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.actions import STOP, decode_level1, level1_index, tslot_index
from synflow.chemistry import RetroParent, SynthesisChemistry

__all__ = ["Action", "State", "SynthesisEnv"]

log = logging.getLogger("synflow.env")

ActionKind = Literal["start", "uni", "bi", "stop"]


@dataclass(frozen=True, slots=True)
class State:
    smiles: str | None
    depth: int = 0

    @property
    def is_empty(self) -> bool:
        return self.smiles is None


EMPTY = State(None, 0)


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    template: int = -1
    slot: int = 0
    block: int = -1

    @property
    def level1(self) -> int:
        """The level-1 decision index (stop = 0); -1 for ``start`` (which has no level-1 choice)."""
        if self.kind == "stop":
            return STOP
        if self.kind == "start":
            return -1
        return level1_index(self.template, self.slot)

    @property
    def tslot(self) -> int:
        """The (template, slot) row of a bimolecular action's block query."""
        return tslot_index(self.template, self.slot)


class SynthesisEnv:
    """Forward and backward moves over (molecule, depth) states, on top of ``SynthesisChemistry``."""

    def __init__(self, chemistry: SynthesisChemistry, verify_retro: bool = True) -> None:
        self.chem = chemistry
        self.verify_retro = verify_retro
        # Products the forward step made but the retro-analysis cannot give back (their trajectory
        # ends invalid under the uniform backward policy), per template: counted and warned about.
        self.unverified: Counter[int] = Counter()
        self.max_reactions = chemistry.max_reactions
        self.min_reactions = chemistry.min_reactions
        self.n_templates = len(chemistry.templates)

    # -- forward -----------------------------------------------------------------------------
    def level1_choices(self, state: State, block: int | None = None) -> list[int]:
        """Legal level-1 indices of a molecule state (empty list: a dead end)."""
        assert state.smiles is not None, "the empty state has no level-1 choice"
        stop = state.depth >= self.min_reactions and self.chem.has_scaffold(state.smiles)
        choices = [0] if stop else []
        if state.depth < self.max_reactions:
            slots = self.chem.template_slots(state.smiles, block if state.depth == 0 else None)
            choices += [level1_index(t, s) for t, s in slots]
        return choices

    def decode_level1(self, index: int) -> Action:
        decoded = decode_level1(index)
        if decoded is None:
            return Action("stop")
        t, s = decoded
        kind: ActionKind = "uni" if self.chem.templates[t].arity == 1 else "bi"
        return Action(kind, template=t, slot=s)

    def block_candidates(self, state: State, action: Action) -> np.ndarray:
        """Blocks the level-2 choice ranges over: start blocks, or partners of a bimolecular slot."""
        if state.is_empty:
            return self.chem.start_blocks
        return self.chem.partners(action.template, action.slot)

    def step(self, state: State, action: Action) -> State | None:
        """The next state, or None when the reaction gives no valid, retro-verifiable product."""
        if action.kind == "start":
            smiles = self.chem.block_smiles(action.block)
            self.chem.mark_reachable(smiles, 0)
            return State(smiles, 0)
        if action.kind == "stop":
            raise ValueError("stop has no next state")
        assert state.smiles is not None
        if action.kind == "uni":
            reactants: tuple[str, ...] = (state.smiles,)
        else:
            reactants = self.chem.ordered(action.slot, state.smiles, self.chem.block_smiles(action.block))
        product = self.chem.product(action.template, reactants)
        if product is None:
            return None
        if self.verify_retro:
            step = RetroParent(action.template, action.slot, state.smiles, action.block)
            if not self.chem.gives_back(product, step, state.depth + 1):
                self._unverifiable(action.template, product)
                return None
        # only a retro-verified step proves the fact the backward policy relies on (the store keeps it)
        self.chem.mark_reachable(product, state.depth + 1, verified=self.verify_retro)
        return State(product, state.depth + 1)

    def _unverifiable(self, template: int, product: str) -> None:
        if not self.unverified[template]:
            t = self.chem.templates[template]
            log.warning(
                "template %s (%s): the retro-analysis does not give back the step that made %s; "
                "such products end their trajectory as invalid (counted in the metric unverified_products)",
                t.index,
                t.name or t.smarts,
                product,
            )
        self.unverified[template] += 1

    # -- backward ----------------------------------------------------------------------------
    def parents(self, state: State) -> list[tuple[State, Action]]:
        """Every (parent state, forward action) leading to ``state`` from a reachable parent."""
        assert state.smiles is not None
        if state.depth == 0:
            block = self.chem.block_index(state.smiles)
            assert block is not None, state
            return [(EMPTY, Action("start", block=block))]
        out = []
        for p in self.chem.parents(state.smiles, state.depth):
            kind: ActionKind = "uni" if p.block < 0 else "bi"
            out.append((State(p.parent, state.depth - 1), Action(kind, p.template, p.slot, p.block)))
        return out

    def stop_parents(self, smiles: str) -> list[State]:
        """The states a terminal molecule can have stopped from (none without the run's scaffold)."""
        if not self.chem.has_scaffold(smiles):
            return []
        return [State(smiles, d) for d in self.chem.stop_depths(smiles)]

    # -- routes ------------------------------------------------------------------------------
    def route_step(self, state: State, action: Action, product: str) -> dict:
        """One step of a route in DESIGN.md's format."""
        if action.kind == "start":
            return {"action": "start", "product": product, "building_block": self._block_json(action.block)}
        t = self.chem.templates[action.template]
        step: dict = {
            "action": "react_uni" if action.kind == "uni" else "react_bi",
            "product": product,
            "template": {"index": t.index, "name": t.name, "smarts": t.smarts},
        }
        if action.kind == "bi":
            step["building_block"] = self._block_json(action.block)
            step["slot"] = action.slot
        return step

    def _block_json(self, block: int) -> dict:
        lib = self.chem.library
        return {"smiles": lib.smiles[block], "id": lib.ids[block]}
