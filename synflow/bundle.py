"""Generator files: a trained policy shared between installations as one safetensors file.

A generator file holds what sampling needs and nothing that can run code: the sampling policy's
weights as tensors, and JSON in the safetensors header (``__metadata__``, strings only) — the format
name and version, the synflow, RDKit and torch versions, the resolved ``RunConfig``, the network's
hyperparameters and fingerprints of the chemistry it was trained on (SHA-256 of the building-block
library's content — canonical SMILES and IDs in order, with the standardisation settings — and of
the template set, their sizes, the templates themselves, and one 64-bit hash per block as a tensor
so that a mismatch can name the first differing block). Reading uses ``safetensors`` only, never
pickle: an imported file cannot execute anything.

The data files the reward reads — a docking component's receptor, an assay model's ``.npz``, a
purchasable component's catalogue file — travel inside it too: each file's bytes as one uint8 tensor
(``reward_file.<i>.<field>``, ``i`` the component's index), with its name, size and SHA-256 in the
metadata, at most ``MAX_REWARD_FILE_BYTES`` in all. They are data only (a receptor is read by Vina, a
model by ``numpy`` without pickle, a catalogue as molecules); reward code (``python``, ``command``) is
never embedded. ``write_reward_files`` writes them on the importing installation, each checked
against its SHA-256 when the file is read, and re-points the config at them. A file that embeds
reward files is format 2 (a reader of format 1 could not honour them and says so); one without is
written as format 1, byte for byte what earlier versions wrote.

The optimiser, replay buffer, metrics and RNG states are left out: a generator samples, it does not
resume training. ``generator_checkpoint`` turns a checked file into the weights-only trainer state
that ``Trainer.from_checkpoint`` (``load_state``) reads for sampling.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rdkit
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import synflow
from models.policy import SynthesisPolicy
from reactions.library import BuildingBlockLibrary
from reactions.templates import ReactionTemplate, TemplateSet
from synflow.assembly import build_policy
from synflow.chemistry import SynthesisChemistry
from synflow.config import ConfigError, RunConfig, parse_run_config
from synflow.rewards.components import (
    AssayModelComponent,
    ComponentBase,
    DockingComponent,
    PurchasableComponent,
)
from synflow.rewards.poses import write_atomic
from synflow.schedules import beta_range

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_HEADER_BYTES",
    "MAX_REWARD_FILE_BYTES",
    "ChemistryMismatch",
    "GeneratorFile",
    "GeneratorFileError",
    "RewardFile",
    "RewardFileError",
    "block_hashes",
    "check_chemistry",
    "export_generator",
    "generator_checkpoint",
    "import_generator",
    "load_policy",
    "portable_config",
    "read_generator",
    "reward_file_fields",
    "templates_hash",
    "write_reward_files",
]

FORMAT = "synflow-generator"
FORMAT_VERSION = 2  # the newest this installation writes and reads
MIN_FORMAT_VERSION = 1  # format 1: no embedded reward files (still written when there are none)
SUFFIX = ".safetensors"
# The header is JSON the reader must parse whole; a policy's tensor table and the metadata (config,
# templates) stay far below this, a hostile file announcing gigabytes is refused before reading it.
MAX_HEADER_BYTES = 32 * 1024 * 1024
POLICY_PREFIX = "policy."
BLOCK_HASHES = "library.block_hashes"
REWARD_PREFIX = "reward_file."
# What the reward's data files may add to a generator file, all together: a receptor is a few MB, a
# model or a catalogue some tens; the file must still pass an upload limit.
MAX_REWARD_FILE_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
WEIGHTS_NOTE = (
    "the sampling policy's weights (the EMA copy when training.ema is set); no optimiser, replay buffer "
    "or RNG state: the file samples, it does not resume training"
)


class GeneratorFileError(ValueError):
    """Not a generator file this installation can read: wrong format or version, a malformed or
    truncated file, invalid metadata, or tensors that do not fit the policy the config describes."""


class RewardFileError(ConfigError):
    """A data file the reward reads cannot go into a generator file: unreadable, changed since the
    run was created, or past ``MAX_REWARD_FILE_BYTES``. ``field`` is ``reward.components.<i>.<field>``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([(field, message)])
        self.field = field


