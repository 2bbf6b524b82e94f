"""Reward models fitted to a user's own measurements ("assay models"): SMILES and values in, a
bounded score out.

Fitting: molecules are canonicalised (duplicates averaged and counted), featurised as folded
Morgan fingerprints (counts by default), and two regressors are compared by k-fold cross-validation
with a fixed seed: a random forest (uncertainty = the spread of its trees) and, for data small
enough, a Gaussian process with a Tanimoto kernel (uncertainty = its posterior standard deviation).
The one with the lower CV RMSE is refitted on every row.

Scoring: a value is mapped to [0, 1] by a logistic fitted to the training values (5th percentile →
0.05, 95th → 0.95, flipped when lower is better), so molecules better than anything measured still
rank above each other instead of all clipping to 1. With an uncertainty bonus κ the score is
``clip(t(μ) + κ·σ_t, 0, 1)``, σ_t being the predicted standard deviation carried through the
transform (an upper confidence bound, in score units).

Storage: never pickle. A stored model is a ``.npz`` of plain arrays (``np.load(allow_pickle=False)``)
plus a JSON header: for the forest every tree's node arrays (prediction walks them here, in numpy),
for the GP its training fingerprints, targets and fitted kernel hyperparameters (the Cholesky factor,
n² floats, is recomputed on load: about 0.1 s at ``GP_MAX_ROWS``). Predictions therefore do not
depend on the installed scikit-learn, so a run resumed after an upgrade scores as before.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.stats import spearmanr

from reactions.smiles import INPUT_LIMITS, SmilesError, parse_smiles
from synflow.rewards.base import Scorer

Direction = Literal["higher", "lower"]
FingerprintMode = Literal["counts", "bits"]
EstimatorName = Literal["random_forest", "gaussian_process"]

FORMAT_VERSION = 1
# Fewer rows than this cannot give a cross-validated estimate worth reporting (2 folds of 10).
MIN_ROWS = 20
# A GP costs O(n³) time and O(n²) memory per likelihood evaluation, and its fit evaluates the
# likelihood some 20-40 times per fold: the whole 5-fold comparison plus refit took 171 CPU-seconds
# at 2,000 ZINC molecules here (GP CV R² 0.85 vs the forest's 0.60 on Crippen logP;
# `benchmarks/chem_filters.py assay`, BENCHMARKS.md). Beyond that the
# forest, O(n log n) per tree, is the only candidate (and with that much data usually close).
GP_MAX_ROWS = 2000
RF_TREES = 200
# Values mapped to 0.05 and 0.95 by the score transform (training-set percentiles 5 and 95).
_TAIL = 0.05


class AssayDataError(ValueError):
    """The uploaded data cannot give a model (missing column, too few usable rows, constant values)."""


class AssayModelFileError(ValueError):
    """A stored model file is missing, unreadable, of an unknown format, or not the one expected."""


# ---------------------------------------------------------------------------------------------
# Data: CSV rows → canonical SMILES with averaged values, and the rows that were rejected


@dataclass(frozen=True)
class RejectedRow:
    row: int  # the CSV line number (the header is line 1)
    smiles: str | None
    reason: str


@dataclass
class AssayData:
    smiles: list[str]  # canonical, unique
    values: np.ndarray  # the mean of the measurements of each molecule
    n_rows: int  # data rows read (rejected ones included)
    n_duplicates: int  # rows merged into an earlier row of the same molecule
    rejected: list[RejectedRow] = field(default_factory=list)


def read_csv_rows(
    text: Iterable[str], smiles_column: str, value_column: str
) -> Iterator[tuple[int, str, str]]:
    """``(line number, SMILES, value text)`` per data row of a CSV (comma or tab separated, sniffed
    from the header). Raises ``AssayDataError`` naming a missing column and the ones present."""
    lines = iter(text)
    header = next(lines, None)
    if header is None:
        raise AssayDataError("the file is empty")
    delimiter = "\t" if header.count("\t") > header.count(",") else ","
    reader = csv.reader(_chain([header], lines), delimiter=delimiter)
    columns = [c.strip() for c in next(reader)]
    index = {}
    for role, wanted in (("smiles_column", smiles_column), ("value_column", value_column)):
        if wanted not in columns:
            shown = ", ".join(repr(c) for c in columns[:20])
            raise AssayDataError(f"{role}: no column {wanted!r} in the header (columns: {shown})")
        index[role] = columns.index(wanted)
    for record in reader:
        if not record or not any(cell.strip() for cell in record):
            continue
        smiles = _cell(record, index["smiles_column"])
        yield reader.line_num, smiles, _cell(record, index["value_column"])


def _chain(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _cell(record: list[str], i: int) -> str:
    return record[i].strip() if i < len(record) else ""


def collect_assay_data(rows: Iterable[tuple[int, str, str]]) -> AssayData:
    """Parse, canonicalise and average; every unusable row is kept with its line and reason."""
    sums: dict[str, list[float]] = {}
    rejected: list[RejectedRow] = []
    n_rows = 0
    for line, smiles, value_text in rows:
        n_rows += 1
        reason, canonical, value = _parse_row(smiles, value_text)
        if reason is not None:
            rejected.append(RejectedRow(line, smiles[:200] or None, reason))
            continue
        sums.setdefault(canonical, []).append(value)
    unique = list(sums)
    values = np.array([np.mean(sums[s]) for s in unique], dtype=np.float64)
    duplicates = sum(len(v) - 1 for v in sums.values())
    return AssayData(unique, values, n_rows, duplicates, rejected)


def _parse_row(smiles: str, value_text: str) -> tuple[str | None, str, float]:
    try:
        value = float(value_text)
    except ValueError:
        return f"value {value_text[:40]!r} is not a number", "", math.nan
    if not math.isfinite(value):
        return f"value {value_text[:40]!r} is not finite", "", math.nan
    try:
        mol = parse_smiles(smiles, INPUT_LIMITS)
    except SmilesError as error:
        return str(error), "", math.nan
    return None, Chem.MolToSmiles(mol), value


# ---------------------------------------------------------------------------------------------
# Features and the Tanimoto kernel


@dataclass(frozen=True)
class Featuriser:
    """Folded Morgan fingerprints as a float matrix (counts or 0/1 bits)."""

    radius: int = 2
    n_bits: int = 2048
    mode: FingerprintMode = "counts"

    def __call__(self, mols: Sequence[Chem.Mol]) -> np.ndarray:
        generator = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
        get = (
            generator.GetCountFingerprintAsNumPy if self.mode == "counts" else generator.GetFingerprintAsNumPy
        )
        out = np.zeros((len(mols), self.n_bits), dtype=np.float32)
        for i, mol in enumerate(mols):
            out[i] = get(mol)
        return out

    def from_smiles(self, smiles: Sequence[str]) -> np.ndarray:
        return self([Chem.MolFromSmiles(s) for s in smiles])


def tanimoto_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``<a,b> / (|a|² + |b|² − <a,b>)`` for every row pair: Tanimoto on bits, its real-valued form
    on counts (positive semi-definite for non-negative vectors, GAUCHE's ``TanimotoKernel``). Two
    empty fingerprints are identical (1)."""
    x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dot = x64 @ y64.T
    denominator = (x64 * x64).sum(1)[:, None] + (y64 * y64).sum(1)[None, :] - dot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, dot / denominator, 1.0)


