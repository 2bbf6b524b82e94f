"""Trajectory log-probabilities under the current network (with gradient), for the f-TB loss.

Each is two steps: ``prepare_forward`` / ``prepare_backward`` build a batch's inputs on the CPU
(featurised graphs, index tensors; no model, so they can run ahead of the learner, in a thread — see
``InputPrefetcher`` — or in another process), and ``forward_log_probs`` / ``backward_log_probs`` run
the network over them on the runner's device, after one copy per dtype. Given no inputs they prepare
them first: the same tensors, the same operations, the same numbers.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.policy import SynthesisPolicy
from synflow.env import State
from synflow.policy_runner import (
    BlockInputs,
    BlockRequest,
    Level1Inputs,
    PolicyRunner,
    StateInputs,
    segment_log_softmax,
)
from synflow.trajectory import Trajectory

__all__ = [
    "BackwardInputs",
    "ForwardInputs",
    "InputPrefetcher",
    "backward_log_probs",
    "forward_log_probs",
    "learner_molecules",
    "prepare_backward",
    "prepare_forward",
]


def _long(values: list[int] | np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64))


def _preferences(trajs: list[Trajectory], owners: list[int]) -> Tensor | None:
    """The preference w of each row's trajectory [rows, dim] (``owners``: each row's trajectory), or
    None when the batch is not preference-conditioned; a batch mixes no conditioned and unconditioned."""
    conditioned = {t.preference is not None for t in trajs}
    if conditioned != {True}:
        if conditioned == {True, False}:
            raise ValueError("a batch mixes trajectories with and without a preference")
        return None
    dim = len(trajs[0].preference or ())
    table = torch.tensor([t.preference for t in trajs], dtype=torch.float32).reshape(len(trajs), dim)
    return table[_long(owners)]


@dataclass(frozen=True, slots=True)
class ForwardInputs:
    """A batch's forward decisions as tensors: every step's state and β (``owner``: its trajectory),
    the level-1 choices (steps ``level1_rows``, the taken index of each) and the block choices (steps
    ``block_rows``, the taken pair of each in the flat candidate list)."""

    n_trajs: int
    n_steps: int
    owner: Tensor
    beta: Tensor
    states: StateInputs
    level1_rows: Tensor
    level1: Level1Inputs
    level1_chosen: Tensor
    blocks: BlockInputs | None
    block_rows: Tensor
    block_picks: Tensor
    preference: Tensor | None = None  # each step's trajectory's w (preference-conditioned runs)


def prepare_forward(runner: PolicyRunner, trajs: list[Trajectory], start_slot: int) -> ForwardInputs:
    """The inputs of ``forward_log_probs`` (CPU tensors); ``start_slot``: the model's ``start_slot``."""
    steps = [(b, s) for b, t in enumerate(trajs) for s in t.steps]
    rows = [i for i, (_, s) in enumerate(steps) if s.level1]
    block_rows = [i for i, (_, s) in enumerate(steps) if s.candidates is not None]
    requests = []
    picks = []
    offset = 0
    for i in block_rows:
        step = steps[i][1]
        offered = step.candidates
        assert offered is not None
        tslot = start_slot if step.action.kind == "start" else step.action.tslot
        requests.append(BlockRequest(i, tslot, offered, step.n_total))
        picks.append(offset + int(np.searchsorted(offered, step.action.block)))
        offset += len(offered)
    return ForwardInputs(
        n_trajs=len(trajs),
        n_steps=len(steps),
        owner=_long([b for b, _ in steps]),
        beta=torch.tensor([trajs[b].beta for b, _ in steps], dtype=torch.float32),
        states=runner.state_inputs([s.state for _, s in steps]),
        level1_rows=_long(rows),
        level1=runner.level1_inputs([steps[i][1].level1 for i in rows]),
        level1_chosen=_long([steps[i][1].action.level1 for i in rows]),
        blocks=runner.block_inputs(requests) if requests else None,
        block_rows=_long(block_rows),
        block_picks=_long(picks),
        preference=_preferences(trajs, [b for b, _ in steps]),
    )