class ChemistryMismatch(ValueError):
    """The local building blocks or templates are not the ones the generator was trained on.
    ``field`` is ``library`` or ``templates``; the message says what differs."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


@dataclass(frozen=True)
class RewardFile:
    """A data file of the reward embedded in a generator file (its SHA-256 checked when read)."""

    component: int  # the index in ``reward.components``
    field: str  # the component's field that names the file
    name: str  # the file's name where it was exported
    sha256: str
    data: bytes

    @property
    def where(self) -> str:
        return f"reward.components.{self.component}.{self.field}"


@dataclass(frozen=True)
class GeneratorFile:
    """A read and format-checked generator file (its chemistry and weights not yet checked)."""

    path: Path
    info: dict[str, Any]  # the header's JSON
    config: RunConfig
    weights: dict[str, torch.Tensor]  # the policy's state_dict
    hashes: np.ndarray  # one int64 per building block, in library order
    reward_files: tuple[RewardFile, ...] = ()

    @property
    def step(self) -> int:
        return int(self.info["run"]["step"])

    @property
    def name(self) -> str:
        return str(self.info["run"]["name"])

    @property
    def library(self) -> dict[str, Any]:
        return dict(self.info["library"])

    @property
    def templates(self) -> dict[str, Any]:
        return dict(self.info["templates"])


# -- fingerprints ---------------------------------------------------------------------------------
def block_hashes(library: BuildingBlockLibrary) -> np.ndarray:
    """One int64 per block: the first 8 bytes of SHA-256 over ``"SMILES\\tID"``, in library order."""
    out = np.empty(len(library), dtype=np.int64)
    for i, (smiles, block_id) in enumerate(zip(library.smiles, library.ids, strict=True)):
        digest = hashlib.sha256(f"{smiles}\t{block_id}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "little", signed=True)
    return out


def _library_info(library: BuildingBlockLibrary, name: str | None) -> dict[str, Any]:
    return {
        "sha256": library.content_hash(),
        "size": len(library),
        "name": name,
        "source": Path(library.source).name,
        "standardisation": library.settings.as_dict(),
        "fingerprints": dict(library.fingerprint_settings.__dict__),
    }


def templates_hash(templates: Sequence[ReactionTemplate]) -> str:
    """``TemplateSet.content_hash`` of any sequence of templates (a chemistry keeps a list)."""
    return (templates if isinstance(templates, TemplateSet) else TemplateSet(templates)).content_hash()


def _templates_info(templates: Sequence[ReactionTemplate], name: str | None) -> dict[str, Any]:
    return {
        "sha256": templates_hash(templates),
        "count": len(templates),
        "name": name,
        "items": [[t.name, t.smarts] for t in templates],
    }


def _hyperparameters(policy: SynthesisPolicy, config: RunConfig, chem: SynthesisChemistry) -> dict[str, Any]:
    return {
        "n_templates": policy.n_templates,
        "max_depth": policy.max_depth,
        "fp_dim": chem.library.n_bits,
        "desc_dim": len(chem.library.descriptor_names),
        "beta_range": list(beta_range(config.conditioning, config.reward.beta)),
        "hidden": config.model.hidden,
        "layers": config.model.layers,
        "conv": config.model.conv,
        "block_hidden": config.model.block_hidden,
        "thermometer_bins": config.conditioning.thermometer_bins,
        "parameters": sum(p.numel() for p in policy.parameters()),
    }


def portable_config(config: RunConfig) -> RunConfig:
    """``config`` without what belongs to the installation that trained it: the cache folder (its
    path), the Ray cluster its server supplied, the device (``auto`` picks what the importer has) and
    the folder docking components kept their poses in. (The reward's data files travel embedded,
    see ``write_reward_files``.)"""
    environment = config.environment.model_copy(update={"cache_dir": None})
    training = config.training.model_copy(update={"ray_address": None, "device": "auto"})
    components = [
        c.model_copy(update={"pose_dir": None}) if isinstance(c, DockingComponent) else c
        for c in config.reward.components
    ]
    reward = config.reward.model_copy(update={"components": components})
    return config.model_copy(update={"environment": environment, "training": training, "reward": reward})


# -- the reward's data files ----------------------------------------------------------------------
def reward_file_fields(config: RunConfig) -> list[tuple[int, str, str]]:
    """``(index, field, path)`` of every data file the reward reads: a docking receptor, an assay
    model's file, a purchasable component's catalogue file (not the bundled filter)."""
    found = []
    for i, component in enumerate(config.reward.components):
        if isinstance(component, DockingComponent):
            found.append((i, "receptor", component.receptor))
        elif isinstance(component, AssayModelComponent):
            found.append((i, "model", component.model))
        elif isinstance(component, PurchasableComponent) and not component.is_bundled():
            found.append((i, "source", component.source))
    return found


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB ({size} bytes)"


def _embed_reward_files(config: RunConfig) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The metadata entries and tensors of the reward's data files; ``RewardFileError`` naming the
    field when one cannot be read, has changed since the run (an assay model's ``sha256``) or takes
    the total past ``MAX_REWARD_FILE_BYTES``."""
    entries: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    total = 0
    for index, field, value in reward_file_fields(config):
        where, path = f"reward.components.{index}.{field}", Path(value)
        try:
            size = path.stat().st_size
            total += size
            if total > MAX_REWARD_FILE_BYTES:
                raise RewardFileError(
                    where,
                    f"{path.name} is {_mib(size)}; a generator file embeds at most "
                    f"{_mib(MAX_REWARD_FILE_BYTES)} of reward files in all ({_mib(total)} with this one)",
                )
            data = path.read_bytes()
        except OSError as error:
            raise RewardFileError(where, f"{value!r} cannot be read: {error.strerror or error}") from None
        digest = hashlib.sha256(data).hexdigest()
        pinned = getattr(config.reward.components[index], "sha256", None)
        if pinned is not None and pinned != digest:
            raise RewardFileError(where, f"{value!r} has changed since the run was created (sha256)")
        entries.append(
            {"component": index, "field": field, "name": path.name, "sha256": digest, "size": len(data)}
        )
        tensors[f"{REWARD_PREFIX}{index}.{field}"] = torch.from_numpy(
            np.frombuffer(data, dtype=np.uint8).copy()
        )
    return entries, tensors


