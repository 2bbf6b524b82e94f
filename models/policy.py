"""The SynFlowNet policy network: state encoder and the heads for every decision.

Decisions (the environment turns them into chemistry):
- level 1, per molecule state: stop, or a (template, slot) pair (encoding in ``models.actions``);
- level 2, for the start and bimolecular actions: a building block, scored by the dot product of a
  (state, template, slot) query with block embeddings computed from block features;
- backward (maximum-likelihood P_B): a score per parent candidate;
- log Z conditioned on β.

Every head sees a condition vector: β (a thermometer encoding) and the depth, and for a
preference-conditioned run (``preference_dim`` > 0) the preference weights w too, which the log Z head
also takes (log Z depends on w). With ``preference_dim = 0`` the network is exactly the unconditioned one
(the same parameters, shapes and initialisation), so checkpoints of earlier runs load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from models.actions import level1_size, start_tslot, tslot_count
from models.encoders import BetaEncoding, BlockEncoder, GraphEncoder, mlp
from models.featurize import ATOM_FEATURES, BOND_FEATURES, GraphBatch

__all__ = ["SynthesisPolicy"]


class SynthesisPolicy(nn.Module):
    def __init__(
        self,
        n_templates: int,
        max_depth: int,
        fp_dim: int,
        desc_dim: int,
        beta_range: tuple[float, float],
        hidden: int = 128,
        layers: int = 3,
        conv: str = "gine",
        block_hidden: int = 256,
        thermometer_bins: int = 16,
        preference_dim: int = 0,
    ) -> None:
        super().__init__()
        self.n_templates = n_templates
        self.max_depth = max_depth
        self.preference_dim = preference_dim
        self.beta_encoding = BetaEncoding(*beta_range, bins=thermometer_bins)
        cond_dim = self.beta_encoding.dim + max_depth + 1 + preference_dim
        self.cond = mlp([cond_dim, hidden, hidden])
        self.graph = GraphEncoder(ATOM_FEATURES, BOND_FEATURES, hidden, layers, conv)
        self.state = mlp([2 * hidden, hidden, hidden])
        self.empty = mlp([hidden, hidden, hidden])
        self.level1 = mlp([hidden, hidden, level1_size(n_templates)])
        # one embedding per (template, slot), plus one for the start action
        self.tslot = nn.Embedding(tslot_count(n_templates), hidden)
        self.query = mlp([2 * hidden, hidden, hidden])
        self.blocks = BlockEncoder(fp_dim, desc_dim, block_hidden, hidden)
        self.backward_parent = mlp([4 * hidden, hidden, 1])
        self.backward_stop = mlp([hidden, hidden, 1])
        self.log_z_head = mlp([self.beta_encoding.dim + preference_dim, hidden, 1])

    @property
    def start_slot(self) -> int:
        return start_tslot(self.n_templates)

    def _preference(self, preference: Tensor | None, n: int) -> list[Tensor]:
        """The preference columns of the condition ([] for an unconditioned network)."""
        if self.preference_dim == 0:
            if preference is not None:
                raise ValueError("this policy is not preference-conditioned; pass no preference")
            return []
        if preference is None or preference.shape != (n, self.preference_dim):
            got = None if preference is None else tuple(preference.shape)
            raise ValueError(f"expected a preference of shape ({n}, {self.preference_dim}), got {got}")
        return [preference.float()]

    def _condition(self, depth: Tensor, beta: Tensor, preference: Tensor | None = None) -> Tensor:
        depth_1h = nn.functional.one_hot(depth.clamp(0, self.max_depth), self.max_depth + 1).float()
        parts = [self.beta_encoding(beta), depth_1h, *self._preference(preference, beta.shape[0])]
        return self.cond(torch.cat(parts, dim=-1))

    def encode(
        self, graphs: GraphBatch | Batch, depth: Tensor, beta: Tensor, preference: Tensor | None = None
    ) -> Tensor:
        """Molecule states → embeddings [n, hidden] (``graphs``: collated, on the model's device);
        ``preference`` [n, preference_dim] for a preference-conditioned network."""
        cond = self._condition(depth, beta, preference)
        g = self.graph(graphs.x, graphs.edge_index, graphs.edge_attr, graphs.batch, depth.numel(), cond)
        return self.state(torch.cat([g, cond], dim=-1))

    def encode_empty(self, beta: Tensor, preference: Tensor | None = None) -> Tensor:
        """The empty start state → embeddings [n, hidden]."""
        return self.empty(self._condition(torch.zeros_like(beta, dtype=torch.long), beta, preference))

    def action_logits(self, z: Tensor) -> Tensor:
        """Level-1 logits [n, 1 + 2T]: stop, then (template, slot)."""
        return self.level1(z)

    def block_queries(self, z: Tensor, tslot: Tensor) -> Tensor:
        """Queries [n, hidden] for (state, template-slot) rows; ``tslot = start_slot`` for the start."""
        return self.query(torch.cat([z, self.tslot(tslot)], dim=-1))

    def block_embeddings(self, bits: Tensor, offsets: Tensor, descriptors: Tensor) -> Tensor:
        """Embeddings [n, hidden] of blocks given as fingerprint bits (EmbeddingBag form) and descriptors."""
        return self.blocks(bits, offsets, descriptors)

    def backward_parent_logits(
        self, z_child: Tensor, z_parent: Tensor, tslot: Tensor, block_emb: Tensor
    ) -> Tensor:
        """Scores of reaction parents: child state, parent state, template-slot, block embedding (or 0)."""
        features = torch.cat([z_child, z_parent, self.tslot(tslot), block_emb], dim=-1)
        return self.backward_parent(features).squeeze(-1)

    def backward_stop_logits(self, z: Tensor) -> Tensor:
        """Scores of the (molecule, depth) states a terminal molecule could have stopped from."""
        return self.backward_stop(z).squeeze(-1)

    def log_z(self, beta: Tensor, preference: Tensor | None = None) -> Tensor:
        """log Z [n] at each β (and preference w, for a preference-conditioned network)."""
        parts = [self.beta_encoding(beta), *self._preference(preference, beta.shape[0])]
        return self.log_z_head(torch.cat(parts, dim=-1)).squeeze(-1)
