"""A run's Pareto front over chosen score components, read from the database in streamed chunks.

Only ``id`` and the chosen scores (extracted from the ``scores`` JSON by the database) are read, in
one streamed query (a server-side cursor on PostgreSQL), ``CHUNK_ROWS`` rows at a time, into a
``FrontAccumulator`` (``app.runs.pareto``): memory O(front + chunk), not O(run). Molecules without a
finite value for every chosen score are left out and counted. A uniform sample of the rest for a
scatter plot is kept on the way: the ``sample`` rows with the smallest hash of their id, which is
the same set whatever order rows stream in, and changes little as a run grows.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.models import Molecule, Run
from app.runs.pareto import MAX_PAIRS, FrontAccumulator
from app.runs.queries import QueryError
from synflow.rewards import RewardConfig

CHUNK_ROWS = 50_000  # rows per streamed fetch: a few MB of ids and floats
MAX_SAMPLE = 5_000  # scatter points a request may ask for
_ID_CHUNK = 1_000  # ids per IN (…) when loading the front's molecules


@dataclass(frozen=True)
class Objectives:
    """Score components a run's front may use (``allowed``) and those used when none are named."""

    allowed: list[str]
    default: list[str]


@dataclass(frozen=True)
class RunFront:
    """The non-dominated molecules (``ids``, ``values`` in ``scores`` order) in descending order of the
    first score (ties: the next, then id); ``considered`` molecules had every score, ``excluded`` not."""

    scores: list[str]
    ids: np.ndarray
    values: np.ndarray
    considered: int
    excluded: int
    sample_ids: np.ndarray
    sample_values: np.ndarray


def _reward_of(session: Session, run: Run) -> RewardConfig | None:
    """The reward a run's molecules were scored with: its own, or a sampling job's parent's."""
    source: Run | None = run
    if run.kind != "train":
        source = session.get(Run, run.parent_id) if run.parent_id else None
    section = (source.config or {}).get("reward") if source is not None else None
    if not isinstance(section, dict):
        return None
    try:
        return RewardConfig.model_validate(section)
    except ValidationError:  # a config an older version stored; fall back to the stored scores
        return None


def run_objectives(session: Session, run: Run) -> Objectives:
    """The reward's component names (a component's ``name_raw`` values are not objectives: unshaped,
    they need not be better when larger); by default its ``score`` components, not its filters. A run
    whose reward cannot be read (its parent deleted) offers the score names of its newest molecule."""
    reward = _reward_of(session, run)
    if reward is not None:
        return Objectives(reward.names, [c.label for c in reward.components if c.role == "score"])
    newest = session.scalar(
        select(Molecule.scores).where(Molecule.run_id == run.id).order_by(Molecule.id.desc()).limit(1)
    )
    keys = sorted(newest or {})  # by name: PostgreSQL's JSONB does not keep the written key order
    names = [k for k in keys if not (k.endswith("_raw") and k.removesuffix("_raw") in keys)]
    return Objectives(names, names)


def choose_objectives(requested: str | None, objectives: Objectives) -> list[str]:
    """``qed,sa`` → ["qed", "sa"], checked against the run; None → the default. Raises ``QueryError``
    naming ``scores``."""
    names = objectives.default if requested is None else [n.strip() for n in requested.split(",")]
    known = ", ".join(objectives.allowed) or "(none)"
    for name in names:
        if name not in objectives.allowed:
            shown = repr(name) if name else "an empty name"
            raise QueryError("scores", f"{shown} is not a score component of this run; components: {known}")
    if len(set(names)) != len(names):
        raise QueryError("scores", f"each score may be named once (got {', '.join(names)})")
    if len(names) < 2:
        where = "this run's reward has" if requested is None else "got"
        raise QueryError(
            "scores",
            f"a Pareto front needs at least two scores ({where} {', '.join(names) or 'none'}); "
            f"components: {known}",
        )
    return names