def _read_reward_files(
    info: dict[str, Any], tensors: dict[str, torch.Tensor], config: RunConfig
) -> tuple[RewardFile, ...]:
    """The embedded reward files the metadata lists, popped from ``tensors``: each must belong to a
    component with such a file field, hold as many bytes as listed and have the listed SHA-256."""
    listed = info.get("reward_files", [])
    if not isinstance(listed, list):
        raise GeneratorFileError("its metadata is incomplete: reward_files: not a list")
    expected = {(i, field) for i, field, _ in reward_file_fields(config)}
    files, total = [], 0
    for entry in listed:
        if not (
            isinstance(entry, dict)
            and all(
                isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                for k in ("component", "size")
            )
            and all(isinstance(entry.get(k), str) for k in ("field", "name", "sha256"))
            and _SHA256.match(entry["sha256"])
        ):
            raise GeneratorFileError(
                "its metadata is incomplete: reward_files: not one {component, field, name, sha256, "
                "size} per file"
            )
        where = f"reward.components.{entry['component']}.{entry['field']}"
        if (entry["component"], entry["field"]) not in expected:
            raise GeneratorFileError(f"embedded reward file {where}: its config has no such file field")
        tensor = tensors.pop(f"{REWARD_PREFIX}{entry['component']}.{entry['field']}", None)
        if tensor is None or tensor.dtype != torch.uint8 or tensor.dim() != 1:
            raise GeneratorFileError(
                f"embedded reward file {where}: its tensor (uint8 bytes) is missing or malformed"
            )
        total += tensor.numel()
        if tensor.numel() != entry["size"] or total > MAX_REWARD_FILE_BYTES:
            raise GeneratorFileError(
                f"embedded reward file {where} ({entry['name']!r}): {tensor.numel()} bytes, listed as "
                f"{entry['size']} (at most {MAX_REWARD_FILE_BYTES} in all)"
            )
        data = tensor.numpy().tobytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise GeneratorFileError(
                f"embedded reward file {where} ({entry['name']!r}): its SHA-256 is not the one recorded "
                "(a damaged or altered file)"
            )
        files.append(RewardFile(entry["component"], entry["field"], entry["name"], entry["sha256"], data))
    return tuple(files)


