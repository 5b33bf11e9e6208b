r"""Gaussians with a sparse Cholesky factor of the **precision**: chain and extended grid.

Both distributions are ``z ~ N(μ, Σ)`` over ``R^k`` with ``Σ⁻¹ = P = L Lᵀ`` where
``L`` is a sparse lower-triangular factor with a positive diagonal (Malagò, Peste,
Sarbu: Gaussian-graphical-model posteriors for VAEs):

- :class:`ChainPrecisionNormal`: ``L`` lower **bidiagonal**, so ``P`` is tridiagonal
  (each latent is conditionally linked to its two neighbours). ``2k - 1`` factor
  parameters; every operation is O(k).
- :class:`GridPrecisionNormal`: the latent is an ``a × b`` grid (row-major,
  ``k = a·b``), ``L`` lower **block-bidiagonal** with lower-triangular ``b × b``
  diagonal blocks and dense ``b × b`` coupling blocks, so ``P`` is
  block-tridiagonal (the "extended grid": each latent is linked to every latent
  in its own row and in the two adjacent rows). Every operation is O(k·b²).

Everything follows from ``L`` without forming a dense ``k × k`` matrix:

- sample: ``z = μ + ν`` with ``Lᵀ ν = ε``, ``ε ~ N(0, I)`` (then ``Cov ν = L⁻ᵀL⁻¹ = Σ``);
- ``log q(z) = -(k/2) log 2π + Σ_i log L_ii - ½ ‖Lᵀ(z - μ)‖²``;
- ``log det Σ = -2 Σ_i log L_ii``;  ``H = (k/2)(1 + log 2π) - Σ_i log L_ii``;
- ``diag Σ`` (hence ``tr Σ = ‖L⁻¹‖²_F``) by a linear recurrence down the
  columns of ``L⁻¹``;
- ``KL(q ‖ N(m₀, diag s₀²)) = ½[Σ_i Σ_ii/s₀ᵢ² + ‖(μ - m₀)/s₀‖² - k
  + 2 Σ log s₀ᵢ] + Σ_i log L_ii``.

The triangular solves are first-order linear recurrences ``x_i = a_i x_{i+1} + b_i``.
For the chain (scalar ``a_i``) they run as an associative scan
(:func:`suffix_scan`): O(log k) vectorised steps and O(k) work instead of a
Python loop of k steps, with no division, logarithm or cumulative product, so
it is as stable as sequential back-substitution. For the grid (``b × b``
coefficients) they run as a loop over the ``a`` rows, each step batched ``b × b``
products: a scan would have to multiply the coefficient matrices, O(b) times
more work.

KL divergences to ``Independent(Normal)`` and ``MultivariateNormal`` priors are
registered with :func:`torch.distributions.kl.register_kl`, so Pyro's
``TraceMeanField_ELBO`` uses them analytically.

:meth:`ChainPrecisionNormal.from_flat` (with :func:`chain_param_count`,
:func:`split_chain_params`, and the grid counterparts) builds one from a flat
network output; see :meth:`ChainPrecisionNormal.from_raw` for the positive
transform. :class:`FullCovarianceNormal` is the dense reference, a
``MultivariateNormal`` with its own analytic KL to a diagonal Gaussian prior.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch import Tensor
from torch.distributions import Independent, MultivariateNormal, Normal, constraints
from torch.distributions.kl import register_kl
from torch.distributions.utils import lazy_property
from torch.nn.functional import pad, softplus

__all__ = [
    "ChainPrecisionNormal",
    "GridPrecisionNormal",
    "chain_param_count",
    "grid_param_count",
    "split_chain_params",
    "split_grid_params",
]

DEFAULT_MIN_DIAG = 1e-3
_LOG_2PI = math.log(2 * math.pi)
_SCAN_CHUNK = 32
_NO_SAMPLE_SHAPE = torch.Size()


# --------------------------------------------------------------------------------------
# First-order linear recurrences
# --------------------------------------------------------------------------------------


def _compose(a1: Tensor, b1: Tensor, a2: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """``(x ↦ a1 x + b1) ∘ (x ↦ a2 x + b2) = (x ↦ a1 a2 x + b1 + a1 b2)``, elementwise."""
    return a1 * a2, b1 + a1 * b2


def _doubling_scan(a: Tensor, b: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Suffix compositions by recursive doubling: ⌈log₂ n⌉ steps, O(n log n) work."""
    n = b.shape[dim]
    step = 1
    while step < n:
        new_a, new_b = _compose(
            a.narrow(dim, 0, n - step), b.narrow(dim, 0, n - step),
            a.narrow(dim, step, n - step), b.narrow(dim, step, n - step),
        )
        a = torch.cat([new_a, a.narrow(dim, n - step, step)], dim)
        b = torch.cat([new_b, b.narrow(dim, n - step, step)], dim)
        step *= 2
    return a, b


