"""User plugins: a python function or an external command, each with timeouts.

A plugin is called once per batch. If that call raises, hangs past ``timeout_s`` or returns NaN,
the failure is pinned on molecules: NaN marks only those molecules, and after an exception or a
timeout each molecule is retried alone under ``molecule_timeout_s``, so one molecule that breaks
the plugin costs only that molecule (reward floor, the reason kept with it). A plugin that fails
for ``SYSTEMATIC_AFTER`` molecules in a row, or for every molecule before it ever succeeded, is
broken, not unlucky: ``RewardPluginError`` naming the component, and the run fails with it. A wrong
number of values is a contract violation and always raises. Failures never become silent zeros.
"""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rdkit import Chem

from synflow.rewards.base import Scorer
from synflow.rewards.errors import RewardPluginError

SYSTEMATIC_AFTER = 5  # failed molecules in a row that mean the plugin, not the molecules, is broken


def load_target(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, attribute)
    if not callable(fn):
        raise TypeError(f"{target} is not callable")
    return fn


def as_values(name: str, values: Any, expected: int) -> np.ndarray:
    """A plugin's output as float64 (NaN allowed), failing loudly on anything but ``expected`` numbers."""
    try:
        array = np.asarray(list(values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RewardPluginError(name, f"returned values that are not numbers ({exc})") from exc
    if array.ndim != 1 or len(array) != expected:
        raise RewardPluginError(name, f"returned {array.size} values for {expected} molecules")
    return array


def check_values(name: str, values: Any, expected: int) -> np.ndarray:
    """``as_values``, and NaN or infinity anywhere raises."""
    array = as_values(name, values, expected)
    bad = [i for i, v in enumerate(array) if not math.isfinite(v)]
    if bad:
        raise RewardPluginError(name, f"returned NaN or infinity for molecule(s) at {bad[:10]}")
    return array


class _MoleculeFailure(Exception):
    """One call failed in a way that may be the molecules' fault (an exception, a timeout)."""


class PluginScorer(Scorer):
    """Batch first, then molecule by molecule where the batch failed (see the module docstring)."""

    name: str
    _timeout: float
    _molecule_timeout: float
    _scored_any: bool = False  # set once any molecule was scored: from then on failures are the molecules'
    _failures_in_a_row: int = 0

    def _call(self, smiles: list[str], timeout: float) -> Any:
        """The plugin's raw output for ``smiles``; raises ``_MoleculeFailure`` or ``RewardPluginError``."""
        raise NotImplementedError

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        values, errors = self.score_with_errors(mols, smiles)
        failed = [e for e in errors if e is not None]
        if failed:
            raise RewardPluginError(self.name, failed[0])
        return values

    def score_with_errors(
        self, mols: Sequence[Chem.Mol], smiles: Sequence[str]
    ) -> tuple[np.ndarray, list[str | None]]:
        smiles = list(smiles)
        if not smiles:
            return np.zeros(0), []
        errors: list[str | None]
        try:
            values = as_values(self.name, self._call(smiles, self._timeout), len(smiles))
        except _MoleculeFailure as batch_failure:
            if len(smiles) > 1:
                return self._one_by_one(smiles)
            values, errors = np.full(1, np.nan), [str(batch_failure)]
        else:
            errors = [None if math.isfinite(v) else f"returned NaN or infinity ({v})" for v in values]
        for i, error in enumerate(errors):
            self._tally(error, i + 1, len(smiles))
        return np.where(np.isfinite(values), values, np.nan), errors

    def _one_by_one(self, smiles: list[str]) -> tuple[np.ndarray, list[str | None]]:
        values = np.full(len(smiles), np.nan)
        errors: list[str | None] = [None] * len(smiles)
        for i, s in enumerate(smiles):
            try:
                value = float(as_values(self.name, self._call([s], self._molecule_timeout), 1)[0])
            except _MoleculeFailure as failure:
                errors[i] = str(failure)
            else:
                if math.isfinite(value):
                    values[i] = value
                else:
                    errors[i] = f"returned NaN or infinity ({value})"
            self._tally(errors[i], i + 1, len(smiles))
        return values, errors

    def _tally(self, error: str | None, tried: int, batch: int) -> None:
        """Raise once failures look systematic: ``SYSTEMATIC_AFTER`` molecules in a row, or every
        molecule tried so far (at most ``SYSTEMATIC_AFTER``) before the plugin ever succeeded."""
        if error is None:
            self._scored_any, self._failures_in_a_row = True, 0
            return
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= SYSTEMATIC_AFTER or (
            not self._scored_any and self._failures_in_a_row >= min(SYSTEMATIC_AFTER, batch)
        ):
            raise RewardPluginError(
                self.name, f"failed for {self._failures_in_a_row} molecule(s) in a row, last: {error}"
            )


class PythonPlugin(PluginScorer):
    """Calls ``fn(smiles: list[str], **kwargs) -> list[float]`` once per batch, in a worker thread.

    Python cannot kill a thread, so a hung function keeps its (daemon) thread until the process
    ends; the caller stops waiting at the timeout, and a function that hangs on every molecule is
    a systematic failure after ``SYSTEMATIC_AFTER`` tries.
    """

    def __init__(self, name: str, target: str, kwargs: dict[str, object], timeout_s: float,
                 molecule_timeout_s: float | None = None) -> None:
        self.name = name
        self._target = target
        self._kwargs = kwargs
        self._timeout = timeout_s
        self._molecule_timeout = molecule_timeout_s or timeout_s
        try:
            self._fn = load_target(target)
        except Exception as exc:
            raise RewardPluginError(name, f"cannot load {target}: {exc!r}") from exc

    def _call(self, smiles: list[str], timeout: float) -> Any:
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["values"] = self._fn(list(smiles), **self._kwargs)
            except BaseException as exc:  # reported in the caller's thread
                result["error"] = exc

        thread = threading.Thread(target=run, name=f"reward-plugin-{self.name}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise _MoleculeFailure(f"{self._target} timed out after {timeout:g} s")
        if "error" in result:
            raise _MoleculeFailure(f"{self._target} raised {result['error']!r}")
        return result["values"]


class CommandPlugin(PluginScorer):
    """Runs ``command`` once per batch: SMILES on stdin (one per line), one float per stdout line."""

    def __init__(
        self, name: str, command: Sequence[str], timeout_s: float, cwd: str | None, env: dict[str, str],
        molecule_timeout_s: float | None = None,
    ) -> None:
        self.name = name
        self._command = list(command)
        self._timeout = timeout_s
        self._molecule_timeout = molecule_timeout_s or timeout_s
        self._cwd = cwd
        self._env = {**os.environ, **env} if env else None

    def _call(self, smiles: list[str], timeout: float) -> Any:
        completed = self._run("".join(f"{s}\n" for s in smiles), timeout)
        lines = [line for line in completed.stdout.splitlines() if line.strip()]
        try:
            return [float(line.split()[0]) for line in lines]
        except ValueError as exc:
            raise RewardPluginError(self.name, f"printed a line that is not a number ({exc})") from exc

    def _run(self, stdin: str, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            completed = subprocess.run(
                self._command, input=stdin, capture_output=True, text=True, timeout=timeout,
                cwd=self._cwd, env=self._env, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise _MoleculeFailure(f"{self._command[0]} timed out after {timeout:g} s") from exc
        except OSError as exc:  # the command is missing: no molecule's fault
            raise RewardPluginError(self.name, f"cannot run {self._command[0]}: {exc}") from exc
        if completed.returncode != 0:
            tail = completed.stderr.strip()[-500:]
            raise _MoleculeFailure(f"{self._command[0]} exited with status {completed.returncode}: {tail}")
        return completed