def _file_name(name: str, field: str) -> str:
    """A safe file name close to ``name`` (the metadata's, so not trusted): no folders, no dot first."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.replace("\\", "/")).name)[-120:].lstrip(".-")
    return cleaned or field


def write_reward_files(generator: GeneratorFile, config: RunConfig, directory: Path) -> RunConfig:
    """Write the generator's embedded reward files under ``directory`` (``<index>/<name>``, each
    atomically) and return ``config`` re-pointed at them: the field names the written file, an assay
    model's ``sha256`` is the file's (checked again when the reward is built), and a component keeps
    its label (``name``) when the file's name had to change. ``config`` is the generator's config,
    possibly re-pointed at local chemistry already; the files were checked when the file was read."""
    components: list[ComponentBase] = list(config.reward.components)
    root = directory.resolve()
    for file in generator.reward_files:
        component = components[file.component]
        path = root / str(file.component) / _file_name(file.name, file.field)
        write_atomic(path, file.data)
        update: dict[str, Any] = {file.field: str(path)}
        if isinstance(component, AssayModelComponent):
            update["sha256"] = file.sha256
        moved = component.model_copy(update=update)
        if moved.label != component.label:
            moved = moved.model_copy(update={"name": component.label})
        components[file.component] = moved
    reward = config.reward.model_copy(update={"components": components})
    return config.model_copy(update={"reward": reward})


# -- export ---------------------------------------------------------------------------------------
def export_generator(
    checkpoint: Mapping[str, Any],
    chemistry: SynthesisChemistry,
    path: str | Path,
    library_name: str | None = None,
    templates_name: str | None = None,
) -> GeneratorFile:
    """Write the sampling policy of a trainer checkpoint (``Trainer.state_dict()``, as read by
    ``synflow.checkpoint.read_checkpoint``) trained on ``chemistry`` as one generator file, atomically.
    The weights are checked against the policy the config describes before anything is written; the
    reward's data files are embedded (``RewardFileError`` naming the field when one cannot be)."""
    config = portable_config(parse_run_config(checkpoint["config"]))
    policy, _ = build_policy(config, chemistry)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in checkpoint["sampling_model"].items()}
    _load_strict(policy, weights)
    info: dict[str, Any] = {
        "synflow_version": synflow.__version__,
        "rdkit_version": rdkit.__version__,
        "torch_version": torch.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": {"name": config.name, "step": int(checkpoint.get("step", 0))},
        "config": config.model_dump(mode="json"),
        "model": _hyperparameters(policy, config, chemistry),
        "library": _library_info(chemistry.library, library_name),
        "templates": _templates_info(chemistry.templates, templates_name),
        "weights": WEIGHTS_NOTE,
    }
    reward_files, file_tensors = _embed_reward_files(config)
    if reward_files:
        info["reward_files"] = reward_files
    tensors = {POLICY_PREFIX + k: v for k, v in weights.items()}
    tensors[BLOCK_HASHES] = torch.from_numpy(block_hashes(chemistry.library))
    tensors.update(file_tensors)
    version = FORMAT_VERSION if reward_files else MIN_FORMAT_VERSION
    metadata = {"format": FORMAT, "format_version": str(version), "generator": json.dumps(info)}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # two exports may race
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return read_generator(path)


