"""Composable encoders: β conditioning, the molecular graph encoder, the building-block encoder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, GINEConv, global_add_pool, global_mean_pool

__all__ = ["BetaEncoding", "BlockEncoder", "GraphEncoder", "mlp"]


def mlp(dims: list[int], act_last: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or act_last:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class BetaEncoding(nn.Module):
    edges: Tensor  # buffers, declared for the type checker
    freqs: Tensor
    """β → [thermometer over (lo, hi), β scaled to [0, 1], Fourier features of log β].

    A thermometer alone is all zeros for a constant β at the bottom of its range (the anchor's bug);
    the scaled value and the Fourier features are never zero, so β always reaches the network.
    """

    def __init__(self, lo: float, hi: float, bins: int = 16, frequencies: int = 4) -> None:
        super().__init__()
        self.lo, self.hi = float(lo), float(max(hi, lo + 1e-6))
        self.register_buffer("edges", torch.linspace(self.lo, self.hi, bins + 1)[1:], persistent=False)
        self.register_buffer("freqs", 2.0 ** torch.arange(frequencies, dtype=torch.float32), persistent=False)
        self.dim = bins + 1 + 2 * frequencies

    def forward(self, beta: Tensor) -> Tensor:
        beta = beta.float().unsqueeze(-1)
        width = (self.hi - self.lo) / self.edges.numel()
        thermo = ((beta - self.edges + width) / width).clamp(0.0, 1.0)
        scaled = (beta - self.lo) / (self.hi - self.lo) * 0.5 + 0.5
        phase = torch.log(beta.clamp_min(1e-3)) * self.freqs / math.log(1024.0) * math.pi
        return torch.cat([thermo, scaled, torch.sin(phase), torch.cos(phase)], dim=-1)


class GraphEncoder(nn.Module):
    """Message passing over a PyG batch; returns one vector per graph (sum ⊕ mean pooling)."""

    def __init__(self, atom_dim: int, bond_dim: int, hidden: int, layers: int, conv: str = "gine") -> None:
        super().__init__()
        self.embed = nn.Linear(atom_dim, hidden)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(layers):
            if conv == "gine":
                self.convs.append(GINEConv(mlp([hidden, hidden, hidden]), edge_dim=bond_dim))
            elif conv == "gatv2":
                self.convs.append(GATv2Conv(hidden, hidden // 4, heads=4, edge_dim=bond_dim))
            else:
                raise ValueError(f"unknown conv {conv!r}")
            self.norms.append(nn.LayerNorm(hidden))
        self.out = nn.Linear(2 * hidden, hidden)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        batch: Tensor,
        size: int,
        condition: Tensor | None = None,
    ) -> Tensor:
        """``condition`` [size, hidden], if given, is added to every node of its graph first."""
        h = self.embed(x)
        if condition is not None:
            h = h + condition[batch]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + torch.nn.functional.silu(norm(conv(h, edge_index, edge_attr)))
        pooled = torch.cat([global_add_pool(h, batch, size) / 10.0, global_mean_pool(h, batch, size)], dim=-1)
        return self.out(pooled)


class BlockEncoder(nn.Module):
    desc_mean: Tensor  # buffers, declared for the type checker
    desc_std: Tensor
    """Fingerprint bits ⊕ standardised descriptors → embedding, so unseen blocks get embeddings too.

    The first layer over the (sparse) fingerprint is an ``EmbeddingBag`` sum over the set bits: the
    same as a dense linear layer on the 0/1 vector, at ~1/50 of the cost for Morgan fingerprints.
    """

    def __init__(self, fp_dim: int, desc_dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.bits = nn.EmbeddingBag(fp_dim, hidden, mode="sum")
        self.desc = nn.Linear(desc_dim, hidden)
        self.net = mlp([hidden, hidden, out])
        self.register_buffer("desc_mean", torch.zeros(desc_dim))
        self.register_buffer("desc_std", torch.ones(desc_dim))

    def set_descriptor_stats(self, mean: Tensor, std: Tensor) -> None:
        self.desc_mean.copy_(mean)
        self.desc_std.copy_(std.clamp_min(1e-6))

    def forward(self, bits: Tensor, offsets: Tensor, descriptors: Tensor) -> Tensor:
        desc = ((descriptors - self.desc_mean) / self.desc_std).clamp(-6.0, 6.0)
        h = torch.nn.functional.silu(self.bits(bits, offsets) + self.desc(desc))
        return self.net(h)
