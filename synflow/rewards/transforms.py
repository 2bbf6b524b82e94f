"""Transforms that shape a raw value (a descriptor, an affinity, a plugin's output) into [0, 1].

The sigmoid family follows REINVENT 4's parameterisation (the one its users know):

* ``sigmoid(low, high, k)``: ``1 / (1 + 10^(-10 k (x - (low + high)/2) / (high - low)))``;
  0.5 at the midpoint, ≈0.947 at ``high`` (≈0.053 at ``low``) for REINVENT's default
  ``k = 0.25``; larger ``k`` is steeper.
* ``reverse_sigmoid``: ``1 - sigmoid``.
* ``double_sigmoid(low, high, coef_div, coef_si, coef_se)``: a rising sigmoid centred on ``low``
  (slope ``coef_si / coef_div`` in base-10 units) left of the midpoint and a falling one centred on
  ``high`` (slope ``coef_se / coef_div``) right of it: ≈1 inside ``[low, high]``.
* ``step(low, high)``: 1 inside ``[low, high]``, else 0; ``left_step(low)``: 1 for ``x <= low``;
  ``right_step(high)``: 1 for ``x >= high``.

Two more, from GuacaMol's score modifiers:

* ``gaussian(low, high, sigma)``: 1 inside the window ``[low, high]`` and a Gaussian decay of width
  ``sigma`` outside (``low == high`` is the plain Gaussian bell; ``low = -inf`` gives GuacaMol's
  MinGaussian, ``high = +inf`` its MaxGaussian).
* ``clip(low, high)``: a linear ramp, 0 at ``low`` and 1 at ``high``, clipped to [0, 1];
  ``low > high`` gives a falling ramp (e.g. a docking affinity, where more negative is better).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, WrapValidator, model_validator

from synflow.rewards.tagged import tagged_validator


class _TransformBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Map raw values (float64, any shape) to shaped values in [0, 1]; NaN stays NaN."""
        raise NotImplementedError


def _base10_sigmoid(h: np.ndarray) -> np.ndarray:
    """``1 / (1 + 10^-h)``, computed without overflow."""
    z = np.clip(h * math.log(10.0), -700.0, 700.0)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class SigmoidTransform(_TransformBase):
    """Rises from 0 to 1 around the midpoint of ``[low, high]`` (REINVENT's ``sigmoid``)."""

    type: Literal["sigmoid"] = "sigmoid"
    low: float
    high: float
    k: float = Field(0.25, gt=0, description="steepness; REINVENT's default 0.25")

    def apply(self, x: np.ndarray) -> np.ndarray:
        centred = x - (self.high + self.low) / 2.0
        if self.high == self.low:
            return np.where(np.isnan(x), np.nan, (centred > 0).astype(float))
        return _base10_sigmoid(10.0 * self.k * centred / (self.high - self.low))


class ReverseSigmoidTransform(SigmoidTransform):
    """Falls from 1 to 0 around the midpoint of ``[low, high]`` (REINVENT's ``reverse_sigmoid``)."""

    type: Literal["reverse_sigmoid"] = "reverse_sigmoid"  # type: ignore[assignment]

    def apply(self, x: np.ndarray) -> np.ndarray:
        return 1.0 - super().apply(x)


class DoubleSigmoidTransform(_TransformBase):
    """≈1 inside ``[low, high]``, sigmoid flanks outside (REINVENT's ``double_sigmoid``)."""

    type: Literal["double_sigmoid"] = "double_sigmoid"
    low: float
    high: float
    coef_div: float = Field(100.0, gt=0)
    coef_si: float = Field(150.0, gt=0)
    coef_se: float = Field(150.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DoubleSigmoidTransform:
        if self.low > self.high:
            raise ValueError("double_sigmoid needs low <= high")
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        centre = (self.low + self.high) / 2.0
        left = _base10_sigmoid((x - self.low) * self.coef_si / self.coef_div)
        right = 1.0 - _base10_sigmoid((x - self.high) * self.coef_se / self.coef_div)
        return np.where(x < centre, left, right)


class StepTransform(_TransformBase):
    """1 for ``low <= x <= high``, else 0 (REINVENT's ``step``)."""

    type: Literal["step"] = "step"
    low: float
    high: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        inside = (x >= self.low) & (x <= self.high)
        return np.where(np.isnan(x), np.nan, inside.astype(float))


class LeftStepTransform(_TransformBase):
    """1 for ``x <= low``, else 0 (REINVENT's ``left_step``)."""

    type: Literal["left_step"] = "left_step"
    low: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.nan, (x <= self.low).astype(float))


class RightStepTransform(_TransformBase):
    """1 for ``x >= high``, else 0 (REINVENT's ``right_step``)."""

    type: Literal["right_step"] = "right_step"
    high: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.nan, (x >= self.high).astype(float))


class GaussianTransform(_TransformBase):
    """1 inside ``[low, high]``, ``exp(-d²/(2σ²))`` at a distance ``d`` outside it."""

    type: Literal["gaussian"] = "gaussian"
    low: float = Field(description="start of the window scored 1 (may be -inf)")
    high: float = Field(description="end of the window scored 1 (may be +inf)")
    sigma: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> GaussianTransform:
        if self.low > self.high:
            raise ValueError("gaussian needs low <= high")
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        distance = np.maximum(self.low - x, 0.0) + np.maximum(x - self.high, 0.0)
        return np.exp(-0.5 * (distance / self.sigma) ** 2)


class ClipTransform(_TransformBase):
    """Linear ramp: 0 at ``low``, 1 at ``high``, clipped to [0, 1]; ``low > high`` falls."""

    type: Literal["clip"] = "clip"
    low: float
    high: float

    @model_validator(mode="after")
    def _distinct(self) -> ClipTransform:
        if self.low == self.high:
            raise ValueError("clip needs low != high")
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.low) / (self.high - self.low), 0.0, 1.0)


def transform_registry() -> Mapping[str, type[_TransformBase]]:
    """Every transform type by its ``type`` name (an immutable mapping of classes)."""
    classes: list[type[_TransformBase]] = [
        SigmoidTransform, ReverseSigmoidTransform, DoubleSigmoidTransform, StepTransform,
        LeftStepTransform, RightStepTransform, GaussianTransform, ClipTransform,
    ]
    return MappingProxyType({c.model_fields["type"].default: c for c in classes})


TransformConfig = Annotated[
    SigmoidTransform | ReverseSigmoidTransform | DoubleSigmoidTransform | StepTransform
    | LeftStepTransform | RightStepTransform | GaussianTransform | ClipTransform,
    WrapValidator(tagged_validator(transform_registry)),
]
