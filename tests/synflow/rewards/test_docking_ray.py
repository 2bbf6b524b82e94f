"""Docking on Ray actors (``training.executor = "ray"``): the local pool's affinities, actors replaced
when they are killed or time out, and ``build_reward(..., executor="ray")`` wired to them.

The module starts its own local Ray instance on 127.0.0.1 (``address="local"``: it never joins
another module's or another engineer's cluster, so two xdist workers can each run one; Ray picks
free ports) and shuts it down at the end. Token authentication is off for it, as for
``tests/ray_head.py``'s head: the token file (~/.ray/auth_token) is shared by every local cluster,
and a token-mode ``ray.init`` also sets ``RAY_AUTH_MODE`` for the rest of the process. A 12 Å box
and exhaustiveness 1 keep a ligand under about a second and an actor's grid maps under one.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from synflow.rewards import RewardConfig, build_reward
from synflow.rewards.docking import (
    DockingPool,
    DockingScorer,
    DockingSettings,
    LigandDocker,
    RayDockingPool,
    receptor_box,
)

pytest.importorskip("vina", reason="AutoDock Vina (pip install vina) is not installed")
pytest.importorskip("meeko", reason="meeko (pip install meeko gemmi) is not installed")

ROOT = Path(__file__).resolve().parents[3]
# canonical SMILES, as the reward docks them: the embedding follows the atom order
LIGANDS = ["CCO", "CC(=O)Nc1ccc(O)cc1", "O=C(O)c1ccccc1O", "Cc1ccccc1N", "CCN", "OCc1ccccc1"]
ESTRADIOL = "C[C@]12CC[C@H]3[C@@H](CCc4cc(O)ccc43)[C@@H]1CC[C@@H]2O"
BOX = (12.0, 12.0, 12.0)


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'synflow[ray]')")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv("RAY_AUTH_MODE", "disabled")
        ours = not ray.is_initialized()
        if ours:
            ray.init(
                address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                object_store_memory=100 * 1024**2, logging_level=logging.WARNING, log_to_driver=False,
            )
        yield ray
        if ours:
            ray.shutdown()


@pytest.fixture(scope="module")
def settings(shared_data: Path) -> DockingSettings:
    receptor, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    return DockingSettings(receptor=receptor, center=center, size=BOX, exhaustiveness=1)


@pytest.fixture(scope="module")
def local_affinities(settings: DockingSettings) -> list[float]:
    """``LIGANDS`` docked by the local process pool: what the actors must reproduce."""
    pool = DockingPool(settings, processes=2, timeout_s=120)
    try:
        results = pool.dock(LIGANDS)
    finally:
        pool.close()
    assert all(r.error is None for r in results), results
    return [r.affinity for r in results]


def affinities(results: list[Any]) -> list[float]:
    return [r.affinity for r in results]


def dock_while(
    pool: DockingPool | RayDockingPool, ligands: list[str], action: Callable[[], bool]
) -> list[Any]:
    """Dock ``ligands`` in a thread while ``action`` runs every 20 ms until it returns True."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(results=pool.dock(ligands)))
    thread.start()
    while thread.is_alive() and not action():
        time.sleep(0.02)
    thread.join(120)
    assert not thread.is_alive(), "the batch did not return"
    return out["results"]


def killer(ray: Any, pool: RayDockingPool, kills: int) -> tuple[Callable[[], bool], list[Any]]:
    """An action that kills each actor it finds docking, ``kills`` actors in all."""
    killed: list[Any] = []

    def act() -> bool:
        for actor in pool.busy_actors():
            if len(killed) < kills and all(actor is not k for k in killed):
                ray.kill(actor)
                killed.append(actor)
        return len(killed) >= kills

    return act, killed


