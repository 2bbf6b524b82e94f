"""Featurisation and the policy network: shapes, β reaching the network, block encoder equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.encoders import BetaEncoding
from models.featurize import ATOM_FEATURES, BOND_FEATURES, BlockFeatures, MolFeaturizer
from models.policy import SynthesisPolicy


def test_featurizer_batches_like_separate_graphs() -> None:
    feat = MolFeaturizer()
    batch = feat.batch(["CCO", "c1ccccc1N"])
    assert batch.x.shape == (3 + 7, ATOM_FEATURES)
    assert batch.edge_attr.shape == (2 * (2 + 7), BOND_FEATURES)
    assert batch.batch.tolist() == [0] * 3 + [1] * 7
    assert int(batch.edge_index[:, 4:].min()) >= 3  # second graph's edges are offset
    assert feat("CCO") is feat("CCO")  # cached by SMILES


def test_constant_beta_still_reaches_the_network() -> None:
    enc = BetaEncoding(8.0, 8.0)
    assert enc(torch.tensor([8.0])).abs().sum() > 0
    ranged = BetaEncoding(1.0, 16.0)
    assert not torch.equal(ranged(torch.tensor([2.0])), ranged(torch.tensor([12.0])))


def _policy() -> SynthesisPolicy:
    torch.manual_seed(0)
    return SynthesisPolicy(n_templates=3, max_depth=2, fp_dim=64, desc_dim=2, beta_range=(1.0, 8.0),
                           hidden=16, layers=2, block_hidden=16)


def test_log_z_and_policy_depend_on_beta() -> None:
    model = _policy()
    assert model.log_z(torch.tensor([1.0])) != model.log_z(torch.tensor([8.0]))
    graphs = MolFeaturizer().batch(["CCO"])
    z1 = model.encode(graphs, torch.tensor([0]), torch.tensor([1.0]))
    z8 = model.encode(graphs, torch.tensor([0]), torch.tensor([8.0]))
    assert not torch.allclose(z1, z8)


def test_block_features_equal_a_dense_first_layer() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((5, 64)) < 0.1).astype(np.uint8)
    desc = rng.random((5, 2)).astype(np.float32)
    feats = BlockFeatures(np.packbits(dense, axis=1), 64, desc)
    model = _policy()
    bits, offsets, d = feats.gather(np.array([4, 1, 3]), torch.device("cpu"))
    bag = model.blocks.bits(bits, offsets)
    expected = torch.tensor(dense[[4, 1, 3]], dtype=torch.float32) @ model.blocks.bits.weight
    assert torch.allclose(bag, expected, atol=1e-6)
    assert torch.equal(d, torch.tensor(desc[[4, 1, 3]]))


def test_featurisation_reads_each_atom_and_bond_exactly() -> None:
    from rdkit import Chem

    from models.featurize import mol_to_data

    mol = Chem.MolFromSmiles("[NH3+]CC(=O)[O-].c1ccccc1[Si](C)(C)C")
    data = mol_to_data(mol)
    assert data.x.shape == (mol.GetNumAtoms(), ATOM_FEATURES)
    assert data.edge_index.shape == (2, 2 * mol.GetNumBonds())
    assert data.edge_attr.shape == (2 * mol.GetNumBonds(), BOND_FEATURES)
    assert torch.all(data.x[:, :13].sum(1) == 1)  # exactly one element column per atom
    n = data.x[0]
    assert n[1] == 1 and n[13 + 1] == 1 and n[19 + 3] == 1 and n[24 + 2] == 1  # N, degree 1, 3 H, +1
    o_minus = data.x[4]
    assert o_minus[2] == 1 and o_minus[24 + 0] == 1  # O, charge −1
    si = data.x[11]
    assert si[10] == 1 and si[13 + 4] == 1  # Si, degree 4
    aromatic = data.x[5:11]
    assert torch.all(aromatic[:, 27] == 1) and torch.all(aromatic[:, 28] == 1)
    for k in range(mol.GetNumBonds()):
        bond = mol.GetBondWithIdx(k)
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        assert data.edge_index[:, 2 * k].tolist() == [i, j]
        assert data.edge_index[:, 2 * k + 1].tolist() == [j, i]
        expected = {"SINGLE": 0, "DOUBLE": 1, "TRIPLE": 2, "AROMATIC": 3}[str(bond.GetBondType())]
        assert data.edge_attr[2 * k, expected] == 1 and data.edge_attr[2 * k, :4].sum() == 1
        assert torch.equal(data.edge_attr[2 * k], data.edge_attr[2 * k + 1])
        assert data.edge_attr[2 * k, 5] == float(bond.IsInRing())


def _preference_policy(dim: int) -> SynthesisPolicy:
    torch.manual_seed(0)
    return SynthesisPolicy(n_templates=3, max_depth=2, fp_dim=64, desc_dim=2, beta_range=(1.0, 8.0),
                           hidden=16, layers=2, block_hidden=16, preference_dim=dim)


def test_policy_and_log_z_depend_on_the_preference() -> None:
    model = _preference_policy(2)
    graphs = MolFeaturizer().batch(["CCO"])
    depth, beta = torch.tensor([1]), torch.tensor([4.0])
    w_a, w_b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.2, 0.8]])
    assert not torch.allclose(model.encode(graphs, depth, beta, w_a), model.encode(graphs, depth, beta, w_b))
    assert not torch.allclose(model.encode_empty(beta, w_a), model.encode_empty(beta, w_b))
    assert model.log_z(beta, w_a) != model.log_z(beta, w_b)
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        model.log_z(beta)  # a conditioned network needs its w


def test_an_unconditioned_policy_is_the_network_it_was_before_preferences() -> None:
    """preference_dim = 0 builds the same parameters (names, shapes, initial values: checkpoints of
    earlier runs load) and computes exactly the pre-preference formulas."""
    plain, conditioned = _policy(), _preference_policy(0)
    state, other = plain.state_dict(), conditioned.state_dict()
    assert list(state) == list(other) and all(torch.equal(state[k], other[k]) for k in state)
    wide = _preference_policy(3).state_dict()
    changed = {k for k in state if wide[k].shape != state[k].shape}
    assert changed == {"cond.0.weight", "log_z_head.0.weight"}, changed  # only the first layers widen
    beta, depth = torch.tensor([2.0, 5.0]), torch.tensor([1, 2])
    assert torch.equal(plain.log_z(beta), plain.log_z_head(plain.beta_encoding(beta)).squeeze(-1))
    depth_1h = torch.nn.functional.one_hot(depth, plain.max_depth + 1).float()
    cond = plain.cond(torch.cat([plain.beta_encoding(beta), depth_1h], dim=-1))
    graphs = MolFeaturizer().batch(["CCO", "c1ccccc1N"])
    g = plain.graph(graphs.x, graphs.edge_index, graphs.edge_attr, graphs.batch, 2, cond)
    assert torch.equal(plain.encode(graphs, depth, beta), plain.state(torch.cat([g, cond], dim=-1)))
    with pytest.raises(ValueError, match="not preference-conditioned"):
        plain.log_z(beta, torch.ones(2, 2))
