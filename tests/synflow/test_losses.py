"""Exact checks of the f-TB loss family: closed forms, DevGrad shifts, on-policy gradients, minimisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

from synflow.losses import AlphaSchedule, divergence, divergence_names, ftb_loss

MEMBERS = [
    ("reverse_kl", {}),
    ("forward_kl", {}),
    ("pearson", {}),
    ("neyman", {}),
    ("hellinger", {}),
    ("js", {}),
    ("tv", {}),
    ("alpha", {"alpha": 0.5}),
    ("alpha", {"alpha": 1.5}),
    ("alpha", {"alpha": -0.7}),
    ("alpha", {"alpha": 0.0}),
    ("alpha", {"alpha": 1.0}),
    ("alpha", {"alpha": 3.0}),
]
IDS = [name + "".join(f"-{v}" for v in p.values()) for name, p in MEMBERS]


def _f_prime(div, u: float) -> float:
    x = torch.tensor(u, dtype=torch.float64, requires_grad=True)
    div.f(x).backward()
    return float(x.grad)


@pytest.mark.parametrize(("name", "params"), MEMBERS, ids=IDS)
def test_loss_matches_quadrature_of_its_definition(name: str, params: dict) -> None:
    div = divergence(name, **params)
    # TV's f is not differentiable at 1: f'(1) is its zero subgradient, as the loss table says.
    f1 = 0.0 if name == "tv" else _f_prime(div, 1.0)
    deltas = [-6.0, -2.5, -0.3, 0.0, 0.2, 1.0, 4.0, 7.5]
    closed = div.loss(torch.tensor(deltas, dtype=torch.float64)).numpy()
    for delta, value in zip(deltas, closed, strict=True):
        integrand = lambda t: _f_prime(div, math.exp(t)) - f1  # noqa: E731
        ref, _ = integrate.quad(integrand, 0.0, delta, epsabs=1e-13, limit=200)
        assert value == pytest.approx(ref, rel=1e-9, abs=1e-11), (name, delta)


@pytest.mark.parametrize(("name", "params"), MEMBERS, ids=IDS)
def test_generator_is_normalised(name: str, params: dict) -> None:
    div = divergence(name, **params)
    assert float(div.f(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-15)
    if name != "tv":
        eps = 1e-4
        second = (_f_prime(div, 1 + eps) - _f_prime(div, 1 - eps)) / (2 * eps)
        assert second == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize(("name", "params"), MEMBERS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_log_z_shift_is_the_brute_force_argmin(name: str, params: dict, seed: int) -> None:
    div = divergence(name, **params)
    rng = np.random.default_rng(seed)
    delta = torch.tensor(rng.normal(0.5, 1.5, size=33 + seed), dtype=torch.float64)

    def objective(c: float) -> float:
        return float(div.loss(delta + c).sum())

    c_closed = float(div.log_z_shift(delta))
    res = optimize.minimize_scalar(objective, bracket=(-5, 5), tol=1e-14)
    # Compare objective values (TV's argmin is an interval for even batches) and, where the
    # objective is strictly convex, the location too.
    assert objective(c_closed) <= res.fun + 1e-10 * (1 + abs(res.fun))
    if name != "tv":
        assert c_closed == pytest.approx(res.x, abs=1e-6)


@pytest.mark.parametrize(("name", "params"), MEMBERS, ids=IDS)
def test_weighted_log_z_shift_is_the_brute_force_weighted_argmin(name: str, params: dict) -> None:
    """The DevGrad shift honours the same weights as the loss: c = argmin Σ w_i L(Δ_i + c)."""
    div = divergence(name, **params)
    rng = np.random.default_rng(7)
    delta = torch.tensor(rng.normal(0.3, 1.2, size=25), dtype=torch.float64)
    weights = torch.tensor(rng.exponential(size=25) ** 2, dtype=torch.float64)

    def objective(c: float) -> float:
        return float((weights * div.loss(delta + c)).sum())

    c_closed = float(div.log_z_shift(delta, weights))
    res = optimize.minimize_scalar(objective, bracket=(-5, 5), tol=1e-14)
    assert objective(c_closed) <= res.fun + 1e-10 * (1 + abs(res.fun))
    unweighted = float(div.log_z_shift(delta))
    assert objective(c_closed) < objective(unweighted), "the weights change the shift"
    # ftb_loss uses the weighted shift: the loss is then minimal over translations of log Z.
    zeros = torch.zeros_like(delta)
    at_shift = ftb_loss(delta, zeros, zeros, div, weights=weights).loss
    moved = ftb_loss(delta, zeros, zeros, div, log_z=torch.tensor(c_closed + 0.05), weights=weights).loss
    assert float(at_shift) <= float(moved) + 1e-12


@pytest.mark.parametrize("k", [2e-6, 1e-4, 1e-2])
def test_alpha_shift_near_one_is_exact_in_float32(k: float) -> None:
    """Near α = 1 the shift divides by k = α − 1; computed in float64 it stays exact for float32 input."""
    rng = np.random.default_rng(3)
    delta64 = torch.tensor(rng.normal(0.0, 3.0, size=64), dtype=torch.float64)
    delta32 = delta64.float()
    div = divergence("alpha", alpha=1 + k)
    exact = -(torch.logsumexp(k * delta32.double(), 0) - math.log(64)) / k
    assert float(div.log_z_shift(delta32)) == pytest.approx(float(exact), abs=1e-5)
    assert div.log_z_shift(delta32).dtype == torch.float32


def _two_mode_target(n: int = 30) -> torch.Tensor:
    y = torch.arange(n, dtype=torch.float64)
    p = torch.exp(-0.5 * ((y - 6) / 2.0) ** 2) + 0.6 * torch.exp(-0.5 * ((y - 21) / 2.5) ** 2) + 0.01
    return p / p.sum()


@pytest.mark.parametrize(("name", "params"), MEMBERS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_policy_gradient_is_the_divergence_gradient(name: str, params: dict, seed: int) -> None:
    """E_{p_θ}[∇θ L_f(Δ)] (weights p_θ detached, as a sampler would) = ∇θ Σ p* f(p_θ/p*), exactly."""
    div = divergence(name, **params)
    target = _two_mode_target()
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(target.numel(), dtype=torch.float64, generator=gen).requires_grad_()

    log_p = torch.log_softmax(theta, 0)
    expected_loss = (log_p.exp().detach() * div.loss(log_p - target.log())).sum()
    (grad_loss,) = torch.autograd.grad(expected_loss, theta)

    p = torch.softmax(theta, 0)
    d_f = (target * div.f(p / target)).sum()
    (grad_div,) = torch.autograd.grad(d_f, theta)

    assert torch.linalg.vector_norm(grad_div) > 1e-6
    rel = torch.linalg.vector_norm(grad_loss - grad_div) / torch.linalg.vector_norm(grad_div)
    assert float(rel) < 1e-10


@pytest.mark.parametrize(("name", "params"), MEMBERS[:9], ids=IDS[:9])
def test_off_policy_fit_from_uniform_samples_reaches_the_target(name: str, params: dict) -> None:
    """Same minimiser off-policy: a free categorical fitted on uniform samples converges to p*."""
    div = divergence(name, **params)
    torch.manual_seed(0)
    target = _two_mode_target().float()
    log_r = (target * 17.0).log()  # unnormalised reward: log Z must be learned
    logits = torch.zeros(target.numel(), requires_grad=True)
    log_z = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([{"params": [logits], "lr": 0.05}, {"params": [log_z], "lr": 0.1}])
    for step in range(3000):
        y = torch.randint(0, target.numel(), (256,))
        log_pf = torch.log_softmax(logits, 0)[y]
        out = ftb_loss(log_pf, torch.zeros_like(log_pf), log_r[y], div, log_z=log_z)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 100 == 99:
            tv = 0.5 * (torch.softmax(logits.detach(), 0) - target).abs().sum()
            if tv < 0.01:
                break
    tv = float(0.5 * (torch.softmax(logits.detach(), 0) - target).abs().sum())
    assert tv < 0.01, f"{name}: total variation {tv:.4f} after {step + 1} steps"
    assert float(log_z) == pytest.approx(math.log(17.0), abs=0.05)


def _discretised_gaussian(mu: torch.Tensor, log_sigma: torch.Tensor, n: int) -> torch.Tensor:
    y = torch.arange(n, dtype=torch.float64)
    return torch.log_softmax(-0.5 * ((y - mu) / log_sigma.exp()) ** 2, 0)


def _fit_restricted(name: str, target: torch.Tensor, start_mu: float) -> torch.Tensor:
    """Minimise E_{p_θ}[L_f(Δ)] on-policy (exact expectation) over a one-Gaussian model."""
    div = divergence(name)
    mu = torch.tensor(start_mu, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(6.0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=0.05)
    for _ in range(1500):
        log_p = _discretised_gaussian(mu, log_sigma, target.numel())
        loss = (log_p.exp().detach() * div.loss(log_p - target.log())).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _discretised_gaussian(mu, log_sigma, target.numel()).exp().detach()


def _two_separated_modes(n: int = 40) -> torch.Tensor:
    y = torch.arange(n, dtype=torch.float64)
    p = torch.exp(-0.5 * ((y - 10) / 2.0) ** 2) + torch.exp(-0.5 * ((y - 29) / 2.0) ** 2) + 1e-4
    return p / p.sum()


@pytest.mark.parametrize("name", ["reverse_kl", "pearson", "forward_kl", "neyman", "hellinger"])
def test_mode_behaviour_on_a_restricted_model(name: str) -> None:
    """Measured: seeking members put one Gaussian on one mode, covering members spread over both."""
    target = _two_separated_modes()
    # The same start for every member: a wide Gaussian a little left of the centre.
    p = _fit_restricted(name, target, start_mu=12.0)
    left, right = float(p[:20].sum()), float(p[20:].sum())
    if name in ("reverse_kl", "pearson"):
        assert max(left, right) > 0.95, f"{name} should collapse on one mode: {left:.3f}/{right:.3f}"
    else:
        assert min(left, right) > 0.3, f"{name} should cover both modes: {left:.3f}/{right:.3f}"


@pytest.mark.parametrize(("name", "params"), MEMBERS, ids=IDS)
def test_float32_is_finite_for_large_residuals(name: str, params: dict) -> None:
    div = divergence(name, **params)
    delta = torch.tensor([-1000.0, -300.0, -90.0, -1.0, 0.0, 1.0, 90.0, 300.0, 1000.0], requires_grad=True)
    loss = div.loss(delta)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and (loss >= 0).all()
    assert torch.isfinite(delta.grad).all()
    assert torch.isfinite(div.log_z_shift(delta))
    out = ftb_loss(delta, torch.zeros_like(delta), torch.zeros_like(delta), div)
    assert torch.isfinite(out.loss)


def test_clamped_tail_is_a_tangent_continuation() -> None:
    div = divergence("pearson", max_exponent=10.0)
    x = torch.tensor([9.999, 10.0, 10.001, 12.0], dtype=torch.float64, requires_grad=True)
    loss = div.loss(x)
    loss.sum().backward()
    slope = math.expm1(10.0)
    assert float(x.grad[2]) == pytest.approx(slope, rel=1e-9)
    assert float(x.grad[3]) == pytest.approx(slope, rel=1e-9)
    assert float(loss[3] - loss[1]) == pytest.approx(2 * slope, rel=1e-9)
    assert float(x.grad[0]) == pytest.approx(slope, rel=1e-2)  # continuous derivative


def test_devgrad_loss_is_translation_invariant_in_log_z() -> None:
    torch.manual_seed(0)
    log_pf, log_pb, log_r = torch.randn(3, 50, dtype=torch.float64)
    for name in divergence_names():
        div = divergence(name, alpha=0.3) if name == "alpha" else divergence(name)
        a = ftb_loss(log_pf, log_pb, log_r, div)
        b = ftb_loss(log_pf + 7.0, log_pb, log_r, div)
        assert float(a.loss) == pytest.approx(float(b.loss), rel=1e-9, abs=1e-12), name
        assert float(b.log_z) == pytest.approx(float(a.log_z) - 7.0, abs=1e-9), name


def test_learned_log_z_receives_the_gradient_and_zero_residual_gives_zero_loss() -> None:
    log_pf = torch.tensor([-1.0, -2.0, -3.0])
    log_r = log_pf + 2.0
    log_z = torch.tensor(2.0, requires_grad=True)
    out = ftb_loss(log_pf, torch.zeros(3), log_r, divergence("forward_kl"), log_z=log_z)
    assert float(out.loss) == 0.0
    out = ftb_loss(log_pf, torch.zeros(3), log_r, divergence("forward_kl"), log_z=log_z + 0.5)
    out.loss.backward()
    assert float(log_z.grad) > 0
    assert torch.allclose(out.delta, torch.full((3,), 0.5))


def test_per_trajectory_log_z_and_weights() -> None:
    div = divergence("reverse_kl")
    delta = torch.tensor([1.0, -2.0])
    log_z = torch.tensor([0.5, 0.0])
    out = ftb_loss(delta, torch.zeros(2), torch.zeros(2), div, log_z=log_z, weights=torch.tensor([3.0, 1.0]))
    assert float(out.loss) == pytest.approx((3 * 0.5 * 1.5**2 + 0.5 * 4.0) / 4)


def test_tempering_an_alpha_member_is_a_scaled_alpha_member() -> None:
    """(1/t)·L_α(tΔ) = t·L_{α'}(Δ) with α' = 1 + t(α − 1): tempering softens the exponential tails
    of a strongly seeking or covering member into a milder member of the same family, same minimiser.
    Checked against the closed form of the other member, not against the tempered formula itself."""
    delta = torch.tensor([0.3, -1.2, 2.0, -3.5], dtype=torch.float64)
    zeros = torch.zeros(4, dtype=torch.float64)
    log_z = torch.tensor(0.1, dtype=torch.float64)
    for alpha, t in [(2.0, 0.5), (-1.0, 0.25), (0.5, 2.0)]:
        tempered = ftb_loss(delta, zeros, zeros, divergence("alpha", alpha=alpha), log_z=log_z, temper=t)
        milder = ftb_loss(delta, zeros, zeros, divergence("alpha", alpha=1 + t * (alpha - 1)), log_z=log_z)
        assert float(tempered.loss) == pytest.approx(t * float(milder.loss), rel=1e-12)
        # DevGrad: the tempered shift is the milder member's shift (the same minimiser over log Z).
        dev_t = ftb_loss(delta, zeros, zeros, divergence("alpha", alpha=alpha), temper=t)
        dev_m = ftb_loss(delta, zeros, zeros, divergence("alpha", alpha=1 + t * (alpha - 1)))
        assert float(dev_t.log_z) == pytest.approx(float(dev_m.log_z), rel=1e-9)
    div = divergence("pearson")
    with pytest.raises(ValueError, match="temper"):
        ftb_loss(delta, zeros, zeros, div, temper=0.0)


def test_alpha_limits_match_named_members() -> None:
    delta = torch.linspace(-4, 4, 17, dtype=torch.float64)
    for alpha, name in [(0.0, "forward_kl"), (1.0, "reverse_kl"), (2.0, "pearson"), (-1.0, "neyman"),
                        (0.5, "hellinger")]:
        a = divergence("alpha", alpha=alpha).loss(delta)
        b = divergence(name).loss(delta)
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14), name
    near = divergence("alpha", alpha=1 + 1e-9).loss(delta)
    assert torch.allclose(near, 0.5 * delta**2, rtol=1e-7)
    c_near = divergence("alpha", alpha=1 + 1e-8).log_z_shift(delta + 0.3)
    assert float(c_near) == pytest.approx(-float((delta + 0.3).mean()), abs=1e-6)


def test_table_closed_forms() -> None:
    """The loss table of DESIGN.md, term by term."""
    d = torch.linspace(-3, 3, 13, dtype=torch.float64)
    table = {
        "reverse_kl": 0.5 * d**2,
        "forward_kl": torch.exp(-d) + d - 1,
        "pearson": torch.exp(d) - d - 1,
        "neyman": (torch.exp(-2 * d) + 2 * d - 1) / 4,
        "hellinger": 4 * torch.exp(-d / 2) + 2 * d - 4,
        "tv": d.abs(),
    }
    for name, expected in table.items():
        assert torch.allclose(divergence(name).loss(d), expected, rtol=1e-12, atol=1e-13), name


def test_divergence_rejects_bad_names_and_params() -> None:
    with pytest.raises(ValueError, match="unknown divergence 'kl'"):
        divergence("kl")
    with pytest.raises(ValueError, match="needs the parameter alpha"):
        divergence("alpha")
    with pytest.raises(ValueError, match="takes no parameter"):
        divergence("js", alpha=0.5)
    with pytest.raises(ValueError, match="finite"):
        divergence("alpha", alpha=float("nan"))


def test_alpha_schedule() -> None:
    assert AlphaSchedule(0.8)(123) == 0.8
    lin = AlphaSchedule(0.75, 1.25, steps=100, kind="linear")
    assert lin(0) == 0.75 and lin(50) == pytest.approx(1.0) and lin(100) == 1.25 and lin(1000) == 1.25
    cos = AlphaSchedule(0.75, 1.25, steps=100, kind="cosine")
    assert cos(0) == pytest.approx(0.75) and cos(50) == pytest.approx(1.0) and cos(100) == pytest.approx(1.25)
    assert cos(10) < lin(10)
    with pytest.raises(ValueError, match="unknown schedule kind"):
        AlphaSchedule(0.5, 1.0, 10, kind="step")  # type: ignore[arg-type]
