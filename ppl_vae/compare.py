"""Two models on the same held-out examples: the paired difference and its standard error.

Both models are evaluated (:func:`ppl_vae.evaluate`, ``per_example=True``; the
CLI's ``ppl-vae evaluate`` writes ``RUN/evaluation_examples.npz``) on the same
``N`` test examples with the same ``K`` importance samples. For each example
``d_n = a_n - b_n`` (``a_n = log p̂_A(x_n)``, or the ELBO), and::

    difference  = d̄ = (1/N) Σ_n d_n
    se_paired   = sd(d) / √N                      = √(SE_A² + SE_B² - 2 cov(a, b) / N)
    se_unpaired = √(SE_A² + SE_B²),   SE_A = sd(a) / √N

``se_unpaired`` is all two separate reports allow; it counts the spread of the
examples' difficulty, which both models share (cov(a, b) > 0: an example hard
for one is hard for the other), so it is larger. ``se_paired`` is the standard
error of the difference: over which test examples were drawn and over the
importance draws (both are in the spread of ``d_n``). Neither covers the bias of
a ``K``-sample bound (``E log p̂ ≤ log p(x)``); the Pareto k̂ and ESS of each side
(:func:`ppl_vae.diagnostics.psis.trust_summary`) say when that bias may be large.

This is held-out likelihood, not leave-one-out cross-validation: the models
never saw the test examples, so nothing is left out or reweighted; ``log p̂``
estimates ``log p(x_n)`` under each model's fitted decoder. :func:`to_elpd_data`
hands the per-example values to ArviZ's ``az.compare``, which only accepts the
LOO or WAIC kinds: the result is labelled ``elpd_loo`` but is this held-out
quantity (its ``elpd_diff`` and ``dse`` are ``N`` times ``difference`` and
``√((N-1)/N)·N·se_paired``).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.per_example import FILE, PerExample

QUANTITIES = ("log_likelihood", "elbo")
NOT_LOO = ("held-out likelihood of test examples the models never saw (an importance-sampled "
           "bound with K draws), not leave-one-out cross-validation")


def compare(a, b, names: tuple[str, str] | None = None) -> dict:
    """The paired difference A − B of held-out log p̂(x) and ELBO, per example, ± its SE.

    Args:
        a, b: each a run folder (its ``evaluation_examples.npz``, written by
            ``ppl-vae evaluate``), the result of ``ppl_vae.evaluate(..., per_example=True)``,
            or a :class:`~ppl_vae.per_example.PerExample`.
        names: what to call them (default: the folders, else ``A`` and ``B``).

    Returns:
        dict with ``a``, ``b`` (names), ``n_examples``, ``iw_samples``, ``of`` (what the
        likelihood measures), for ``log_likelihood`` (when both have one) and ``elbo``:
        ``{"a", "b", "difference", "se_paired", "se_unpaired", "correlation"}`` in
        nats per example; ``trust`` of each side's log p̂; ``summary`` (one line) and
        ``note``. A side whose log p̂ is not reliable is also named in one
        :class:`~ppl_vae.errors.PplVaeWarning`.

    Raises:
        PplVaeError: a side without per-example values, or the two evaluated other
            examples, another ``K`` or another likelihood.
    """
    names = names or (_name(a, "A"), _name(b, "B"))
    first, second = _examples(a, names[0]), _examples(b, names[1])
    _check_same(first, second, names)
    result: dict[str, Any] = {"a": names[0], "b": names[1], "n_examples": int(first.index.size),
              "iw_samples": first.iw_samples, "of": first.likelihood_of}
    for quantity in QUANTITIES:
        values = getattr(first, quantity), getattr(second, quantity)
        if values[0] is not None and values[1] is not None:
            result[quantity] = paired_difference(*values)
    result["trust"] = {name: _trust(side) for name, side in zip(names, (first, second))}
    for name in names:
        warning = (result["trust"][name] or {}).get("warning")
        if warning:
            warnings.warn(f"{name}: {warning}", PplVaeWarning, stacklevel=2)
    quantity = "log_likelihood" if "log_likelihood" in result else "elbo"
    shown = result[quantity]
    what = first.likelihood_of if quantity == "log_likelihood" else "ELBO"
    result["summary"] = (f"{names[0]} − {names[1]}: {what} {shown['difference']:+.3f} ± "
                         f"{shown['se_paired']:.3f} nats/example (paired SE; unpaired "
                         f"{shown['se_unpaired']:.3f}) on {result['n_examples']} examples, "
                         f"K = {first.iw_samples}")
    result["note"] = NOT_LOO
    return result


def paired_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Means of ``a`` and ``b``, the mean of ``a - b`` and its paired and unpaired SE."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = a.size
    se = (lambda v: float(v.std(ddof=1) / math.sqrt(n))) if n > 1 else (lambda v: math.nan)
    spread = a.std() * b.std()
    return {"a": float(a.mean()), "b": float(b.mean()), "difference": float((a - b).mean()),
            "se_paired": se(a - b), "se_unpaired": math.hypot(se(a), se(b)),
            "correlation": float(np.mean((a - a.mean()) * (b - b.mean())) / spread)
            if spread > 0 else math.nan}


def to_elpd_data(examples, name: str = "model"):
    """Per-example held-out ``log p̂(x_n)`` as an ArviZ ``ELPDData``, for ``az.compare``.

    ArviZ 0.2x's ``compare`` takes precomputed ``ELPDData`` of kind ``loo`` or
    ``waic`` only, so this one is labelled ``elpd_loo``; it is held-out likelihood
    (see the module docstring), with ``loo_i = log p̂(x_n)``, ``pareto_k`` the
    importance weights' k̂ per example (the trust of ``log p̂``, not of a LOO
    reweighting), ``p_loo`` NaN (no effective number of parameters) and
    ``warning`` set when the log p̂ is not reliable. ``az.compare({"A": to_elpd_data(a),
    "B": to_elpd_data(b)})`` then ranks them; its ``elpd_diff`` and ``dse`` are sums over
    examples, ``N`` times :func:`compare`'s per-example numbers.

    Args:
        examples: a run folder, an evaluation with ``per_example``, or a
            :class:`~ppl_vae.per_example.PerExample`.
        name: what to call it in error messages.
    """
    import xarray as xr
    from arviz.stats.stats_utils import ELPDData

    from ppl_vae.diagnostics.psis import BAD

    values = _examples(examples, name)
    if values.log_likelihood is None:
        raise PplVaeError(f"{name} has no importance-sampled log-likelihood to compare")
    log_p = np.asarray(values.log_likelihood, dtype=np.float64)
    n, trust = log_p.size, _trust(values)
    return ELPDData(
        data=[log_p.sum(), math.sqrt(n * log_p.var()), math.nan, values.iw_samples, n,
              bool(trust and trust["warning"]),
              xr.DataArray(log_p, dims=["example"], name="loo_i"),
              xr.DataArray(values.khat, dims=["example"], name="pareto_k"), "log", BAD],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i",
               "pareto_k", "scale", "good_k"])


def _name(side, default: str) -> str:
    return str(side) if isinstance(side, (str, Path)) else default


def _examples(side, name: str) -> PerExample:
    """The :class:`PerExample` of a run folder, an evaluation dict or itself."""
    if isinstance(side, PerExample):
        return side
    if isinstance(side, dict):
        if not isinstance(side.get("per_example"), PerExample):
            raise PplVaeError(f"{name} is an evaluation without per-example values; call "
                              "ppl_vae.evaluate(..., per_example=True)")
        return side["per_example"]
    if isinstance(side, (str, Path)):
        path = Path(side) / FILE
        if not path.exists():
            raise PplVaeError(f"{side} has no {FILE}; run ppl-vae evaluate {side} (with the "
                              "same --n-examples and --iw-samples as the other run) first")
        return PerExample.load(path)
    raise PplVaeError(f"cannot compare a {type(side).__name__}: give a run folder or "
                      "ppl_vae.evaluate(..., per_example=True)")


def _check_same(a: PerExample, b: PerExample, names: tuple[str, str]) -> None:
    """One-line refusals when the two evaluations are not of the same examples and budget."""
    first, second = names
    if a.iw_samples != b.iw_samples:
        raise PplVaeError(f"{first} was evaluated with K = {a.iw_samples} importance samples "
                          f"and {second} with K = {b.iw_samples}; evaluate both with the same "
                          "--iw-samples")
    if a.index.shape != b.index.shape or not np.array_equal(a.index, b.index) \
            or a.examples_sha256 != b.examples_sha256:
        raise PplVaeError(f"{first} and {second} were evaluated on different examples "
                          f"({a.index.size} and {b.index.size} rows, "
                          f"{'same' if a.examples_sha256 == b.examples_sha256 else 'different'}"
                          " values); evaluate both with the same --n-examples on the same data")
    if a.likelihood_of != b.likelihood_of:
        raise PplVaeError(f"{first} estimates {a.likelihood_of} and {second} "
                          f"{b.likelihood_of}; compare models of the same observed sites")


def _trust(side: PerExample) -> dict | None:
    """:func:`~ppl_vae.diagnostics.psis.trust_summary` of one side's log p̂, or None."""
    from ppl_vae.diagnostics.psis import trust_summary

    if side.log_likelihood is None or side.khat is None or side.ess is None:
        return None
    return trust_summary(side.khat, side.ess, side.iw_samples, f"the IS {side.likelihood_of}")