def _tanimoto_kernel() -> Any:
    """The Tanimoto kernel as a scikit-learn ``Kernel`` (no hyperparameters of its own; scaled by a
    ``ConstantKernel``). Built here so that importing this module does not import scikit-learn."""
    from sklearn.gaussian_process.kernels import Kernel, NormalizedKernelMixin

    class TanimotoKernel(NormalizedKernelMixin, Kernel):
        def __init__(self) -> None:  # scikit-learn reads parameters from this signature: none
            super().__init__()

        def __call__(self, X: Any, Y: Any = None, eval_gradient: bool = False) -> Any:
            K = tanimoto_matrix(X, X if Y is None else Y)
            if eval_gradient:
                if Y is not None:
                    raise ValueError("the gradient is only defined for Y = None")
                return K, np.empty((len(X), len(X), 0))
            return K

        def is_stationary(self) -> bool:
            return False

    return TanimotoKernel()


# ---------------------------------------------------------------------------------------------
# The stored predictors: plain arrays, prediction in numpy


@dataclass
class ForestArrays:
    """Every tree of a fitted ``RandomForestRegressor`` as concatenated node arrays."""

    roots: np.ndarray  # int64, index of each tree's root node
    left: np.ndarray  # int64, child node index; -1 at a leaf
    right: np.ndarray
    feature: np.ndarray  # int64
    threshold: np.ndarray  # float64; a sample goes left when x[feature] <= threshold
    value: np.ndarray  # float64, the leaf means

    @classmethod
    def from_estimator(cls, forest: Any) -> ForestArrays:
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("left", "right", "feature", "threshold", "value")
        }
        roots, offset = [], 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            roots.append(offset)
            for name, children in (("left", tree.children_left), ("right", tree.children_right)):
                parts[name].append(np.where(children >= 0, children + offset, -1).astype(np.int64))
            parts["feature"].append(tree.feature.astype(np.int64))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            parts["value"].append(tree.value[:, 0, 0].astype(np.float64))
            offset += tree.node_count
        return cls(np.array(roots, dtype=np.int64), *(np.concatenate(parts[k]) for k in parts))

    def per_tree(self, x: np.ndarray) -> np.ndarray:
        """Each tree's prediction, shape (n, trees); features compared in float32 as scikit-learn does."""
        x32 = np.asarray(x, dtype=np.float32)
        rows = np.arange(len(x32))[:, None]
        nodes = np.broadcast_to(self.roots, (len(x32), len(self.roots))).copy()
        while True:
            inner = self.left[nodes] >= 0
            if not inner.any():
                return self.value[nodes]
            goes_left = x32[rows, np.maximum(self.feature[nodes], 0)] <= self.threshold[nodes]
            step = np.where(goes_left, self.left[nodes], self.right[nodes])
            nodes = np.where(inner, step, nodes)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        trees = self.per_tree(x)
        return trees.mean(axis=1), trees.std(axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            f"rf_{k}": getattr(self, k) for k in ("roots", "left", "right", "feature", "threshold", "value")
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ForestArrays:
        return cls(*(arrays[f"rf_{k}"] for k in ("roots", "left", "right", "feature", "threshold", "value")))


@dataclass
class GaussianProcessArrays:
    """A fitted GP ``amplitude·Tanimoto + noise·I`` on normalised targets, as scikit-learn computes it."""

    x_train: np.ndarray
    y_train: np.ndarray  # raw values
    amplitude: float
    noise: float
    jitter: float  # scikit-learn's ``alpha`` added to the diagonal
    _cache: tuple[np.ndarray, np.ndarray, float, float] | None = field(default=None, repr=False)

    @classmethod
    def from_estimator(cls, gp: Any, x: np.ndarray, y: np.ndarray) -> GaussianProcessArrays:
        kernel = gp.kernel_
        return cls(
            np.asarray(x, dtype=np.float32),
            np.asarray(y, dtype=np.float64),
            float(kernel.k1.k1.constant_value),
            float(kernel.k2.noise_level),
            float(gp.alpha),
        )

    def _factor(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Cholesky factor and weights, recomputed once (what ``GaussianProcessRegressor.fit`` does)."""
        if self._cache is None:
            mean, std = float(self.y_train.mean()), float(self.y_train.std())
            std = std if std > 0 else 1.0
            K = self.amplitude * tanimoto_matrix(self.x_train, self.x_train)
            K[np.diag_indices_from(K)] += self.noise + self.jitter
            L = cholesky(K, lower=True, check_finite=False)
            alpha = cho_solve((L, True), (self.y_train - mean) / std, check_finite=False)
            self._cache = (L, alpha, mean, std)
        return self._cache

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L, alpha, mean, std = self._factor()
        k_star = self.amplitude * tanimoto_matrix(x, self.x_train)
        v = solve_triangular(L, k_star.T, lower=True, check_finite=False)
        variance = np.maximum(self.amplitude + self.noise - np.einsum("ij,ij->j", v, v), 0.0)
        return k_star @ alpha * std + mean, np.sqrt(variance) * std

    def arrays(self) -> dict[str, np.ndarray]:
        hyper = np.array([self.amplitude, self.noise, self.jitter])
        return {"gp_x": self.x_train, "gp_y": self.y_train, "gp_hyper": hyper}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GaussianProcessArrays:
        amplitude, noise, jitter = (float(v) for v in arrays["gp_hyper"])
        return cls(arrays["gp_x"], arrays["gp_y"], amplitude, noise, jitter)


Predictor = ForestArrays | GaussianProcessArrays


# ---------------------------------------------------------------------------------------------
# The score transform


@dataclass(frozen=True)
class ScoreTransform:
    """A logistic through (low, 0.05) and (high, 0.95) for ``higher``; mirrored for ``lower``."""

    low: float
    high: float
    direction: Direction

    @classmethod
    def fit(cls, values: np.ndarray, direction: Direction) -> ScoreTransform:
        low, high = (float(v) for v in np.percentile(values, [100 * _TAIL, 100 * (1 - _TAIL)]))
        if high <= low:  # most values equal: widen to the full range
            low, high = float(values.min()), float(values.max())
        return cls(low, high, direction)

    def apply(self, y: np.ndarray) -> np.ndarray:
        slope = 2.0 * math.log((1 - _TAIL) / _TAIL) / (self.high - self.low)
        z = slope * (np.asarray(y, dtype=np.float64) - (self.low + self.high) / 2.0)
        z = -z if self.direction == "lower" else z
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def score(self, mean: np.ndarray, std: np.ndarray, kappa: float) -> np.ndarray:
        """``clip(t(μ) + κ·σ_t)``, σ_t = half the transformed width of μ ± σ."""
        spread = np.abs(self.apply(mean + std) - self.apply(mean - std)) / 2.0
        return np.clip(self.apply(mean) + kappa * spread, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Cross-validation, choice and refit


@dataclass
class Metrics:
    rmse: float
    mae: float
    r2: float
    spearman: float | None  # None when predictions are constant

    def as_dict(self) -> dict[str, float | None]:
        return {"rmse": self.rmse, "mae": self.mae, "r2": self.r2, "spearman": self.spearman}


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> Metrics:
    error = predicted - y
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((error**2).sum()) / total if total > 0 else 0.0
    rho = spearmanr(y, predicted).statistic if np.ptp(predicted) > 0 else math.nan
    return Metrics(
        rmse=float(np.sqrt((error**2).mean())),
        mae=float(np.abs(error).mean()),
        r2=r2,
        spearman=None if math.isnan(float(rho)) else float(rho),
    )


def folds_for(n: int) -> int:
    """5 folds, fewer for small data so every test fold keeps at least 10 molecules."""
    return max(2, min(5, n // 10))


def candidates_for(n: int) -> list[EstimatorName]:
    return ["random_forest", "gaussian_process"] if n <= GP_MAX_ROWS else ["random_forest"]


def fit_estimator(name: EstimatorName, x: np.ndarray, y: np.ndarray, seed: int) -> Predictor:
    """Fit with scikit-learn and return the arrays prediction needs."""
    if name == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        # max_features 1/3: the usual choice for regression forests on fingerprints (decorrelates
        # trees, so their spread is a useful uncertainty); one job: the server's cores are shared.
        forest = RandomForestRegressor(
            n_estimators=RF_TREES,
            max_features=1 / 3,
            min_samples_leaf=1,
            random_state=seed,
            n_jobs=1,
        )
        forest.fit(x, y)
        return ForestArrays.from_estimator(forest)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel

    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * _tanimoto_kernel() + WhiteKernel(0.1, (1e-5, 1e1))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    with warnings.catch_warnings():
        # noise at its lower bound is an answer (noise-free data), not a failure
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(x, y)
    return GaussianProcessArrays.from_estimator(gp, x, y)


def cross_validate(name: EstimatorName, x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> Metrics:
    """Out-of-fold predictions of ``name`` over a seeded shuffled k-fold split."""
    from sklearn.model_selection import KFold

    predicted = np.empty_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        predicted[test] = fit_estimator(name, x[train], y[train], seed).predict(x[test])[0]
    return regression_metrics(y, predicted)


@dataclass
class AssayModel:
    """A fitted model: what predicts, how values become scores, and its report (JSON-ready)."""

    predictor: Predictor
    featuriser: Featuriser
    transform: ScoreTransform
    report: dict[str, Any]

    @property
    def estimator(self) -> EstimatorName:
        return "random_forest" if isinstance(self.predictor, ForestArrays) else "gaussian_process"

    def predict(self, mols: Sequence[Chem.Mol]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted values (the uploaded units) and their standard deviations."""
        if not mols:
            return np.zeros(0), np.zeros(0)
        return self.predictor.predict(self.featuriser(mols))

    def score(self, mols: Sequence[Chem.Mol], uncertainty_bonus: float = 0.0) -> np.ndarray:
        mean, std = self.predict(mols)
        return self.transform.score(mean, std, uncertainty_bonus)

    def save(self, path: Path) -> str:
        """Write the ``.npz`` (atomically) and return its SHA-256."""
        header = {
            "format_version": FORMAT_VERSION,
            "estimator": self.estimator,
            "featuriser": {
                "radius": self.featuriser.radius,
                "n_bits": self.featuriser.n_bits,
                "mode": self.featuriser.mode,
            },
            "transform": {
                "low": self.transform.low,
                "high": self.transform.high,
                "direction": self.transform.direction,
            },
            "report": self.report,
        }
        buffer = io.BytesIO()
        encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        arrays: dict[str, Any] = {"header": encoded, **self.predictor.arrays()}
        np.savez_compressed(buffer, **arrays)
        data = buffer.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        partial.replace(path)
        return hashlib.sha256(data).hexdigest()


def load_assay_model(path: str | Path, sha256: str | None = None) -> AssayModel:
    """Read a stored model; with ``sha256``, refuse a file whose content is not that one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AssayModelFileError(
            f"reward model file {str(path)!r} cannot be read: {error.strerror}"
        ) from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise AssayModelFileError(f"reward model file {str(path)!r} has changed since the run was created")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(arrays.pop("header").tobytes())
        if header.get("format_version") != FORMAT_VERSION:
            raise AssayModelFileError(f"{path}: unknown reward model format {header.get('format_version')!r}")
        predictor: Predictor = (
            ForestArrays.from_arrays(arrays)
            if header["estimator"] == "random_forest"
            else GaussianProcessArrays.from_arrays(arrays)
        )
        return AssayModel(
            predictor,
            Featuriser(**header["featuriser"]),
            ScoreTransform(**header["transform"]),
            header["report"],
        )
    except (ValueError, KeyError, TypeError, OSError) as error:
        if isinstance(error, AssayModelFileError):
            raise
        raise AssayModelFileError(f"{path}: not a synflow reward model ({error})") from None


def _one_blas_thread() -> Any:
    """BLAS on one thread: the GP's many small Cholesky factorisations and kernel products run ~40×
    faster than with OpenBLAS's threads fighting over a busy machine's cores (measured, 250 rows)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1, user_api="blas")


def fit_assay_model(
    data: AssayData,
    direction: Direction,
    *,
    seed: int = 0,
    featuriser: Featuriser | None = None,
    estimators: Sequence[EstimatorName] | None = None,
) -> AssayModel:
    """Cross-validate the candidates, pick the lowest CV RMSE, refit it on every molecule."""
    n = len(data.smiles)
    if n < MIN_ROWS:
        raise AssayDataError(
            f"file: {n} usable molecules ({len(data.rejected)} rows rejected); at least {MIN_ROWS} "
            "distinct molecules are needed to fit and cross-validate a model"
        )
    if np.ptp(data.values) == 0:
        raise AssayDataError("value_column: every value is the same; there is nothing to learn")
    featuriser = featuriser or Featuriser()
    x = featuriser.from_smiles(data.smiles)
    folds = folds_for(n)
    names = list(estimators or candidates_for(n))
    with _one_blas_thread():
        metrics = {name: cross_validate(name, x, data.values, folds, seed) for name in names}
        chosen = min(names, key=lambda name: metrics[name].rmse)
        predictor = fit_estimator(chosen, x, data.values, seed)
    report = {
        "n_rows": data.n_rows,
        "n_molecules": n,
        "n_duplicates": data.n_duplicates,
        "n_rejected": len(data.rejected),
        "folds": folds,
        "seed": seed,
        "chosen": chosen,
        "cv": {name: m.as_dict() for name, m in metrics.items()},
        "gp_considered": n <= GP_MAX_ROWS,
        "value_min": float(data.values.min()),
        "value_max": float(data.values.max()),
        "direction": direction,
    }
    return AssayModel(predictor, featuriser, ScoreTransform.fit(data.values, direction), report)


# ---------------------------------------------------------------------------------------------
# The reward component's scorer


class AssayModelScorer(Scorer):
    """Scores with a stored assay model: ``clip(t(μ) + κ·σ_t)`` in [0, 1] (see the module doc)."""

    def __init__(self, path: str, uncertainty_bonus: float = 0.0, sha256: str | None = None) -> None:
        self.model = load_assay_model(path, sha256)  # at build time: a bad file fails the run at once
        self.uncertainty_bonus = uncertainty_bonus

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        with _one_blas_thread():
            return self.model.score(mols, self.uncertainty_bonus)
