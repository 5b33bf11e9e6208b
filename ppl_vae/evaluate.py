"""Importance-sampled log-likelihood and test ELBO for any model/guide pair.

For each example, with ``K`` draws ``z_k ~ q(z | x)``::

    log p(x) ≈ log (1/K) Σ_k exp(log w_k),   log w_k = log p(x, z_k) - log q(z_k | x)
    ELBO(x)  ≈ (1/K) Σ_k log w_k

The first is the IWAE bound: it never exceeds ``log p(x)`` in expectation and
converges to it as ``K → ∞``; the second is the ELBO, below it. Both use the
unscaled model (β only shapes training). Work is chunked over examples and
particles so that at most ``budget`` particle-examples are alive at once.

Every IS log-likelihood carries its trust (``log_likelihood_trust``,
:func:`ppl_vae.diagnostics.psis.trust_summary`): the Pareto k̂ and Kish's ESS of
each example's ``K`` weights, summarised over the examples, with a one-line
:class:`~ppl_vae.errors.PplVaeWarning` when they say the number is not reliable.
Its ``log_likelihood_se`` is the spread over examples, ``sd_n(log p̂(x_n)) / √N``:
it says how much another draw of test examples would move the mean, not how far
``log p̂`` sits below ``log p(x)`` (k̂ and ESS speak to that). ``per_example=True``
returns each example's values (:class:`ppl_vae.per_example.PerExample`), which
:func:`ppl_vae.compare` pairs between two models.

Discrete sites marked for enumeration are summed, not sampled
(:mod:`ppl_vae.enumeration`). With sites outside the ``"data"`` plate (global
latents) there is no per-example weight: the ELBO of the evaluated set is
reported per example, global terms counted once for the set,
``ELBO = (1/N) [E_q(log p(θ) - log q(θ)) + Σ_n E_q(log p(x_n, z_n | θ) - log q(z_n | x_n))]``,
and the IS log-likelihood is ``None`` with the reason in ``log_likelihood_note``.

A pair that declares a collapsed form (:attr:`ppl_vae.Pair.collapsed`:
auxiliary sites integrated out in closed form) is evaluated on it — the numbers
then measure ``p(x)`` rather than the auxiliary variables' proposal — and the
bounds of the pair as trained are reported beside them under ``uncollapsed``, with their
own trust and warning.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import torch

from ppl_vae.chunks import chunks, log_mean_exp
from ppl_vae.engine import engine_settings
from ppl_vae.enumeration import enumerated_log_weights
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.modules import frozen
from ppl_vae.pair import Pair
from ppl_vae.per_example import PerExample
from ppl_vae.traces import log_weights, particle_traces, take
from ppl_vae.traces import per_example as site_per_example

TRUST_ROWS = 256
UNCOLLAPSED = "for the pair as trained (auxiliary sites drawn, not integrated out), "


def check_inputs(inputs: dict | None, n: int) -> dict:
    """Per-example inputs: tensors with ``n`` rows (or ``None``); a one-line error otherwise."""
    inputs = dict(inputs or {})
    for name, value in inputs.items():
        if value is not None and (not torch.is_tensor(value) or value.shape[:1] != (n,)):
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise PplVaeError(f"input '{name}' must be a tensor with one row per example "
                              f"({n}), got {shape}")
    return inputs


@torch.no_grad()
def evaluate(model, guide, x: torch.Tensor, iw_samples: int = 1000, budget: int = 8192,
             quiet: bool = True, inputs: dict | None = None, per_example: bool = False) -> dict:
    """Test ELBO, IS log-likelihood with its trust, reconstruction and KL, in nats per example.

    Args:
        model, guide: a pair keeping the contract.
        x: examples ``(n, *event_shape)`` on the pair's device: a tensor, or a
            :class:`ppl_vae.data.storage.Storage` (read a chunk at a time, so a
            packed, rendered or memory-mapped set is never decoded whole).
        iw_samples: K, importance samples per example.
        budget: most particle-examples evaluated at once (bounds memory); a pair
            with enumerated sites holds that many per enumerated value.
        quiet: hide the progress bar.
        inputs: per-example keyword inputs of the pair, e.g. ``{"y": labels}``.
        per_example: also return the values of each example under ``per_example``
            (a :class:`ppl_vae.per_example.PerExample`, for :func:`ppl_vae.compare`).

    Returns:
        dict with ``elbo``, ``log_likelihood`` (None for point-mass guides and
        global latents, the reason in ``log_likelihood_note``),
        ``log_likelihood_se`` (standard error over examples), ``log_likelihood_trust``
        (Pareto k̂ and importance-sampling ESS of the weights,
        :func:`ppl_vae.diagnostics.psis.trust_summary`; its ``warning`` is also raised
        as a :class:`~ppl_vae.errors.PplVaeWarning`), ``log_likelihood_of``
        (what it measures: ``log p(x)``, or ``log p(x, y)`` when a given ``y`` is
        observed by the model), ``reconstruction``
        (``-E_q log p(x|z)``), ``kl`` (``E_q[log q - log p(z)]``), ``iw_samples``
        and ``n_examples``.
    """
    return evaluate_pair(Pair(model, guide), x, iw_samples, budget, quiet, inputs, per_example)


@torch.no_grad()
def evaluate_pair(pair, x: torch.Tensor, iw_samples: int = 1000, budget: int = 8192,
                  quiet: bool = True, inputs: dict | None = None,
                  per_example: bool = False) -> dict:
    """:func:`evaluate` of a :class:`ppl_vae.Pair`, reusing its plan and collapsed form."""
    if iw_samples < 1:
        raise PplVaeError(f"--iw-samples must be at least 1, got {iw_samples}")
    if x.shape[0] == 0:
        raise PplVaeError("no examples to evaluate; the test set is empty")
    inputs = check_inputs(inputs, x.shape[0])
    with engine_settings(pair.model, pair.guide), frozen(pair.model, pair.guide):
        if pair.collapsed is None:
            result = _evaluate(pair, x, iw_samples, budget, quiet, inputs)
        else:
            result = _evaluate(pair.collapsed, x, iw_samples, budget, quiet, inputs)
            raw = _evaluate(pair, x, iw_samples, budget, quiet, inputs, UNCOLLAPSED)
            result.update(collapsed=True, uncollapsed={
                k: raw[k] for k in ("elbo", "log_likelihood", "log_likelihood_se",
                                    "log_likelihood_trust", "reconstruction", "kl")})
    for numbers in (result, result.get("uncollapsed") or {}):
        warning = (numbers.get("log_likelihood_trust") or {}).get("warning")
        if warning:
            warnings.warn(warning, PplVaeWarning, stacklevel=3)
    examples = result.pop("per_example")
    return {**result, "per_example": examples} if per_example else result


def _evaluate(pair, x, iw_samples, budget, quiet, inputs, named: str = "") -> dict:
    """:func:`evaluate` of one pair, inside the engine's settings and eval mode; ``named``
    goes before the estimate's name in its trust warning."""
    from ppl_vae.diagnostics.psis import trust_summary

    nesting, plan = pair.plan(x, inputs)
    if not plan.vectorized and iw_samples > 1:
        warnings.warn(f"the pair does not run several particles at once; drawing the "
                      f"{iw_samples} importance samples one at a time ({iw_samples}x the "
                      "passes): write reshape(*z.shape[:-1], *x.shape[1:]) to vectorise",
                      PplVaeWarning, stacklevel=4)
    terms = _per_example_terms(pair.model, pair.guide, x, inputs, iw_samples, budget, nesting,
                               plan, quiet)
    note = _no_likelihood(plan)
    n, ll = x.shape[0], None if note else terms["log_likelihood"]
    of = likelihood_of(plan, inputs)
    trust = None if ll is None else trust_summary(terms["khat"], terms["ess"], iw_samples,
                                                  f"{named}the IS {of}")
    return {
        "elbo": float(terms["elbo"].mean()),
        "log_likelihood": None if ll is None else float(ll.mean()),
        "log_likelihood_se": None if ll is None or n < 2 else float(ll.std(ddof=1) / math.sqrt(n)),
        "log_likelihood_trust": trust,
        "log_likelihood_of": of,
        **({"log_likelihood_note": note} if note else {}),
        "reconstruction": float(terms["reconstruction"].mean()),
        "kl": float((-terms["elbo"] - terms["reconstruction"]).mean()),
        "iw_samples": iw_samples,
        "n_examples": n,
        "per_example": PerExample(
            index=np.arange(n), log_likelihood=ll, elbo=terms["elbo"],
            khat=None if ll is None else terms["khat"], ess=None if ll is None else terms["ess"],
            iw_samples=iw_samples, examples_sha256=terms["sha256"], likelihood_of=of),
    }