def test_importing_the_rewards_does_not_import_ray() -> None:
    code = (
        "import sys, synflow.rewards, synflow.rewards.docking, synflow.rewards.factory\n"
        "assert 'ray' not in sys.modules, 'imported ray'\n"
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


def test_build_reward_with_ray_docks_on_actors_with_the_local_scores(
    ray_instance: Any, shared_data: Path, local_affinities: list[float]
) -> None:
    receptor, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    config = RewardConfig.model_validate({"components": [{
        "type": "docking", "receptor": receptor, "center": center, "size": list(BOX),
        "exhaustiveness": 1, "processes": 2,
    }]})
    reward = build_reward(config, executor="ray")
    scorer = reward.scorer("docking")
    assert isinstance(scorer, DockingScorer) and scorer.executor == "ray"
    try:
        batch = reward.score(LIGANDS)
        pool = scorer.pool
        assert isinstance(pool, RayDockingPool) and len(pool.actors) == 2
        actors = pool.actors
    finally:
        reward.close()
    assert batch.scores["docking_raw"].tolist() == local_affinities
    assert scorer.failures == {} and scorer.pool is None
    for actor in actors:  # close() killed them
        with pytest.raises(ray_instance.exceptions.RayActorError):
            ray_instance.get(actor.ready.remote(), timeout=60)


def test_poses_docked_on_actors_are_written_by_the_scoring_process(
    ray_instance: Any, shared_data: Path, tmp_path: Path
) -> None:
    """An actor sends its pose back as text; the scorer writes it under its own pose directory,
    the same file the local pool writes."""
    receptor, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    files = {}
    for executor in ("ray", "local"):
        config = RewardConfig.model_validate({"components": [{
            "type": "docking", "receptor": receptor, "center": center, "size": list(BOX),
            "exhaustiveness": 1, "processes": 2, "pose_dir": str(tmp_path / executor),
        }]})
        with build_reward(config, executor=executor) as reward:
            batch = reward.score(LIGANDS[:2])
        assert all(note.get("pose") for note in batch.notes), batch.notes
        names = [str(note["pose"]) for note in batch.notes]
        files[executor] = {name: (tmp_path / executor / name).read_text() for name in names}
    assert files["ray"] == files["local"]


def test_an_unknown_executor_is_refused(shared_data: Path) -> None:
    receptor, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    config = RewardConfig.model_validate({"components": [
        {"type": "docking", "receptor": receptor, "center": center}]})
    with pytest.raises(ValueError, match="executor"):
        build_reward(config, executor="slurm")  # type: ignore[arg-type]


def test_executor_ray_without_ray_fails_when_the_reward_is_built(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synflow.ray_support import RayUnavailable

    receptor, center = receptor_box(shared_data / "receptors" / "ESR1_ant")
    config = RewardConfig.model_validate({"components": [
        {"type": "docking", "receptor": receptor, "center": center}]})
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailable, match="synflow\\[ray\\]"):
        build_reward(config, executor="ray")
    build_reward(config).close()  # a local reward never needs ray


def test_a_killed_actor_is_replaced_and_the_batch_returns_every_score(
    ray_instance: Any, settings: DockingSettings, local_affinities: list[float]
) -> None:
    pool = RayDockingPool(settings, processes=2, timeout_s=120)
    try:
        pool.dock(["C", "N"])  # both actors started
        kill, killed = killer(ray_instance, pool, kills=1)
        results = dock_while(pool, LIGANDS, kill)
        assert len(killed) == 1 and all(a is not killed[0] for a in pool.actors)
        assert len(pool.actors) == 2
    finally:
        pool.close()
    assert [r.error for r in results] == [None] * len(LIGANDS)
    assert affinities(results) == local_affinities  # the killed actor's ligand was docked again


def test_a_ligand_whose_actor_dies_twice_gets_nan_with_the_reason(
    ray_instance: Any, settings: DockingSettings
) -> None:
    pool = RayDockingPool(settings, processes=1, timeout_s=120)
    try:
        pool.dock(["C"])
        kill, killed = killer(ray_instance, pool, kills=2)
        results = dock_while(pool, [ESTRADIOL], kill)
    finally:
        pool.close()
    assert len(killed) == 2
    assert math.isnan(results[0].affinity)
    assert "docking actor died" in (results[0].error or "") and "2 actors" in (results[0].error or "")


def test_a_ligand_over_the_timeout_gets_nan_and_a_fresh_actor(
    ray_instance: Any, settings: DockingSettings, local_affinities: list[float]
) -> None:
    pool = RayDockingPool(settings, processes=1, timeout_s=0.05)
    try:
        timed_out = pool.dock([ESTRADIOL])  # the clock starts once the actor is ready
        before = pool.actors
        pool.timeout_s = 120.0
        again = pool.dock(LIGANDS[:2])  # the replacement actor docks the next batch
    finally:
        pool.close()
    assert math.isnan(timed_out[0].affinity)
    assert timed_out[0].error == "timed out after 0.05 s"
    assert len(before) == 1 and affinities(again) == local_affinities[:2]


def test_the_local_pool_shares_the_rules_a_killed_worker_is_replaced_and_its_ligand_retried(
    settings: DockingSettings,
) -> None:
    expected = LigandDocker(settings).dock(ESTRADIOL).affinity  # the code both pools run, in-process
    pool = DockingPool(settings, processes=1, timeout_s=120)
    try:
        pool.wait_ready()
        (first,) = multiprocessing.active_children()

        def kill_first() -> bool:
            if pool.busy:
                first.kill()
            return pool.busy > 0

        results = dock_while(pool, [ESTRADIOL], kill_first)
        (second,) = multiprocessing.active_children()
    finally:
        pool.close()
    assert first.exitcode is not None and second.pid != first.pid
    assert results[0].error is None and results[0].affinity == expected


def test_a_docker_on_a_machine_without_the_receptor_file_docks_from_its_text(
    settings: DockingSettings, tmp_path: Path
) -> None:
    """What an actor on another node does: the pool ships the receptor's text with the actors."""
    text = Path(settings.receptor).read_text()
    elsewhere = replace(settings, receptor=str(tmp_path / "not-on-this-node" / "receptor.pdbqt"))
    docker = LigandDocker(elsewhere, receptor_pdbqt=text)
    assert docker.ready() is None and Path(docker.settings.receptor).read_text() == text
    assert docker.dock("CCO").affinity == LigandDocker(settings).dock("CCO").affinity
