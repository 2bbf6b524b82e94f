"""Generator files (synflow.bundle): a trained policy exported as one safetensors file and imported
elsewhere samples exactly as the original; other chemistry and hostile files are refused."""

from __future__ import annotations

import json
import pickle
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from reactions.index import build_compatibility_index
from reactions.library import library_from_smiles
from reactions.templates import parse_template_lines
from synflow.bundle import (
    FORMAT,
    MAX_HEADER_BYTES,
    ChemistryMismatch,
    GeneratorFileError,
    export_generator,
    generator_checkpoint,
    import_generator,
    read_generator,
)
from synflow.checkpoint import write_checkpoint
from synflow.chemistry import SynthesisChemistry
from synflow.config import SamplingConfig
from synflow.objective import forward_log_probs
from synflow.trainer import Trainer
from tests.synflow.tiny_setting import BLOCKS, TEMPLATES, tiny_chemistry, tiny_config


@pytest.fixture(scope="module")
def chemistry() -> SynthesisChemistry:
    return tiny_chemistry()


@pytest.fixture(scope="module")
def trained(chemistry: SynthesisChemistry) -> Trainer:
    config = tiny_config(training={"steps": 4, "batch_size": 8, "ema": 0.5, "seed": 3})
    trainer = Trainer(config, chemistry=chemistry)
    trainer.run()
    return trainer


