"""Read paths: keyset (cursor) pagination over runs and molecules, stable while workers write.

A cursor is the sort key and id of the last row returned; the next page starts strictly after it, so
rows inserted meanwhile never shift, duplicate or skip the rows a client has not seen yet.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, case, func, null, or_, select, tuple_
from sqlalchemy.orm import Session

from app.chem.filters import ChemCache, MoleculeFilter
from app.core.models import Metric, Molecule, Run

# Rows a chemical filter reads per round trip at most (the first window is 4 × limit, at least 256,
# and each next one four times larger): a round trip of ECFP4 fingerprints stays a few MB.
MAX_WINDOW = 16_384
MISSING_SCORE = -1e300  # sorts molecules without a component score last in descending order
_SCORE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
_COLUMNS: dict[str, ColumnElement[Any]] = {
    "reward": Molecule.reward.expression,
    "step": Molecule.step.expression,
    "id": Molecule.id.expression,
    "times_sampled": Molecule.times_sampled.expression,
}


class QueryError(ValueError):
    """A bad query parameter; ``field`` names it for the 422 answer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise QueryError("cursor", "cursor is not one this API returned") from None
    if not isinstance(values, list) or len(values) != arity:
        raise QueryError("cursor", "cursor is not one this API returned")
    return values


@dataclass(frozen=True)
class SortKey:
    expression: ColumnElement[Any]
    descending: bool


def molecule_sort(sort: str) -> SortKey:
    """``reward``, ``step``, ``id``, ``times_sampled`` or a score component (``qed`` or ``scores.qed``);
    a leading ``-`` sorts descending."""
    descending = sort.startswith("-")
    name = sort.lstrip("-+")
    if name in _COLUMNS:
        return SortKey(_COLUMNS[name], descending)
    name = name.removeprefix("scores.")
    if not _SCORE_NAME.match(name):
        raise QueryError("sort", f"cannot sort by {sort!r}: use reward, step, id or a score component")
    return SortKey(score_expression(name), descending)


def score_expression(name: str) -> ColumnElement[float]:
    return func.coalesce(Molecule.scores[name].as_float(), MISSING_SCORE)


def _after(key: SortKey, cursor: list[Any]) -> ColumnElement[bool]:
    value, last_id = cursor
    if key.descending:
        return tuple_(key.expression, Molecule.id) < tuple_(value, last_id)
    return tuple_(key.expression, Molecule.id) > tuple_(value, last_id)


@dataclass
class MoleculeQuery:
    run_id: str
    sort: str = "-reward"
    limit: int = 50
    cursor: str | None = None
    reward_min: float | None = None
    reward_max: float | None = None
    score_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    smarts: str | None = None
    similar_to: str | None = None
    min_similarity: float = 0.5
    purchasable: bool | None = None  # only molecules a purchasability component marked so
    alerts: Literal["none", "any"] | None = None  # checked and clean, or matching at least one alert
    # A SMARTS or similarity request passes over at most this many rows in sort order (counted in
    # ``scanned``, whether the database ruled a row out by popcount or it was tested in Python).
    max_scan: int = 50_000


