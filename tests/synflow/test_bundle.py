"""Generator files (synflow.bundle): a trained policy exported as one safetensors file and imported
elsewhere samples exactly as the original; other chemistry and hostile files are refused."""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rdkit import Chem
from safetensors.torch import save_file

from reactions.index import build_compatibility_index
from reactions.library import library_from_smiles
from reactions.templates import parse_template_lines
from synflow.bundle import (
    FORMAT,
    MAX_HEADER_BYTES,
    MAX_REWARD_FILE_BYTES,
    ChemistryMismatch,
    GeneratorFileError,
    RewardFileError,
    export_generator,
    generator_checkpoint,
    import_generator,
    read_generator,
    write_reward_files,
)
from synflow.checkpoint import write_checkpoint
from synflow.chemistry import SynthesisChemistry
from synflow.config import SamplingConfig
from synflow.objective import forward_log_probs
from synflow.rewards.assay import load_assay_model
from synflow.rewards.components import AssayModelComponent
from synflow.rewards.config import RewardConfig
from synflow.rewards.reward import build_reward
from synflow.trainer import Trainer
from tests.synflow.rewards.assay_data import save_logp_model, zinc_smiles
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
        ({"format_version": "3"}, {}, "format 3 by a newer synflow; this installation reads formats 1 to 2"),
        ({"format_version": "0"}, {}, "format 0 by an older synflow"),
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


