"""AutoDock Vina docking: ligands from SMILES (RDKit ETKDG embedding + MMFF, meeko PDBQT) docked by
``LigandDocker``s, each on one core with the receptor grid maps computed once, docking one ligand at
a time. The dockers run in local worker processes (``DockingPool``) or as Ray actors
(``RayDockingPool``, for ``training.executor = "ray"``: one run's docking spread over a cluster);
both pools share ``_LigandPool``'s scheduling, so they behave alike: ligands go to dockers as they
free up; a ligand over the per-ligand timeout gets NaN and its docker is killed and replaced; a
docker that dies (a crash, a killed actor, a lost node) is replaced and its ligand docked once more,
then given NaN with the reason. Nothing already scored is lost and every batch returns.

A ligand that cannot be prepared or docked, or that times out, gets a NaN affinity, which the
reward turns into a score of 0 (the raw value stays NaN so it is visible); the reasons are kept in
``DockingScorer.failures``. Salts and mixtures are docked as their largest fragment. ``ray`` is
imported only when a scorer is built with ``executor="ray"``.

Each docker also returns the best pose (Vina's top mode) as SDF text, converted by meeko from the
PDBQT with the ligand's bond orders; the scorer, in the process that scores (never on a Ray node),
writes it under ``pose_dir`` (``synflow.rewards.poses``: named by content, written atomically) and
``notes`` gives each molecule's pose file. A pose that cannot be converted or written leaves the
affinity as it is, only without a pose.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import multiprocessing as mp
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import yaml
from rdkit import Chem
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers
from rdkit.Chem.MolStandardize import rdMolStandardize

from synflow.ray_support import connect_ray, import_ray
from synflow.rewards.base import Scorer
from synflow.rewards.poses import RECEPTOR_FILE, SETUP_FILE, ligand_file, setup_digest, write_atomic

log = logging.getLogger(__name__)

Executor = Literal["local", "ray"]
EXECUTORS: tuple[Executor, ...] = ("local", "ray")


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
    pose: str | None = None  # the best pose as SDF text (None when docking or the conversion failed)
    pose_error: str | None = None  # why a docked ligand has no pose


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


def pose_sdf(pose_pdbqt: str, smiles: str, affinity: float, settings: DockingSettings) -> str:
    """Vina's top mode as an SDF record: meeko rebuilds the RDKit molecule from the PDBQT with the
    bond orders of the SMILES it wrote into it (hydrogens Vina does not move are placed back), and
    the record carries the SMILES, the affinity and the box."""
    from meeko import PDBQTMolecule, RDKitMolCreate  # lazy, as in ligand_pdbqt

    mols = RDKitMolCreate.from_pdbqt_mol(PDBQTMolecule(pose_pdbqt, skip_typing=True))
    if not mols or mols[0] is None:
        raise ValueError("meeko could not rebuild the docked molecule")
    mol = Chem.Mol(mols[0])
    for name in list(mol.GetPropNames()):
        mol.ClearProp(name)
    mol.SetProp("_Name", smiles)
    mol.SetProp("smiles", smiles)
    mol.SetProp("vina_affinity", f"{affinity:.3f}")  # kcal/mol
    mol.SetProp("box_center", " ".join(f"{v:.3f}" for v in settings.center))
    mol.SetProp("box_size", " ".join(f"{v:.3f}" for v in settings.size))
    buffer = io.StringIO()
    with Chem.SDWriter(buffer) as writer:
        writer.write(mol)
    return buffer.getvalue()


class LigandDocker:
    """One Vina with the receptor's grid maps, docking one ligand at a time on one core.

    What a local worker process runs and what a Ray actor is: the same code, so both pools give the
    same affinities for the same settings. A start failure is kept, not raised, so that a Ray
    actor reports it through ``ready()`` the way a worker process reports it over its pipe.
    ``receptor_pdbqt``, the receptor's text, serves a machine without ``settings.receptor`` (an
    actor on another node of a cluster): it is written to a temporary file there.
    """

    def __init__(self, settings: DockingSettings, receptor_pdbqt: str | None = None) -> None:
        self.start_error: str | None = None
        if receptor_pdbqt is not None and not Path(settings.receptor).is_file():
            settings = replace(settings, receptor=_receptor_copy(receptor_pdbqt))
        self.settings = settings
        try:
            self._vina = new_vina(settings)
        except Exception as exc:
            self._vina = None
            self.start_error = repr(exc)

    def ready(self) -> str | None:
        """None once the grid maps are computed, else why Vina could not start."""
        return self.start_error

    def dock(self, smiles: str) -> DockingResult:
        start = time.perf_counter()
        try:
            affinity = dock_one(self._vina, smiles, self.settings)
        except Exception as exc:
            return DockingResult(math.nan, repr(exc), time.perf_counter() - start)
        pose, pose_error = None, None
        try:  # after the affinity is final: a pose that fails to convert never changes the score
            pose = pose_sdf(self._vina.poses(n_poses=1), smiles, affinity, self.settings)
        except Exception as exc:
            pose_error = repr(exc)
        return DockingResult(affinity, None, time.perf_counter() - start, pose, pose_error)


def _receptor_copy(pdbqt: str) -> str:
    """A file with ``pdbqt`` in the temporary folder, named by its content (written once per machine)."""
    digest = hashlib.sha256(pdbqt.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"synflow-receptor-{digest}.pdbqt"
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_text(pdbqt)
        partial.replace(path)  # atomic: actors starting together on one node never read half a file
    return str(path)


def _worker_main(conn: Connection, settings: DockingSettings) -> None:
    """Worker process: set up a docker once, then dock SMILES messages until None."""
    docker = LigandDocker(settings)
    if docker.start_error is not None:
        conn.send(("failed", docker.start_error))
        return
    conn.send(("ready", None))
    while (smiles := conn.recv()) is not None:
        conn.send(("done", docker.dock(smiles)))


# How long a pool waits for its first docker to be ready before it gives up (a Ray cluster with no
# free CPU would otherwise leave the actors pending, and the run waiting, for ever).
START_TIMEOUT_S = 600.0


@dataclass(eq=False, kw_only=True)
class _Slot:
    """A docker a pool drives: starting (not ready), idle, or docking ligand ``job`` since ``started``."""

    spawned: float = field(default_factory=time.monotonic)
    ready: bool = False
    job: int | None = None
    started: float = 0.0


_S = TypeVar("_S", bound=_Slot)
# (slot, kind, payload): ("ready", None) | ("failed", why) | ("done", DockingResult) | ("died", why)
_Event = tuple[_S, str, Any]


class _Batch:
    """One ``dock`` call: the ligands still to hand out, the results so far, tries per ligand."""

    def __init__(self, smiles: Sequence[str]) -> None:
        self.smiles = smiles
        self.pending = deque(range(len(smiles)))
        self.results: list[DockingResult | None] = [None] * len(smiles)
        self.tries: Counter[int] = Counter()

    def fail(self, index: int, reason: str, since: float) -> None:
        self.results[index] = DockingResult(math.nan, reason, time.monotonic() - since)

    def final(self) -> list[DockingResult]:
        return [r if r is not None else DockingResult(math.nan, "not docked") for r in self.results]


class _LigandPool(ABC, Generic[_S]):
    """Schedules ligands over ``processes`` dockers, one ligand each at a time, as they free up.

    A ligand over ``timeout_s`` gets NaN ("timed out after ...") and its docker is killed and
    replaced; a docker that dies is replaced and its ligand retried ``retries`` times (a ligand that
    kills every docker it meets then gets NaN with the reason). Subclasses say how a docker is
    started, sent a ligand, waited on and killed.
    """

    noun: ClassVar[str] = "worker"
    retries: ClassVar[int] = 1

    def __init__(self, settings: DockingSettings, processes: int, timeout_s: float) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._workers: list[_S] = [self._spawn() for _ in range(processes)]

    @abstractmethod
    def _spawn(self) -> _S: ...

    @abstractmethod
    def _send(self, worker: _S, smiles: str) -> None: ...

    @abstractmethod
    def _wait(self, timeout: float) -> list[_Event[_S]]:
        """What the dockers reported within ``timeout`` seconds (one event per docker at most)."""

    @abstractmethod
    def _kill(self, worker: _S) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def _died_starting(self, worker: _S, reason: str) -> None:
        """A docker died before it was ready: replaced unless a subclass raises."""

    @property
    def busy(self) -> int:
        """How many dockers are docking a ligand now."""
        return sum(w.job is not None for w in self._workers)

    def dock(self, smiles: Sequence[str]) -> list[DockingResult]:
        if not self._workers:
            raise RuntimeError(f"this docking pool is closed (its {self.noun}s were stopped)")
        batch = _Batch(smiles)
        while batch.pending or any(w.job is not None for w in self._workers):
            self._assign(batch)
            for worker, kind, payload in self._wait(self._next_deadline()):
                self._handle(batch, worker, kind, payload)
            self._expire(batch)
            self._check_started(waiting=bool(batch.pending))
        return batch.final()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Block until every docker is ready (started, grid maps computed); the seconds waited.

        ``dock`` does not need it (it hands ligands to dockers as they become ready); it starts a
        pool eagerly, or keeps start-up out of a timing.
        """
        start, idle = time.monotonic(), _Batch(())
        while not all(w.ready for w in self._workers):
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(
                    f"docking {self.noun}s not all ready within {timeout_s:g} s{self._stall_hint()}"
                )
            for worker, kind, payload in self._wait(1.0):
                self._handle(idle, worker, kind, payload)
        return time.monotonic() - start

    def _assign(self, batch: _Batch) -> None:
        for worker in self._workers:
            if worker.ready and worker.job is None and batch.pending:
                index = batch.pending.popleft()
                batch.tries[index] += 1
                worker.job, worker.started = index, time.monotonic()
                self._send(worker, batch.smiles[index])

    def _handle(self, batch: _Batch, worker: _S, kind: str, payload: Any) -> None:
        if kind == "ready":
            worker.ready = True
        elif kind == "failed":
            self.close()
            raise RuntimeError(f"docking {self.noun} could not start: {payload}")
        elif kind == "done":
            if worker.job is not None:
                batch.results[worker.job] = payload
            worker.job = None
        else:
            if not worker.ready:
                self._died_starting(worker, payload)
            if worker.job is not None and batch.tries[worker.job] <= self.retries:
                batch.pending.appendleft(worker.job)
            elif worker.job is not None:
                tries = batch.tries[worker.job]
                batch.fail(worker.job, f"{payload} (on each of {tries} {self.noun}s it was sent to)",
                           worker.started)
            self._replace(worker)

    def _next_deadline(self) -> float:
        busy = [w.started + self.timeout_s for w in self._workers if w.job is not None]
        return max(0.0, min(busy) - time.monotonic()) + 0.01 if busy else 1.0

    def _expire(self, batch: _Batch) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.job is not None and now - worker.started > self.timeout_s:
                batch.fail(worker.job, f"timed out after {self.timeout_s:g} s", worker.started)
                self._replace(worker)

    def _check_started(self, waiting: bool) -> None:
        """Raise when ligands wait and no docker became ready within ``START_TIMEOUT_S``."""
        now = time.monotonic()
        starting = [now - w.spawned for w in self._workers if not w.ready]
        if waiting and len(starting) == len(self._workers) and min(starting) > START_TIMEOUT_S:
            self.close()
            raise RuntimeError(
                f"no docking {self.noun} was ready within {START_TIMEOUT_S:g} s{self._stall_hint()}"
            )

    def _stall_hint(self) -> str:
        return ""

    def _replace(self, worker: _S) -> None:
        worker.job = None
        self._kill(worker)
        self._workers[self._workers.index(worker)] = self._spawn()


