"""Generator files at the service's edge (the file format is ``synflow.bundle``).

Export: a finished training run's final checkpoint becomes one safetensors file, written once next
to the checkpoint and served again while the checkpoint is unchanged.

Import: a file becomes a new training run, ``succeeded``, whose checkpoint the existing sampling
path (``POST /runs/{id}/sample`` → ``Trainer.from_checkpoint``) loads. Its reward code must pass
today's allowlist; its library and templates must be ones this installation has — the bundled
defaults or an uploaded entry of the ``libraries`` table with the same fingerprint — and its config
is re-pointed at them. The reward's data files it embeds (receptor, assay model, catalogue; each
checked against its SHA-256 when the file is read) are written to ``DATA_DIR/generators/<run id>/``
and the config is re-pointed at them too. Nothing is stored unless every check passes. Importing is
split so the API can do the CPU work off the event loop: ``import_candidates`` (database) →
``prepare_import`` (files, RDKit, torch; no database) → ``store_import`` (database, checkpoint and
reward files).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.models import Library, Run, utcnow
from app.core.settings import Settings
from app.runs.configs import check_code_allowed, check_paths, check_storable
from app.runs.lifecycle import RunStatus
from app.runs.poses import pose_root
from reactions.library import BuildingBlockLibrary, default_library, load_building_blocks
from reactions.templates import TemplateSet, default_template_set, load_template_set
from synflow.assembly import load_chemistry
from synflow.bundle import (
    ChemistryMismatch,
    GeneratorFile,
    RewardFileError,
    check_library,
    check_templates,
    export_generator,
    generator_checkpoint,
    load_policy,
    portable_config,
    read_generator,
    write_reward_files,
)
from synflow.checkpoint import CHECKPOINT_NAME, read_checkpoint, write_checkpoint
from synflow.config import ConfigError, RunConfig, parse_run_config

__all__ = [
    "GENERATOR_NAME",
    "Candidate",
    "GeneratorUnavailable",
    "PreparedImport",
    "export_run_generator",
    "import_candidates",
    "import_generator_file",
    "prepare_import",
    "store_import",
]

GENERATOR_NAME = "generator.safetensors"  # beside a run's last.pt
DEFAULT = "default"  # the bundled library and template set, as the ``libraries`` table names them
BUILDING_BLOCKS, TEMPLATES = "building_blocks", "templates"  # ``libraries.kind`` values
IMPORTED = "imported from a generator file"  # the imported run's stop_reason: where it came from


class GeneratorUnavailable(LookupError):
    """The run has no final checkpoint to export (HTTP 409)."""


@dataclass(frozen=True)
class Candidate:
    """A library or template set of this installation: ``path`` None is the bundled default."""

    name: str
    path: Path | None
    size: int | None  # None: not known without loading it


@dataclass(frozen=True)
class PreparedImport:
    generator: GeneratorFile
    config: RunConfig  # stored on the run: paths re-pointed at this installation's files
    library: str  # the names of the matching library and template set here
    templates: str


# -- export ---------------------------------------------------------------------------------------
def export_run_generator(session: Session, settings: Settings, run: Run) -> Path:
    """The generator file of a succeeded training run (written on first request). Raises
    ``GeneratorUnavailable``, or ``RewardFileError`` when a reward file cannot be embedded."""
    checkpoint = settings.checkpoint_root() / run.id / CHECKPOINT_NAME
    if (
        run.kind != "train"
        or run.status != RunStatus.SUCCEEDED
        or run.checkpoint_path is None
        or not checkpoint.is_file()
    ):
        raise GeneratorUnavailable(
            f"run {run.id} has no final checkpoint to export (kind {run.kind}, status {run.status})"
        )
    out = checkpoint.with_name(GENERATOR_NAME)
    if out.is_file() and out.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns:
        return out
    state = read_checkpoint(checkpoint)  # our own file, written by our worker
    config = parse_run_config(state["config"])
    try:  # a run created before receptors were checked must not carry a file from elsewhere away
        check_paths(config, settings.data_dir)
    except ConfigError as error:
        field, message = error.errors[0]
        raise RewardFileError(field, message) from None
    env = config.environment
    if env.cache_dir is None:
        env = env.model_copy(update={"cache_dir": settings.data_dir / "cache"})
    chemistry = load_chemistry(env)
    export_generator(
        state,
        chemistry,
        out,
        library_name=_name_of(session, BUILDING_BLOCKS, env.building_blocks),
        templates_name=_name_of(session, TEMPLATES, env.templates),
    )
    return out


def _name_of(session: Session, kind: str, path: Path | None) -> str:
    if path is None:
        return DEFAULT
    query = select(Library.name).where(Library.kind == kind, Library.path == str(path))
    return session.scalar(query) or path.name


# -- import ---------------------------------------------------------------------------------------
def import_candidates(session: Session) -> dict[str, list[Candidate]]:
    """This installation's libraries and template sets, the bundled defaults first."""
    out: dict[str, list[Candidate]] = {}
    for kind in (BUILDING_BLOCKS, TEMPLATES):
        rows = session.execute(
            select(Library.name, Library.path, Library.size)
            .where(Library.kind == kind, Library.path.is_not(None))
            .order_by(Library.id)
        )
        out[kind] = [Candidate(DEFAULT, None, None)] + [
            Candidate(name, Path(path), size) for name, path, size in rows if path is not None
        ]
    return out