def parse_score_ranges(specs: Sequence[str]) -> dict[str, tuple[float | None, float | None]]:
    """``NAME:MIN:MAX`` with either bound empty, e.g. ``qed:0.6:`` or ``sa::0.4``."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3 or not _SCORE_NAME.match(parts[0]):
            raise QueryError("score_range", f"{spec!r}: expected NAME:MIN:MAX (either bound may be empty)")
        try:
            low = float(parts[1]) if parts[1] else None
            high = float(parts[2]) if parts[2] else None
        except ValueError:
            raise QueryError("score_range", f"{spec!r}: bounds must be numbers") from None
        out[parts[0]] = (low, high)
    return out


def _molecule_conditions(q: MoleculeQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Molecule.run_id == q.run_id]
    if q.reward_min is not None:
        conditions.append(Molecule.reward >= q.reward_min)
    if q.reward_max is not None:
        conditions.append(Molecule.reward <= q.reward_max)
    for name, (low, high) in q.score_ranges.items():
        expr = Molecule.scores[name].as_float()
        if low is not None:
            conditions.append(expr >= low)
        if high is not None:
            conditions.append(expr <= high)
    return conditions + _note_conditions(q)


def _note_conditions(q: MoleculeQuery) -> list[ColumnElement[bool]]:
    """Filters on the reward's notes. A molecule no alerts component looked at (NULL) is neither
    ``none`` nor ``any``; the first element of the JSON list (JSON_EXTRACT / ->>) tells empty from not,
    the same SQL on SQLite and PostgreSQL."""
    conditions: list[ColumnElement[bool]] = []
    if q.purchasable is not None:
        conditions.append(Molecule.purchasable.is_(q.purchasable))
    if q.alerts is not None:
        first = Molecule.alerts[0].as_string()
        found = first.is_not(None) if q.alerts == "any" else first.is_(None)
        conditions.append(and_(Molecule.alerts.is_not(None), found))
    return conditions


@dataclass
class MoleculePage:
    items: list[tuple[Molecule, float | None]]
    next_cursor: str | None
    scanned: int


def _ordered(stmt: Select[Any], key: SortKey) -> Select[Any]:
    if key.descending:
        return stmt.order_by(key.expression.desc(), Molecule.id.desc())
    return stmt.order_by(key.expression.asc(), Molecule.id.asc())


def list_molecules(session: Session, q: MoleculeQuery, cache: ChemCache | None = None) -> MoleculePage:
    """One page; with a SMARTS or similarity filter rows are passed over in sort order, at most
    ``max_scan`` per request (a short page then carries a cursor to continue from)."""
    key = molecule_sort(q.sort)
    chem = MoleculeFilter(q.smarts, q.similar_to, q.min_similarity, cache)
    conditions = and_(*_molecule_conditions(q))
    cursor = decode_cursor(q.cursor, 2) if q.cursor else None
    if not chem.active:
        stmt = select(Molecule, key.expression).where(conditions)
        stmt = stmt.where(_after(key, cursor)) if cursor else stmt
        rows = session.execute(_ordered(stmt, key).limit(q.limit + 1)).all()
        found: list[tuple[Molecule, float | None, Any]] = [
            (mol, None, value) for mol, value in rows[: q.limit]
        ]
        more = len(rows) > q.limit
        return _page(found, encode_cursor([found[-1][2], found[-1][0].id]) if more else None, len(found))
    return _chemical_page(session, q, key, chem, conditions, cursor)


def _chemical_columns(chem: MoleculeFilter) -> list[ColumnElement[Any]]:
    """(SMILES, fingerprint) to select after (id, sort value): with a similarity query only for rows
    whose popcount can reach the threshold (NULL for the rest, which the database rules out), and
    the SMILES only where a SMARTS or a missing fingerprint (a row from an older version) needs it."""
    if chem.similar is None:
        return [Molecule.smiles.expression, null()]
    low, high = chem.similar.popcount_bounds()
    count = Molecule.fingerprint_popcount
    in_bounds = count >= low if high is None else count.between(low, high)
    candidate = or_(count.is_(None), in_bounds)
    needs_smiles = candidate if chem.pattern is not None else and_(candidate, Molecule.fingerprint.is_(None))
    return [case((needs_smiles, Molecule.smiles)), case((candidate, Molecule.fingerprint))]


@dataclass(frozen=True)
class _Window:
    """Rows in sort order, by column: id, sort value, SMILES and fingerprint (either may be NULL)."""

    ids: Sequence[int]
    values: Sequence[Any]
    smiles: Sequence[str | None]
    fingerprints: Sequence[bytes | None]

    @classmethod
    def read(cls, session: Session, stmt: Select[Any]) -> _Window:
        # Core, not ORM, execution and one transpose: ~3 µs a row less than ORM rows indexed in Python
        rows = session.connection().execute(stmt).all()
        return cls(*zip(*rows, strict=True)) if rows else cls((), (), (), ())

    def __len__(self) -> int:
        return len(self.ids)

    def passing(self, chem: MoleculeFilter) -> Iterator[tuple[int, float | None]]:
        """(position, similarity) of the rows that pass, in order: similarity scored for the whole
        window at once, then the SMARTS tested lazily, row by row, on what is left."""
        if chem.similar is None:
            for position, (mol_id, smiles) in enumerate(zip(self.ids, self.smiles, strict=True)):
                if chem.matches(mol_id, smiles):
                    yield position, None
            return
        candidates = [
            i
            for i, (fp, smiles) in enumerate(zip(self.fingerprints, self.smiles, strict=True))
            if fp is not None or smiles is not None
        ]
        values = chem.similarities([(self.ids[i], self.smiles[i], self.fingerprints[i]) for i in candidates])
        for j in np.flatnonzero(values >= chem.similar.threshold):  # NaN (unreadable) never passes
            position = candidates[j]
            if chem.matches(self.ids[position], self.smiles[position]):
                yield position, float(values[j])


def _chemical_page(
    session: Session,
    q: MoleculeQuery,
    key: SortKey,
    chem: MoleculeFilter,
    conditions: ColumnElement[bool],
    cursor: list[Any] | None,
) -> MoleculePage:
    """Pass over rows in sort order, window by window, until the page is full or ``max_scan`` rows
    have been passed over (``scanned``: every row in sort order up to the last one looked at,
    whether the database ruled it out by popcount or it was tested here); the page then carries a
    cursor to continue from. Windows start small (a dense match fills the page from the first) and
    grow for sparse ones. Only the rows on the page are loaded whole."""
    base = select(Molecule.id, key.expression, *_chemical_columns(chem)).where(conditions)
    size = max(4 * q.limit, 256)
    hits: list[tuple[int, float | None, Any]] = []
    scanned = 0
    next_cursor: list[Any] | None = None
    while True:
        size = max(1, min(size, q.max_scan - scanned))
        stmt = base.where(_after(key, cursor)) if cursor else base
        window = _Window.read(session, _ordered(stmt, key).limit(size))
        full_at = _fill(hits, q.limit, window, chem)
        if full_at is not None:
            scanned += full_at + 1
            last = [hits[-1][2], hits[-1][0]]
            if full_at + 1 < len(window) or (
                len(window) == size and _any_after(session, key, conditions, last)
            ):
                next_cursor = last
            break
        scanned += len(window)
        if len(window) < size:  # the run's rows end here
            break
        cursor = [window.values[-1], window.ids[-1]]
        if scanned >= q.max_scan:
            next_cursor = cursor
            break
        size = min(4 * size, MAX_WINDOW)
    loaded = {m.id: m for m in session.scalars(select(Molecule).where(Molecule.id.in_([h[0] for h in hits])))}
    found = [(loaded[i], sim, value) for i, sim, value in hits if i in loaded]
    return _page(found, encode_cursor(next_cursor) if next_cursor else None, scanned)


def _fill(
    hits: list[tuple[int, float | None, Any]], limit: int, window: _Window, chem: MoleculeFilter
) -> int | None:
    """Append the window's passing rows to ``hits``; the position of the row that filled the page."""
    for position, similarity in window.passing(chem):
        hits.append((window.ids[position], similarity, window.values[position]))
        if len(hits) == limit:
            return position
    return None