def forward_log_probs(
    runner: PolicyRunner,
    model: SynthesisPolicy,
    trajs: list[Trajectory],
    inputs: ForwardInputs | None = None,
) -> Tensor:
    """Σ log P_F per trajectory [B]: every recorded decision, re-scored in one batch. ``inputs``:
    this batch's ``prepare_forward``, when it was built ahead."""
    if inputs is None:
        inputs = prepare_forward(runner, trajs, model.start_slot)
    x = runner.to_device(inputs)
    device = runner.device
    z = runner.encode_states(model, x.states, x.beta, x.preference)
    per_step = torch.zeros(x.n_steps, device=device)
    if x.level1_rows.numel():
        lp = runner.level1_masked(model, z[x.level1_rows], x.level1)
        per_step = per_step.index_add(0, x.level1_rows, lp.gather(1, x.level1_chosen[:, None])[:, 0])
    if x.blocks is not None:
        lp = runner.block_scores(model, z, x.blocks)
        per_step = per_step.index_add(0, x.block_rows, lp[x.block_picks])
    return torch.zeros(x.n_trajs, device=device).index_add(0, x.owner, per_step)


@dataclass(frozen=True, slots=True)
class BackwardInputs:
    """A batch's backward decisions as tensors: each decision's child state; its parent options
    (``segment``: the decision of each), which are either stops (the molecule at another depth:
    ``stop_states`` at positions ``stop_pos``) or reactions (``parent_states`` at ``react_pos``, with
    the child row, (template, slot) and block of each, ``block_rows`` of them with a block); the
    position of the taken option of each decision and the trajectory it belongs to."""

    n_trajs: int
    n_choices: int
    n_options: int
    child_states: StateInputs
    child_beta: Tensor
    stop_states: StateInputs | None
    stop_beta: Tensor
    stop_pos: Tensor
    parent_states: StateInputs | None
    parent_beta: Tensor
    react_pos: Tensor
    child_rows: Tensor
    tslots: Tensor
    n_blocks: int  # reaction options (each gets a block embedding, zero for unimolecular ones)
    block_rows: Tensor  # those with a building block
    block_inverse: Tensor  # each one's row among the distinct blocks
    block_bits: Tensor
    block_offsets: Tensor
    block_descriptors: Tensor
    segment: Tensor
    taken: Tensor
    owner: Tensor
    # preference-conditioned runs: w of each child, stop option and parent option's trajectory
    child_preference: Tensor | None = None
    stop_preference: Tensor | None = None
    parent_preference: Tensor | None = None


def prepare_backward(runner: PolicyRunner, trajs: list[Trajectory]) -> BackwardInputs | None:
    """The inputs of ``backward_log_probs`` (CPU tensors); None when the batch has no backward choice."""
    choices = [(b, c) for b, t in enumerate(trajs) for c in t.backward]
    if not choices:
        return None
    option_states: list[State] = []
    option_beta: list[float] = []
    option_owner: list[int] = []
    parent_owner: list[int] = []
    segment: list[int] = []
    tslots: list[int] = []
    blocks: list[int] = []
    child_rows: list[int] = []
    parent_states: list[State] = []
    parent_beta: list[float] = []
    stop_pos: list[int] = []
    react_pos: list[int] = []
    for k, (b, choice) in enumerate(choices):
        for state, action in choice.parents:
            if action is None:
                stop_pos.append(len(segment))
                option_states.append(state)
                option_beta.append(trajs[b].beta)
                option_owner.append(b)
            else:
                react_pos.append(len(segment))
                child_rows.append(k)
                tslots.append(action.tslot)
                blocks.append(action.block)
                parent_states.append(state)
                parent_beta.append(trajs[b].beta)
                parent_owner.append(b)
            segment.append(k)
    block_ids = np.asarray(blocks, dtype=np.int64)
    has = np.nonzero(block_ids >= 0)[0]
    unique, inverse = np.unique(block_ids[has], return_inverse=True)
    bits, offsets, descriptors = runner.blocks.gather(unique)
    starts = np.concatenate([[0], np.cumsum([len(c.parents) for _, c in choices])[:-1]])
    return BackwardInputs(
        n_trajs=len(trajs),
        n_choices=len(choices),
        n_options=len(segment),
        child_states=runner.state_inputs([c.child for _, c in choices]),
        child_beta=torch.tensor([trajs[b].beta for b, _ in choices], dtype=torch.float32),
        stop_states=runner.state_inputs(option_states) if stop_pos else None,
        stop_beta=torch.tensor(option_beta, dtype=torch.float32),
        stop_pos=_long(stop_pos),
        parent_states=runner.state_inputs(parent_states) if react_pos else None,
        parent_beta=torch.tensor(parent_beta, dtype=torch.float32),
        react_pos=_long(react_pos),
        child_rows=_long(child_rows),
        tslots=_long(tslots),
        n_blocks=len(blocks),
        block_rows=_long(has),
        block_inverse=_long(inverse.reshape(-1)),
        block_bits=bits,
        block_offsets=offsets,
        block_descriptors=descriptors,
        segment=_long(segment),
        taken=_long(starts + np.array([c.chosen for _, c in choices], dtype=np.int64)),
        owner=_long([b for b, _ in choices]),
        child_preference=_preferences(trajs, [b for b, _ in choices]),
        stop_preference=_preferences(trajs, option_owner),
        parent_preference=_preferences(trajs, parent_owner),
    )