def suffix_scan(a: Tensor, b: Tensor, dim: int, chunk: int = _SCAN_CHUNK):
    """Solve ``x_i = a_i x_{i+1} + b_i`` (``x_n = 0``) for all ``i`` along ``dim`` at once.

    An associative scan over the affine maps ``e_i = (x ↦ a_i x + b_i)``: the suffix
    composition ``e_i ∘ … ∘ e_{n-1} = (x ↦ A_i x + x_i)`` carries the solution in
    its offset. Blocks of ``chunk`` elements are scanned by doubling, the block
    totals recursively, and each block is composed with the total of the blocks
    after it: O(n log chunk) work, O(log n) vectorised steps. Only products and
    sums of the recurrence's own terms appear (no division, logarithm or
    cumulative product that could overflow on its own), so the rounding error is
    that of sequential substitution up to a factor O(log n).

    Args:
        a: coefficients, ``(..., n)``; ``a_{n-1}`` is never used; leading
            dimensions may be fewer than ``b``'s (they broadcast).
        b: offsets, of the full broadcast shape.
        dim: the (negative) dimension of ``n``, the same in ``a`` and ``b``.
        chunk: block length.

    Returns:
        ``(A, x)``: ``A_i = a_i a_{i+1} ⋯ a_{n-1}`` and the solution, shaped like ``a``, ``b``.
    """
    n = b.shape[dim]
    if n <= chunk:
        return _doubling_scan(a, b, dim)
    blocks = -(-n // chunk)
    extra = blocks * chunk - n
    if extra:  # identity maps (a = 1, b = 0) after the end
        a = torch.cat([a, _filled_like(a, extra, dim, 1.0)], dim)
        b = torch.cat([b, _filled_like(b, extra, dim, 0.0)], dim)
    a, b = _doubling_scan(a.unflatten(dim, (blocks, chunk)), b.unflatten(dim, (blocks, chunk)), dim)
    total_a, total_b = suffix_scan(a.select(dim, 0), b.select(dim, 0), dim, chunk)
    next_a = torch.cat([total_a.narrow(dim, 1, blocks - 1), _filled_like(total_a, 1, dim, 1.0)], dim)
    next_b = torch.cat([total_b.narrow(dim, 1, blocks - 1), _filled_like(total_b, 1, dim, 0.0)], dim)
    a, b = _compose(a, b, next_a.unsqueeze(dim), next_b.unsqueeze(dim))
    return a.flatten(dim - 1, dim).narrow(dim, 0, n), b.flatten(dim - 1, dim).narrow(dim, 0, n)


def _filled_like(x: Tensor, count: int, dim: int, value: float) -> Tensor:
    """A constant tensor shaped like ``x`` but with ``count`` entries along ``dim``."""
    shape = list(x.shape)
    shape[dim] = count
    return x.new_full(shape, value)


def _prefix_scan(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """Solve ``x_i = a_i x_{i-1} + b_i`` (``x_{-1} = 0``; ``a_0`` unused) along ``dim``."""
    return suffix_scan(a.flip(dim), b.flip(dim), dim)[1].flip(dim)


def _block_rows(coeff: Tensor, offset: Tensor, backward: bool) -> Tensor:
    """Solve ``X_r = A_r X_{r+1} + B_r`` (``backward``; ``X_a = 0``) or
    ``X_r = A_r X_{r-1} + B_r`` (``X_{-1} = 0``) over the rows (dim -3) of ``offset``.

    ``coeff`` is ``(..., a, p, p)`` (the unused end row is ignored), ``offset``
    ``(..., a, p, m)``. A loop over the ``a`` rows: O(a·p²·m) work. (An associative
    scan would need products of the ``p × p`` coefficients, O(a log a · p³).)
    """
    rows = offset.shape[-3]
    order = range(rows - 1, -1, -1) if backward else range(rows)
    # unbind, not indexing: the backward of one index per row would zero-fill a
    # full-size gradient per row, O(a²) work.
    coeffs, offsets = coeff.unbind(-3), offset.unbind(-3)
    out = list(offsets)
    x = None
    for r in order:
        x = offsets[r] if x is None else offsets[r] + coeffs[r] @ x
        out[r] = x
    return torch.stack(out, -3)


# --------------------------------------------------------------------------------------
# Shared base: entropy, KL, expand
# --------------------------------------------------------------------------------------


class _StructuredPrecisionNormal(TorchDistribution):
    """``N(μ, (L Lᵀ)⁻¹)`` with a sparse lower-triangular ``L``; subclasses define ``L``.

    A subclass provides ``_param_event_ndims`` (parameter name → trailing
    dimensions that are not batch dimensions), ``_log_diag()`` (``log L_ii``,
    shape ``batch + (k,)``), ``_solve_upper(ε) = L⁻ᵀε``, ``_solve_lower(W) = L⁻¹W``,
    ``_precision_factor_t(v) = Lᵀv`` and ``variance``.
    """

    support = constraints.real_vector
    has_rsample = True
    _param_event_ndims: ClassVar[dict[str, int]] = {}

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def covariance_matrix(self) -> Tensor:
        """``Σ = L⁻ᵀ L⁻¹``, dense ``batch + (k, k)``, for statistics only (O(k²) memory)."""
        k = self.event_shape[0]
        eye = torch.eye(k, dtype=self.loc.dtype, device=self.loc.device)
        inverse = self._solve_lower(eye.expand(self.batch_shape + (k, k)))
        return inverse.transpose(-1, -2) @ inverse

    def transform_noise(self, eps: Tensor) -> Tensor:
        """The reparameterisation ``z = μ + L⁻ᵀ ε``; ``eps`` has shape ``(..., *batch, k)``."""
        return self.loc + self._solve_upper(eps)

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _NO_SAMPLE_SHAPE
                ) -> Tensor:
        """``z = μ + ν`` with ``Lᵀν = ε``, ``ε ~ N(0, I)``: shape ``sample_shape + batch + (k,)``."""
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.transform_noise(eps)

    def log_prob(self, value: Tensor) -> Tensor:
        """``-(k/2) log 2π + Σ log L_ii - ½ ‖Lᵀ(z - μ)‖²``."""
        if self._validate_args:
            self._validate_sample(value)
        whitened = self._precision_factor_t(value - self.loc)
        k = self.event_shape[0]
        return self._log_diag().sum(-1) - 0.5 * (k * _LOG_2PI + whitened.pow(2).sum(-1))

    def entropy(self) -> Tensor:
        """``H = (k/2)(1 + log 2π) - Σ log L_ii``."""
        k = self.event_shape[0]
        return 0.5 * k * (1.0 + _LOG_2PI) - self._log_diag().sum(-1)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for name, ndims in self._param_event_ndims.items():
            param = getattr(self, name)
            setattr(new, name, param.expand(batch_shape + param.shape[param.dim() - ndims:]))
        super(_StructuredPrecisionNormal, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def _kl_to_diagonal_normal(self, loc: Tensor, scale: Tensor) -> Tensor:
        """``KL(q ‖ N(m₀, diag s₀²))`` from ``diag Σ`` in O(k) (chain) or O(k b²) (grid)."""
        k = self.event_shape[0]
        scaled_diff = (self.loc - loc) / scale
        return (
            0.5 * ((self.variance / scale.pow(2)).sum(-1) + scaled_diff.pow(2).sum(-1) - k)
            + scale.log().sum(-1)
            + self._log_diag().sum(-1)
        )

    def _kl_to_dense_normal(self, loc: Tensor, scale_tril: Tensor) -> Tensor:
        """``KL(q ‖ N(m₀, U Uᵀ))`` for a dense ``U``: O(k³) in the prior, O(k²) in ``q``.

        ``tr(S₀⁻¹Σ) = ‖L⁻¹U⁻ᵀ‖²_F`` (``U⁻ᵀ`` by one triangular solve, then ``L⁻¹`` by
        the recurrence on its ``k`` columns) and ``(μ-m₀)ᵀS₀⁻¹(μ-m₀) = ‖U⁻¹(μ-m₀)‖²``.
        """
        k = self.event_shape[0]
        eye = torch.eye(k, dtype=scale_tril.dtype, device=scale_tril.device)
        u_inv = torch.linalg.solve_triangular(scale_tril, eye, upper=False)
        trace = self._solve_lower(u_inv.mT).pow(2).sum((-2, -1))
        diff = (self.loc - loc).unsqueeze(-1)
        mahalanobis = torch.linalg.solve_triangular(scale_tril, diff, upper=False)
        prior_log_det = 2 * scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return (
            0.5 * (trace + mahalanobis.pow(2).sum((-2, -1)) - k + prior_log_det)
            + self._log_diag().sum(-1)
        )

    def _check_prior_event(self, prior) -> None:
        """A prior over a different space is a model/guide mismatch, not a missing KL."""
        if prior.event_shape != self.event_shape:
            raise ValueError(
                f"KL({type(self).__name__} ‖ {type(prior).__name__}): event shapes differ "
                f"({tuple(self.event_shape)} vs {tuple(prior.event_shape)}); the guide and the "
                "prior must describe the same latent vector"
            )


@register_kl(_StructuredPrecisionNormal, Independent)
def _kl_structured_independent(q: _StructuredPrecisionNormal, p: Independent) -> Tensor:
    """Analytic KL to ``Normal(m₀, s₀).to_event(1)`` (any loc and scale)."""
    if not isinstance(p.base_dist, Normal) or p.reinterpreted_batch_ndims != 1:
        raise NotImplementedError(
            f"KL({type(q).__name__} ‖ Independent) is implemented for Normal(loc, scale)"
            f".to_event(1) priors only, not Independent({type(p.base_dist).__name__}, "
            f"{p.reinterpreted_batch_ndims})"
        )
    q._check_prior_event(p)
    return q._kl_to_diagonal_normal(p.base_dist.loc, p.base_dist.scale)


@register_kl(_StructuredPrecisionNormal, MultivariateNormal)
def _kl_structured_mvn(q: _StructuredPrecisionNormal, p: MultivariateNormal) -> Tensor:
    """Analytic KL to ``MultivariateNormal``: O(k) work in ``q`` when the prior's
    ``scale_tril`` is diagonal (e.g. ``N(0, I)``; checked on the values), else the
    dense path of :meth:`_StructuredPrecisionNormal._kl_to_dense_normal`."""
    q._check_prior_event(p)
    scale_tril = p._unbroadcasted_scale_tril
    if not torch.any(scale_tril.tril(-1)):
        return q._kl_to_diagonal_normal(p.loc, scale_tril.diagonal(dim1=-2, dim2=-1))
    return q._kl_to_dense_normal(p.loc, scale_tril)


# --------------------------------------------------------------------------------------
# Chain
# --------------------------------------------------------------------------------------


def chain_param_count(k: int) -> int:
    """Numbers a guide head outputs for a ``k``-dim chain: ``k`` (loc) + ``k`` (raw
    diagonal) + ``k - 1`` (subdiagonal) = ``3k - 1``."""
    if k < 1:
        raise ValueError(f"latent dimension must be at least 1, got {k}")
    return 3 * k - 1


def split_chain_params(flat: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split ``flat`` of shape ``(..., 3k - 1)`` into ``(loc, raw_diag, offdiag)``.

    The layout is ``[loc (k) | raw_diag (k) | offdiag (k - 1)]``; pass the pieces to
    :meth:`ChainPrecisionNormal.from_raw`.
    """
    expected = chain_param_count(k)
    if flat.shape[-1] != expected:
        raise ValueError(
            f"a chain over k={k} latents needs {expected} numbers per example "
            f"(chain_param_count), got a last dimension of {flat.shape[-1]}"
        )
    loc, raw_diag, offdiag = flat.split([k, k, k - 1], dim=-1)
    return loc, raw_diag, offdiag


class ChainPrecisionNormal(_StructuredPrecisionNormal):
    r"""Gaussian with a tridiagonal precision ``P = L Lᵀ``, ``L`` lower bidiagonal.

    ``L = diag(d) + subdiag(c)``, i.e. ``L_ii = d_i > 0`` and ``L_{i+1,i} = c_i``, and
    ``z ~ N(μ, Σ)`` with ``Σ = P⁻¹ = L⁻ᵀ L⁻¹``. ``L`` is exactly the Cholesky factor
    of ``P``; every SPD tridiagonal precision has this form. All of the following
    are O(k) in time and memory, with no dense ``k × k`` matrix:

    - ``rsample``: ``z = μ + ν``, ``ν_{k-1} = ε_{k-1}/d_{k-1}``,
      ``ν_i = (ε_i - c_i ν_{i+1}) / d_i`` (back-substitution of ``Lᵀν = ε``);
    - ``log_prob``: ``-(k/2) log 2π + Σ log d_i - ½ Σ_i u_i²`` with
      ``u = Lᵀ(z - μ)``, ``u_i = d_i v_i + c_i v_{i+1}``;
    - ``entropy``: ``(k/2)(1 + log 2π) - Σ log d_i``; ``log det Σ = -2 Σ log d_i``;
    - ``variance``: ``Σ_jj = T_j / d_j²`` with ``T_{k-1} = 1``,
      ``T_j = 1 + (c_j / d_{j+1})² T_{j+1}`` (squared column norms of ``L⁻¹``,
      whose entries are ``(L⁻¹)_ij = -(c_{i-1}/d_i) (L⁻¹)_{i-1,j}``), and
      ``tr Σ = ‖L⁻¹‖²_F = Σ_j Σ_jj``;
    - ``KL(q ‖ N(m₀, diag s₀²)) = ½[Σ_j Σ_jj/s₀ⱼ² + ‖(μ - m₀)/s₀‖² - k
      + 2 Σ log s₀ⱼ] + Σ log d_i`` (registered against ``Normal(...).to_event(1)``
      and ``MultivariateNormal``; a non-diagonal ``MultivariateNormal`` prior
      costs O(k³) in the prior and O(k²) here).

    The recurrences are evaluated with an associative scan (O(log k) vectorised
    steps). They are as well conditioned as ``P`` itself: when ``|c_i| ≫ d_i``
    along a long stretch, ``ν`` and ``Σ`` genuinely grow geometrically and float32
    may overflow (``from_raw`` floors ``d``; nothing bounds ``c``).

    Args:
        loc: ``μ``, shape ``(..., k)``.
        diag: ``d``, positive, shape ``(..., k)``.
        offdiag: ``c``, shape ``(..., k - 1)`` (``(..., 0)`` when ``k = 1``).
        validate_args: check the constraints (``torch.distributions`` semantics).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real_vector,
        "diag": constraints.independent(constraints.positive, 1),
        "offdiag": constraints.real_vector,
    }
    _param_event_ndims: ClassVar[dict[str, int]] = {"loc": 1, "diag": 1, "offdiag": 1}

    def __init__(self, loc: Tensor, diag: Tensor, offdiag: Tensor, validate_args: bool | None = None):
        if loc.dim() < 1:
            raise ValueError("loc must have at least one dimension (the latent)")
        k = loc.shape[-1]
        if diag.dim() < 1 or diag.shape[-1] != k or offdiag.dim() < 1 or (
            offdiag.shape[-1] != k - 1
        ):
            raise ValueError(
                f"ChainPrecisionNormal over k={k} needs diag (..., {k}) and offdiag "
                f"(..., {k - 1}); got {tuple(diag.shape)} and {tuple(offdiag.shape)}"
            )
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], diag.shape[:-1], offdiag.shape[:-1])
        self.loc = loc.expand(batch_shape + (k,))
        self.diag = diag.expand(batch_shape + (k,))
        self.offdiag = offdiag.expand(batch_shape + (k - 1,))
        super().__init__(batch_shape, torch.Size((k,)), validate_args=validate_args)

    @classmethod
    def from_raw(
        cls, loc: Tensor, raw_diag: Tensor, offdiag: Tensor, min_diag: float = DEFAULT_MIN_DIAG,
        validate_args: bool | None = None,
    ) -> ChainPrecisionNormal:
        """Build from unconstrained network outputs: ``d = softplus(raw_diag) + min_diag``.

        ``softplus`` keeps ``d`` positive without ``exp``'s overflow; the floor
        ``min_diag`` bounds the precision away from singular (``Σ_jj`` stays finite).
        ``offdiag`` is used as it is.
        """
        return cls(loc, softplus(raw_diag) + min_diag, offdiag, validate_args=validate_args)

    @classmethod
    def from_flat(
        cls, flat: Tensor, k: int, min_diag: float = DEFAULT_MIN_DIAG, validate_args: bool | None = None
    ) -> ChainPrecisionNormal:
        """``from_raw(*split_chain_params(flat, k))``: one head of ``chain_param_count(k)``."""
        return cls.from_raw(*split_chain_params(flat, k), min_diag=min_diag,
                            validate_args=validate_args)

    def _log_diag(self) -> Tensor:
        return self.diag.log()

    def _precision_factor_t(self, v: Tensor) -> Tensor:
        """``Lᵀv``: ``d_i v_i + c_i v_{i+1}``."""
        return self.diag * v + pad(self.offdiag * v[..., 1:], (0, 1))

    @lazy_property
    def _upper_coeff(self) -> Tensor:
        """``a_i = -c_i / d_i`` of ``ν_i = a_i ν_{i+1} + ε_i / d_i`` (last entry unused)."""
        return pad(-self.offdiag / self.diag[..., :-1], (0, 1))

    def _solve_upper(self, eps: Tensor) -> Tensor:
        """``L⁻ᵀ ε`` by back-substitution as a scan; ``eps`` is ``(..., *batch, k)``."""
        rhs = (eps / self.diag).expand(torch.broadcast_shapes(eps.shape, self.diag.shape))
        return suffix_scan(self._upper_coeff, rhs, dim=-1)[1]

    def _solve_lower(self, rhs: Tensor) -> Tensor:
        """``L⁻¹ W`` for ``W`` of shape ``(..., k, m)``: ``x_i = (w_i - c_{i-1} x_{i-1}) / d_i``."""
        diag = self.diag.unsqueeze(-1)
        coeff = pad(-self.offdiag.unsqueeze(-1) / diag[..., 1:, :], (0, 0, 1, 0))
        return _prefix_scan(coeff, rhs / diag, dim=-2)

    @property
    def variance(self) -> Tensor:
        """``diag Σ``: ``Σ_jj = T_j / d_j²``, ``T_j = 1 + (c_j/d_{j+1})² T_{j+1}``, O(k)."""
        coeff = pad((self.offdiag / self.diag[..., 1:]).pow(2), (0, 1))
        _, tail = suffix_scan(coeff, torch.ones_like(self.diag), dim=-1)
        return tail / self.diag.pow(2)