# -- reading and checking -------------------------------------------------------------------------
def read_generator(path: str | Path) -> GeneratorFile:
    """Read a generator file with ``safetensors`` (no pickle) and check its format, version,
    metadata, config and tensors, and every embedded reward file against its SHA-256. Raises
    ``GeneratorFileError`` saying what is wrong."""
    path = Path(path)
    _check_header_size(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise GeneratorFileError(f"not a readable safetensors file: {error}") from None
    info = _check_metadata(metadata)
    try:
        config = parse_run_config(info["config"])
    except ConfigError as error:
        raise GeneratorFileError(f"its RunConfig does not validate here: {error}") from None
    hashes = tensors.pop(BLOCK_HASHES, None)
    if hashes is None or hashes.dtype != torch.int64 or hashes.dim() != 1:
        raise GeneratorFileError(
            f"the tensor {BLOCK_HASHES!r} (int64, one per block) is missing or malformed"
        )
    if hashes.numel() != info["library"]["size"]:
        raise GeneratorFileError(
            f"{BLOCK_HASHES!r} has {hashes.numel()} entries for a library of {info['library']['size']} blocks"
        )
    reward_files = _read_reward_files(info, tensors, config)
    weights = _policy_weights(tensors)
    return GeneratorFile(path, info, config, weights, hashes.numpy(), reward_files)


def _check_header_size(path: Path) -> None:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise GeneratorFileError(f"cannot be read: {error.strerror or error}") from None
    if len(head) < 8:
        raise GeneratorFileError(
            f"not a safetensors file: {size} bytes, shorter than its 8-byte header length"
        )
    (length,) = struct.unpack("<Q", head)
    if length > MAX_HEADER_BYTES:
        raise GeneratorFileError(
            f"not a safetensors file: its first 8 bytes give a header of {length} bytes "
            f"(a generator's is at most {MAX_HEADER_BYTES})"
        )
    if 8 + length > size:
        raise GeneratorFileError(f"truncated: its header needs {8 + length} bytes, the file has {size}")


def _check_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    if metadata.get("format") != FORMAT:
        found = metadata.get("format")
        raise GeneratorFileError(
            f"a safetensors file, but not a synflow generator (format {found!r}, expected {FORMAT!r})"
        )
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise GeneratorFileError(f"format_version {version[:40]!r} is not a number")
    if not MIN_FORMAT_VERSION <= int(version) <= FORMAT_VERSION:
        newer = "a newer" if int(version) > FORMAT_VERSION else "an older"
        raise GeneratorFileError(
            f"written in generator format {version} by {newer} synflow; this installation reads formats "
            f"{MIN_FORMAT_VERSION} to {FORMAT_VERSION}"
        )
    try:
        info = json.loads(metadata.get("generator", ""))
    except json.JSONDecodeError as error:
        raise GeneratorFileError(f"its metadata is not valid JSON: {error}") from None
    problems = _metadata_problems(info)
    if problems:
        raise GeneratorFileError("its metadata is incomplete: " + "; ".join(problems))
    return dict(info)


def _metadata_problems(info: Any) -> list[str]:
    if not isinstance(info, dict):
        return ["the 'generator' entry is not a JSON object"]
    wanted: dict[str, dict[str, type | tuple[type, ...]]] = {
        "run": {"name": str, "step": int},
        "config": {},
        "library": {"sha256": str, "size": int},
        "templates": {"sha256": str, "count": int, "items": list},
    }
    problems = []
    for section, fields in wanted.items():
        value = info.get(section)
        if not isinstance(value, dict):
            problems.append(f"{section}: missing")
            continue
        problems += [
            f"{section}.{key}: missing or not {kind.__name__ if isinstance(kind, type) else kind}"
            for key, kind in fields.items()
            if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool)
        ]
    templates = info.get("templates")
    if isinstance(templates, dict) and isinstance(templates.get("items"), list):
        items = templates["items"]
        if len(items) != templates.get("count") or not all(
            isinstance(i, list) and len(i) == 2 and all(isinstance(s, str) for s in i) for i in items
        ):
            problems.append("templates.items: not one [name, SMARTS] pair per template")
    return problems


