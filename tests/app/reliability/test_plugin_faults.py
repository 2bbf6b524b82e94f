"""A reward plugin that raises, hangs or returns NaN fails only the molecules it failed on, or the
run when it fails systematically; never the worker.

One real ``synflow worker`` process is given three runs in turn: a plugin that always raises, one
that always returns NaN, and one that raises on some molecules, returns NaN for others and hangs on
others (chosen by a checksum of the SMILES, so the test knows each molecule's fate). The first two
runs fail with the plugin's reason on the row; the third succeeds, every molecule the plugin failed
on is stored with the reward floor and its reason, the rest with the plugin's score; the same
worker process claims all three and is still alive at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rdkit import Chem
from sqlalchemy import select

from app.core.db import Database
from app.core.models import Molecule, Run
from app.core.settings import Settings
from tests.app.reliability.conftest import WorkerProcesses, queue_run, read_run, wait_for
from tests.app.reliability.plugin_targets import kind

TARGETS = "tests.app.reliability.plugin_targets"
EXPECTED_ERROR = {0: "raised ValueError('cannot featurise", 1: "NaN", 2: "timed out after 0.5 s"}


def _plugin(function: str) -> dict[str, Any]:
    return {"components": [{"type": "python", "target": f"{TARGETS}:{function}", "name": "plug",
                            "timeout_s": 1.0, "molecule_timeout_s": 0.5}]}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_plugin_faults_fail_molecules_or_the_run_never_the_worker(
    db: Database, settings: Settings, worker_processes: WorkerProcesses,
    tiny_run: Callable[..., dict[str, Any]],
) -> None:
    raising = queue_run(db, tiny_run(reward=_plugin("always_raises"), steps=3), "always raises")
    nan = queue_run(db, tiny_run(reward=_plugin("always_nan"), steps=3), "always NaN")
    flaky = queue_run(db, tiny_run(reward=_plugin("flaky"), steps=6, seed=2), "flaky")
    (pid,) = worker_processes.start(1)

    wait_for(lambda: read_run(db, flaky).status in ("succeeded", "failed"), 180, "the flaky run to finish")
    failed = {run_id: read_run(db, run_id) for run_id in (raising, nan)}
    for run in failed.values():
        assert run.status == "failed" and run.step <= 1, (run.status, run.step)
        assert "RewardPluginError: reward component 'plug'" in run.error
    assert "model file missing" in failed[raising].error
    assert "NaN" in failed[nan].error

    run = read_run(db, flaky)
    assert run.status == "succeeded", run.error
    with db.session() as session:
        molecules = session.scalars(select(Molecule).where(Molecule.run_id == flaky)).all()
    fates = {}
    for molecule in molecules:
        fate = kind(Chem.CanonSmiles(molecule.smiles))
        fates[molecule.smiles] = fate
        if fate in EXPECTED_ERROR:
            assert molecule.error is not None and EXPECTED_ERROR[fate] in molecule.error, molecule.error
            assert molecule.error.startswith("plug: ")
            assert molecule.reward == 0.0 and molecule.scores["plug"] is None
        else:
            assert molecule.error is None and molecule.reward == pytest.approx(0.5), molecule.error
    # every kind of failure really happened, alongside molecules that scored normally
    assert {0, 1, 2} <= set(fates.values()) and any(f > 2 for f in fates.values()), fates

    # The worker survived all of it and claimed every run itself.
    assert worker_processes.alive(pid)
    with db.session() as session:
        owners = set(session.scalars(select(Run.worker_id).where(Run.id.in_([raising, nan, flaky]))))
    assert len(owners) == 1 and f":{pid}:" in owners.pop()
    assert read_run(db, flaky).attempts == 1