# --------------------------------------------------------------------------------------
# Extended grid
# --------------------------------------------------------------------------------------


def _lower_mask(blocks: Tensor, diagonal: int) -> Tensor:
    """``tril`` as a 0/1 mask to multiply by (``Tensor.tril`` is slow on many tiny blocks)."""
    ones = torch.ones(blocks.shape[-2:], dtype=torch.bool, device=blocks.device)
    return ones.tril(diagonal).to(blocks.dtype)


def grid_param_count(rows: int, cols: int) -> int:
    """Numbers a guide head outputs for a ``rows × cols`` grid (``k = rows·cols``):
    ``k`` (loc) + ``rows·cols(cols+1)/2`` (lower triangles of the diagonal blocks)
    + ``(rows - 1)·cols²`` (coupling blocks)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"grid dimensions must be at least 1, got {rows}×{cols}")
    return rows * cols + rows * cols * (cols + 1) // 2 + (rows - 1) * cols * cols


def split_grid_params(flat: Tensor, rows: int, cols: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split ``flat`` ``(..., grid_param_count(rows, cols))`` into the grid's pieces.

    The layout is ``[loc (k) | diagonal blocks, each block's lower triangle in
    torch.tril_indices order, block after block (rows·cols(cols+1)/2) | coupling
    blocks, row-major, block after block ((rows-1)·cols²)]``.

    Returns:
        ``(loc (..., k), raw_diag_blocks (..., rows, cols, cols), coupling_blocks
        (..., rows - 1, cols, cols))``; ``raw_diag_blocks`` is zero above the
        diagonal and its diagonal is still raw (pass the pieces to
        :meth:`GridPrecisionNormal.from_raw`).
    """
    expected = grid_param_count(rows, cols)
    if flat.shape[-1] != expected:
        raise ValueError(
            f"a {rows}×{cols} grid needs {expected} numbers per example (grid_param_count), "
            f"got a last dimension of {flat.shape[-1]}"
        )
    k, tri = rows * cols, cols * (cols + 1) // 2
    loc, packed, coupling = flat.split([k, rows * tri, (rows - 1) * cols * cols], dim=-1)
    batch = flat.shape[:-1]
    idx = torch.tril_indices(cols, cols, device=flat.device)
    blocks = flat.new_zeros(batch + (rows, cols, cols))
    blocks[..., idx[0], idx[1]] = packed.unflatten(-1, (rows, tri))
    return loc, blocks, coupling.unflatten(-1, (rows - 1, cols, cols))