@dataclass(eq=False, kw_only=True)
class _Process(_Slot):
    process: Any
    conn: Connection


class DockingPool(_LigandPool[_Process]):
    """``processes`` local worker processes, each docking one ligand at a time on one core."""

    def __init__(self, settings: DockingSettings, processes: int, timeout_s: float) -> None:
        self._context = mp.get_context("spawn")  # safe beside torch threads and CUDA
        super().__init__(settings, processes, timeout_s)

    def _spawn(self) -> _Process:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self.settings), daemon=True)
        process.start()
        child.close()
        return _Process(process=process, conn=parent)

    def _send(self, worker: _Process, smiles: str) -> None:
        # a worker that has just died is seen by the next _wait (end of file), which retries its ligand
        with contextlib.suppress(OSError):
            worker.conn.send(smiles)

    def _wait(self, timeout: float) -> list[_Event[_Process]]:
        by_conn = {id(w.conn): w for w in self._workers}
        events: list[_Event[_Process]] = []
        for conn in wait([w.conn for w in self._workers], timeout=timeout):
            worker = by_conn[id(conn)]
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):  # a killed worker's pipe can also reset
                worker.process.join(1)
                kind, payload = "died", f"docking worker died (exit code {worker.process.exitcode})"
            events.append((worker, kind, payload))
        return events

    def _died_starting(self, worker: _Process, reason: str) -> None:
        self.close()
        raise RuntimeError(
            "a docking worker exited while starting; scripts that dock must guard their "
            "entry point with `if __name__ == '__main__':` (workers are spawned)"
        )

    def _kill(self, worker: _Process) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()

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


