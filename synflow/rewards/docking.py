"""AutoDock Vina docking: ligands from SMILES (RDKit ETKDG embedding + MMFF, meeko PDBQT), a pool of
worker processes (one ligand per core, each worker computes the receptor grid maps once), and a
per-ligand timeout enforced by killing and replacing the worker.

A ligand that cannot be prepared or docked, or that times out, gets a NaN affinity, which the
reward turns into a score of 0 (the raw value stays NaN so it is visible); the reasons are kept in
``DockingScorer.failures``. Salts and mixtures are docked as their largest fragment.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers
from rdkit.Chem.MolStandardize import rdMolStandardize

from synflow.rewards.base import Scorer


@dataclass(frozen=True)
class DockingSettings:
    """What one Vina run needs: receptor, box and search settings (picklable, sent to workers)."""

    receptor: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    exhaustiveness: int = 8
    n_poses: int = 1
    seed: int = 0


@dataclass(frozen=True)
class DockingResult:
    affinity: float  # kcal/mol, NaN when it failed
    error: str | None = None
    seconds: float = 0.0


def receptor_box(directory: str | Path) -> tuple[str, tuple[float, float, float]]:
    """``receptor.pdbqt`` and the box centre from a LIT-PCBA-style ``description.yaml``."""
    directory = Path(directory)
    description = yaml.safe_load((directory / "description.yaml").read_text())
    x, y, z = (float(v) for v in description["center_of_mass"])
    return str(directory / "receptor.pdbqt"), (x, y, z)


def ligand_pdbqt(smiles: str, seed: int = 0) -> str:
    """A 3D ligand in PDBQT: largest fragment, hydrogens, ETKDG v3 embedding, MMFF, meeko."""
    # lazy: `import meeko` measured ~300 ms (it pulls in scipy and gemmi); only docking workers need it
    from meeko import MoleculePreparation, PDBQTWriterLegacy

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"invalid SMILES {smiles!r}")
    mol = Chem.AddHs(rdMolStandardize.LargestFragmentChooser().choose(mol))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = seed  # type: ignore[assignment]  # RDKit's stubs type the setters wrongly
    if rdDistGeom.EmbedMolecule(mol, params) != 0:
        params.useRandomCoords = True  # type: ignore[assignment]
        if rdDistGeom.EmbedMolecule(mol, params) != 0:
            raise ValueError("3D embedding failed")
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=500)
    setup = MoleculePreparation().prepare(mol)[0]
    pdbqt, ok, message = PDBQTWriterLegacy.write_string(setup)
    if not ok:
        raise ValueError(f"meeko could not write the ligand: {message}")
    return pdbqt


def new_vina(settings: DockingSettings) -> Any:
    """A one-core Vina with the receptor's grid maps computed."""
    # Vina draws a random seed when given 0, so 0 would make docking irreproducible (an estradiol
    # test at exhaustiveness 1 scored -9.6 to -10.4 across three runs): seed + 1 is always fixed.
    from vina import Vina  # the training stack only: the API image has no vina

    vina = Vina(sf_name="vina", cpu=1, seed=settings.seed + 1, verbosity=0)
    vina.set_receptor(rigid_pdbqt_filename=settings.receptor)
    vina.compute_vina_maps(center=list(settings.center), box_size=list(settings.size))
    return vina


def dock_one(vina: Any, smiles: str, settings: DockingSettings) -> float:
    """The best affinity (kcal/mol) of ``smiles`` docked with an initialised Vina."""
    vina.set_ligand_from_string(ligand_pdbqt(smiles, settings.seed))
    vina.dock(exhaustiveness=settings.exhaustiveness, n_poses=settings.n_poses)
    return float(vina.energies(n_poses=1)[0][0])


