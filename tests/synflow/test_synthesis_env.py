"""The synthesis environment, the trainer's records and checkpoints, on the tiny enumerable setting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import QED, AllChem

from synflow.callbacks import SampledMolecule, TrainerCallback
from synflow.config import ConfigError, parse_run_config
from synflow.env import SynthesisEnv
from synflow.exact import backward_mass, enumerate_trajectories, exact_distribution
from synflow.trainer import Trainer
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config


class Collect(TrainerCallback):
    def __init__(self) -> None:
        self.records: list[SampledMolecule] = []
        self.metrics: list[dict[str, float]] = []

    def on_molecules(self, records: list[SampledMolecule]) -> None:
        self.records += records

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.metrics.append(metrics)


def replay_route(route: dict) -> str:
    """Replays a route with bare RDKit only; returns the final product (asserting every step)."""
    current = None
    for step in route["steps"]:
        if step["action"] == "start":
            current = Chem.MolFromSmiles(step["building_block"]["smiles"])
        else:
            rxn = AllChem.ReactionFromSmarts(step["template"]["smarts"])
            if step["action"] == "react_uni":
                reactants = (current,)
            else:
                block = Chem.MolFromSmiles(step["building_block"]["smiles"])
                reactants = (current, block) if step["slot"] == 0 else (block, current)
            products = set()
            for outcome in rxn.RunReactants(reactants):
                mol = outcome[0]
                if Chem.SanitizeMol(mol, catchErrors=True) == Chem.SanitizeFlags.SANITIZE_NONE:
                    products.add(Chem.MolToSmiles(Chem.MolFromSmiles(Chem.MolToSmiles(mol))))
            assert step["product"] in products, (step, products)
            current = Chem.MolFromSmiles(step["product"])
        assert Chem.MolToSmiles(current) == step["product"]
    return route["steps"][-1]["product"]


@pytest.fixture(scope="module")
def chemistry():
    return tiny_chemistry()


def test_backward_policy_is_a_distribution_over_every_way_to_make_each_molecule(chemistry) -> None:
    env = SynthesisEnv(chemistry)
    trajs = enumerate_trajectories(env)
    mass = backward_mass(trajs)
    assert len(mass) > 20
    assert all(abs(m - 1.0) < 1e-9 for m in mass.values())
    # some molecule is reachable in several ways, so P_B is not trivially one
    assert any(t.uniform_log_pb < 0 for t in trajs)
    # the blocks that fit no template are no start
    assert chemistry.library.index_of("c1ccccc1") not in set(chemistry.start_blocks.tolist())


def test_exact_model_distribution_sums_to_one_and_routes_replay(chemistry) -> None:
    trainer = Trainer(tiny_config(), chemistry=chemistry)
    trajs = enumerate_trajectories(trainer.env, beta=4.0)
    probs = exact_distribution(trainer.runner, trainer.model, trajs)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
    for traj in trajs:
        if traj.valid:
            assert replay_route({"steps": traj.route}) == traj.smiles


def test_trainer_records_replayable_routes_and_direct_rewards(chemistry) -> None:
    sink = Collect()
    config = tiny_config(training={"steps": 4, "batch_size": 16, "log_every": 2})
    trainer = Trainer(config, callbacks=[sink], chemistry=chemistry)
    trainer.run()
    assert sink.records and sink.metrics
    assert len({r.smiles for r in sink.records}) == len(sink.records)
    for record in sink.records:
        assert replay_route(record.route) == record.smiles
        direct = QED.qed(Chem.MolFromSmiles(record.smiles))
        assert record.reward == pytest.approx(direct, abs=1e-9)
        assert record.scores["qed"] == pytest.approx(direct, abs=1e-9)
        assert record.log_reward == pytest.approx(4.0 * math.log(direct), abs=1e-9)
    assert {"top1_reward", "top10_reward", "unique", "modes", "scaffolds", "pmo_auc_top10"} <= set(
        sink.metrics[-1]
    )


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_resume_from_checkpoint_is_bit_exact(chemistry, tmp_path) -> None:
    config = tiny_config(
        training={"steps": 6, "batch_size": 8, "exploration": 0.2, "ema": 0.9, "lr_schedule": "cosine"},
        replay={"fraction": 0.25, "warmup": 4, "sampling": "reward"},
    )
    straight = Trainer(config, chemistry=chemistry)
    straight.run()
    first = Trainer(config, chemistry=chemistry, checkpoint_dir=tmp_path)
    first.run(steps=3)
    first.save_checkpoint(tmp_path / "mid.pt")
    resumed = Trainer(config, chemistry=chemistry)
    resumed.load_checkpoint(tmp_path / "mid.pt")
    assert resumed.step == 3
    resumed.run()
    for a, b in zip(_params(straight), _params(resumed), strict=True):
        assert torch.equal(a, b)
    assert straight.metrics.rewards == resumed.metrics.rewards


def test_config_errors_name_the_field() -> None:
    good = {"reward": {"components": [{"type": "qed"}]}}
    assert parse_run_config(good).environment.max_reactions == 3
    with pytest.raises(ConfigError, match=r"training\.batch_size"):
        parse_run_config({**good, "training": {"batch_size": 0}})
    with pytest.raises(ConfigError, match=r"loss\.divergance"):
        parse_run_config({**good, "loss": {"divergance": "forward_kl"}})
    with pytest.raises(ConfigError, match="divergence"):
        parse_run_config({**good, "loss": {"divergence": "nope"}})


def test_subsampled_block_choice_is_importance_corrected(chemistry) -> None:
    """With k of N blocks offered, the recorded log P of a block choice is the log-softmax over the k
    offered blocks minus log(N/k), computed here from the network's own block scores."""
    from synflow.objective import forward_log_probs
    from synflow.trajectory import Trajectory

    trainer = Trainer(tiny_config(environment={"blocks_per_template": 2}), chemistry=chemistry)
    trajs = trainer.sample(8)
    starts = [t.steps[0] for t in trajs]
    assert all(len(s.candidates) == 2 and s.n_total == chemistry.start_blocks.size for s in starts)
    assert all(s.action.block in s.candidates for s in starts)
    model, runner = trainer.model, trainer.runner
    with torch.no_grad():
        for traj in trajs:
            step = traj.steps[0]
            only_start = Trajectory([step], traj.beta, False, None, [])
            recorded = float(forward_log_probs(runner, model, [only_start])[0])
            z = runner.embed(model, [step.state], torch.tensor([traj.beta]))
            query = model.block_queries(z, torch.tensor([model.start_slot]))
            emb = model.block_embeddings(*runner.blocks.gather(step.candidates, runner.device))
            scores = (query @ emb.T)[0] / math.sqrt(query.shape[-1])
            picked = int(np.searchsorted(step.candidates, step.action.block))
            expected = float(torch.log_softmax(scores, 0)[picked]) - math.log(step.n_total / 2)
            assert recorded == pytest.approx(expected, abs=1e-5)