@dataclass(eq=False, kw_only=True)
class _Actor(_Slot):
    actor: Any
    ref: Any  # the call in flight: ready() while starting, then dock() while busy, None when idle


class RayDockingPool(_LigandPool[_Actor]):
    """``processes`` Ray actors (``LigandDocker``, ``num_cpus=1`` each) on the cluster at ``ray_address``
    (``synflow.ray_support.connect_ray``: a Ray instance this process already joined is reused, else
    a local one is started); ``processes=None``: one actor per CPU free on the cluster now. Every
    node needs synflow with vina and meeko; the receptor travels with the actors.

    Ray never restarts or retries an actor by itself here (``max_restarts=0``): the pool replaces
    it, so a ligand that kills its docker is tried on ``retries + 1`` actors, not for ever.
    """

    noun = "actor"
    max_start_deaths: ClassVar[int] = 3  # actors in a row that died before they were ready

    def __init__(
        self, settings: DockingSettings, processes: int | None, timeout_s: float,
        ray_address: str | None = None,
    ) -> None:
        self._ray = connect_ray(ray_address)
        self._actor_class = self._ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(LigandDocker)
        # stored once in the object store, so actors on nodes without the receptor file still start
        self._receptor = self._ray.put(Path(settings.receptor).read_text())
        self._start_deaths = 0
        if processes is None:
            processes = max(1, int(self._ray.available_resources().get("CPU", 1)))
        super().__init__(settings, processes, timeout_s)

    @property
    def actors(self) -> list[Any]:
        """The actor handles, starting or ready."""
        return [w.actor for w in self._workers]

    def busy_actors(self) -> list[Any]:
        """The actors docking a ligand now."""
        return [w.actor for w in self._workers if w.job is not None]

    def _spawn(self) -> _Actor:
        actor = self._actor_class.remote(self.settings, self._receptor)
        return _Actor(actor=actor, ref=actor.ready.remote())

    def _send(self, worker: _Actor, smiles: str) -> None:
        worker.ref = worker.actor.dock.remote(smiles)

    def _wait(self, timeout: float) -> list[_Event[_Actor]]:
        in_flight = {w.ref: w for w in self._workers if w.ref is not None}
        if not in_flight:
            time.sleep(min(timeout, 0.1))
            return []
        done, _ = self._ray.wait(list(in_flight), num_returns=1, timeout=timeout)
        return [self._event(in_flight[ref]) for ref in done]

    def _event(self, worker: _Actor) -> _Event[_Actor]:
        ref, worker.ref = worker.ref, None
        errors = self._ray.exceptions
        try:
            value = self._ray.get(ref)
        except errors.RayTaskError as exc:  # a method raised (dock() catches its own errors)
            if not worker.ready:
                return worker, "failed", _describe(exc)
            return worker, "done", DockingResult(math.nan, _describe(exc))
        except errors.RayError as exc:  # the actor died, its node was lost, its result was lost
            return worker, "died", f"docking actor died: {_describe(exc)}"
        if not worker.ready:
            self._start_deaths = 0
            return (worker, "ready", None) if value is None else (worker, "failed", value)
        return worker, "done", value

    def _died_starting(self, worker: _Actor, reason: str) -> None:
        self._start_deaths += 1
        if self._start_deaths > self.max_start_deaths:
            self.close()
            raise RuntimeError(f"{self._start_deaths} docking actors in a row died while starting: {reason}")

    def _stall_hint(self) -> str:
        free = self._ray.available_resources().get("CPU", 0)
        return f" (each actor needs a free CPU; the cluster has {free:g} free)"

    def _kill(self, worker: _Actor) -> None:
        with contextlib.suppress(Exception):  # already dead, or Ray already shut down
            self._ray.kill(worker.actor, no_restart=True)

    def close(self) -> None:
        for worker in self._workers:
            self._kill(worker)
        self._workers = []