@pytest.fixture
def exported(trained: Trainer, chemistry: SynthesisChemistry, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    export_generator(trained.state_dict(), chemistry, path, library_name="tiny")
    return path


def _reseed(trainer: Trainer, seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    trainer.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state


def _chemistry(blocks: list[str], templates: list[str]) -> SynthesisChemistry:
    library = library_from_smiles(blocks, ids=[f"TINY{i:02d}" for i in range(len(blocks))], workers=1)
    template_set = parse_template_lines(templates)
    index = build_compatibility_index(library, template_set, workers=1)
    return SynthesisChemistry(library, template_set, index, max_reactions=2, min_reactions=1)


def test_an_imported_generator_samples_exactly_as_the_trained_one(
    trained: Trainer, chemistry: SynthesisChemistry, exported: Path, tmp_path: Path
) -> None:
    generator, policy = import_generator(exported, tiny_chemistry())  # a second, freshly built chemistry
    original = trained.sampling_model.state_dict()  # the EMA copy: what samples
    assert set(generator.weights) == set(original)
    assert all(torch.equal(generator.weights[k], original[k]) for k in original)
    assert generator.step == 4 and generator.library["size"] == len(BLOCKS)
    assert generator.templates["count"] == len(TEMPLATES) and generator.info["library"]["name"] == "tiny"
    assert "no optimiser" in generator.info["weights"]
    # the trainer the service builds for a sampling job: Trainer.from_checkpoint on the weights-only state
    state_path = tmp_path / "imported" / "last.pt"
    write_checkpoint(generator_checkpoint(generator, generator.config), state_path, generator.step)
    imported = Trainer.from_checkpoint(state_path, chemistry=chemistry)
    assert imported.step == 4
    _reseed(trained, 11)  # torch's RNG is global: reseed right before each draw
    ours = trained.sample(24, exact_blocks=True)
    _reseed(imported, 11)
    theirs = imported.sample(24, exact_blocks=True)
    assert [t.smiles for t in ours] == [t.smiles for t in theirs]
    assert any(t.smiles for t in ours)
    valid = [t for t in ours if t.valid]
    assert torch.equal(
        forward_log_probs(trained.runner, trained.sampling_model, valid),
        forward_log_probs(imported.runner, imported.sampling_model, valid),
    )
    drawn = imported.draw(SamplingConfig(count=5))
    assert drawn.reason == "completed"
    assert all(torch.equal(policy.state_dict()[k], original[k]) for k in original)


def test_a_library_with_one_block_changed_is_refused_naming_the_block(exported: Path) -> None:
    blocks = list(BLOCKS)
    blocks[3] = "C1CCNCCC1"  # azepane for piperidine
    with pytest.raises(ChemistryMismatch, match=r"position 3: here 'C1CCCNCC1' \(id 'TINY03'\)") as caught:
        import_generator(exported, _chemistry(blocks, TEMPLATES))
    assert caught.value.field == "library" and f"{len(BLOCKS)} building blocks" in str(caught.value)
    with pytest.raises(ChemistryMismatch, match=rf"the sizes differ \({len(BLOCKS) - 1} vs {len(BLOCKS)}\)"):
        import_generator(exported, _chemistry(BLOCKS[:-1], TEMPLATES))


def test_changed_templates_are_refused_naming_the_first_difference(exported: Path) -> None:
    templates = [TEMPLATES[0], TEMPLATES[2], TEMPLATES[1]]
    with pytest.raises(
        ChemistryMismatch, match=r"templates: .*position 1: here 'boc_deprotection'"
    ) as caught:
        import_generator(exported, _chemistry(BLOCKS, templates))
    assert caught.value.field == "templates" and "in the generator 'esterification'" in str(caught.value)
    with pytest.raises(ChemistryMismatch, match=r"3 templates .*here: 2 templates"):
        import_generator(exported, _chemistry(BLOCKS, TEMPLATES[:2]))


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, ("/tmp/synflow-bundle-pwned",))


def test_a_pickle_renamed_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = Path("/tmp/synflow-bundle-pwned")
    marker.unlink(missing_ok=True)
    for name, payload in [
        ("pickle.safetensors", pickle.dumps({"model": _Boom()})),
        ("torch.safetensors", None),
    ]:
        path = tmp_path / name
        if payload is None:
            torch.save({"model": _Boom()}, path)  # a torch checkpoint (a zip holding a pickle)
        else:
            path.write_bytes(payload)
        with pytest.raises(GeneratorFileError, match=r"header|safetensors"):
            read_generator(path)
    assert not marker.exists()


def test_truncated_and_malformed_files_are_refused(exported: Path, tmp_path: Path) -> None:
    data = exported.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(GeneratorFileError, match="not a readable safetensors file"):
        read_generator(cut)
    (tmp_path / "head.safetensors").write_bytes(data[:100])
    with pytest.raises(GeneratorFileError, match="truncated: its header needs"):
        read_generator(tmp_path / "head.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(GeneratorFileError, match="3 bytes"):
        read_generator(tmp_path / "tiny.safetensors")
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
    with pytest.raises(GeneratorFileError, match="not a safetensors file: its first 8 bytes give a header"):
        read_generator(huge)


def _rewrite(
    source: Path, target: Path, metadata: dict[str, str] | None = None, **tensors: torch.Tensor
) -> Path:
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
        data = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    meta.update(metadata or {})
    data.update(tensors)
    save_file(data, str(target), metadata=meta)
    return target


def test_hostile_metadata_and_tensors_are_refused(exported: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.safetensors"
    cases = [
        ({"format": "something-else"}, {}, "not a synflow generator"),
        ({"format_version": "2"}, {}, "format 2 by a newer synflow"),
        ({"generator": "{not json"}, {}, "not valid JSON"),
        ({"generator": json.dumps({"run": {}})}, {}, "run.name: missing"),
    ]
    meta = read_generator(exported).info
    bad_config = {**meta, "config": {**meta["config"], "training": {"steps": -1}}}
    cases.append(
        ({"generator": json.dumps(bad_config)}, {}, r"RunConfig does not validate here: training\.steps")
    )
    name = next(iter(read_generator(exported).weights))
    nan = read_generator(exported).weights[name].clone()
    nan.view(-1)[0] = float("nan")
    cases.append(({}, {f"policy.{name}": nan}, "holds NaN"))
    cases.append(({}, {"policy.extra": torch.zeros(3)}, "unexpected tensors extra"))
    cases.append(({}, {f"policy.{name}": torch.zeros(2, 2)}, rf"wrong shapes: {name} \(2, 2\)"))
    cases.append(({}, {"library.block_hashes": torch.zeros(2, dtype=torch.int64)}, "has 2 entries"))
    for metadata, tensors, message in cases:
        _rewrite(exported, out, metadata, **tensors)
        with pytest.raises(GeneratorFileError, match=message):
            import_generator(out, tiny_chemistry())
    with pytest.raises(GeneratorFileError, match="not a synflow generator"):
        save_file({"x": torch.zeros(1)}, str(out))
        read_generator(out)
    assert FORMAT == "synflow-generator"
