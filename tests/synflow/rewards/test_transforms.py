from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from synflow.rewards.transforms import (
    ClipTransform,
    DoubleSigmoidTransform,
    GaussianTransform,
    LeftStepTransform,
    ReverseSigmoidTransform,
    RightStepTransform,
    SigmoidTransform,
    StepTransform,
    transform_registry,
)

X = np.array([-50.0, 0.0, 100.0, 200.0, 250.0, 300.0, 400.0, 500.0, 1e6])


def reinvent_sigmoid(x: float, low: float, high: float, k: float) -> float:
    """REINVENT 4's formula written out: 1 / (1 + 10^(-10 k (x - mid) / (high - low)))."""
    return 1.0 / (1.0 + 10.0 ** (-10.0 * k * (x - (high + low) / 2.0) / (high - low)))


def test_sigmoid_matches_reinvent_formula() -> None:
    t = SigmoidTransform(low=200, high=400, k=0.25)
    expected = [reinvent_sigmoid(x, 200, 400, 0.25) if abs(x) < 1e5 else 1.0 for x in X]
    np.testing.assert_allclose(t.apply(X), expected, rtol=1e-12, atol=1e-300)
    assert t.apply(np.array([300.0]))[0] == pytest.approx(0.5)
    assert t.apply(np.array([400.0]))[0] == pytest.approx(1 / (1 + 10**-1.25))


def test_reverse_sigmoid_is_one_minus_sigmoid() -> None:
    s, r = SigmoidTransform(low=-10, high=-5, k=0.5), ReverseSigmoidTransform(low=-10, high=-5, k=0.5)
    x = np.linspace(-20, 5, 51)
    np.testing.assert_allclose(r.apply(x), 1 - s.apply(x))
    assert r.apply(np.array([-20.0]))[0] > 0.99 and r.apply(np.array([5.0]))[0] < 0.01


def test_double_sigmoid_matches_reinvent_piecewise_definition() -> None:
    t = DoubleSigmoidTransform(low=200, high=500, coef_div=100, coef_si=150, coef_se=150)
    for x in [150.0, 200.0, 250.0, 349.0, 351.0, 450.0, 500.0, 600.0]:
        if x < 350:
            expected = 1 / (1 + 10 ** (-(x - 200) * 150 / 100))
        else:
            expected = 1 - 1 / (1 + 10 ** (-(x - 500) * 150 / 100))
        assert t.apply(np.array([x]))[0] == pytest.approx(expected, rel=1e-12)
    assert t.apply(np.array([350.0]))[0] == pytest.approx(1.0, abs=1e-12)


def test_steps() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, math.nan])
    np.testing.assert_array_equal(StepTransform(low=2, high=3).apply(x)[:4], [0, 1, 1, 0])
    np.testing.assert_array_equal(LeftStepTransform(low=2).apply(x)[:4], [1, 1, 0, 0])
    np.testing.assert_array_equal(RightStepTransform(high=3).apply(x)[:4], [0, 0, 1, 1])
    assert math.isnan(StepTransform(low=2, high=3).apply(x)[4])


def test_gaussian_window_is_one_inside_and_gaussian_outside() -> None:
    t = GaussianTransform(low=2, high=4, sigma=0.5)
    got = t.apply(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_allclose(got, [math.exp(-2), 1, 1, 1, math.exp(-2)])
    half = GaussianTransform(low=-math.inf, high=1.0, sigma=1.0)  # GuacaMol's MinGaussian(1, 1)
    np.testing.assert_allclose(half.apply(np.array([-5.0, 3.0])), [1.0, math.exp(-2)])


def test_clip_rises_and_falls() -> None:
    np.testing.assert_allclose(ClipTransform(low=0, high=0.8).apply(np.array([-1, 0.4, 0.8, 2])),
                               [0, 0.5, 1, 1])
    falling = ClipTransform(low=0.0, high=-12.0)  # the default docking transform
    np.testing.assert_allclose(falling.apply(np.array([3.0, -6.0, -12.0, -15.0])), [0, 0.5, 1, 1])


@pytest.mark.parametrize("name", sorted(transform_registry()))
def test_every_transform_maps_into_unit_interval(name: str) -> None:
    params = {"low": -1.0, "high": 2.0, "k": 0.5, "sigma": 1.0}
    cls = transform_registry()[name]
    t = cls.model_validate({k: v for k, v in params.items() if k in cls.model_fields})
    y = t.apply(np.linspace(-1e4, 1e4, 2001))
    assert np.all((y >= 0) & (y <= 1)) and np.all(np.isfinite(y))


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValidationError):
        ClipTransform(low=1, high=1)
    with pytest.raises(ValidationError):
        GaussianTransform(low=3, high=1, sigma=1)
    with pytest.raises(ValidationError):
        SigmoidTransform(low=0, high=1, k=-1)