# -- the reward's data files travel inside the generator file -------------------------------------
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tiny assay model (a GP on the logP of 30 ZINC molecules), as the bytes of its .npz file."""
    path = tmp_path_factory.mktemp("model") / "logp.npz"
    save_logp_model(path, 30)
    return path.read_bytes()


def _state_with_reward(trained: Trainer, components: list[dict[str, Any]]) -> dict[str, Any]:
    """The trained checkpoint with another reward (the weights do not depend on it)."""
    state = dict(trained.state_dict())
    state["config"] = {**state["config"], "reward": {**state["config"]["reward"], "components": components}}
    return state


def _reward_components(source: Path, model_bytes: bytes) -> list[dict[str, Any]]:
    source.mkdir()
    (source / "log p.npz").write_bytes(model_bytes)  # a name that is not a safe file name as it is
    (source / "receptor.pdbqt").write_text("REMARK not a real receptor\nATOM      1  C   ALA A   1\n")
    (source / "stock.smi").write_text("CCO\nc1ccccc1\n")
    return [
        {
            "type": "assay_model",
            "model": str(source / "log p.npz"),
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
        },
        {
            "type": "docking",
            "receptor": str(source / "receptor.pdbqt"),
            "center": [1.0, 2.0, 3.0],
            "pose_dir": str(source / "poses"),
        },
        {"type": "purchasable", "source": str(source / "stock.smi"), "weight": 0.5},
        {"type": "purchasable", "name": "zinc", "weight": 0.5},  # the bundled filter: nothing to embed
    ]


def test_reward_files_travel_inside_the_file_and_are_written_where_it_is_imported(
    trained: Trainer, chemistry: SynthesisChemistry, model_bytes: bytes, tmp_path: Path
) -> None:
    source = tmp_path / "exporter"
    components = _reward_components(source, model_bytes)
    originals = {name: (source / name).read_bytes() for name in ("log p.npz", "receptor.pdbqt", "stock.smi")}
    smiles = zinc_smiles(36)[30:]  # molecules the model was not fitted on
    expected = load_assay_model(source / "log p.npz").score([Chem.MolFromSmiles(s) for s in smiles])
    path = tmp_path / "g.safetensors"
    export_generator(_state_with_reward(trained, components), chemistry, path)
    shutil.rmtree(source)  # another installation: the exporter's files are not there

    generator = read_generator(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["format_version"] == "2"
    assert [(f.where, f.name) for f in generator.reward_files] == [
        ("reward.components.0.model", "log p.npz"),
        ("reward.components.1.receptor", "receptor.pdbqt"),
        ("reward.components.2.source", "stock.smi"),
    ]
    assert generator.config.model_dump()["reward"]["components"][1]["pose_dir"] is None  # the exporter's
    target = tmp_path / "importer"
    config = write_reward_files(generator, generator.config, target)
    model = config.reward.components[0]
    assert isinstance(model, AssayModelComponent)
    fields = [c["model"] for c in [config.model_dump()["reward"]["components"][0]]]
    fields += [c.get("receptor") or c.get("source") for c in config.model_dump()["reward"]["components"][1:]]
    root = target.resolve()
    assert fields == [
        str(root / "0" / "log-p.npz"),  # a safe name on disk
        str(root / "1" / "receptor.pdbqt"),
        str(root / "2" / "stock.smi"),
        "zinc-instock-mini",
    ]
    for file, name in zip(fields, ["log p.npz", "receptor.pdbqt", "stock.smi"], strict=False):
        assert hashlib.sha256(Path(file).read_bytes()).digest() == hashlib.sha256(originals[name]).digest()
    assert model.sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert model.label == "log p"  # the score keeps its name though the file's name changed
    assert not list(target.rglob("*.part"))
    with build_reward(RewardConfig(components=[model])) as reward:
        batch = reward.score(smiles)
    np.testing.assert_allclose(batch.scores["log p"], expected)


def test_an_altered_or_truncated_embedded_file_is_refused(
    trained: Trainer, chemistry: SynthesisChemistry, model_bytes: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "g.safetensors"
    export_generator(
        _state_with_reward(trained, _reward_components(tmp_path / "src", model_bytes)), chemistry, path
    )
    stored = read_generator(path).reward_files[0].data
    flipped = bytearray(stored)
    flipped[len(flipped) // 2] ^= 0xFF
    out = tmp_path / "bad.safetensors"
    key = "reward_file.0.model"
    for data, message in [
        (
            bytes(flipped),
            r"reward\.components\.0\.model \('log p\.npz'\): its SHA-256 is not the one recorded",
        ),
        (stored[:-10], rf"reward\.components\.0\.model .*{len(stored) - 10} bytes, listed as {len(stored)}"),
    ]:
        _rewrite(path, out, None, **{key: torch.frombuffer(bytearray(data), dtype=torch.uint8)})
        with pytest.raises(GeneratorFileError, match=message):
            read_generator(out)
    _rewrite(path, out, None, **{key: torch.zeros(3)})
    with pytest.raises(GeneratorFileError, match=r"tensor \(uint8 bytes\) is missing or malformed"):
        read_generator(out)


def test_reward_files_past_the_cap_or_changed_are_refused_at_export_naming_the_field(
    trained: Trainer, chemistry: SynthesisChemistry, model_bytes: bytes, tmp_path: Path
) -> None:
    components = _reward_components(tmp_path / "src", model_bytes)
    receptor = tmp_path / "src" / "receptor.pdbqt"
    with receptor.open("r+b") as handle:
        handle.truncate(MAX_REWARD_FILE_BYTES)  # sparse: with the model, past the cap in all
    path = tmp_path / "g.safetensors"
    with pytest.raises(RewardFileError, match=rf"is 64\.0 MiB \({MAX_REWARD_FILE_BYTES} bytes\)") as caught:
        export_generator(_state_with_reward(trained, components), chemistry, path)
    assert caught.value.field == "reward.components.1.receptor"
    assert str(caught.value).startswith("reward.components.1.receptor: receptor.pdbqt is 64.0 MiB")
    receptor.write_text("REMARK\n")
    (tmp_path / "src" / "log p.npz").write_bytes(model_bytes + b"\0")
    with pytest.raises(RewardFileError, match="has changed since the run was created") as caught:
        export_generator(_state_with_reward(trained, components), chemistry, path)
    assert caught.value.field == "reward.components.0.model"
    receptor.unlink()
    with pytest.raises(RewardFileError, match="cannot be read") as caught:
        export_generator(_state_with_reward(trained, components[1:]), chemistry, path)
    assert caught.value.field == "reward.components.0.receptor"
    assert not path.exists()


def test_a_file_without_reward_files_is_format_1_as_before(exported: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(exported), framework="pt") as handle:
        assert handle.metadata()["format_version"] == "1"
    generator = read_generator(exported)
    assert generator.reward_files == () and "reward_files" not in generator.info
    assert write_reward_files(generator, generator.config, Path("/nonexistent")) == generator.config