def test_learned_backward_policy_is_normalised_over_every_route(chemistry) -> None:
    from collections import defaultdict

    from synflow.exact import terminal_key
    from synflow.objective import backward_log_probs

    config = tiny_config(environment={"backward_policy": "maximum_likelihood"}, training={"batch_size": 8})
    trainer = Trainer(config, chemistry=chemistry)
    trainer.run(steps=2)
    trajs = enumerate_trajectories(trainer.env, beta=4.0)
    with torch.no_grad():
        probs = backward_log_probs(trainer.runner, trainer.model, trajs).double().exp().tolist()
    mass: dict = defaultdict(float)
    for traj, p in zip(trajs, probs, strict=True):
        mass[terminal_key(traj)] += p
    assert all(abs(m - 1.0) < 1e-4 for m in mass.values())
    assert any(abs(p - np.exp(t.uniform_log_pb)) > 1e-3 for t, p in zip(trajs, probs, strict=True))


def test_route_backward_policy_needs_no_retro_analysis_and_keeps_valid_routes(chemistry) -> None:
    config = tiny_config(environment={"backward_policy": "route"}, training={"batch_size": 16})
    collect = Collect()
    retro_before = chemistry.stats["retro"]
    trainer = Trainer(config, chemistry=chemistry, callbacks=[collect])
    assert not trainer.env.verify_retro
    trajs = trainer.sample(16)
    assert all(t.backward == [] and t.uniform_log_pb == 0.0 for t in trajs)
    # Δ = log Z + Σ log P_F − log R: no backward term at all (P_B = 1 along the route).
    from synflow.objective import forward_log_probs

    with torch.no_grad():
        _, info = trainer.loss(trajs)
        log_pf = forward_log_probs(trainer.runner, trainer.model, trajs)
        log_z = trainer.model.log_z(torch.tensor([t.beta for t in trajs]))
        log_r = torch.tensor([t.log_reward for t in trajs])
    assert info["delta_abs"] == pytest.approx(float((log_z + log_pf - log_r).abs().mean()), rel=1e-5)
    trainer.train_step()
    assert chemistry.stats["retro"] == retro_before  # not one retro-analysis was needed
    assert collect.records
    for record in collect.records:
        assert replay_route(record.route) == record.smiles


