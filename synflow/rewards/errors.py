"""Errors the reward layer raises on purpose (bottom layer: imports only ``results``)."""

from __future__ import annotations

from synflow.rewards.results import RewardBatch


class RewardPluginError(RuntimeError):
    """A user plugin (python function or external command) misbehaved.

    Raised for exceptions, timeouts, NaN, a wrong number of values or values out of range. The
    message always starts with the component's name, so a failed run says which plugin to fix;
    a plugin failure is never turned silently into a zero reward.
    """

    def __init__(self, component: str, message: str) -> None:
        super().__init__(f"reward component {component!r}: {message}")
        self.component = component


class BudgetExhausted(RuntimeError):
    """The oracle budget was reached before every new molecule in a batch could be scored.

    ``batch`` holds the partial result: molecules scored before the budget ran out, cached ones,
    and the rest marked ``scored=False``.
    """

    def __init__(self, budget: int, batch: RewardBatch) -> None:
        super().__init__(f"oracle budget of {budget} unique molecules is exhausted")
        self.budget = budget
        self.batch = batch
