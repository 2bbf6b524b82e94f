"""RDKit's 2D pharmacophore fingerprint (``Pharm2D.Generate.Gen2DFingerprint``), vectorised.

RDKit's generator is pure Python: it loops over every 2- and 3-point combination of feature
matches and looks each one's bit up with several Python calls. On the 47-heavy-atom molecules the
PMO hop tasks reward, that is about 0.3 s per molecule, an hour per 10,000-call run. This module
computes the same bits with numpy, for factories with ``shortestPathsOnly`` (the default and the
Gobbi factory TDC uses), 2 to 3 points and topological distances:

* features are sorted by (family index, atom ids) and duplicate matches of one family dropped;
  a set of points ``i < j (< k)`` in that order is then exactly the canonical, de-duplicated match
  ``Generate`` builds with ``Utils.GetUniqueCombinations`` (sorted by class, then atom ids);
* the distance between two features is the smallest topological distance between their atoms;
  a set is kept only if every pair's distance lies in ``[first bin start, last bin end)`` (which
  also drops sets whose features share an atom: distance 0);
* three-point distances are put in RDKit's canonical order (``Utils.OrderTriangle``), binned, and
  the bit index read from tables built once per factory with the factory's own ``GetBitIdx``.

A distance triple whose bins are not one of the factory's scaffolds (possible in principle when
features span several atoms) makes RDKit's ``GetBitIdx`` raise; here that molecule is handed to
RDKit's generator, so the outcome is RDKit's either way. ``tests/synflow/rewards/test_pharm2d.py``
compares the bits with RDKit's on real molecules.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem.Pharm2D import Generate
from rdkit.Chem.Pharm2D.SigFactory import SigFactory


class Pharm2DFingerprint:
    """``fp(mol)`` returns the ``SparseBitVect`` RDKit's ``Gen2DFingerprint(mol, factory)`` returns."""

    def __init__(self, factory: SigFactory) -> None:
        options: Any = factory  # RDKit's stubs omit SigFactory's attributes
        if not options.shortestPathsOnly or options.includeBondOrder or options.useCounts:
            raise ValueError("only shortest-path, topological, bit-vector factories are vectorised")
        if options.minPointCount < 2 or options.maxPointCount > 3:
            raise ValueError("only 2- and 3-point pharmacophores are vectorised")
        self.factory = factory
        self.size = factory.GetSigSize()
        bins = factory.GetBins()
        self.min_d, self.max_d = float(bins[0][0]), float(bins[-1][1])
        # distance -> bin index (-1 where no bin holds it); distances are whole numbers
        self.bin_of = np.full(int(self.max_d) + 1, -1, dtype=np.int64)
        for b, (lo, hi) in enumerate(bins):
            self.bin_of[int(np.ceil(lo)):int(np.ceil(hi))] = b
        lows = [int(np.ceil(lo)) for lo, _ in bins]
        n_fam, n_bins = len(factory.GetFeatFamilies()), len(bins)
        self.points = range(options.minPointCount, options.maxPointCount + 1)
        # bit = base[families] + scaffold[bins]: base is the bit of the all-first-bin scaffold,
        # scaffold[bins] the offset of a bin tuple from it (-1: not a scaffold of this factory)
        self.base: dict[int, np.ndarray] = {}
        self.scaffold: dict[int, np.ndarray] = {}
        for n in self.points:
            n_dists = n * (n - 1) // 2
            probe = list(range(n))  # distinct families: no reordering of the distances
            first = [lows[0]] * n_dists
            zero = factory.GetBitIdx(probe, first, sortIndices=False)
            table = np.full((n_bins,) * n_dists, -1, dtype=np.int64)
            for combo in itertools.product(range(n_bins), repeat=n_dists):
                with contextlib.suppress(IndexError, ValueError):  # pruned by the triangle test
                    dists = [lows[b] for b in combo]
                    table[combo] = factory.GetBitIdx(probe, dists, sortIndices=False) - zero
            self.scaffold[n] = table
            base = np.full((n_fam,) * n, -1, dtype=np.int64)
            for perm in itertools.combinations_with_replacement(range(n_fam), n):
                base[perm] = factory.GetBitIdx(list(perm), first, sortIndices=False)
            self.base[n] = base

    def __call__(self, mol: Chem.Mol) -> Any:
        bits = self.bits(mol)
        if bits is None:
            return Generate.Gen2DFingerprint(mol, self.factory)
        fp = DataStructs.SparseBitVect(self.size)
        fp.SetBitsFromList(bits.tolist())
        return fp

    def bits(self, mol: Chem.Mol) -> np.ndarray | None:
        """The on bits, sorted; None where RDKit's generator must decide (see the module docstring)."""
        families, atoms = self._features(mol)
        n = len(atoms)
        if n < 2:
            return np.zeros(0, dtype=np.int64)
        topo = Chem.GetDistanceMatrix(mol, False)
        flat = np.fromiter(itertools.chain.from_iterable(atoms), dtype=np.int64)
        starts = np.cumsum([0] + [len(a) for a in atoms[:-1]])
        nearest = np.minimum.reduceat(topo[flat], starts, axis=0)  # feature -> every atom
        dist = np.minimum.reduceat(nearest[:, flat], starts, axis=1)  # feature -> feature
        d = np.minimum(dist, self.max_d).astype(np.int64)  # unconnected atoms: 1e8
        ok = (dist >= self.min_d) & (d != 0) & (d >= self.min_d) & (d < self.max_d)  # as _ShortestPathsMatch
        binned = self.bin_of[np.where(ok, d, 0)]
        if (binned[ok] < 0).any():  # a distance between bins (factories with gaps between bins)
            return None
        found = []
        i, j = np.nonzero(np.triu(ok, 1))  # every pair of features far enough apart, i < j
        if 2 in self.points:
            found.append(self.base[2][families[i], families[j]] + self.scaffold[2][binned[i, j]])
        if 3 in self.points:  # every third feature k > j far enough from both
            pair, k = np.nonzero(ok[i] & ok[j] & (np.arange(n)[None, :] > j[:, None]))
            i, j = i[pair], j[pair]
            fi, fj, fk = families[i], families[j], families[k]
            d01, d02, d12 = self._order_triangle(fi, fj, fk, d[i, j], d[i, k], d[j, k])
            index = self.scaffold[3][self.bin_of[d01], self.bin_of[d02], self.bin_of[d12]]
            if (index < 0).any():
                return None
            found.append(self.base[3][fi, fj, fk] + index)
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def _features(self, mol: Chem.Mol) -> tuple[np.ndarray, list[tuple[int, ...]]]:
        """(family index, atom ids) of every match, sorted, duplicates within a family dropped."""
        unique = {
            (fam, tuple(ids))
            for fam, matches in enumerate(self.factory.GetMolFeats(mol))
            for ids in matches
        }
        ordered = sorted(unique)
        return np.array([f for f, _ in ordered], dtype=np.int64), [a for _, a in ordered]

    @staticmethod
    def _order_triangle(
        f0: np.ndarray, f1: np.ndarray, f2: np.ndarray, d0: np.ndarray, d1: np.ndarray, d2: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Utils.OrderTriangle`` on arrays, for family indices in non-decreasing order: the
        distances (d01, d02, d12) in RDKit's canonical order."""
        dists = np.stack([d0, d1, d2])
        order = np.tile(np.arange(3)[:, None], (1, len(d0)))  # which old distance goes where

        def use(mask: np.ndarray, reorder: tuple[int, int, int]) -> None:
            order[:, mask] = np.array(reorder)[:, None]

        same01, same12 = f0 == f1, f1 == f2
        # all three features of one family: the longest two-distance sum first
        one = same01 & same12
        s0, s1, s2 = d0 + d1, d0 + d2, d1 + d2
        top = np.maximum(np.maximum(s0, s1), s2)
        first, second = one & (s0 == top), one & (s0 != top) & (s1 == top)
        third = one & (s0 != top) & (s1 != top)
        use(first & ~(d0 > d1), (1, 0, 2))
        use(second & (d0 > d2), (0, 2, 1))
        use(second & ~(d0 > d2), (2, 0, 1))
        use(third & (d1 > d2), (1, 2, 0))
        use(third & ~(d1 > d2), (2, 1, 0))
        # two families: the pair of one family first, as RDKit orders it
        use(same01 & ~same12 & ~(d1 > d2), (0, 2, 1))
        use(~same01 & same12 & ~(d0 > d1), (1, 0, 2))
        ordered = np.take_along_axis(dists, order, axis=0)
        return ordered[0], ordered[1], ordered[2]
