"""Non-dominated (Pareto) sets of points, every objective maximised. Numpy only, no database.

A point is dominated when another point is at least as large on every objective and larger on at
least one. Duplicates (equal on every objective) therefore never dominate each other: all copies of
a non-dominated point stay in the set.

* Two objectives: an O(n log n) sweep (``front_2d``): sort by the first objective descending (ties
  by the second descending); a point survives when it is the best of its first-objective value on
  the second and strictly better on the second than every point with a larger first objective.
* More objectives: sort-filter-skyline (``front_nd``): in descending order of the sum (ties
  lexicographically) a point can only be dominated by a point before it, and (domination being
  transitive) by a non-dominated one, so each block of points is compared with the front found so
  far, then with itself, vectorised. Work is O(n·|F|·k) for a front of |F| points; the front's
  first (highest-sum) members screen every block first, which disposes of most dominated points in
  O(k) comparisons each. ``max_pairs`` bounds the work: past it ``FrontTooLarge`` is raised.
* Streams (``FrontAccumulator``): points arrive in chunks; the buffer is pruned to its own front
  whenever it has doubled since the last prune. ``front(A ∪ B) = front(front(A) ∪ B)``, memory stays
  O(front + chunk), and since each prune's input is at least half new points the total work stays
  within a constant factor of one pass over all points (O(n log n) for two objectives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Point pairs a k > 2 computation may compare before giving up (~15 ns a pair on one core with the
# block overheads, so ~5 s at most, whatever the run's size). Real score fronts stay far below it: a
# million uniformly random points need ~7·10^7 pairs with k = 5.
MAX_PAIRS = 300_000_000
_BLOCK = 512  # points compared with the front at once (a block × front matrix of bools)
_PIVOTS = 64  # front members every point meets first
_FRONT_SLICE = 4096  # front members per comparison: a block × slice matrix stays ~2 MB


class FrontTooLarge(ValueError):
    """More than ``max_pairs`` comparisons would be needed: too many mutually non-dominated points."""


def _descending_order(values: np.ndarray) -> np.ndarray:
    """Row order, lexicographically descending (objective 0 first); np.lexsort's last key is primary."""
    return np.lexsort(tuple(-values[:, j] for j in reversed(range(values.shape[1]))))


def front_2d(values: np.ndarray) -> np.ndarray:
    """Indices (into ``values``, shape (n, 2), finite) of the non-dominated rows, in descending
    order of the first objective (ties: descending second). O(n log n)."""
    n = len(values)
    if n == 0:
        return np.empty(0, np.int64)
    order = _descending_order(values)
    xs, ys = values[order, 0], values[order, 1]
    starts = np.ones(n, bool)
    starts[1:] = xs[1:] != xs[:-1]
    group = np.cumsum(starts) - 1
    top = ys[starts]  # the best second objective of each first-objective value (first in its group)
    # The best second objective among points with a strictly larger first objective.
    before = np.concatenate(([-np.inf], np.maximum.accumulate(top)[:-1]))
    keep = (ys == top[group]) & (top[group] > before[group])
    return order[keep]