class GridPrecisionNormal(_StructuredPrecisionNormal):
    r"""Gaussian on an ``a × b`` grid with a block-tridiagonal precision ``P = L Lᵀ``.

    The latent vector (``k = a·b``) is the grid read row by row; row ``r`` is
    ``z_r = z[r·b:(r+1)·b]``. ``L`` is lower block-bidiagonal: diagonal blocks
    ``D_r`` (``b × b`` lower triangular, positive diagonal) and coupling blocks
    ``C_r = L[r+1, r]`` (``b × b`` dense). Then ``P_rr = D_r D_rᵀ + C_{r-1}C_{r-1}ᵀ``,
    ``P_{r+1,r} = C_r D_rᵀ``, and ``L`` is exactly ``chol(P)`` (no fill-in). With
    ``A'_r = -D_r⁻¹ C_{r-1}``, all in O(k·b²) time and O(k·b) memory (the size
    of the parameters), with no dense ``k × k`` matrix:

    - ``rsample``: ``ν_{a-1} = D_{a-1}⁻ᵀ ε_{a-1}``, ``ν_r = D_r⁻ᵀ(ε_r - C_rᵀ ν_{r+1})``;
    - ``log_prob``: ``(Lᵀv)_r = D_rᵀ v_r + C_rᵀ v_{r+1}``, ``log det Σ = -2 Σ log diag D_r``;
    - ``variance``: ``Σ_rr = D_r⁻ᵀ H_r D_r⁻¹`` with ``H_{a-1} = I``,
      ``H_r = I + A'_{r+1}ᵀ H_{r+1} A'_{r+1}`` (block columns of ``L⁻¹`` are
      ``(L⁻¹)_{s,r} = A'_s (L⁻¹)_{s-1,r}``), so ``tr Σ = Σ_r tr Σ_rr``;
    - ``KL`` and ``entropy`` as for :class:`ChainPrecisionNormal`.

    Entries of ``diag_blocks`` above the diagonal are ignored (and rejected when
    validating). The block recurrences loop over the ``a`` rows (``a`` Python
    steps, each batched over examples and samples), so prefer few long rows to
    many short ones: ``b = 1`` is a chain, better served by
    :class:`ChainPrecisionNormal`; ``a = 1`` is a dense-precision Gaussian (O(b³)).

    Args:
        loc: ``μ``, shape ``(..., a·b)``.
        diag_blocks: ``D``, shape ``(..., a, b, b)``, lower triangular with a positive
            diagonal.
        coupling_blocks: ``C``, shape ``(..., a - 1, b, b)``; ``C_r`` couples row
            ``r + 1`` to row ``r``.
        validate_args: check the constraints (``torch.distributions`` semantics).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real_vector,
        "diag_blocks": constraints.independent(constraints.lower_cholesky, 1),
        "coupling_blocks": constraints.independent(constraints.real, 3),
    }
    _param_event_ndims: ClassVar[dict[str, int]] = {"loc": 1, "diag_blocks": 3, "coupling_blocks": 3}

    def __init__(
        self, loc: Tensor, diag_blocks: Tensor, coupling_blocks: Tensor, validate_args: bool | None = None
    ):
        if diag_blocks.dim() < 3 or diag_blocks.shape[-1] != diag_blocks.shape[-2]:
            raise ValueError(
                f"diag_blocks must have shape (..., a, b, b); got {tuple(diag_blocks.shape)}"
            )
        rows, cols = diag_blocks.shape[-3], diag_blocks.shape[-1]
        k = rows * cols
        if loc.dim() < 1 or loc.shape[-1] != k or coupling_blocks.dim() < 3 or (
            coupling_blocks.shape[-3:] != (rows - 1, cols, cols)
        ):
            raise ValueError(
                f"a {rows}×{cols} GridPrecisionNormal needs loc (..., {k}) and coupling_blocks "
                f"(..., {rows - 1}, {cols}, {cols}); got {tuple(loc.shape)} and "
                f"{tuple(coupling_blocks.shape)}"
            )
        batch_shape = torch.broadcast_shapes(
            loc.shape[:-1], diag_blocks.shape[:-3], coupling_blocks.shape[:-3]
        )
        self.loc = loc.expand(batch_shape + (k,))
        self.diag_blocks = diag_blocks.expand(batch_shape + (rows, cols, cols))
        self.coupling_blocks = coupling_blocks.expand(batch_shape + (rows - 1, cols, cols))
        super().__init__(batch_shape, torch.Size((k,)), validate_args=validate_args)

    @classmethod
    def from_raw(
        cls, loc: Tensor, raw_diag_blocks: Tensor, coupling_blocks: Tensor,
        min_diag: float = DEFAULT_MIN_DIAG, validate_args: bool | None = None,
    ) -> GridPrecisionNormal:
        """Build from unconstrained outputs: ``D = tril(raw, -1) + diag(softplus(diag raw) +
        min_diag)``; entries above the diagonal are dropped, couplings used as they are."""
        diagonal = softplus(raw_diag_blocks.diagonal(dim1=-2, dim2=-1)) + min_diag
        blocks = raw_diag_blocks * _lower_mask(raw_diag_blocks, -1) + torch.diag_embed(diagonal)
        return cls(loc, blocks, coupling_blocks, validate_args=validate_args)

    @classmethod
    def from_flat(
        cls, flat: Tensor, rows: int, cols: int, min_diag: float = DEFAULT_MIN_DIAG,
        validate_args: bool | None = None,
    ) -> GridPrecisionNormal:
        """``from_raw(*split_grid_params(flat, rows, cols))``: one head of
        ``grid_param_count(rows, cols)`` numbers."""
        return cls.from_raw(*split_grid_params(flat, rows, cols), min_diag=min_diag,
                            validate_args=validate_args)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(a, b)``: rows and columns of the latent grid."""
        return self.diag_blocks.shape[-3], self.diag_blocks.shape[-1]

    def _log_diag(self) -> Tensor:
        return self.diag_blocks.diagonal(dim1=-2, dim2=-1).log().flatten(-2)

    @lazy_property
    def _diag_inv(self) -> Tensor:
        """``D_r⁻¹`` for every row (lower triangular, ``(..., a, b, b)``), O(k·b²)."""
        cols = self.grid_shape[1]
        eye = torch.eye(cols, dtype=self.loc.dtype, device=self.loc.device)
        return torch.linalg.solve_triangular(self.diag_blocks, eye, upper=False)

    @lazy_property
    def _upper_coeff(self) -> Tensor:
        """``-D_r⁻ᵀ C_rᵀ`` of ``ν_r = -D_r⁻ᵀC_rᵀ ν_{r+1} + D_r⁻ᵀ ε_r`` (last block unused)."""
        coeff = -(self.coupling_blocks @ self._diag_inv[..., :-1, :, :]).mT
        return pad(coeff, (0, 0, 0, 0, 0, 1))

    @lazy_property
    def _lower_coeff(self) -> Tensor:
        """``A'_r = -D_r⁻¹ C_{r-1}`` of ``x_r = A'_r x_{r-1} + D_r⁻¹ w_r`` (first block unused)."""
        coeff = -self._diag_inv[..., 1:, :, :] @ self.coupling_blocks
        return pad(coeff, (0, 0, 0, 0, 1, 0))

    def _precision_factor_t(self, v: Tensor) -> Tensor:
        """``(Lᵀv)_r = D_rᵀ v_r + C_rᵀ v_{r+1}``."""
        rows, cols = self.grid_shape
        v = v.unflatten(-1, (rows, cols)).unsqueeze(-1)
        out = (self.diag_blocks * _lower_mask(self.diag_blocks, 0)).mT @ v
        coupled = pad(self.coupling_blocks.mT @ v[..., 1:, :, :], (0, 0, 0, 0, 0, 1))
        return (out + coupled).squeeze(-1).flatten(-2)

    def _solve_upper(self, eps: Tensor) -> Tensor:
        """``L⁻ᵀ ε`` by block back-substitution, row by row."""
        rows, cols = self.grid_shape
        rhs = self._diag_inv.mT @ eps.unflatten(-1, (rows, cols)).unsqueeze(-1)
        return _block_rows(self._upper_coeff, rhs, backward=True).squeeze(-1).flatten(-2)

    def _solve_lower(self, rhs: Tensor) -> Tensor:
        """``L⁻¹ W`` for ``W`` of shape ``(..., k, m)`` by block forward substitution."""
        rows, cols = self.grid_shape
        blocks = self._diag_inv @ rhs.unflatten(-2, (rows, cols))
        return _block_rows(self._lower_coeff, blocks, backward=False).flatten(-3, -2)

    @property
    def variance(self) -> Tensor:
        """``diag Σ`` from ``Σ_rr = D_r⁻ᵀ H_r D_r⁻¹``, ``H_r = I + A'_{r+1}ᵀ H_{r+1} A'_{r+1}``."""
        rows, cols = self.grid_shape
        diag_inv, steps = self._diag_inv, self._lower_coeff.unbind(-3)
        eye = torch.eye(cols, dtype=self.loc.dtype, device=self.loc.device)
        h = eye.expand(diag_inv.shape[:-3] + (cols, cols))
        stacked = [h] * rows
        for r in range(rows - 2, -1, -1):
            h = eye + steps[r + 1].mT @ h @ steps[r + 1]
            stacked[r] = h
        h = torch.stack(stacked, -3)
        return ((h @ diag_inv) * diag_inv).sum(-2).flatten(-2)


