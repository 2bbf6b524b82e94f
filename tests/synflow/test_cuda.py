"""The GPU path: ``training.device = "auto"`` uses CUDA when present, the learner's batch lives on the
GPU, checkpoints move between devices, and CPU and CUDA agree on a batch's loss.

The CUDA tests skip, with the reason, where ``torch.cuda.is_available()`` is false (CI, the 2-core
machines); ``benchmarks/gpu_check.sh`` runs them on a GPU machine. The tests above the CUDA ones need
no GPU: they check, on the CPU, the pieces the GPU path is built from (inputs prepared ahead, in a
thread or in another process, give the very same numbers).
"""

from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from models.featurize import MolFeaturizer
from synflow.objective import (
    InputPrefetcher,
    backward_log_probs,
    forward_log_probs,
    learner_molecules,
    prepare_backward,
    prepare_forward,
)
from synflow.policy_runner import PolicyRunner, input_tensors, to_device, unique_inverse
from synflow.runtime import resolve_device
from synflow.trainer import Trainer
from tests.synflow.tiny_setting import tiny_chemistry, tiny_config

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA,
    reason="no CUDA device here (torch.cuda.is_available() is False); "
    "benchmarks/gpu_check.sh runs these on a GPU machine",
)


@pytest.fixture(scope="module")
def chemistry():
    return tiny_chemistry()


def _config(device: str, **environment: object):
    return tiny_config(
        environment={"max_reactions": 2, "backward_policy": "maximum_likelihood", **environment},
        training={"steps": 4, "batch_size": 16, "device": device, "checkpoint_every": 1000},
    )


# -- no GPU needed ---------------------------------------------------------------------------------
def test_auto_picks_cuda_exactly_when_it_is_there() -> None:
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu").type == "cpu"


def test_a_trainer_on_auto_without_cuda_trains_on_the_cpu(chemistry, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trainer = Trainer(_config("auto"), chemistry=chemistry)
    assert trainer.device.type == "cpu" and trainer.runner.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())


def test_unique_inverse_is_numpys_unique() -> None:
    rng = np.random.default_rng(0)
    for n, size in ((5, 1000), (4000, 1000), (0, 10)):
        values = rng.integers(0, size, n)
        unique, inverse = unique_inverse(values, size)
        expected, expected_inverse = np.unique(values, return_inverse=True)
        assert np.array_equal(unique, expected) and np.array_equal(inverse, expected_inverse.reshape(-1))


def test_tensors_already_on_the_device_are_not_copied() -> None:
    a, b = torch.arange(3), torch.ones(2, 2)
    moved = to_device([a, b], torch.device("cpu"))
    assert moved[0] is a and moved[1] is b


def test_moving_inputs_keeps_every_field_and_copies_each_dtype_once(chemistry) -> None:
    """The copy to another device (here "meta", which needs no GPU): shapes, dtypes, plain fields kept,
    and each dtype's tensors are slices of one buffer (one transfer)."""
    trainer = Trainer(_config("cpu"), chemistry=chemistry)
    trajs = trainer.sample(8)
    runner = trainer.runner
    forward = prepare_forward(runner, trajs, trainer.model.start_slot)
    elsewhere = PolicyRunner(runner.featurizer, runner.blocks, torch.device("meta"))
    moved = elsewhere.to_device(forward)
    before, after = input_tensors(forward), input_tensors(moved)
    assert len(before) == len(after) > 10
    for a, b in zip(before, after, strict=True):
        assert b.device.type == "meta" and a.shape == b.shape and a.dtype == b.dtype
    assert moved.n_steps == forward.n_steps and moved.blocks is not None and forward.blocks is not None
    assert moved.blocks.pairs == forward.blocks.pairs and moved.blocks.n_requests == forward.blocks.n_requests
    assert all(t._base is not None for t in after)  # views of the copied buffers
    assert len({id(t._base) for t in after}) == len({t.dtype for t in before})


def test_inputs_prepared_ahead_in_a_thread_give_the_same_numbers(chemistry) -> None:
    """Bit-identical on the CPU: the loss must not depend on where its inputs were built."""
    trainer = Trainer(_config("cpu"), chemistry=chemistry)
    trajs = trainer.sample(16)
    model, runner = trainer.model, trainer.runner

    def grads(use_prefetched: bool) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        if use_prefetched:
            runner.featurizer.clear()  # the thread featurises from scratch
            with InputPrefetcher(runner, model.start_slot, backward=True) as prefetch:
                forward, backward = prefetch.submit(trajs).result()
            pf = forward_log_probs(runner, model, trajs, forward)
            pb = backward_log_probs(runner, model, trajs, backward)
        else:
            pf = forward_log_probs(runner, model, trajs)
            pb = backward_log_probs(runner, model, trajs)
        (pf.sum() + pb.sum()).backward()
        return pf.detach(), pb.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    inline, ahead = grads(False), grads(True)
    assert torch.equal(inline[0], ahead[0]) and torch.equal(inline[1], ahead[1])
    assert all(torch.equal(g, h) for g, h in zip(inline[2], ahead[2], strict=True))