def _any_after(session: Session, key: SortKey, conditions: ColumnElement[bool], last: list[Any]) -> bool:
    stmt = select(Molecule.id).where(conditions, _after(key, last))
    return session.execute(_ordered(stmt, key).limit(1)).first() is not None


def _page(found: list[tuple[Molecule, float | None, Any]], cursor: str | None, scanned: int) -> MoleculePage:
    return MoleculePage([(mol, sim) for mol, sim, _ in found], cursor, scanned)


def list_runs(
    session: Session, status: str | None, limit: int, cursor: str | None
) -> tuple[list[Run], str | None]:
    """Newest first; cursor = (created_at, id) of the last run returned."""
    stmt = select(Run)
    if status:
        stmt = stmt.where(Run.status == status)
    if cursor:
        created, last_id = decode_cursor(cursor, 2)
        stmt = stmt.where(tuple_(Run.created_at, Run.id) < tuple_(_parse_time(created), last_id))
    rows = list(session.scalars(stmt.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id])


def _parse_time(value: str) -> Any:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise QueryError("cursor", "cursor is not one this API returned") from None


def latest_metrics(session: Session, run_id: str) -> dict[str, float | None]:
    """The newest value of each metric name."""
    newest = (
        select(Metric.name, func.max(Metric.step).label("step"))
        .where(Metric.run_id == run_id)
        .group_by(Metric.name)
        .subquery()
    )
    stmt = (
        select(Metric.name, Metric.value)
        .join(newest, and_(Metric.name == newest.c.name, Metric.step == newest.c.step))
        .where(Metric.run_id == run_id)
    )
    return {name: value for name, value in session.execute(stmt)}


def metric_history(
    session: Session, run_id: str, names: Sequence[str], max_points: int | None
) -> dict[str, list[tuple[int, float | None]]]:
    """Each metric's (step, value) series; ``max_points`` keeps every k-th point plus the last."""
    stmt = select(Metric.name, Metric.step, Metric.value).where(Metric.run_id == run_id)
    if names:
        stmt = stmt.where(Metric.name.in_(list(names)))
    series: dict[str, list[tuple[int, float | None]]] = {}
    for name, step, value in session.execute(stmt.order_by(Metric.name, Metric.step)):
        series.setdefault(name, []).append((step, value))
    if max_points:
        series = {name: downsample(points, max_points) for name, points in series.items()}
    return series


def downsample(points: list[Any], max_points: int) -> list[Any]:
    if len(points) <= max_points:
        return points
    stride = -(-len(points) // max_points)
    kept = points[::stride]
    if kept[-1] is not points[-1] and len(kept) < max_points:
        kept.append(points[-1])
    elif kept[-1] is not points[-1]:
        kept[-1] = points[-1]
    return kept