def prepare_import(
    path: Path, candidates: dict[str, list[Candidate]], settings: Settings, name: str | None = None
) -> PreparedImport:
    """Every check an import makes, in order of cost: the file (``GeneratorFileError``), its reward
    code against today's allowlist (``CodeNotAllowed``), the library and templates
    (``ChemistryMismatch``), and the weights over this installation's chemistry."""
    generator = read_generator(path)
    check_code_allowed(
        generator.config, settings.allowed_python_targets, settings.allowed_commands, settings.ray_address
    )
    library = _match_library(generator, candidates[BUILDING_BLOCKS])
    templates = _match_templates(generator, candidates[TEMPLATES])
    base = portable_config(generator.config)  # a file of an earlier synflow may name its pose folder
    env = base.environment.model_copy(update={"building_blocks": library.path, "templates": templates.path})
    label = (name or f"{generator.name} (imported)")[:200]
    config = base.model_copy(update={"environment": env, "name": label})
    # the receptors it carries are written under the data directory when it is stored
    check_paths(config, settings.data_dir, {f.where for f in generator.reward_files})
    check_storable(config)
    # the policy over this installation's chemistry: every tensor present, every shape right; the
    # compatibility index built here is the one the sampling jobs reuse from the cache
    load_policy(generator, load_chemistry(_runtime(config, settings).environment))
    return PreparedImport(generator, config, library.name, templates.name)


def _runtime(config: RunConfig, settings: Settings) -> RunConfig:
    """``config`` as a worker of this server runs it (the imported checkpoint's): the shared cache
    under the data directory, and docked poses kept under DATA_DIR/poses, where the API serves them."""
    env = config.environment.model_copy(update={"cache_dir": settings.data_dir / "cache"})
    reward = config.reward.with_pose_dir(pose_root(settings.data_dir))
    return config.model_copy(update={"environment": env, "reward": reward})


def store_import(session: Session, settings: Settings, prepared: PreparedImport, source: Path) -> Run:
    """The imported run (``succeeded``, kind ``train``), its checkpoint files and its reward files
    (``DATA_DIR/generators/<run id>/``, the stored and the checkpoint's config re-pointed at them);
    the row is only committed with the caller's session, and the files are removed again if writing
    them fails."""
    generator, now = prepared.generator, utcnow()
    run = Run(
        name=prepared.config.name,
        kind="train",
        status=RunStatus.SUCCEEDED,
        config=prepared.config.model_dump(mode="json"),  # re-pointed at the reward files below
        total_steps=prepared.config.training.steps,
        step=generator.step,
        checkpoint_step=generator.step,
        started_at=now,
        finished_at=now,
        stop_reason=f"{IMPORTED} (trained for {generator.step} steps elsewhere; library "
        f"{prepared.library!r}, templates {prepared.templates!r})",
    )
    session.add(run)
    session.flush()
    folder, reward_folder = settings.checkpoint_root() / run.id, settings.generator_root() / run.id
    try:
        config = write_reward_files(generator, prepared.config, reward_folder)
        checkpoint = folder / CHECKPOINT_NAME
        runtime = _runtime(config, settings)
        write_checkpoint(generator_checkpoint(generator, runtime), checkpoint, generator.step)
        # downloads of this run serve the file as it came (written after last.pt, so it is current)
        shutil.copyfile(source, folder / GENERATOR_NAME)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(reward_folder, ignore_errors=True)
        raise
    run.config = config.model_dump(mode="json")
    run.checkpoint_path = str(checkpoint)
    session.flush()
    return run


