"""The f-Trajectory-Balance (f-TB) loss family.

For a model p_θ and an unnormalised target p* ∝ R, a trajectory τ ending in x has the residual

    Δ(τ) = log Z + Σ log P_F − log R(x) − Σ log P_B          (model minus target)

and for a convex f with f(1) = 0, f''(1) = 1 the loss is

    L_f(Δ) = ∫₀^Δ (f'(eᵗ) − f'(1)) dt.

On-policy its expected autograd gradient is ∇θ D_f(p_θ‖p*); off-policy L_f ≥ 0 keeps the same
global minimiser p_θ = p*. ``Divergence.log_z_shift`` gives the DevGrad batch estimate
c = argmin_c Σ L_f(Δ_i + c), so log Z can be learned or estimated per batch.

Numerical safety (float32, |Δ| up to 1e3): the exponential members (the α family, which includes
reverse/forward KL, Pearson, Neyman and Hellinger) compute L(Δ) = Δ²·g(kΔ) with k = α − 1 and
g(x) = (eˣ − 1 − x)/x². Past x = ``max_exponent`` (default 30, where eˣ ≈ 1e13) the loss is continued
by its tangent line, a C¹ convex extension with the same minimiser: without it e^{kΔ} overflows float32
past kΔ ≈ 88 and one bad trajectory turns the whole batch into inf/nan. The batch shifts use
logsumexp, which never overflows. Jensen-Shannon uses softplus/log-sigmoid forms and a dilogarithm
series that converges on the whole real line after the inversion formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

__all__ = [
    "AlphaDivergence",
    "AlphaSchedule",
    "Divergence",
    "FTBOutput",
    "JensenShannon",
    "TotalVariation",
    "divergence",
    "divergence_names",
    "ftb_loss",
]

DEFAULT_MAX_EXPONENT = 30.0


class Divergence(Protocol):
    """One member of the f-TB family: its generator, its loss on Δ and its DevGrad batch shift."""

    @property
    def name(self) -> str: ...

    def f(self, u: Tensor) -> Tensor:
        """The convex generator f(u), f(1) = 0, f''(1) = 1."""
        ...

    def loss(self, delta: Tensor) -> Tensor:
        """Elementwise L_f(Δ), Δ = log p_model − log p_target."""
        ...

    def log_z_shift(self, delta: Tensor, weights: Tensor | None = None) -> Tensor:
        """c = argmin_c Σ_i w_i L_f(Δ_i + c) over the batch (w = 1 without weights; a detached 0-d
        tensor of ``delta``'s dtype, computed in float64)."""
        ...


# ---------------------------------------------------------------------------------------------
# The α family: f(u) = (u^α − αu − (1 − α)) / (α(α − 1)); reverse KL (α=1), forward KL (α=0),
# Pearson (α=2), Neyman (α=−1), Hellinger (α=½) are members.
# ---------------------------------------------------------------------------------------------

# Taylor coefficients of g(x) = (eˣ − 1 − x)/x² = Σ xⁿ/(n+2)!, used near x = 0 where the closed
# form cancels catastrophically.
_G_SERIES = tuple(1.0 / math.factorial(n + 2) for n in range(8))


def _g(x: Tensor) -> Tensor:
    """g(x) = (eˣ − 1 − x)/x², exact to machine precision including x → 0."""
    small = x.abs() < 1e-2
    xs = torch.where(small, x, torch.zeros_like(x))
    series = torch.zeros_like(x)
    for c in reversed(_G_SERIES):
        series = series * xs + c
    xl = torch.where(small, torch.ones_like(x), x)
    closed = (torch.expm1(xl) - xl) / (xl * xl)
    return torch.where(small, series, closed)


@dataclass(frozen=True)
class AlphaDivergence:
    """The α-divergence. L(Δ) = (e^{kΔ} − 1 − kΔ)/k² with k = α − 1 (½Δ² at α = 1)."""

    alpha: float
    name: str = "alpha"
    max_exponent: float = DEFAULT_MAX_EXPONENT

    @property
    def k(self) -> float:
        return self.alpha - 1.0

    def f(self, u: Tensor) -> Tensor:
        a = self.alpha
        if a == 1.0:
            return torch.xlogy(u, u) - u + 1
        if a == 0.0:
            return u - 1 - torch.log(u)
        return (u.pow(a) - a * u - (1 - a)) / (a * (a - 1))

    def loss(self, delta: Tensor) -> Tensor:
        k = self.k
        if k == 0.0:
            return 0.5 * delta * delta
        x = k * delta
        x_max = self.max_exponent
        inside = _g(torch.clamp(x, max=x_max)) * torch.clamp(x, max=x_max) ** 2 / (k * k)
        if not bool((x > x_max).any()):
            return inside
        # Tangent-line continuation past kΔ = x_max: L(Δ₀) + L'(Δ₀)(Δ − Δ₀), L'(Δ) = (e^{kΔ} − 1)/k.
        d0 = x_max / k
        l0 = math.expm1(x_max) / (k * k) - x_max / (k * k)
        slope = math.expm1(x_max) / k
        return torch.where(x > x_max, l0 + slope * (delta - d0), inside)

    def log_z_shift(self, delta: Tensor, weights: Tensor | None = None) -> Tensor:
        # In float64: near α = 1 the shift divides a log-mean-exp by k = α − 1, and float32's
        # rounding of kΔ (≈1e-7 relative) divided by a small k is a large error (0.044 at k = 2e-6).
        d = delta.detach().to(torch.float64)
        w = _unit_weights(d, weights)
        k = self.k
        mean = (w * d).sum()
        if abs(k) < 1e-9:
            # −(log Σ w e^{kΔ})/k → −mean Δ − k·var Δ/2 as k → 0; the next term is O(k²).
            return (-(mean + 0.5 * k * (w * (d - mean) ** 2).sum())).to(delta.dtype)
        log_mean_exp = torch.logsumexp(k * d + torch.log(w), dim=0)
        return (-log_mean_exp / k).to(delta.dtype)


# ---------------------------------------------------------------------------------------------
# Jensen-Shannon: f(u) = 2[u log u − (1+u) log((1+u)/2)], f'(u) = 2 log(2u/(1+u)),
# L'(Δ) = 2(log 2 + log σ(Δ)), L(Δ) = 2Δ log 2 − 2 Li₂(−e^{−Δ}) − π²/6.
# ---------------------------------------------------------------------------------------------

# Li₂(z) = Σ_{n≥0} B_n uⁿ⁺¹/(n+1)! with u = −log(1 − z): converges for |u| < 2π; here |u| ≤ log 2.
_BERNOULLI_OVER_FACTORIAL = (
    1.0,  # B0/1!
    -1.0 / 4,  # B1/2!
    1.0 / 36,  # B2/3!
    -1.0 / 3600,  # B4/5!
    1.0 / 211680,  # B6/7!
    -1.0 / 10886400,  # B8/9!
    1.0 / 526901760,  # B10/11!
    -4.064761645144225e-11,  # B12/13!
    8.921691020456453e-13,  # B14/15!
    -1.9939295860721074e-14,  # B16/17!
    4.5189800296199183e-16,  # B18/19!
)
_BERNOULLI_POWERS = (1, 2, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def _dilog_neg_exp_neg(t: Tensor) -> Tensor:
    """Li₂(−e^{−t}) for t ≥ 0, via the Bernoulli series in u = −log(1 + e^{−t}) = −softplus(−t)."""
    u = -torch.nn.functional.softplus(-t)
    out = torch.zeros_like(t)
    for coef, power in zip(_BERNOULLI_OVER_FACTORIAL, _BERNOULLI_POWERS, strict=True):
        out = out + coef * u.pow(power)
    return out


@dataclass(frozen=True)
class JensenShannon:
    """Jensen-Shannon divergence (scaled so f''(1) = 1): balanced between covering and seeking."""

    name: str = "js"
    max_iterations: int = 100

    def f(self, u: Tensor) -> Tensor:
        return 2 * (torch.xlogy(u, u) - (1 + u) * torch.log((1 + u) / 2))

    def loss(self, delta: Tensor) -> Tensor:
        # Δ ≥ 0: 2Δ log 2 − 2Li₂(−e^{−Δ}) − π²/6.
        # Δ < 0: the inversion Li₂(−x) = −π²/6 − ½log²x − Li₂(−1/x) with x = e^{−Δ} gives
        #        2Δ log 2 + Δ² + π²/6 + 2Li₂(−e^{Δ}); both branches evaluate the series at |Δ|.
        # |Δ| through where, not abs(): abs has a zero subgradient at 0, which would drop the
        # series' derivative (log 2) there and give L'(0) = 2 log 2 instead of 0.
        a = torch.where(delta >= 0, delta, -delta)
        li = _dilog_neg_exp_neg(a)
        pos = 2 * delta * math.log(2) - 2 * li - math.pi**2 / 6
        neg = 2 * delta * math.log(2) + delta * delta + math.pi**2 / 6 + 2 * li
        return torch.where(delta >= 0, pos, neg)

    def log_z_shift(self, delta: Tensor, weights: Tensor | None = None) -> Tensor:
        """The root of Σ w_i log(2σ(Δ_i + c)) = 0: bisection on the bracket [−max Δ, −min Δ], then Newton."""
        d = delta.detach().to(torch.float64)
        w = _unit_weights(d, weights)
        lo, hi = -d.max(), -d.min()

        def grad(c: Tensor) -> Tensor:
            return (w * (math.log(2) + torch.nn.functional.logsigmoid(d + c))).sum()

        for _ in range(self.max_iterations):
            mid = 0.5 * (lo + hi)
            if grad(mid) > 0:
                hi = mid
            else:
                lo = mid
            if hi - lo < 1e-12 * (1 + mid.abs()):
                break
        c = 0.5 * (lo + hi)
        for _ in range(2):  # Newton polish; the derivative Σσ(−(Δ+c)) > 0 is well behaved here.
            slope = (w * torch.sigmoid(-(d + c))).sum()
            if slope > 0:
                c = c - grad(c) / slope
        return c.to(delta.dtype)


@dataclass(frozen=True)
class TotalVariation:
    """Total variation, f(u) = |u − 1|, L(Δ) = |Δ|: robust to outlying trajectories."""

    name: str = "tv"

    def f(self, u: Tensor) -> Tensor:
        return (u - 1).abs()

    def loss(self, delta: Tensor) -> Tensor:
        return delta.abs()

    def log_z_shift(self, delta: Tensor, weights: Tensor | None = None) -> Tensor:
        # −(weighted median of Δ): where the weight below and above balance. When a whole interval
        # minimises Σ w|Δ_i + c| (an even split), take the midpoint of its ends.
        d = delta.detach().to(torch.float64).flatten()
        order = torch.argsort(d)
        d = d[order]
        w = _unit_weights(d, None if weights is None else weights.detach().flatten()[order])
        below = torch.cumsum(w, 0)
        lower = int(torch.searchsorted(below, torch.tensor(0.5, dtype=below.dtype) - 1e-12))
        upper = int(torch.searchsorted(below, torch.tensor(0.5, dtype=below.dtype) + 1e-12))
        upper = min(upper, d.numel() - 1)
        return (-0.5 * (d[lower] + d[upper])).to(delta.dtype)


_ALPHA_MEMBERS = {"reverse_kl": 1.0, "forward_kl": 0.0, "pearson": 2.0, "neyman": -1.0, "hellinger": 0.5}


def divergence_names() -> tuple[str, ...]:
    """Every name ``divergence`` accepts."""
    return (*_ALPHA_MEMBERS, "js", "tv", "alpha")


def divergence(name: str, **params: float) -> Divergence:
    """A member of the f-TB family by name: ``divergence("forward_kl")``, ``divergence("alpha", alpha=0.5)``.

    ``max_exponent`` (the α family only) sets where the loss continues linearly, see the module doc.
    """
    if name in _ALPHA_MEMBERS:
        _reject_params(name, params, allowed={"max_exponent"})
        return AlphaDivergence(alpha=_ALPHA_MEMBERS[name], name=name, **params)
    if name == "alpha":
        if "alpha" not in params:
            raise ValueError("divergence 'alpha' needs the parameter alpha (any real number)")
        _reject_params(name, params, allowed={"alpha", "max_exponent"})
        alpha = float(params.pop("alpha"))
        if not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite real number, got {alpha}")
        return AlphaDivergence(alpha=alpha, name="alpha", **params)
    if name == "js":
        _reject_params(name, params, allowed=set())
        return JensenShannon()
    if name == "tv":
        _reject_params(name, params, allowed=set())
        return TotalVariation()
    raise ValueError(f"unknown divergence {name!r}; expected one of {', '.join(divergence_names())}")


def _unit_weights(d: Tensor, weights: Tensor | None) -> Tensor:
    """Weights normalised to sum 1, in ``d``'s dtype (uniform when none are given)."""
    if weights is None:
        return torch.full_like(d, 1.0 / d.numel())
    w = weights.detach().to(d.dtype).flatten()
    if bool((w < 0).any()) or not bool(w.sum() > 0):
        raise ValueError("weights must be non-negative with a positive sum")
    return w / w.sum()


def _reject_params(name: str, params: dict[str, float], allowed: set[str]) -> None:
    extra = set(params) - allowed
    if extra:
        raise ValueError(f"divergence {name!r} takes no parameter(s) {', '.join(sorted(extra))}")


# ---------------------------------------------------------------------------------------------
# The f-TB objective.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FTBOutput:
    """What ``ftb_loss`` returns: the scalar loss, the per-trajectory Δ (log Z included), log Z."""

    loss: Tensor
    delta: Tensor
    log_z: Tensor


def ftb_loss(
    log_pf: Tensor,
    log_pb: Tensor,
    log_reward: Tensor,
    div: Divergence,
    log_z: Tensor | None = None,
    temper: float | None = None,
    weights: Tensor | None = None,
) -> FTBOutput:
    """The f-TB loss of a batch of trajectories.

    Args:
        log_pf: Σ log P_F per trajectory, shape [B].
        log_pb: Σ log P_B per trajectory, shape [B].
        log_reward: log R(x) per trajectory (already β-scaled), shape [B].
        div: the member of the family, from ``divergence``.
        log_z: learned log Z, shape [B] (conditioned per trajectory) or a scalar; ``None`` uses the
            DevGrad estimate c = ``div.log_z_shift`` of the batch (weighted like the loss), detached.
            One shift serves the whole batch, so every trajectory must share one target: DevGrad
            with β varying across the batch is wrong (log Z depends on β) and RunConfig refuses it.
        temper: optional t > 0 for the tempered loss (1/t)·L_f(tΔ + c) (c the shift of tΔ when log Z
            is DevGrad); t < 1 softens the exponential tails of strongly seeking/covering members.
        weights: optional non-negative per-trajectory weights (e.g. importance weights); the loss is
            their weighted mean.
    """
    delta0 = log_pf - log_pb - log_reward
    scale = 1.0 if temper is None else float(temper)
    if scale <= 0:
        raise ValueError(f"temper must be positive, got {temper}")
    if log_z is None:
        shift = div.log_z_shift(scale * delta0.detach(), weights)
        scaled = scale * delta0 + shift
        log_z_value = shift / scale
    else:
        scaled = scale * (delta0 + log_z)
        log_z_value = log_z.detach().mean()
    per_trajectory = div.loss(scaled) / scale
    if weights is None:
        loss = per_trajectory.mean()
    else:
        loss = (weights * per_trajectory).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
    return FTBOutput(loss=loss, delta=scaled / scale, log_z=log_z_value)


ScheduleKind = Literal["constant", "linear", "cosine"]


@dataclass(frozen=True)
class AlphaSchedule:
    """α over training steps: constant, or a linear or cosine anneal from ``start`` to ``end``.

    Annealing α from below 1 (covering, explores) to above 1 (seeking, sharpens) is what keeps the
    α family stable with large reward exponents β.
    """

    start: float
    end: float | None = None
    steps: int = 1
    kind: ScheduleKind = "constant"

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "cosine"):
            raise ValueError(f"unknown schedule kind {self.kind!r}: expected constant, linear or cosine")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")

    def __call__(self, step: int) -> float:
        if self.kind == "constant" or self.end is None:
            return self.start
        t = min(max(step / self.steps, 0.0), 1.0)
        if self.kind == "cosine":
            t = 0.5 * (1 - math.cos(math.pi * t))
        return self.start + (self.end - self.start) * t