def _policy_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    stray = sorted(k for k in tensors if not k.startswith(POLICY_PREFIX))
    if stray:
        raise GeneratorFileError(f"unexpected tensors {', '.join(stray[:5])}")
    weights = {k[len(POLICY_PREFIX) :]: v for k, v in tensors.items()}
    for name, tensor in weights.items():
        if not tensor.is_floating_point():
            raise GeneratorFileError(
                f"tensor {POLICY_PREFIX}{name}: dtype {tensor.dtype}, not floating point"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise GeneratorFileError(f"tensor {POLICY_PREFIX}{name} holds NaN or infinite values")
    return weights


def check_chemistry(
    generator: GeneratorFile,
    library: BuildingBlockLibrary,
    templates: Sequence[ReactionTemplate],
    here: str = "here",
) -> None:
    """Refuse (``ChemistryMismatch``) unless ``library`` and ``templates`` have the fingerprints the
    generator was trained on; the message names the first difference. ``here`` names the local ones."""
    check_library(generator, library, here)
    check_templates(generator, templates, here)


def check_library(generator: GeneratorFile, library: BuildingBlockLibrary, here: str = "here") -> None:
    wanted = generator.library
    if library.content_hash() == wanted["sha256"]:
        return
    trained = (
        f"the generator was trained on {wanted['size']} building blocks (sha256 {wanted['sha256'][:12]}…)"
    )
    ours = f"{here}: {len(library)} blocks (sha256 {library.content_hash()[:12]}…)"
    local = block_hashes(library)
    n = min(len(local), len(generator.hashes))
    differing = np.flatnonzero(local[:n] != generator.hashes[:n])
    if differing.size:
        i = int(differing[0])
        detail = (
            f"first differing block at position {i}: {here} {library.smiles[i]!r} (id {library.ids[i]!r}), "
            "a different block (or ID) in the generator's library"
        )
    elif len(local) != len(generator.hashes):
        detail = f"the first {n} blocks agree; the sizes differ ({len(local)} vs {wanted['size']})"
    else:
        settings = wanted.get("standardisation")
        detail = (
            "the same blocks, standardised or fingerprinted with other settings "
            f"(generator: {json.dumps(settings)}, {here}: {json.dumps(library.settings.as_dict())})"
        )
    raise ChemistryMismatch("library", f"{trained}; {ours}; {detail}")


def check_templates(
    generator: GeneratorFile, templates: Sequence[ReactionTemplate], here: str = "here"
) -> None:
    digest = templates_hash(templates)
    wanted = generator.templates
    if digest == wanted["sha256"]:
        return
    trained = f"the generator was trained on {wanted['count']} templates (sha256 {wanted['sha256'][:12]}…)"
    ours = f"{here}: {len(templates)} templates (sha256 {digest[:12]}…)"
    local = [[t.name, t.smarts] for t in templates]
    theirs = wanted["items"]
    for i, (mine, other) in enumerate(zip(local, theirs, strict=False)):
        if mine != other:
            detail = (
                f"first differing template at position {i}: {here} {mine[0]!r} {mine[1]!r}, "
                f"in the generator {other[0]!r} {other[1]!r}"
            )
            break
    else:
        detail = f"the first {min(len(local), len(theirs))} templates agree; the counts differ"
    raise ChemistryMismatch("templates", f"{trained}; {ours}; {detail}")


def load_policy(generator: GeneratorFile, chemistry: SynthesisChemistry) -> SynthesisPolicy:
    """The policy the generator's config describes over ``chemistry``, with the file's weights loaded
    strictly (every tensor present, none extra, every shape right)."""
    policy, _ = build_policy(generator.config, chemistry)
    _load_strict(policy, generator.weights)
    return policy


def _load_strict(policy: SynthesisPolicy, weights: Mapping[str, torch.Tensor]) -> None:
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = [
        f"{k} {tuple(weights[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    problems = (
        ([f"missing tensors {', '.join(missing[:5])}"] if missing else [])
        + ([f"unexpected tensors {', '.join(extra[:5])}"] if extra else [])
        + ([f"wrong shapes: {'; '.join(wrong[:5])}"] if wrong else [])
    )
    if problems:
        raise GeneratorFileError(
            "its weights do not fit the policy its config describes: " + "; ".join(problems)
        )
    policy.load_state_dict(dict(weights), strict=True)


def import_generator(
    path: str | Path, chemistry: SynthesisChemistry, here: str = "here"
) -> tuple[GeneratorFile, SynthesisPolicy]:
    """Read, check against ``chemistry`` (the library and templates to sample with) and load a
    generator file. Raises ``GeneratorFileError`` or ``ChemistryMismatch``; never runs code."""
    generator = read_generator(path)
    check_chemistry(generator, chemistry.library, chemistry.templates, here)
    return generator, load_policy(generator, chemistry)


def generator_checkpoint(generator: GeneratorFile, config: RunConfig) -> dict[str, Any]:
    """The weights-only trainer state ``Trainer.load_state`` accepts for sampling: ``config`` (the
    generator's, re-pointed at this installation's files) and the weights as model and EMA model."""
    weights = {k: v.clone() for k, v in generator.weights.items()}
    return {
        "config": config.model_dump(mode="json"),
        "step": generator.step,
        "model": weights,
        "sampling_model": {k: v.clone() for k, v in weights.items()},
        "generator": {"library": generator.library["sha256"], "templates": generator.templates["sha256"]},
    }
