"""Chain / grid precision Gaussians against dense ``MultivariateNormal`` references.

The dense factor ``L`` is built here, in the test only, and the library's O(k)
(chain) and O(k·b²) (grid) answers are compared with
``MultivariateNormal(loc, precision_matrix=L Lᵀ)`` and with the dense
reparameterisation ``z = μ + L⁻ᵀε``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import MultivariateNormal, kl_divergence
from torch.testing import assert_close

from ppl_vae.distributions import (
    ChainPrecisionNormal,
    FullCovarianceNormal,
    GridPrecisionNormal,
    chain_param_count,
    grid_param_count,
    split_chain_params,
    split_grid_params,
    suffix_scan,
)

F64 = torch.float64
CHAIN_SIZES = [1, 2, 20]
GRID_SIZES = [(1, 1), (2, 3), (4, 4), (5, 4)]
BATCHES = [(), (3,), (2, 3)]
CASES = [("chain", k) for k in CHAIN_SIZES] + [("grid", ab) for ab in GRID_SIZES]
EXACT = {"rtol": 1e-5, "atol": 1e-10}


# ----------------------------------------------------------------------------- helpers


def _chain_params(batch, k, gen, dtype=F64):
    """Well-conditioned chain parameters: d in [1, 2], |c| mostly below d."""
    loc = torch.randn(batch + (k,), generator=gen, dtype=dtype)
    diag = 1.0 + torch.rand(batch + (k,), generator=gen, dtype=dtype)
    offdiag = 0.7 * torch.randn(batch + (k - 1,), generator=gen, dtype=dtype)
    return loc, diag, offdiag


def _grid_params(batch, rows, cols, gen, dtype=F64):
    """Well-conditioned grid parameters: unit-ish diagonal blocks, small couplings."""
    loc = torch.randn(batch + (rows * cols,), generator=gen, dtype=dtype)
    blocks = 0.3 * torch.randn(batch + (rows, cols, cols), generator=gen, dtype=dtype)
    diagonal = 1.0 + torch.rand(batch + (rows, cols), generator=gen, dtype=dtype)
    blocks = blocks.tril(-1) + torch.diag_embed(diagonal)
    coupling = 0.4 * torch.randn(batch + (rows - 1, cols, cols), generator=gen, dtype=dtype)
    return loc, blocks, coupling


def _dense_chain_factor(diag, offdiag):
    return torch.diag_embed(diag) + torch.diag_embed(offdiag, offset=-1)


def _dense_grid_factor(blocks, coupling):
    rows, cols = blocks.shape[-3], blocks.shape[-1]
    k = rows * cols
    factor = blocks.new_zeros(blocks.shape[:-3] + (k, k))
    for r in range(rows):
        here = slice(r * cols, (r + 1) * cols)
        factor[..., here, here] = blocks[..., r, :, :].tril()
        if r + 1 < rows:
            below = slice((r + 1) * cols, (r + 2) * cols)
            factor[..., below, here] = coupling[..., r, :, :]
    return factor


def _make(family, size, batch, gen, dtype=F64):
    """``(q, params, dense L)`` for one case."""
    if family == "chain":
        params = _chain_params(batch, size, gen, dtype)
        return ChainPrecisionNormal(*params), params, _dense_chain_factor(*params[1:])
    params = _grid_params(batch, *size, gen, dtype)
    return GridPrecisionNormal(*params), params, _dense_grid_factor(*params[1:])


def _reference(loc, factor):
    return MultivariateNormal(loc, precision_matrix=factor @ factor.mT)


def _dense_reparam(loc, factor, eps):
    """``μ + L⁻ᵀε`` with a dense triangular solve (reference only)."""
    factor = factor.expand(eps.shape[:-1] + factor.shape[-2:])
    solved = torch.linalg.solve_triangular(factor.mT, eps.unsqueeze(-1), upper=True)
    return loc + solved.squeeze(-1)


def _standard_normal(k, dtype=F64):
    return MultivariateNormal(torch.zeros(k, dtype=dtype), torch.eye(k, dtype=dtype))


def _case_id(case):
    family, size = case
    return f"{family}-{size if family == 'chain' else '{}x{}'.format(*size)}"


# ----------------------------------------------------------------------------- exact values


@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_log_prob_entropy_variance_kl_match_dense(case, batch):
    gen = torch.Generator().manual_seed(1)
    q, params, factor = _make(*case, batch, gen)
    ref = _reference(params[0], factor)
    k = q.event_shape[0]
    assert q.batch_shape == batch and q.event_shape == (k,)
    value = torch.randn((4,) + batch + (k,), generator=gen, dtype=F64)
    assert_close(q.log_prob(value), ref.log_prob(value), **EXACT)
    assert_close(q.entropy(), ref.entropy(), **EXACT)
    assert_close(q.variance, ref.variance, **EXACT)
    assert_close(q.covariance_matrix, ref.covariance_matrix, **EXACT)
    assert_close(q.mean, ref.mean, **EXACT)
    prior = _standard_normal(k)
    kl = kl_divergence(q, prior)
    assert kl.shape == batch
    assert_close(kl, kl_divergence(ref, prior), **EXACT)
    pyro_prior = dist.Normal(torch.zeros(k, dtype=F64), 1.0).to_event(1)
    assert_close(kl_divergence(q, pyro_prior), kl, **EXACT)


@pytest.mark.parametrize("case", [("chain", 5), ("chain", 70), ("grid", (3, 2))], ids=_case_id)
def test_triangular_solves_match_dense(case):
    """The subclass contract ``_solve_lower(W) = L⁻¹W``, ``_solve_upper(ε) = L⁻ᵀε`` row for
    row: the public results use ``L⁻¹`` only through ``L⁻ᵀL⁻¹`` and ``‖·‖_F``, which a
    permutation of its rows (a forward recurrence read backwards) would not change."""
    gen = torch.Generator().manual_seed(4)
    q, _, factor = _make(*case, (2,), gen)
    k = q.event_shape[0]
    rhs = torch.randn(2, k, 3, generator=gen, dtype=F64)
    assert_close(q._solve_lower(rhs), torch.linalg.solve_triangular(factor, rhs, upper=False),
                 **EXACT)
    eps = torch.randn(2, k, generator=gen, dtype=F64)
    expected = torch.linalg.solve_triangular(factor.mT, eps.unsqueeze(-1), upper=True)
    assert_close(q._solve_upper(eps), expected.squeeze(-1), **EXACT)


@pytest.mark.parametrize("case", [("chain", 7), ("chain", 70), ("grid", (3, 2))], ids=_case_id)
def test_kl_to_general_gaussian_priors(case):
    """Diagonal priors of any loc/scale, and dense ``MultivariateNormal`` priors
    (k = 70 takes the chain's scan through two block levels)."""
    gen = torch.Generator().manual_seed(2)
    q, params, factor = _make(*case, (3,), gen)
    ref = _reference(params[0], factor)
    k = q.event_shape[0]
    loc0 = torch.randn(k, generator=gen, dtype=F64)
    scale0 = 0.5 + torch.rand(k, generator=gen, dtype=F64)
    dense_diag = MultivariateNormal(loc0, scale_tril=torch.diag_embed(scale0))
    for prior in (dist.Normal(loc0, scale0).to_event(1),
                  torch.distributions.Independent(torch.distributions.Normal(loc0, scale0), 1),
                  dense_diag):
        assert_close(kl_divergence(q, prior), kl_divergence(ref, dense_diag), **EXACT)
    tril = 0.3 * torch.randn(2, k, k, generator=gen, dtype=F64).tril(-1)
    tril = tril + torch.diag_embed(0.5 + torch.rand(2, k, generator=gen, dtype=F64))
    dense = dist.MultivariateNormal(loc0, scale_tril=tril.unsqueeze(1))  # batch (2, 1)
    kl = kl_divergence(q, dense)
    assert kl.shape == (2, 3)
    assert_close(kl, kl_divergence(ref, dense), **EXACT)


def test_full_covariance_kl_to_a_general_diagonal_prior_matches_dense():
    """``FullCovarianceNormal``'s own KL against torch's dense one, with a prior whose loc
    is not 0 and whose scales are not 1 (every term of the formula counts)."""
    gen = torch.Generator().manual_seed(3)
    tril = 0.4 * torch.randn(3, 4, 4, generator=gen, dtype=F64).tril(-1)
    tril = tril + torch.diag_embed(0.5 + torch.rand(3, 4, generator=gen, dtype=F64))
    q = FullCovarianceNormal(torch.randn(3, 4, generator=gen, dtype=F64), scale_tril=tril)
    loc0 = torch.randn(4, generator=gen, dtype=F64)
    scale0 = 0.5 + torch.rand(4, generator=gen, dtype=F64)
    dense = MultivariateNormal(q.loc, scale_tril=tril)
    expected = kl_divergence(dense, MultivariateNormal(loc0, scale_tril=torch.diag(scale0)))
    assert_close(kl_divergence(q, dist.Normal(loc0, scale0).to_event(1)), expected, **EXACT)


def test_kl_refuses_unsupported_priors():
    """NotImplementedError lets Pyro fall back to Monte Carlo; a shape mismatch is an error."""
    q = ChainPrecisionNormal(torch.zeros(4), torch.ones(4), torch.zeros(3))
    with pytest.raises(NotImplementedError, match="Normal"):
        kl_divergence(q, dist.Laplace(torch.zeros(4), 1.0).to_event(1))
    with pytest.raises(ValueError, match="event shapes differ"):
        kl_divergence(q, dist.Normal(torch.zeros(5), 1.0).to_event(1))
    with pytest.raises(ValueError, match="event shapes differ"):
        kl_divergence(q, MultivariateNormal(torch.zeros(3), torch.eye(3)))


# ----------------------------------------------------------------------------- sampling


def _grad_leaves(params):
    return [p.detach().clone().requires_grad_() for p in params]


def _grad(leaf):
    """The gradient, zero when the leaf took no part (the empty offdiag of k = 1)."""
    return torch.zeros_like(leaf) if leaf.grad is None else leaf.grad


@pytest.mark.parametrize("batch", [(), (2, 3)], ids=str)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rsample_values_and_gradients_match_dense_reparameterisation(case, batch):
    """Same ε: ``rsample`` equals ``μ + L⁻ᵀε`` and so do d/dθ of a function of it."""
    family, size = case
    gen = torch.Generator().manual_seed(3)
    _, params, _ = _make(family, size, batch, gen)
    ours, dense = _grad_leaves(params), _grad_leaves(params)
    cls = ChainPrecisionNormal if family == "chain" else GridPrecisionNormal
    to_dense = _dense_chain_factor if family == "chain" else _dense_grid_factor
    q = cls(*ours)
    weights = torch.randn((5,) + q.batch_shape + q.event_shape, generator=gen, dtype=F64)

    torch.manual_seed(11)
    z = q.rsample((5,))
    torch.manual_seed(11)
    eps = torch.randn(z.shape, dtype=F64)
    z_dense = _dense_reparam(dense[0], to_dense(*dense[1:]), eps)
    assert z.shape == (5,) + batch + q.event_shape
    assert_close(z, z_dense, **EXACT)

    (torch.sin(z) * weights).sum().backward()
    (torch.sin(z_dense) * weights).sum().backward()
    for mine, theirs in zip(ours, dense):
        assert_close(_grad(mine), _grad(theirs), **EXACT)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_kl_and_log_prob_gradients_match_dense(case):
    family, size = case
    gen = torch.Generator().manual_seed(4)
    _, params, _ = _make(family, size, (3,), gen)
    ours, dense = _grad_leaves(params), _grad_leaves(params)
    cls = ChainPrecisionNormal if family == "chain" else GridPrecisionNormal
    to_dense = _dense_chain_factor if family == "chain" else _dense_grid_factor
    q, ref = cls(*ours), _reference(dense[0], to_dense(*dense[1:]))
    value = torch.randn(q.batch_shape + q.event_shape, generator=gen, dtype=F64)
    prior = _standard_normal(q.event_shape[0])
    (kl_divergence(q, prior) - q.log_prob(value)).sum().backward()
    (kl_divergence(ref, prior) - ref.log_prob(value)).sum().backward()
    for mine, theirs in zip(ours, dense):
        assert_close(_grad(mine), _grad(theirs), **EXACT)


@pytest.mark.parametrize("case", [("chain", 6), ("grid", (2, 3))], ids=_case_id)
def test_sample_moments_within_monte_carlo_error(case):
    """Sample mean and covariance of n = 200,000 draws against μ and Σ = (LLᵀ)⁻¹.

    Tolerance: the mean of coordinate i has standard error √(Σ_ii/n), and the
    sample covariance (i, j) of a Gaussian has standard error
    √((Σ_ij² + Σ_ii Σ_jj)/n). Standardised by these, every error is ≈ N(0, 1);
    over the 2·(6 + 36) checked numbers the chance that any exceeds 5 is < 1e-4
    (the seed is fixed, so the test is deterministic anyway).
    """
    gen = torch.Generator().manual_seed(5)
    q, params, factor = _make(*case, (2,), gen)
    cov = torch.linalg.inv(factor @ factor.mT)
    n = 200_000
    torch.manual_seed(6)
    draws = q.sample((n,))
    assert draws.shape == (n, 2, q.event_shape[0])
    mean = draws.mean(0)
    centred = draws - mean
    sample_cov = torch.einsum("nbi,nbj->bij", centred, centred) / (n - 1)
    var = cov.diagonal(dim1=-2, dim2=-1)
    mean_z = (mean - params[0]) / (var / n).sqrt()
    cov_se = ((cov.pow(2) + var.unsqueeze(-1) * var.unsqueeze(-2)) / n).sqrt()
    assert mean_z.abs().max() < 5
    assert ((sample_cov - cov) / cov_se).abs().max() < 5


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("case", [("chain", 4), ("grid", (2, 2))], ids=_case_id)
def test_expand_and_batch_shapes(case):
    gen = torch.Generator().manual_seed(7)
    q, params, _ = _make(*case, (3,), gen)
    big = q.expand((2, 3))
    assert type(big) is type(q)
    assert big.batch_shape == (2, 3) and big.event_shape == q.event_shape
    assert big._validate_args == q._validate_args
    value = torch.randn(5, 2, 3, 4, generator=gen, dtype=F64)
    assert_close(big.log_prob(value), q.log_prob(value), **EXACT)
    assert_close(big.entropy(), q.entropy().expand(2, 3), **EXACT)
    assert_close(big.variance, q.variance.expand(2, 3, 4), **EXACT)
    assert big.rsample((5,)).shape == (5, 2, 3, 4)
    assert q.expand_by((7,)).batch_shape == (7, 3)
    assert q.to_event(1).event_shape == (3, 4)
    # Parameters of different batch shapes broadcast.
    cls = type(q)
    mixed = cls(params[0][:1], params[1], params[2][0])
    assert mixed.batch_shape == (3,)
    assert mixed.sample().shape == (3, 4)
    assert not q.sample().requires_grad


def test_constructor_rejects_inconsistent_shapes_and_invalid_values():
    with pytest.raises(ValueError, match="offdiag"):
        ChainPrecisionNormal(torch.zeros(4), torch.ones(4), torch.zeros(4))
    with pytest.raises(ValueError, match="coupling_blocks"):
        GridPrecisionNormal(torch.zeros(6), torch.eye(3).expand(2, 3, 3), torch.zeros(2, 3, 3))
    with pytest.raises(ValueError):
        ChainPrecisionNormal(torch.zeros(2), torch.tensor([1.0, -1.0]), torch.zeros(1),
                             validate_args=True)
    upper = torch.eye(2).expand(2, 2, 2).clone()
    upper[0, 0, 1] = 0.5
    with pytest.raises(ValueError):
        GridPrecisionNormal(torch.zeros(4), upper, torch.zeros(1, 2, 2), validate_args=True)


# ----------------------------------------------------------------------------- guide helpers


def test_chain_helpers_split_a_flat_head_output():
    k = 5
    assert chain_param_count(k) == 3 * k - 1
    flat = torch.randn(8, chain_param_count(k), requires_grad=True)
    loc, raw_diag, offdiag = split_chain_params(flat, k)
    assert (loc.shape, raw_diag.shape, offdiag.shape) == ((8, k), (8, k), (8, k - 1))
    q = ChainPrecisionNormal.from_flat(flat, k, min_diag=0.01)
    assert q.batch_shape == (8,) and q.event_shape == (k,)
    assert_close(q.diag, torch.nn.functional.softplus(raw_diag) + 0.01)
    very_negative = ChainPrecisionNormal.from_raw(loc, torch.full((8, k), -1e4), offdiag, 0.01)
    assert very_negative.diag.min() >= 0.01
    q.rsample().sum().backward()
    assert flat.grad is not None and torch.isfinite(flat.grad).all()
    with pytest.raises(ValueError, match="chain_param_count"):
        split_chain_params(torch.zeros(3 * k), k)


def test_grid_helpers_split_a_flat_head_output():
    rows, cols = 3, 4
    k = rows * cols
    count = grid_param_count(rows, cols)
    assert count == k + rows * cols * (cols + 1) // 2 + (rows - 1) * cols**2
    assert grid_param_count(4, 4) - 16 == 88  # the 4×4 factor count in MATH-NOTES B.3
    flat = torch.arange(1, 2 * count + 1, dtype=F64).reshape(2, count)
    loc, raw_blocks, coupling = split_grid_params(flat, rows, cols)
    assert loc.shape == (2, k) and raw_blocks.shape == (2, rows, cols, cols)
    assert coupling.shape == (2, rows - 1, cols, cols)
    assert (raw_blocks.triu(1) == 0).all()
    # Every number of the head is used exactly once.
    used = torch.cat([loc.flatten(), raw_blocks[raw_blocks != 0].flatten(), coupling.flatten()])
    assert sorted(used.tolist()) == flat.flatten().tolist()
    q = GridPrecisionNormal.from_flat(torch.randn(2, count), rows, cols, min_diag=0.01,
                                      validate_args=True)
    assert q.grid_shape == (rows, cols) and q.batch_shape == (2,)
    assert q.diag_blocks.diagonal(dim1=-2, dim2=-1).min() >= 0.01
    with pytest.raises(ValueError, match="grid_param_count"):
        split_grid_params(torch.zeros(count + 1), rows, cols)


# ----------------------------------------------------------------------------- Pyro


def _elbo_losses(elbo, family, prior_kind, repeats=4):
    """Repeated losses of a model whose only observation does not depend on ``z``."""
    gen = torch.Generator().manual_seed(8)
    size = 5 if family == "chain" else (2, 3)
    q, _, _ = _make(family, size, (3,), gen)
    k = q.event_shape[0]
    if prior_kind == "normal":
        prior = dist.Normal(torch.zeros(k, dtype=F64), 1.0).to_event(1)
    elif prior_kind == "mvn":
        prior = dist.MultivariateNormal(torch.zeros(k, dtype=F64), torch.eye(k, dtype=F64))
    else:
        prior = dist.Laplace(torch.zeros(k, dtype=F64), 1.0).to_event(1)
    obs = torch.tensor(0.5, dtype=F64)

    def model():
        with pyro.plate("data", 3):
            pyro.sample("z", prior)
        pyro.sample("x", dist.Normal(torch.tensor(0.0, dtype=F64), 1.0), obs=obs)

    def guide():
        with pyro.plate("data", 3):
            pyro.sample("z", q)

    constant = -dist.Normal(torch.tensor(0.0, dtype=F64), 1.0).log_prob(obs).item()
    losses = torch.tensor([elbo.loss(model, guide) for _ in range(repeats)], dtype=F64)
    return losses, constant, q, prior


@pytest.mark.parametrize("prior_kind", ["normal", "mvn"])
@pytest.mark.parametrize("family", ["chain", "grid"])
def test_trace_mean_field_elbo_takes_the_registered_kl(family, prior_kind):
    losses, constant, q, prior = _elbo_losses(TraceMeanField_ELBO(), family, prior_kind)
    assert losses.std() == 0  # no Monte Carlo noise at all
    expected = kl_divergence(q, prior).sum().item() + constant
    assert math.isclose(losses[0].item(), expected, rel_tol=1e-12)


@pytest.mark.parametrize("family", ["chain", "grid"])
def test_zero_variance_check_would_catch_a_monte_carlo_fallback(family):
    """Without a registered KL (Laplace prior) or with Trace_ELBO, the loss is noisy."""
    losses, _, _, _ = _elbo_losses(TraceMeanField_ELBO(), family, "laplace")
    assert losses.std() > 0
    losses, _, _, _ = _elbo_losses(Trace_ELBO(), family, "normal")
    assert losses.std() > 0


# ----------------------------------------------------------------------------- stability


def _float32_check(q64, factor, gen, log_prob=True):
    """Float32 rsample, variance, KL (and log_prob) against float64 dense answers."""
    k = q64.event_shape[0]
    params = [getattr(q64, name) for name in q64._param_event_ndims]
    q32 = type(q64)(*[p.float() for p in params])
    eps = torch.randn(q64.batch_shape + (k,), generator=gen, dtype=F64)
    nu_ref = _dense_reparam(q64.loc, factor, eps) - q64.loc
    nu = q32.transform_noise(eps.float()).double() - q64.loc
    assert ((nu - nu_ref).norm(dim=-1) / nu_ref.norm(dim=-1)).max() < 1e-5
    eye = torch.eye(k, dtype=F64)
    var_ref = torch.linalg.solve_triangular(factor, eye, upper=False).pow(2).sum(-2)
    assert ((q32.variance.double() - var_ref) / var_ref).abs().max() < 1e-5
    prior = _standard_normal(k, torch.float32)
    kl_ref = kl_divergence(q64, _standard_normal(k))
    assert ((kl_divergence(q32, prior).double() - kl_ref) / kl_ref).abs().max() < 1e-5
    if log_prob:
        value = q64.loc + nu_ref
        lp_ref = q64.log_prob(value)
        assert ((q32.log_prob(value.float()).double() - lp_ref) / lp_ref).abs().max() < 1e-5


@pytest.mark.parametrize("regime", ["moderate", "strongly-correlated", "heavy-tailed-raw"])
def test_chain_float32_is_stable_at_k1024(regime):
    """k = 1024 in float32 agrees with float64 dense solves to 1e-5 relative.

    ``heavy-tailed-raw`` is what an untrained head produces (``softplus(N(0,1)) +
    1e-3`` diagonal, ``N(0,1)`` subdiagonal): variances reach ~1e20, so log_prob at
    a float32-rounded point is meaningless there and is not compared.
    """
    gen = torch.Generator().manual_seed(9)
    k, batch = 1024, (2,)
    loc = torch.randn(batch + (k,), generator=gen, dtype=F64)
    if regime == "moderate":
        diag = 0.5 + torch.rand(batch + (k,), generator=gen, dtype=F64)
        offdiag = 0.5 * torch.randn(batch + (k - 1,), generator=gen, dtype=F64)
    elif regime == "strongly-correlated":
        diag = torch.ones(batch + (k,), dtype=F64)
        offdiag = torch.full(batch + (k - 1,), -0.99, dtype=F64)
    else:
        raw = torch.randn(batch + (k,), generator=gen, dtype=F64)
        diag = torch.nn.functional.softplus(raw) + 1e-3
        offdiag = torch.randn(batch + (k - 1,), generator=gen, dtype=F64)
    q64 = ChainPrecisionNormal(loc, diag, offdiag)
    _float32_check(q64, _dense_chain_factor(diag, offdiag), gen,
                   log_prob=regime != "heavy-tailed-raw")


@pytest.mark.parametrize("rows, cols", [(256, 4), (32, 32)])
def test_grid_float32_is_stable_at_k1024(rows, cols):
    gen = torch.Generator().manual_seed(10)
    loc, blocks, coupling = _grid_params((1,), rows, cols, gen)
    coupling = coupling / math.sqrt(cols)
    q64 = GridPrecisionNormal(loc, blocks, coupling)
    _float32_check(q64, _dense_grid_factor(blocks, coupling), gen)


# ----------------------------------------------------------------------------- the scan


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 100])
def test_scan_matches_sequential_recurrence(n):
    """Doubling within blocks of 4 and recursion over blocks (two levels at n = 100)."""
    gen = torch.Generator().manual_seed(12)
    a = 0.9 * torch.randn(n, generator=gen, dtype=F64)
    b = torch.randn(3, n, generator=gen, dtype=F64)
    expected, nxt = torch.empty_like(b), torch.zeros(3, dtype=F64)
    for i in range(n - 1, -1, -1):
        nxt = a[i] * nxt + b[:, i]
        expected[:, i] = nxt
    products, got = suffix_scan(a, b, dim=-1, chunk=4)
    assert_close(got, expected, **EXACT)
    assert_close(products, torch.flip(torch.cumprod(torch.flip(a, [0]), 0), [0]), **EXACT)