# --------------------------------------------------------------------------------------
# Full covariance
# --------------------------------------------------------------------------------------


class FullCovarianceNormal(pyro.distributions.MultivariateNormal):
    """``MultivariateNormal`` (build it with ``scale_tril``) whose KL to a diagonal
    ``Normal(m, s).to_event(1)`` prior is analytic, registered for this class only
    (torch's own ``MultivariateNormal`` rules are left as they are)."""


@register_kl(FullCovarianceNormal, Independent)
def _kl_full_independent(q: FullCovarianceNormal, p: Independent) -> Tensor:
    """``KL(N(μ, S Sᵀ) ‖ N(m, diag s²)) = ½[Σ_i Σ_ii/s_i² + Σ_i (μ_i - m_i)²/s_i² - K
    + 2 Σ log s_i] - Σ log diag S``, with ``Σ_ii = Σ_j S_ij²``."""
    if not isinstance(p.base_dist, Normal) or p.reinterpreted_batch_ndims != 1:
        raise NotImplementedError(
            "KL(FullCovarianceNormal ‖ Independent) is implemented for Normal(loc, scale)"
            ".to_event(1) priors only"
        )
    variance = p.base_dist.scale**2
    q_variance = q.scale_tril.pow(2).sum(-1)
    log_det = q.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * ((q_variance + (q.loc - p.base_dist.loc) ** 2) / variance
                  + variance.log() - 1).sum(-1) - log_det