def likelihood_of(plan, inputs: dict) -> str:
    """What the bounds measure, as a formula: every observed site, given the inputs that are
    not observed (``log p(x, y)`` when a given label is observed, ``log p(x | c)`` for a
    conditioning input ``c``)."""
    observed = sorted((name for name, _ in plan.observed), key=lambda name: name != "x")
    given = [k for k, v in inputs.items() if v is not None and k not in observed]
    return f"log p({', '.join(observed)}{' | ' + ', '.join(given) if given else ''})"


def _no_likelihood(plan) -> str | None:
    """Why there is no IS log-likelihood for this pair, or None."""
    if plan.global_sites:
        return (f"not estimated: site(s) {sorted(plan.global_sites)} are global, so the "
                "examples share latents and there is no per-example importance weight")
    if plan.point_mass:
        return "not estimated: the guide is a point mass (Delta), which has no density"
    return None


def _per_example_terms(model, guide, x, inputs, iw_samples, budget, nesting, plan,
                       quiet) -> dict:
    """Per-example ELBO, log-likelihood, reconstruction, k̂ and ESS (numpy float64), chunked;
    and ``sha256``, the examples' digest."""
    from ppl_vae.diagnostics.psis import importance_trust

    out: dict[str, list] = {"elbo": [], "log_likelihood": [], "reconstruction": [], "khat": [],
                            "ess": []}
    hasher, pending = hashlib.sha256(), _Pending(importance_trust)
    for rows, counts in chunks(x.shape[0], iw_samples, budget, "evaluate", quiet):
        block = x[rows]
        hasher.update(np.ascontiguousarray(block.float().cpu().numpy()).tobytes())
        parts = [_particle_chunk(model, guide, block, take(inputs, rows), k, nesting, plan,
                                 x.shape[0]) for k in counts]
        for key in ("elbo", "reconstruction"):
            out[key].append(sum(part[key] for part in parts) / iw_samples)
        log_w = torch.cat([part["log_w"] for part in parts])
        out["log_likelihood"].append(log_mean_exp(log_w))
        pending.add(log_w, out)
    pending.flush(out)
    terms = {k: torch.cat(out[k]).double().cpu().numpy()
             for k in ("elbo", "log_likelihood", "reconstruction")}
    return {**terms, "khat": np.concatenate(out["khat"]), "ess": np.concatenate(out["ess"]),
            "sha256": hasher.hexdigest()}


