"""User plugins: a python function or an external command, each with a timeout.

A plugin that raises, hangs, returns NaN or returns the wrong number of values fails loudly with a
``RewardPluginError`` naming the component; it never becomes a silent zero.
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


def load_target(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, attribute)
    if not callable(fn):
        raise TypeError(f"{target} is not callable")
    return fn


def check_values(name: str, values: Any, expected: int) -> np.ndarray:
    """Convert a plugin's output to float64, failing loudly on anything but ``expected`` numbers."""
    try:
        array = np.asarray(list(values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RewardPluginError(name, f"returned values that are not numbers ({exc})") from exc
    if array.ndim != 1 or len(array) != expected:
        raise RewardPluginError(name, f"returned {array.size} values for {expected} molecules")
    bad = [i for i, v in enumerate(array) if not math.isfinite(v)]
    if bad:
        raise RewardPluginError(name, f"returned NaN or infinity for molecule(s) at {bad[:10]}")
    return array


class PythonPlugin(Scorer):
    """Calls ``fn(smiles: list[str], **kwargs) -> list[float]`` once per batch, in a worker thread.

    The timeout raises ``RewardPluginError``; Python cannot kill the thread, so a hung function
    keeps its (daemon) thread until the process ends — the run stops with the error instead.
    """

    def __init__(self, name: str, target: str, kwargs: dict[str, object], timeout_s: float) -> None:
        self.name = name
        self._target = target
        self._kwargs = kwargs
        self._timeout = timeout_s
        try:
            self._fn = load_target(target)
        except Exception as exc:
            raise RewardPluginError(name, f"cannot load {target}: {exc!r}") from exc

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        if not smiles:
            return np.zeros(0)
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["values"] = self._fn(list(smiles), **self._kwargs)
            except BaseException as exc:  # re-raised in the caller's thread
                result["error"] = exc

        thread = threading.Thread(target=run, name=f"reward-plugin-{self.name}", daemon=True)
        thread.start()
        thread.join(self._timeout)
        if thread.is_alive():
            raise RewardPluginError(self.name, f"{self._target} timed out after {self._timeout:g} s")
        if "error" in result:
            exc = result["error"]
            raise RewardPluginError(self.name, f"{self._target} raised {exc!r}") from exc
        return check_values(self.name, result["values"], len(smiles))


class CommandPlugin(Scorer):
    """Runs ``command`` once per batch: SMILES on stdin (one per line), one float per stdout line."""

    def __init__(
        self, name: str, command: Sequence[str], timeout_s: float, cwd: str | None, env: dict[str, str],
    ) -> None:
        self.name = name
        self._command = list(command)
        self._timeout = timeout_s
        self._cwd = cwd
        self._env = {**os.environ, **env} if env else None

    def __call__(self, mols: Sequence[Chem.Mol], smiles: Sequence[str]) -> np.ndarray:
        if not smiles:
            return np.zeros(0)
        completed = self._run("".join(f"{s}\n" for s in smiles))
        lines = [line for line in completed.stdout.splitlines() if line.strip()]
        try:
            values = [float(line.split()[0]) for line in lines]
        except ValueError as exc:
            raise RewardPluginError(self.name, f"printed a line that is not a number ({exc})") from exc
        return check_values(self.name, values, len(smiles))

    def _run(self, stdin: str) -> subprocess.CompletedProcess[str]:
        try:
            completed = subprocess.run(
                self._command, input=stdin, capture_output=True, text=True, timeout=self._timeout,
                cwd=self._cwd, env=self._env, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            message = f"{self._command[0]} timed out after {self._timeout:g} s"
            raise RewardPluginError(self.name, message) from exc
        except OSError as exc:
            raise RewardPluginError(self.name, f"cannot run {self._command[0]}: {exc}") from exc
        if completed.returncode != 0:
            tail = completed.stderr.strip()[-500:]
            raise RewardPluginError(
                self.name, f"{self._command[0]} exited with status {completed.returncode}: {tail}",
            )
        return completed