def import_generator_file(session: Session, settings: Settings, path: Path, name: str | None = None) -> Run:
    """Check and import a generator file in one go (the CLI)."""
    prepared = prepare_import(path, import_candidates(session), settings, name)
    return store_import(session, settings, prepared, path)


# -- matching the chemistry -----------------------------------------------------------------------
def _match_library(generator: GeneratorFile, candidates: list[Candidate]) -> Candidate:
    def check(candidate: Candidate) -> bool:
        library = _load_library(candidate)
        if library is not None:
            check_library(generator, library, here=f"library {candidate.name!r} here")
        return library is not None

    size = generator.library["size"]
    return _first_match("library", generator.library, size, candidates, check, "POST /api/v1/libraries")


def _match_templates(generator: GeneratorFile, candidates: list[Candidate]) -> Candidate:
    def check(candidate: Candidate) -> bool:
        templates = _load_templates(candidate)
        if templates is not None:
            check_templates(generator, templates, here=f"template set {candidate.name!r} here")
        return templates is not None

    count = generator.templates["count"]
    upload = "POST /api/v1/template-sets"
    return _first_match("templates", generator.templates, count, candidates, check, upload)


def _first_match(
    kind: str,
    expected: dict[str, Any],
    size: int,
    candidates: list[Candidate],
    check: Callable[[Candidate], bool],
    upload: str,
) -> Candidate:
    """The first candidate of the right size that loads and ``check`` accepts (it raises
    ``ChemistryMismatch`` naming the first difference); else the refusal, with every reason."""
    refusals: list[tuple[Candidate, ChemistryMismatch]] = []
    for candidate in candidates:
        if candidate.size is not None and candidate.size != size:
            continue  # the table knows its size: no need to load it
        try:
            if check(candidate):
                return candidate
        except ChemistryMismatch as mismatch:
            refusals.append((candidate, mismatch))
    raise _refusal(kind, refusals, candidates, expected, upload)


def _refusal(
    field: str,
    refusals: list[tuple[Candidate, ChemistryMismatch]],
    candidates: list[Candidate],
    wanted: dict[str, Any],
    upload: str,
) -> ChemistryMismatch:
    """The difference from the closest candidate (one named like the generator's, else the first
    compared), what this installation has, and what to do."""
    name, size = wanted.get("name"), wanted.get("size", wanted.get("count"))
    named = [m for c, m in refusals if c.name == name]
    same_size = [m for c, m in refusals if c.size == size]
    compared: list[ChemistryMismatch] = named or same_size or [m for _, m in refusals]
    closest = compared[0] if compared else None
    if closest is not None:
        detail = closest.reason
    else:
        detail = (
            f"the generator was trained on {size} entries (sha256 {str(wanted['sha256'])[:12]}…); "
            "nothing here has that many"
        )
    sizes = ", ".join(f"{c.name!r} ({c.size})" for c in candidates if c.path is not None)
    have = f"this installation has the bundled default{f' and {sizes}' if sizes else ''}"
    hint = f"upload the generator's {field}{f' ({name!r})' if name else ''} ({upload}) and import again"
    return ChemistryMismatch(field, f"{detail}; {have}; {hint}")


def _load_library(candidate: Candidate) -> BuildingBlockLibrary | None:
    try:
        return default_library() if candidate.path is None else load_building_blocks(candidate.path)
    except (OSError, ValueError):
        return None  # a file gone from disk, or the bundled one not shipped: not a candidate


def _load_templates(candidate: Candidate) -> TemplateSet | None:
    try:
        return default_template_set() if candidate.path is None else load_template_set(candidate.path)
    except (OSError, ValueError):
        return None
