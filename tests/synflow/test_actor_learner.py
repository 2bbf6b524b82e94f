"""Actor–learner training (``training.samplers`` > 1): sampler processes draw, the learner trains.

What the learner does with what samplers send (stale batches dropped and counted, a lost sampler
replaced and its request re-issued, weights sent every ``sync_every`` steps) is checked with a
scripted pool; real spawned samplers are checked to draw exactly what the learner's own sampler
would with the same weights and seed, and a run whose sampler is killed mid-run finishes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from synflow.actors import (
    ChemistrySpec,
    DrawRequest,
    DrawResult,
    LocalSamplerPool,
    SamplerLost,
    SamplerPool,
    SamplerWorker,
    scores_in_samplers,
    seeded_streams,
)
from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.config import ConfigError
from synflow.sampler import SamplerSettings
from synflow.schedules import sample_betas
from synflow.trainer import Trainer
from tests.routes import route_replays
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config


@pytest.fixture(scope="module")
def chemistry():
    return tiny_chemistry()


class ScriptedPool(SamplerPool):
    """Answers ``next_result`` from a script of results and losses; records what the learner sends."""

    def __init__(self, script: list[DrawResult | SamplerLost]) -> None:
        self.n = 2
        self.script = script
        self.submitted: list[tuple[int, DrawRequest]] = []
        self.restarted: list[int] = []
        self.closed = False

    def submit(self, worker: int, request: DrawRequest) -> None:
        self.submitted.append((worker, request))

    def next_result(self, timeout: float | None = None) -> DrawResult | None:
        item = self.script.pop(0)
        if isinstance(item, SamplerLost):
            raise item
        return item

    def restart(self, worker: int) -> None:
        self.restarted.append(worker)

    def close(self) -> None:
        self.closed = True


def _unscored(trainer: Trainer, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    trainer.sampler.rng = rng
    return trainer.sampler.sample(trainer.model, sample_betas(trainer.beta_range, n, rng), SamplerSettings())


def test_the_learner_drops_stale_batches_replaces_lost_samplers_and_trains_on_the_rest(chemistry) -> None:
    config = tiny_config(training={"samplers": 2, "max_staleness": 2, "sync_every": 2, "batch_size": 8})
    trainer = Trainer(config, chemistry=chemistry)
    trainer.step = 10
    fresh = _unscored(trainer, 8, 1)
    pool = ScriptedPool(
        [
            DrawResult(0, 7, _unscored(trainer, 8, 0), 0.1),  # 3 steps old: dropped
            SamplerLost(1, "killed"),
            DrawResult(0, 8, fresh, 0.1, unverified=3),  # 2 steps old: trained on
        ]
    )
    trainer._pool = pool
    trainer._pool_versions = {0: 8, 1: 9}
    info = trainer.train_step()
    assert trainer.stale_batches == 1 and trainer.samplers_lost == 1 and pool.restarted == [1]
    assert info["stale_batches"] == 1 and info["samplers_lost"] == 1 and info["unverified_products"] == 3
    # every answer (and the loss) is followed at once by the next request to that sampler
    assert [w for w, _ in pool.submitted] == [0, 1, 0]
    first, replaced, last = (r for _, r in pool.submitted)
    assert first.weights is not None and first.version == 10  # it held step 8's: 2 ≥ sync_every
    assert replaced.weights is not None and replaced.version == 10  # a new sampler holds nothing
    assert last.weights is None and last.version == 10  # already sent at this step
    assert all(t.smiles is None or t.scored for t in fresh)  # the learner scored what it trained on
    assert trainer.trajectories_trained == len(fresh)
    trainer.close()
    assert pool.closed


def test_samplers_score_their_molecules_unless_a_budget_or_docking_needs_one_place() -> None:
    assert scores_in_samplers(tiny_config())
    assert not scores_in_samplers(tiny_config(reward={"budget": 100}))
    docking = {"type": "docking", "receptor": "/nowhere", "center": [0, 0, 0]}
    assert not scores_in_samplers(tiny_config(reward={"components": [{"type": "qed"}, docking]}))


def test_a_batch_the_sampler_scored_is_not_scored_again_and_its_calls_are_counted(chemistry) -> None:
    trainer = Trainer(tiny_config(training={"samplers": 2, "batch_size": 8}), chemistry=chemistry)
    worker = SamplerWorker(trainer.config.model_dump(mode="json"), ChemistrySpec.of(chemistry), 0)
    weights = trainer.sampling_model.state_dict()
    result = worker.draw(DrawRequest(8, 0, (1, 2, 3), SamplerSettings(), weights))
    valid = [t for t in result.trajectories if t.valid]
    assert valid and result.oracle_calls == len({t.smiles for t in valid})
    assert all(t.scored and t.reward > 0 for t in valid)
    trainer._pool = ScriptedPool([result])
    info = trainer.train_step()
    assert trainer.reward.oracle_calls == 0, "the learner scored nothing itself"
    assert info["oracle_calls"] == result.oracle_calls
    worker.close()


def test_weights_go_to_a_sampler_every_sync_every_steps(chemistry) -> None:
    config = tiny_config(training={"samplers": 2, "sync_every": 3, "max_staleness": 4, "batch_size": 8})
    trainer = Trainer(config, chemistry=chemistry)
    pool = ScriptedPool([])
    trainer._pool = pool
    trainer._pool_versions = {0: 5}
    for step, expect_weights in ((6, False), (7, False), (8, True), (9, False)):
        trainer.step = step
        trainer._submit(0, 8)
        request = pool.submitted[-1][1]
        assert (request.weights is not None) == expect_weights, step
        assert request.version == (8 if step >= 8 else 5)


def test_weights_must_be_sent_more_often_than_batches_go_stale() -> None:
    with pytest.raises(ConfigError, match="sync_every"):
        tiny_config(training={"samplers": 2, "sync_every": 5, "max_staleness": 4})


def test_a_sampler_process_draws_what_the_learner_would_with_the_same_weights_and_seed(chemistry) -> None:
    trainer = Trainer(tiny_config(training={"batch_size": 8}), chemistry=chemistry)
    for _ in range(3):  # weights away from their initial values
        trainer.train_step()
    weights = {k: v.clone() for k, v in trainer.sampling_model.state_dict().items()}
    worker = SamplerWorker(trainer.config.model_dump(mode="json"), ChemistrySpec.of(chemistry), 0)
    settings = SamplerSettings(None, 1.0, 0.1)
    remote = worker.draw(DrawRequest(16, 3, (7, 0, 1), settings, weights)).trajectories
    rng = seeded_streams((7, 0, 1))
    trainer.sampler.rng = rng
    trainer.sampling_model.eval()
    local = trainer.sampler.sample(
        trainer.sampling_model, sample_betas(trainer.beta_range, 16, rng), settings
    )
    assert [t.smiles for t in remote] == [t.smiles for t in local]
    assert [t.route for t in remote] == [t.route for t in local]
    assert [t.uniform_log_pb for t in remote] == [t.uniform_log_pb for t in local]


class KillOneSampler(TrainerCallback):
    """Kills sampler 0's process with SIGKILL after step ``at``; collects what the run reports."""

    def __init__(self, trainer_ref: list[Trainer], at: int) -> None:
        self.trainer_ref = trainer_ref
        self.at = at
        self.killed: int | None = None
        self.samples: list[SampledMolecule] = []
        self.infos: list[dict[str, float]] = []

    def on_samples(self, samples: list[SampledMolecule]) -> None:
        self.samples += samples

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        self.infos.append(info)
        pool = self.trainer_ref[0]._pool
        if step == self.at and isinstance(pool, LocalSamplerPool):
            self.killed = pool.pid(0)
            os.kill(self.killed, signal.SIGKILL)


@pytest.mark.slow
def test_a_run_with_two_sampler_processes_survives_a_killed_sampler(chemistry, tmp_path: Path) -> None:
    config = tiny_config(training={"samplers": 2, "steps": 14, "batch_size": 16, "checkpoint_every": 5})
    ref: list[Trainer] = []
    watch = KillOneSampler(ref, at=4)
    trainer = Trainer(config, callbacks=[watch], chemistry=chemistry, checkpoint_dir=tmp_path)
    ref.append(trainer)
    outcome = trainer.run()
    assert outcome.reason == "completed" and outcome.step == 14
    assert watch.killed is not None and trainer.samplers_lost >= 1
    assert watch.infos[-1]["samplers_lost"] >= 1
    assert trainer._pool is None  # run() closed the pool: no sampler process is left
    with pytest.raises(ProcessLookupError):
        os.kill(watch.killed, 0)
    assert (tmp_path / "last.pt").exists()
    molecules = [s for s in watch.samples if s.route["steps"]]
    assert len(molecules) > 50
    assert all(s.route["steps"][-1]["product"] == s.smiles for s in molecules)
    assert all(route_replays(s.route) for s in molecules[:40])