def backward_log_probs(
    runner: PolicyRunner,
    model: SynthesisPolicy,
    trajs: list[Trajectory],
    inputs: BackwardInputs | None = None,
) -> Tensor:
    """Σ log P_B per trajectory [B] under the learned (maximum-likelihood) backward policy.
    ``inputs``: this batch's ``prepare_backward``, when it was built ahead."""
    device = runner.device
    if inputs is None:
        inputs = prepare_backward(runner, trajs)
        if inputs is None:
            return torch.zeros(len(trajs), device=device)
    x = runner.to_device(inputs)
    z_child = runner.encode_states(model, x.child_states, x.child_beta, x.child_preference)
    scores = torch.zeros(x.n_options, device=device)
    if x.stop_states is not None:
        z = runner.encode_states(model, x.stop_states, x.stop_beta, x.stop_preference)
        scores = scores.index_put((x.stop_pos,), model.backward_stop_logits(z))
    if x.parent_states is not None:
        emb = torch.zeros(x.n_blocks, model.tslot.embedding_dim, device=device)
        if x.block_rows.numel():
            distinct = model.block_embeddings(x.block_bits, x.block_offsets, x.block_descriptors)
            emb = emb.index_copy(0, x.block_rows, distinct[x.block_inverse])
        # The parent molecule is an input too: parents that differ only in the molecule (same
        # template, slot and block) would otherwise get the same score.
        z_parent = runner.encode_states(model, x.parent_states, x.parent_beta, x.parent_preference)
        logits = model.backward_parent_logits(z_child[x.child_rows], z_parent, x.tslots, emb)
        scores = scores.index_put((x.react_pos,), logits)
    lp = segment_log_softmax(scores, x.segment, x.n_choices)
    return torch.zeros(x.n_trajs, device=device).index_add(0, x.owner, lp[x.taken])


def learner_molecules(trajs: list[Trajectory], learned_backward: bool = False) -> list[str]:
    """Every molecule whose graph the learner's loss embeds for ``trajs`` (repeats included): the
    forward states, and with the learned backward policy the children and parents of its choices.
    A sampler process can send their graphs (``MolFeaturizer.pack``) for the learner to ``preload``."""
    out = [s.state.smiles for t in trajs for s in t.steps if s.state.smiles is not None]
    if learned_backward:
        for t in trajs:
            for choice in t.backward:
                states = (choice.child, *(parent for parent, _ in choice.parents))
                out += [state.smiles for state in states if state.smiles is not None]
    return out


class InputPrefetcher:
    """Builds the next batch's inputs in a background thread while the current batch trains.

    ``submit(trajs)`` returns a future of ``(ForwardInputs, BackwardInputs | None)``; pass them to
    ``forward_log_probs`` / ``backward_log_probs``. The thread shares the runner's featuriser (its
    cache is thread-safe); the work is RDKit and NumPy, which the learner's GPU step need not wait for.
    """

    def __init__(self, runner: PolicyRunner, start_slot: int, backward: bool = False) -> None:
        self.runner = runner
        self.start_slot = start_slot
        self.backward = backward
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="synflow-inputs")

    def prepare(self, trajs: list[Trajectory]) -> tuple[ForwardInputs, BackwardInputs | None]:
        forward = prepare_forward(self.runner, trajs, self.start_slot)
        return forward, prepare_backward(self.runner, trajs) if self.backward else None

    def submit(self, trajs: list[Trajectory]) -> Future[tuple[ForwardInputs, BackwardInputs | None]]:
        return self._pool.submit(self.prepare, trajs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> InputPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