def _dominated_by(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each row of ``points``, whether some row of ``front`` dominates it: slices of the front,
    one 2-D comparison per objective (numpy reduces a short last axis slowly), memory bounded."""
    dominated = np.zeros(len(points), bool)
    for first in range(0, len(front), _FRONT_SLICE):
        open_rows = np.flatnonzero(~dominated)
        if len(open_rows) == 0:
            break
        part, mine_all = front[first : first + _FRONT_SLICE], points[open_rows]
        ahead = np.ones((len(open_rows), len(part)), bool)
        better = np.zeros((len(open_rows), len(part)), bool)
        for j in range(points.shape[1]):
            column, mine = part[None, :, j], mine_all[:, j, None]
            ahead &= column >= mine
            better |= column > mine
        dominated[open_rows] = (ahead & better).any(axis=1)
    return dominated


def _topological_order(values: np.ndarray) -> np.ndarray:
    """Row order in which a dominating point always comes before the points it dominates: the sum
    descending (floating-point addition is monotone, so a dominator's sum is never smaller), ties
    lexicographically descending. High sums first puts the strongest dominators at the front's head."""
    sums = values.sum(axis=1)
    order = np.argsort(-sums, kind="stable")
    if np.all(np.diff(sums[order]) != 0):  # no ties (continuous scores): the sum alone decides
        return order
    keys = [-values[:, j] for j in reversed(range(values.shape[1]))]
    return np.lexsort((*keys, -sums))


def front_nd(values: np.ndarray, max_pairs: int = MAX_PAIRS) -> np.ndarray:
    """Indices of the non-dominated rows of ``values`` (n, k), finite, any k ≥ 1. Raises
    ``FrontTooLarge`` past ``max_pairs`` point comparisons."""
    return _skyline(values, max_pairs)[0]


def _skyline(values: np.ndarray, max_pairs: int) -> tuple[np.ndarray, int]:
    """``front_nd``'s indices and the number of point pairs it compared."""
    n, k = values.shape
    order = _topological_order(values)
    ordered = values[order]
    front = np.empty((0, k), values.dtype)
    kept: list[np.ndarray] = []
    pairs = start = 0
    while start < n:
        block = ordered[start : start + _BLOCK]
        # The front's first members (the highest sums) dispose of most dominated points cheaply;
        # the rest of the front sees only what they leave.
        head, tail = front[:_PIVOTS], front[_PIVOTS:]
        rest = np.flatnonzero(~_dominated_by(head, block))
        rest = rest[~_dominated_by(tail, block[rest])]
        # A later point never dominates an earlier one, so one square comparison settles the block.
        pairs += len(block) * len(head) + len(rest) * (len(tail) + len(rest))
        if pairs > max_pairs:
            raise FrontTooLarge(
                "too many mutually non-dominated points to compare within the work bound "
                f"(a front of {len(front):,} after {start:,} of {n:,} points)"
            )
        candidates = block[rest]
        survivors = rest[~_dominated_by(candidates, candidates)]
        front = np.concatenate((front, block[survivors]))
        kept.append(survivors + start)
        start += len(block)
    return (order[np.concatenate(kept)] if kept else np.empty(0, np.int64)), pairs


def non_dominated(values: np.ndarray, max_pairs: int = MAX_PAIRS) -> np.ndarray:
    """Indices of the non-dominated rows of a finite (n, k) array, in lexicographically descending order."""
    if values.ndim != 2 or values.shape[1] < 1:
        raise ValueError("values must be an (n, k) array with k ≥ 1")
    if not np.isfinite(values).all():
        raise ValueError("values must be finite (leave out rows with missing or NaN objectives)")
    if values.shape[1] == 2:
        return front_2d(values)
    return front_nd(values, max_pairs)


@dataclass
class FrontAccumulator:
    """The non-dominated set of points that arrive in chunks, each with an integer id.

    ``add`` buffers a chunk (finite rows only: the caller leaves out incomparable ones); the buffer
    is pruned to its front once it holds twice what the last prune kept (and at least ``min_prune``
    rows); ``result`` prunes a last time. ``max_pairs`` bounds a k > 2 computation across all prunes.
    """

    objectives: int
    min_prune: int = 65_536
    max_pairs: int = MAX_PAIRS
    _ids: list[np.ndarray] = field(default_factory=list)
    _values: list[np.ndarray] = field(default_factory=list)
    _buffered: int = 0
    _kept: int = 0
    _pairs_left: int = 0

    def __post_init__(self) -> None:
        self._pairs_left = self.max_pairs

    def add(self, ids: np.ndarray, values: np.ndarray) -> None:
        if values.shape != (len(ids), self.objectives):
            raise ValueError(f"expected values of shape ({len(ids)}, {self.objectives}), got {values.shape}")
        if len(ids) == 0:
            return
        self._ids.append(np.asarray(ids, np.int64))
        self._values.append(np.asarray(values, np.float64))
        self._buffered += len(ids)
        if self._buffered >= max(2 * self._kept, self.min_prune):
            self._prune()

    def _prune(self) -> None:
        ids = np.concatenate(self._ids) if self._ids else np.empty(0, np.int64)
        values = np.concatenate(self._values) if self._values else np.empty((0, self.objectives))
        if len(ids):
            keep = self._front(values)
            ids, values = ids[keep], values[keep]
        self._ids, self._values = [ids], [values]
        self._buffered = self._kept = len(ids)

    def _front(self, values: np.ndarray) -> np.ndarray:
        if self.objectives == 2:
            return front_2d(values)
        keep, pairs = _skyline(values, self._pairs_left)  # the budget spans every prune
        self._pairs_left -= pairs
        return keep

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, values) of the front, in lexicographically descending order of the values, ties by id."""
        self._prune()
        ids, values = self._ids[0], self._values[0]
        order = np.lexsort((ids, *(-values[:, j] for j in reversed(range(self.objectives)))))
        return ids[order], values[order]