def test_prepared_inputs_hold_cpu_tensors_only_and_pickle(chemistry) -> None:
    """What a sampler process could build and send: no model, no GPU, picklable."""
    trainer = Trainer(_config("cpu"), chemistry=chemistry)
    trajs = trainer.sample(8)
    forward = prepare_forward(trainer.runner, trajs, trainer.model.start_slot)
    backward = prepare_backward(trainer.runner, trajs)
    assert backward is not None
    for inputs in (forward, backward):
        assert all(t.device.type == "cpu" for t in input_tensors(inputs))
    again = pickle.loads(pickle.dumps(forward))
    assert torch.equal(
        forward_log_probs(trainer.runner, trainer.model, trajs, again),
        forward_log_probs(trainer.runner, trainer.model, trajs),
    )


def test_graphs_packed_in_one_process_preload_another_without_rdkit() -> None:
    smiles = ["CCO", "c1ccccc1N", "CC(=O)NCc1ccccc1", "[NH3+]CC(=O)[O-]", "CCO"]
    sender = MolFeaturizer()
    pack = pickle.loads(pickle.dumps(sender.pack(smiles)))
    assert len(pack) == 4  # each molecule once
    learner = MolFeaturizer()
    assert learner.preload(pack) == 4 and learner.preload(pack) == 0
    got, expected = learner.collate(smiles), MolFeaturizer().collate(smiles)
    assert learner.featurised == 0  # every graph came from the pack
    for name in ("x", "edge_index", "edge_attr", "batch"):
        a, b = getattr(got, name), getattr(expected, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name


def test_a_learner_fed_graph_packs_featurises_nothing_and_gets_the_same_loss(chemistry) -> None:
    """Sampler processes can featurise for the learner: it preloads their packs, RDKit never runs."""
    trainer = Trainer(_config("cpu"), chemistry=chemistry)
    trajs = trainer.sample(16)
    runner, model = trainer.runner, trainer.model
    expected = (forward_log_probs(runner, model, trajs), backward_log_probs(runner, model, trajs))
    pack = pickle.loads(pickle.dumps(MolFeaturizer().pack(learner_molecules(trajs, learned_backward=True))))
    runner.featurizer = MolFeaturizer()  # a learner that has seen none of these molecules
    runner.featurizer.preload(pack)
    got = (forward_log_probs(runner, model, trajs), backward_log_probs(runner, model, trajs))
    assert runner.featurizer.featurised == 0
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


# -- on a GPU ----------------------------------------------------------------------------------------
@needs_cuda
def test_auto_trains_on_the_gpu_with_the_learners_batch_there(chemistry) -> None:
    trainer = Trainer(_config("auto"), chemistry=chemistry)
    assert trainer.device.type == "cuda" and trainer.runner.device.type == "cuda"
    assert all(p.is_cuda for p in trainer.model.parameters())
    assert all(b.is_cuda for b in trainer.model.buffers())
    trajs = trainer.sample(16)
    assert any(t.valid for t in trajs)
    inputs = trainer.runner.to_device(prepare_forward(trainer.runner, trajs, trainer.model.start_slot))
    assert all(t.is_cuda for t in input_tensors(inputs))
    loss, _ = trainer.loss(trajs)
    assert loss.is_cuda and bool(torch.isfinite(loss))
    for _ in range(3):
        info = trainer.train_step()
        assert all(math.isfinite(v) for k, v in info.items() if k in ("loss", "log_z", "delta_abs"))
    states = list(trainer.optimizer.state.values())
    assert states and all(s["exp_avg"].is_cuda and s["exp_avg_sq"].is_cuda for s in states)
    assert trainer.trajectories_trained > 0


@needs_cuda
def test_the_learners_forward_pass_never_waits_for_the_gpu(chemistry) -> None:
    """Inputs built ahead reach the GPU in non-blocking copies, and nothing in the forward pass
    synchronises (no ``.item()``, no pageable copy): the CPU queues the whole pass at once."""
    trainer = Trainer(_config("auto"), chemistry=chemistry)
    trajs = trainer.sample(16)
    runner, model = trainer.runner, trainer.model
    forward = prepare_forward(runner, trajs, model.start_slot)
    backward = prepare_backward(runner, trajs)
    forward_log_probs(runner, model, trajs, forward)  # warm-up: kernels loaded, pinned blocks cached
    backward_log_probs(runner, model, trajs, backward)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            log_pf = forward_log_probs(runner, model, trajs, forward)
            log_pb = backward_log_probs(runner, model, trajs, backward)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert not syncs, syncs
    assert log_pf.is_cuda and log_pb.is_cuda and bool(torch.isfinite(log_pf).all())


@needs_cuda
def test_cpu_and_cuda_agree_on_the_loss_and_gradient_of_a_batch(chemistry) -> None:
    cpu = Trainer(_config("cpu"), chemistry=chemistry)
    gpu = Trainer(_config("auto"), chemistry=chemistry)
    for p, q in zip(cpu.model.parameters(), gpu.model.parameters(), strict=True):
        assert torch.equal(p, q.cpu())  # the same seed, the same initial weights
    trajs = cpu.sample(16)
    results = []
    for trainer in (cpu, gpu):
        trainer.model.train()
        trainer.model.zero_grad()
        loss, info = trainer.loss(trajs)
        loss.backward()
        grad = torch.cat([p.grad.flatten().cpu() for p in trainer.model.parameters() if p.grad is not None])
        log_pf = forward_log_probs(trainer.runner, trainer.model, trajs).detach().cpu()
        results.append((float(loss.detach()), info, grad, log_pf))
    (loss_c, info_c, grad_c, pf_c), (loss_g, info_g, grad_g, pf_g) = results
    assert loss_g == pytest.approx(loss_c, rel=1e-4, abs=1e-4)
    assert info_g["backward_loss"] == pytest.approx(info_c["backward_loss"], rel=1e-4, abs=1e-4)
    assert torch.allclose(pf_g, pf_c, rtol=1e-4, atol=1e-3)
    cosine = float(torch.nn.functional.cosine_similarity(grad_c, grad_g, dim=0))
    assert cosine > 0.9999 and float(grad_g.norm()) == pytest.approx(float(grad_c.norm()), rel=1e-3)


@needs_cuda
def test_checkpoints_move_between_cuda_and_cpu(chemistry, tmp_path: Path) -> None:
    gpu = Trainer(_config("auto"), chemistry=chemistry)
    gpu.run(steps=2)
    gpu.save_checkpoint(tmp_path / "gpu.pt")
    weights = {k: v.detach().cpu() for k, v in gpu.model.state_dict().items()}

    on_cpu = Trainer(_config("cpu"), chemistry=chemistry)
    on_cpu.load_checkpoint(tmp_path / "gpu.pt")
    assert on_cpu.step == 2
    loaded = on_cpu.model.state_dict()
    assert all(v.device.type == "cpu" and torch.equal(v, weights[k]) for k, v in loaded.items())
    assert all(
        t.device.type == "cpu"
        for s in on_cpu.optimizer.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )
    info = on_cpu.train_step()  # and it trains on
    assert math.isfinite(info["loss"])
    on_cpu.save_checkpoint(tmp_path / "cpu.pt")

    back = Trainer(_config("auto"), chemistry=chemistry)
    back.load_checkpoint(tmp_path / "cpu.pt")
    assert back.step == 3
    assert all(v.is_cuda for v in back.model.state_dict().values())
    cpu_weights = on_cpu.model.state_dict()
    assert all(torch.equal(v.cpu(), cpu_weights[k]) for k, v in back.model.state_dict().items())
    assert all(
        t.is_cuda
        for s in back.optimizer.state.values()
        for k, t in s.items()
        if isinstance(t, torch.Tensor) and k != "step"
    )
    assert math.isfinite(back.train_step()["loss"])


@needs_cuda
def test_sampling_with_the_model_on_the_gpu(chemistry) -> None:
    trainer = Trainer(_config("auto", backward_policy="uniform"), chemistry=chemistry)
    trajs = trainer.sample(32)
    assert len(trajs) == 32 and sum(t.valid for t in trajs) > 0
    for t in trajs:  # every recorded choice is legal
        for step in t.steps:
            if step.candidates is not None:
                assert step.action.block in step.candidates
    drawn = trainer.sample(8, exact_blocks=True)
    assert len(drawn) == 8
    log_pf = forward_log_probs(trainer.runner, trainer.model, trajs)
    assert log_pf.is_cuda and bool((log_pf <= 1e-4).all())
