"""``training.executor = "ray"``: sampler actors on a Ray cluster reached by address.

The test starts its own head on 127.0.0.1 with 2 CPUs (``tests/ray_head.py``: a head and the two
worker processes the sampler actors run in) and points a run at it through ``training.ray_address``,
as the service does with a real cluster. The run finishes with molecules and routes like a local
run's, and a sampler actor killed mid-run is replaced without losing the run.
"""

from __future__ import annotations

import pytest

from synflow.actors import RaySamplerPool
from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.trainer import Trainer
from tests.ray_head import ray_head
from tests.routes import route_replays
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'synflow[ray]')")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def address():
    with ray_head(num_cpus=2) as found:
        yield found
        ray.shutdown()


class KillActor(TrainerCallback):
    def __init__(self, trainer_ref: list[Trainer], at: int) -> None:
        self.trainer_ref = trainer_ref
        self.at = at
        self.killed = False
        self.samples: list[SampledMolecule] = []

    def on_samples(self, samples: list[SampledMolecule]) -> None:
        self.samples += samples

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        pool = self.trainer_ref[0]._pool
        if step == self.at and isinstance(pool, RaySamplerPool):
            ray.kill(pool.actor(0), no_restart=True)
            self.killed = True


def test_a_run_on_ray_sampler_actors_finishes_and_survives_a_killed_actor(address: str) -> None:
    config = tiny_config(
        training={
            "samplers": 2,
            "executor": "ray",
            "ray_address": address,
            "steps": 12,
            "batch_size": 16,
        }
    )
    ref: list[Trainer] = []
    watch = KillActor(ref, at=4)
    trainer = Trainer(config, callbacks=[watch], chemistry=tiny_chemistry())
    ref.append(trainer)
    outcome = trainer.run()
    assert outcome.reason == "completed" and outcome.step == 12
    assert watch.killed and trainer.samplers_lost >= 1
    assert trainer._pool is None
    molecules = [s for s in watch.samples if s.route["steps"]]
    assert len(molecules) > 40
    assert all(s.route["steps"][-1]["product"] == s.smiles for s in molecules)
    assert all(route_replays(s.route) for s in molecules[:30])
    # the run used the cluster it was pointed at, with one actor per sampler
    assert ray.is_initialized()
    # (Ray writes the loopback address as this machine's own IP: compare the port)
    assert ray.get_runtime_context().gcs_address.rsplit(":", 1)[1] == address.rsplit(":", 1)[1]