class _Pending:
    """Log weights ``(K, rows)`` waiting for their k̂ and ESS, computed ``TRUST_ROWS``
    examples at a time (one ArviZ call each: its overhead is per call)."""

    def __init__(self, trust):
        self.trust, self.blocks, self.rows = trust, [], 0

    def add(self, log_w: torch.Tensor, out: dict) -> None:
        self.blocks.append(log_w.double().cpu().numpy())
        self.rows += log_w.shape[1]
        if self.rows >= TRUST_ROWS:
            self.flush(out)

    def flush(self, out: dict) -> None:
        if self.blocks:
            khat, ess = self.trust(np.concatenate(self.blocks, axis=1))
            out["khat"].append(khat)
            out["ess"].append(ess)
        self.blocks, self.rows = [], 0


def _particle_chunk(model, guide, x, inputs, k, nesting, plan, n_total) -> dict:
    """Over ``k`` particles, per example: sums of ELBO and reconstruction, and the particles'
    log weights ``log w`` ``(k, batch)`` (enumerated values summed within a particle)."""
    if plan.global_sites:
        return _global_chunk(model, guide, x, inputs, k, nesting, plan, n_total)
    if plan.enumerated:
        summed = enumerated_log_weights(model, guide, x, k, nesting, plan, inputs)
        return {"elbo": k * summed.elbo(), "reconstruction": k * summed.reconstruction(),
                "log_w": torch.logsumexp(summed.log_weight, 0)}
    w = log_weights(model, guide, x, k, nesting, plan, inputs)
    return {"elbo": w.total.sum(0), "reconstruction": -w.log_likelihood.sum(0),
            "log_w": w.total}


def _global_chunk(model, guide, x, inputs, k, nesting, plan, n_total) -> dict:
    """ELBO terms of a model with global sites: each example carries ``1/N`` of them.

    Particles are drawn one at a time, as Pyro's users write such models: a global
    draw (``s = pyro.sample("noise", ...)`` outside the plate, then ``Normal(loc, s)``
    inside) need not broadcast against a particle dimension.
    """
    local, elbo, reconstruction = [], 0.0, 0.0
    for _ in range(k):
        particle_local, shared, recon = _global_particle(model, guide, x, inputs, nesting, plan)
        local.append(particle_local)
        elbo = elbo + particle_local + shared / n_total
        reconstruction = reconstruction + recon
    return {"elbo": elbo, "reconstruction": reconstruction, "log_w": torch.stack(local)}


def _global_particle(model, guide, x, inputs, nesting, plan) -> tuple:
    """One particle's per-example terms ``(batch,)``, its global terms (a scalar) and
    its per-example ``-log p(x | z)``."""
    model_trace, guide_trace = particle_traces(model, guide, x, 1, nesting, plate_one=False,
                                               inputs=inputs)
    plan = plan.for_traces(model_trace, guide_trace)
    local, shared = x.new_zeros(x.shape[0]), x.new_zeros(())
    for trace, sites, sign in ((model_trace, plan.joint, 1.0),
                               (guide_trace, plan.guide + plan.auxiliary, -1.0)):
        for name, dims in sites:
            site = trace.nodes[name]
            log_prob = site["fn"].log_prob(site["value"])
            if name in plan.global_sites:
                shared = shared + sign * (log_prob if site["mask"] is None
                                          else log_prob * site["mask"]).sum()
            else:
                local = local + sign * site_per_example(log_prob, site, dims)[0]
    reconstruction = -sum(site_per_example(model_trace.nodes[name]["fn"].log_prob(
        model_trace.nodes[name]["value"]), model_trace.nodes[name], dims)[0]
        for name, dims in plan.observed if name not in plan.global_sites)
    return local, shared, reconstruction