def _chunks(
    session: Session, run_id: str, names: Sequence[str], chunk_rows: int
) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
    """(ids, values) per streamed chunk; a missing score, JSON null or non-finite value reads as NaN.

    On the driver's own cursor, like the store's bulk writes: SQLAlchemy's per-row result handling
    took ~40 % of the time of a million-row read. The score names are bound parameters."""
    dialect = session.get_bind().dialect.name
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None, "a session's connection has a driver connection"
    if dialect == "sqlite":
        # SQLAlchemy's own JSON path form for a key (``Molecule.scores[name]``)
        columns, params = ["json_extract(scores, ?)"] * len(names), [f'$."{n}"' for n in names]
        cursor = dbapi.cursor()
        sql = f"SELECT id, {', '.join(columns)} FROM molecules WHERE run_id = ?"
    elif dialect == "postgresql":
        columns, params = ["(scores ->> %s)::float8"] * len(names), list(names)
        cursor = dbapi.cursor(name=f"pareto_{uuid.uuid4().hex}")  # server-side: rows arrive as fetched
        sql = f"SELECT id, {', '.join(columns)} FROM molecules WHERE run_id = %s"
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r}; use SQLite or PostgreSQL")
    try:
        cursor.execute(sql, [*params, run_id])
        while rows := cursor.fetchmany(chunk_rows):
            columns_of = list(zip(*rows, strict=True))  # one transpose: ~2x faster than row slices
            ids = np.array(columns_of[0], np.int64)
            yield ids, np.array(columns_of[1:], dtype=np.float64).T
    finally:
        cursor.close()


def _hash(ids: np.ndarray) -> np.ndarray:
    """splitmix64 of each id: a fixed pseudo-random key per molecule (uint64 arithmetic wraps)."""
    z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class _Sample:
    """The ``size`` rows with the smallest id hashes seen so far: a uniform sample without replacement."""

    def __init__(self, size: int, objectives: int) -> None:
        self.size = size
        self.keys = np.empty(0, np.uint64)
        self.ids = np.empty(0, np.int64)
        self.values = np.empty((0, objectives))

    def add(self, ids: np.ndarray, values: np.ndarray) -> None:
        if self.size == 0 or len(ids) == 0:
            return
        keys = np.concatenate((self.keys, _hash(ids)))
        ids, values = np.concatenate((self.ids, ids)), np.concatenate((self.values, values))
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            keys, ids, values = keys[keep], ids[keep], values[keep]
        self.keys, self.ids, self.values = keys, ids, values

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.ids)
        return self.ids[order], self.values[order]


def read_front(
    session: Session,
    run_id: str,
    names: Sequence[str],
    sample: int = 0,
    chunk_rows: int = CHUNK_ROWS,
    max_pairs: int = MAX_PAIRS,
) -> RunFront:
    """The run's front over ``names`` (all maximised) and a ``sample`` of its comparable molecules.
    Raises ``app.runs.pareto.FrontTooLarge`` past ``max_pairs`` comparisons (three or more scores)."""
    front = FrontAccumulator(len(names), min_prune=2 * chunk_rows, max_pairs=max_pairs)
    scatter = _Sample(min(sample, MAX_SAMPLE), len(names))
    considered = excluded = 0
    # closing: a FrontTooLarge mid-stream closes the (server-side) cursor at once
    with closing(_chunks(session, run_id, names, chunk_rows)) as chunks:
        for ids, values in chunks:
            comparable = np.isfinite(values).all(axis=1)
            excluded += int((~comparable).sum())
            ids, values = ids[comparable], values[comparable]
            considered += len(ids)
            front.add(ids, values)
            scatter.add(ids, values)
    front_ids, front_values = front.result()
    sample_ids, sample_values = scatter.ordered()
    return RunFront(list(names), front_ids, front_values, considered, excluded, sample_ids, sample_values)


def spread(count: int, limit: int) -> np.ndarray:
    """Positions of at most ``limit`` of ``count`` members, evenly along the front, both ends kept."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(np.int64))


def load_molecules(session: Session, ids: Sequence[int]) -> list[Molecule]:
    """The molecules with these ids, in this order (ids no longer stored are skipped)."""
    found: dict[int, Molecule] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        part = [int(i) for i in ids[start : start + _ID_CHUNK]]
        found.update((m.id, m) for m in session.scalars(select(Molecule).where(Molecule.id.in_(part))))
    return [found[int(i)] for i in ids if int(i) in found]