def _worker_main(conn: Connection, settings: DockingSettings) -> None:
    """Worker process: set up Vina once, then dock (index, smiles) messages until None."""
    try:
        vina = new_vina(settings)
    except Exception as exc:
        conn.send(("failed", repr(exc)))
        return
    conn.send(("ready", None))
    while (message := conn.recv()) is not None:
        index, smiles = message
        start = time.perf_counter()
        try:
            result = DockingResult(dock_one(vina, smiles, settings))
        except Exception as exc:
            result = DockingResult(math.nan, repr(exc))
        conn.send((index, DockingResult(result.affinity, result.error, time.perf_counter() - start)))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    ready: bool = False
    job: int | None = None
    started: float = 0.0


class DockingPool:
    """``processes`` workers, each docking one ligand at a time on one core."""

    def __init__(self, settings: DockingSettings, processes: int, timeout_s: float) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._context = mp.get_context("spawn")  # safe beside torch threads and CUDA
        self._workers = [self._spawn() for _ in range(processes)]

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self.settings), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def dock(self, smiles: Sequence[str]) -> list[DockingResult]:
        results: list[DockingResult | None] = [None] * len(smiles)
        pending = deque(enumerate(smiles))
        while pending or any(w.job is not None for w in self._workers):
            self._assign(pending, smiles)
            self._collect(results)
            self._expire(results)
        return [r if r is not None else DockingResult(math.nan, "not docked") for r in results]

    def _assign(self, pending: deque[tuple[int, str]], smiles: Sequence[str]) -> None:
        for worker in self._workers:
            if worker.ready and worker.job is None and pending:
                index, s = pending.popleft()
                worker.conn.send((index, s))
                worker.job, worker.started = index, time.monotonic()

    def _collect(self, results: list[DockingResult | None]) -> None:
        by_conn = {id(w.conn): w for w in self._workers}
        for conn in wait([w.conn for w in self._workers], timeout=self._next_deadline()):
            worker = by_conn[id(conn)]
            try:
                kind, payload = worker.conn.recv()
            except EOFError:
                if not worker.ready:
                    self.close()
                    raise RuntimeError(
                        "a docking worker exited while starting; scripts that dock must guard their "
                        "entry point with `if __name__ == '__main__':` (workers are spawned)"
                    ) from None
                self._replace(worker, results, "docking worker died")
                continue
            if kind == "ready":
                worker.ready = True
            elif kind == "failed":
                self.close()
                raise RuntimeError(f"docking worker could not start: {payload}")
            else:
                results[kind] = payload
                worker.job = None

    def _next_deadline(self) -> float:
        busy = [w.started + self.timeout_s for w in self._workers if w.job is not None]
        return max(0.0, min(busy) - time.monotonic()) + 0.01 if busy else 1.0

    def _expire(self, results: list[DockingResult | None]) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.job is not None and now - worker.started > self.timeout_s:
                self._replace(worker, results, f"timed out after {self.timeout_s:g} s")

    def _replace(self, worker: _Worker, results: list[DockingResult | None], reason: str) -> None:
        if worker.job is not None:
            results[worker.job] = DockingResult(math.nan, reason, time.monotonic() - worker.started)
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self._workers[self._workers.index(worker)] = self._spawn()

    def close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(2)
            worker.conn.close()
        self._workers = []


def default_processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class DockingScorer(Scorer):
    """Raw value: the best Vina affinity (kcal/mol); the pool starts on first use.

    ``processes`` workers (default: every core this process may use), ``timeout_s`` per ligand.
    """

    def __init__(
        self, settings: DockingSettings, processes: int | None = None, timeout_s: float = 300.0,
    ) -> None:
        if not Path(settings.receptor).is_file():
            raise FileNotFoundError(f"docking receptor not found: {settings.receptor}")
        self.settings = settings
        self.processes = processes or default_processes()
        self.timeout_s = timeout_s
        self.failures: dict[str, str] = {}
        self._pool: DockingPool | None = None

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        if not smiles:
            return np.zeros(0)
        if self._pool is None:
            self._pool = DockingPool(self.settings, self.processes, self.timeout_s)
        results = self._pool.dock(smiles)
        self.failures.update({s: r.error for s, r in zip(smiles, results, strict=True) if r.error})
        return np.array([r.affinity for r in results], dtype=np.float64)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