def test_screened_template_slots_equal_plain_matching_on_real_molecules() -> None:
    """The pattern-fingerprint screen and pattern de-duplication never change which slots apply."""
    import gzip
    from importlib import resources
    from itertools import islice
    from pathlib import Path

    from reactions.index import build_compatibility_index
    from reactions.library import library_from_smiles
    from reactions.templates import default_template_set
    from synflow.chemistry import SynthesisChemistry

    resource = resources.files("reactions.data").joinpath("default_building_blocks.smi.gz")
    with resources.as_file(resource) as path, gzip.open(path, "rt") as handle:
        blocks = [line.split()[0] for line in islice(handle, 300)]
    templates = default_template_set()
    library = library_from_smiles(blocks, ids=[f"B{i}" for i in range(len(blocks))], workers=1)
    index = build_compatibility_index(library, templates, workers=1)
    chem = SynthesisChemistry(library, templates, index, 3, 1)
    molecules = list(library.smiles)
    zinc = Path(__file__).resolve().parents[3] / "shared" / "data" / "molecules" / "zinc250k.csv.gz"
    if zinc.exists():  # real drug-like molecules, larger than blocks, when the reference data is here
        with gzip.open(zinc, "rt") as handle:
            next(handle)
            molecules += [line.split(",")[0].strip() for line in islice(handle, 700)]
    hits = 0
    for smiles in molecules:
        mol = Chem.MolFromSmiles(smiles)
        plain = tuple(
            (t.index, s)
            for t in templates
            for s in range(t.arity)
            if (t.arity == 1 or chem.partners(t.index, s).size) and t.matches(mol, s)
        )
        assert chem.template_slots(Chem.MolToSmiles(mol)) == plain, smiles
        hits += len(plain)
    assert hits > len(molecules)  # the comparison is not vacuous
    assert chem.stats["matches"] < 0.6 * len(molecules) * sum(t.arity for t in templates)


def test_bounded_chemistry_caches_give_the_same_trajectories_and_backward_policy() -> None:
    from synflow.exact import terminal_key

    def summary(cache_size: int) -> tuple[list, int]:
        chem = tiny_chemistry(cache_size=cache_size)
        trajs = enumerate_trajectories(SynthesisEnv(chem), beta=1.0)
        return sorted((terminal_key(t), round(t.uniform_log_pb, 12)) for t in trajs), chem.stats["retro"]

    unbounded, retro_unbounded = summary(200_000)
    bounded, retro_bounded = summary(32)
    assert bounded == unbounded and len(unbounded) > 50
    assert retro_bounded > retro_unbounded  # the small caches really forgot and recomputed


def test_callbacks_get_new_molecules_once_and_every_sample(chemistry) -> None:
    class Samples(Collect):
        def __init__(self) -> None:
            super().__init__()
            self.samples: list[SampledMolecule] = []

        def on_samples(self, records: list[SampledMolecule]) -> None:
            self.samples += records

    seen = Samples()
    trainer = Trainer(tiny_config(training={"batch_size": 16}), chemistry=chemistry, callbacks=[seen])
    for _ in range(4):
        trainer.train_step()
    smiles = [r.smiles for r in seen.samples]
    assert len(set(smiles)) == len(seen.records) < len(smiles)  # the tiny setting repeats molecules
    assert [r.smiles for r in seen.records] == list(dict.fromkeys(smiles))  # new ones, first-seen order
    assert {r.step for r in seen.samples} == {0, 1, 2, 3}
    assert len(smiles) == trainer.metrics.sampled - trainer.metrics.invalid
