"""How ``Trainer.run`` ends and what it reports: the oracle budget, stop requests, checkpoint timing."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdkit import Chem
from rdkit.Chem import QED

from reactions.similarity import packed_ecfp4_bytes
from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.trainer import Trainer
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config


class Record(TrainerCallback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.samples: list[SampledMolecule] = []
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[int] = []
        self.metric_steps: list[int] = []
        self.stop_after = stop_after

    def on_samples(self, samples: list[SampledMolecule]) -> None:
        self.samples += samples

    def on_step(self, step: int, total: int, info: dict[str, float]) -> None:
        self.steps.append((step, info))

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.metric_steps.append(step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.checkpoints.append(step)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.steps) > self.stop_after


@pytest.fixture(scope="module")
def chemistry():
    return tiny_chemistry()


def _budget_config(budget: int, **training: object):
    return tiny_config(
        reward={"components": [{"type": "qed"}], "beta": 4.0, "budget": budget},
        training={"steps": 200, "batch_size": 8, "log_every": 50, **training},
    )


def test_the_budget_ends_the_run_and_nothing_unscored_is_reported_or_trained(chemistry) -> None:
    seen = Record()
    trainer = Trainer(_budget_config(5), callbacks=[seen], chemistry=chemistry)
    outcome = trainer.run()
    assert outcome.reason == "budget_spent" and outcome.message == "oracle budget spent"
    assert outcome.step < 200 and trainer.reward.oracle_calls == 5
    assert len({s.smiles for s in seen.samples}) == 5  # exactly the scored molecules
    for sample in seen.samples:  # every reported reward is the molecule's real score, with its InChIKey
        assert sample.reward == pytest.approx(QED.qed(Chem.MolFromSmiles(sample.smiles)))
        assert sample.inchikey == Chem.MolToInchiKey(Chem.MolFromSmiles(sample.smiles))
        assert sample.fingerprint == packed_ecfp4_bytes(sample.smiles)  # the store's similarity fingerprint
    infos = [info for step, info in seen.steps if step > 0]
    assert any(info["unscored"] > 0 for info in infos), "the last batch was partial"
    trained = sum(8 - info["unscored"] for info in infos)  # no replay: each scored trajectory once
    assert trainer.trajectories_trained == trained
    assert seen.metric_steps[-1] == outcome.step  # final metrics when the budget ends the run


def test_a_spent_budget_survives_a_resume(chemistry, tmp_path: Path) -> None:
    first = Trainer(_budget_config(12, checkpoint_every=1), chemistry=chemistry, checkpoint_dir=tmp_path)
    first.run(steps=1)
    calls = first.reward.oracle_calls
    assert 0 < calls < 12
    resumed = Trainer(_budget_config(12), chemistry=chemistry, checkpoint_dir=tmp_path)
    assert resumed.resume() and resumed.reward.oracle_calls == calls
    outcome = resumed.run()
    assert outcome.reason == "budget_spent" and resumed.reward.oracle_calls == 12


def test_a_stop_request_ends_the_run_before_the_next_step_and_writes_no_checkpoint(
    chemistry, tmp_path: Path
) -> None:
    seen = Record(stop_after=2)
    config = tiny_config(training={"steps": 50, "batch_size": 4, "checkpoint_every": 1000})
    outcome = Trainer(config, callbacks=[seen], chemistry=chemistry, checkpoint_dir=tmp_path).run()
    assert outcome.reason == "stopped" and outcome.step == 2
    assert seen.checkpoints == []


@pytest.mark.parametrize(("seconds", "expected"), [(1e-6, [1, 2, 3]), (1e6, [3])])
def test_checkpoints_every_n_steps_or_t_seconds_whichever_first(
    chemistry, tmp_path: Path, seconds: float, expected: list[int]
) -> None:
    seen = Record()
    config = tiny_config(
        training={"steps": 3, "batch_size": 4, "checkpoint_every": 1000, "checkpoint_seconds": seconds}
    )
    Trainer(config, callbacks=[seen], chemistry=chemistry, checkpoint_dir=tmp_path).run()
    assert seen.checkpoints == expected
    assert (tmp_path / "last.pt").exists()


def test_sampling_a_trained_model_offers_every_block_whatever_training_subsampled(chemistry) -> None:
    trainer = Trainer(tiny_config(environment={"blocks_per_template": 1}), chemistry=chemistry)
    offered = [
        (step.candidates.size, step.n_total)
        for traj in trainer.sample(16, exact_blocks=True)
        for step in traj.steps
        if step.candidates is not None
    ]
    assert offered and all(size == total for size, total in offered)
    assert any(total > 1 for _, total in offered)
    subsampled = [
        step.candidates.size
        for traj in trainer.sample(16)
        for step in traj.steps
        if step.candidates is not None
    ]
    assert set(subsampled) == {1}


def test_balance_diagnostics_read_what_they_claim(chemistry) -> None:
    import math

    import torch

    from synflow.losses import divergence
    from synflow.trainer import balance_diagnostics

    log_r = torch.tensor([-1.0, -2.0, -0.5, -3.0], dtype=torch.float64)
    balanced = log_r - 0.7  # log P_F − log P_B = log R − log Z: the optimum
    at_optimum = balance_diagnostics(
        balanced, torch.zeros(4), log_r, torch.zeros(4), divergence("reverse_kl")
    )
    assert at_optimum["ess"] == pytest.approx(1.0) and at_optimum["balance_corr"] == pytest.approx(1.0)
    assert at_optimum["log_z_devgrad"] == pytest.approx(0.7)
    delta = torch.tensor([0.0, math.log(3.0), 0.0, 0.0])  # one trajectory 3x over-sampled
    weights = torch.tensor([1.0, 1 / 3, 1.0, 1.0])
    off = balance_diagnostics(balanced, torch.zeros(4), log_r, delta, divergence("reverse_kl"))
    assert off["ess"] == pytest.approx(float(weights.sum() ** 2 / weights.square().sum() / 4))
    info = Trainer(tiny_config(training={"batch_size": 8}), chemistry=chemistry).train_step()
    assert {"ess", "log_z_devgrad", "balance_corr", "unverified_products"} <= set(info)