def _describe(exc: BaseException) -> str:
    """An exception's type and the first line of its message (Ray's run over many lines)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def default_processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class DockingScorer(Scorer):
    """Raw value: the best Vina affinity (kcal/mol); the pool starts on first use.

    ``processes`` dockers (default: every core this process may use, or with ``executor="ray"``
    every CPU free on the cluster when the pool starts), ``timeout_s`` per ligand. ``executor``:
    ``local`` worker processes or ``ray`` actors (on the cluster at ``ray_address``, or a local
    Ray instance); the affinities are the same. ``pose_dir``: where each docked molecule's best pose
    is kept (``synflow.rewards.poses``), written here whichever executor docked it; None keeps none.
    """

    def __init__(
        self, settings: DockingSettings, processes: int | None = None, timeout_s: float = 300.0,
        executor: Executor = "local", ray_address: str | None = None, pose_dir: Path | None = None,
    ) -> None:
        if not Path(settings.receptor).is_file():
            raise FileNotFoundError(f"docking receptor not found: {settings.receptor}")
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
        if executor == "ray":
            import_ray()  # a missing ray fails when the reward is built, not at its first batch
        self.settings = settings
        self.processes = processes
        self.timeout_s = timeout_s
        self.executor = executor
        self.ray_address = ray_address
        self.failures: dict[str, str] = {}
        self.pose_dir = pose_dir
        self._setup: str | None = None  # the pose directory's folder for these settings, once made
        self._poses: dict[str, str] = {}  # the last batch's pose names by SMILES (what ``notes`` gives)
        self._pool: DockingPool | RayDockingPool | None = None

    @property
    def pool(self) -> DockingPool | RayDockingPool | None:
        """The running pool (None before the first batch and after ``close``)."""
        return self._pool

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        if not smiles:
            return np.zeros(0)
        if self._pool is None:
            self._pool = self._start_pool()
        try:
            results = self._pool.dock(smiles)
        except RuntimeError:  # a docker could not start: the pool closed itself; the next call starts anew
            self._pool = None
            raise
        self.failures.update({s: r.error for s, r in zip(smiles, results, strict=True) if r.error})
        self._poses = self._keep_poses(smiles, results)
        return np.array([r.affinity for r in results], dtype=np.float64)

    def notes(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        """``{"pose": name}`` (relative to ``pose_dir``) for each molecule of the last batch that has one."""
        return [{"pose": self._poses[s]} if s in self._poses else {} for s in smiles]

    def _keep_poses(self, smiles: Sequence[str], results: Sequence[DockingResult]) -> dict[str, str]:
        """Write the batch's poses under ``pose_dir``; their names by SMILES. A pose that cannot be
        written is logged and left out: the molecule keeps its affinity."""
        if self.pose_dir is None:
            return {}
        kept: dict[str, str] = {}
        try:
            folder = self._setup_folder()
            for s, result in zip(smiles, results, strict=True):
                if result.pose is None:
                    if result.pose_error is not None:
                        log.warning("no pose kept for %s: %s", s, result.pose_error)
                    continue
                name = f"{folder}/{ligand_file(s)}"
                path = self.pose_dir / name
                if not path.is_file():  # the same set-up and molecule give the same pose
                    write_atomic(path, result.pose)
                kept[s] = name
        except OSError as exc:
            log.warning("docked poses could not be written under %s: %s", self.pose_dir, exc)
        return kept

    def _setup_folder(self) -> str:
        """This scorer's folder in ``pose_dir``, with the receptor and the set-up written once."""
        if self._setup is None:
            assert self.pose_dir is not None
            receptor = Path(self.settings.receptor).read_text()
            setup = {
                "center": list(self.settings.center), "size": list(self.settings.size),
                "exhaustiveness": self.settings.exhaustiveness, "n_poses": self.settings.n_poses,
                "seed": self.settings.seed,
            }
            digest = setup_digest(receptor, setup)
            folder = self.pose_dir / digest
            if not (folder / RECEPTOR_FILE).is_file():
                write_atomic(folder / RECEPTOR_FILE, receptor)
            if not (folder / SETUP_FILE).is_file():
                setup["receptor"] = Path(self.settings.receptor).name
                write_atomic(folder / SETUP_FILE, json.dumps(setup, indent=2))
            self._setup = digest
        return self._setup

    def _start_pool(self) -> DockingPool | RayDockingPool:
        if self.executor == "ray":
            return RayDockingPool(self.settings, self.processes, self.timeout_s, self.ray_address)
        return DockingPool(self.settings, self.processes or default_processes(), self.timeout_s)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
