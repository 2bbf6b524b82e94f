"""Trajectory log-probabilities under the current network (with gradient), for the f-TB loss."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from models.policy import SynthesisPolicy
from synflow.env import State
from synflow.policy_runner import BlockRequest, PolicyRunner, segment_log_softmax
from synflow.trajectory import Trajectory

__all__ = ["backward_log_probs", "forward_log_probs"]


def forward_log_probs(runner: PolicyRunner, model: SynthesisPolicy, trajs: list[Trajectory]) -> Tensor:
    """Σ log P_F per trajectory [B]: every recorded decision, re-scored in one batch."""
    device = runner.device
    steps = [(b, s) for b, t in enumerate(trajs) for s in t.steps]
    owner = torch.tensor([b for b, _ in steps], device=device)
    beta = torch.tensor([trajs[b].beta for b, _ in steps], device=device)
    z = runner.embed(model, [s.state for _, s in steps], beta)
    per_step = torch.zeros(len(steps), device=device)
    rows = [i for i, (_, s) in enumerate(steps) if s.level1]
    if rows:
        lp = runner.level1_log_probs(model, z[rows], [steps[i][1].level1 for i in rows])
        chosen = torch.tensor([steps[i][1].action.level1 for i in rows], device=device)
        per_step = per_step.index_add(
            0, torch.tensor(rows, device=device), lp.gather(1, chosen[:, None])[:, 0]
        )
    block_rows = [i for i, (_, s) in enumerate(steps) if s.candidates is not None]
    if block_rows:
        requests = []
        picks = []
        offset = 0
        for i in block_rows:
            step = steps[i][1]
            offered = step.candidates
            assert offered is not None
            tslot = model.start_slot if step.action.kind == "start" else step.action.tslot
            requests.append(BlockRequest(i, tslot, offered, step.n_total))
            picks.append(offset + int(np.searchsorted(offered, step.action.block)))
            offset += len(offered)
        lp, _ = runner.block_log_probs(model, z, requests)
        chosen = lp[torch.tensor(picks, device=device)]
        per_step = per_step.index_add(0, torch.tensor(block_rows, device=device), chosen)
    return torch.zeros(len(trajs), device=device).index_add(0, owner, per_step)


def backward_log_probs(runner: PolicyRunner, model: SynthesisPolicy, trajs: list[Trajectory]) -> Tensor:
    """Σ log P_B per trajectory [B] under the learned (maximum-likelihood) backward policy."""
    device = runner.device
    choices = [(b, c) for b, t in enumerate(trajs) for c in t.backward]
    if not choices:
        return torch.zeros(len(trajs), device=device)
    option_states: list[State] = []
    option_beta: list[float] = []
    segment: list[int] = []
    tslots: list[int] = []
    blocks: list[int] = []
    child_rows: list[int] = []
    parent_states: list[State] = []
    parent_beta: list[float] = []
    children = [c.child for _, c in choices]
    z_child = runner.embed(model, children, torch.tensor([trajs[b].beta for b, _ in choices], device=device))
    stop_pos: list[int] = []
    react_pos: list[int] = []
    for k, (b, choice) in enumerate(choices):
        for state, action in choice.parents:
            if action is None:
                stop_pos.append(len(segment))
                option_states.append(state)
                option_beta.append(trajs[b].beta)
            else:
                react_pos.append(len(segment))
                child_rows.append(k)
                tslots.append(action.tslot)
                blocks.append(action.block)
                parent_states.append(state)
                parent_beta.append(trajs[b].beta)
            segment.append(k)
    scores = torch.zeros(len(segment), device=device)
    if stop_pos:
        z = runner.embed(model, option_states, torch.tensor(option_beta, device=device))
        scores = scores.index_put((torch.tensor(stop_pos, device=device),), model.backward_stop_logits(z))
    if react_pos:
        emb = _block_embeddings_or_zero(runner, model, np.asarray(blocks))
        # The parent molecule is an input too: parents that differ only in the molecule (same
        # template, slot and block) would otherwise get the same score.
        z_parent = runner.embed(model, parent_states, torch.tensor(parent_beta, device=device))
        logits = model.backward_parent_logits(
            z_child[child_rows], z_parent, torch.tensor(tslots, device=device), emb
        )
        scores = scores.index_put((torch.tensor(react_pos, device=device),), logits)
    seg = torch.tensor(segment, device=device)
    lp = segment_log_softmax(scores, seg, len(choices))
    starts = np.concatenate([[0], np.cumsum([len(c.parents) for _, c in choices])[:-1]])
    picked = lp[torch.tensor(starts + np.array([c.chosen for _, c in choices]), device=device)]
    owner = torch.tensor([b for b, _ in choices], device=device)
    return torch.zeros(len(trajs), device=device).index_add(0, owner, picked)


def _block_embeddings_or_zero(runner: PolicyRunner, model: SynthesisPolicy, blocks: np.ndarray) -> Tensor:
    out = torch.zeros(len(blocks), model.tslot.embedding_dim, device=runner.device)
    has = np.nonzero(blocks >= 0)[0]
    if has.size:
        unique, inverse = np.unique(blocks[has], return_inverse=True)
        emb = model.block_embeddings(*runner.blocks.gather(unique, runner.device))
        out = out.index_copy(0, torch.as_tensor(has, device=runner.device), emb[torch.as_tensor(inverse)])
    return out
