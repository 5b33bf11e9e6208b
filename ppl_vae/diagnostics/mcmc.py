"""NUTS on a few examples: the reference posterior the guide is measured against.

For one example ``x_n`` the exact posterior of its latents, with the decoder's
parameters fixed at their trained values, is ``p(z | x_n) ∝ p(x_n | z) p(z)``: the
model itself with ``x_n`` observed. Pyro's ``NUTS`` samples it (``pyro.infer.MCMC``),
``chains`` chains one after another from dispersed starts (draws of the prior), so
R-hat and the effective sample size mean something. Parameters are frozen
(``requires_grad`` off) for the run, so NUTS moves only the latents.

The draws are written as ArviZ ``InferenceData`` with the *same* variables, dims and
coordinates as the guide's export (:func:`ppl_vae.diagnostics.to_inference_data`):
``(chain, draw, example, <latent dims>)`` with the examples' test rows as the
``example`` coordinate, so ``guide.posterior["z"].sel(example=n)`` and
``nuts.posterior["z"].sel(example=n)`` line up; ``sample_stats`` holds
``diverging``. :func:`compare_to_guide` gives, per example and latent dimension,

    sd ratio  = sd_q(z_d) / sd_NUTS(z_d)
    mean gap  = (E_q[z_d] - E_NUTS[z_d]) / sd_NUTS(z_d)

(an exact guide gives ratios near 1 and gaps near 0; a mean-field guide on a
correlated posterior gives ratios below 1).

Refused: global sites (the reference would need them fixed, and they are not),
and discrete guide sites (NUTS moves continuous latents only).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_sample

from ppl_vae.diagnostics.draws import pair_of, per_example_layout, site_mask
from ppl_vae.diagnostics.inference_data import site_dims
from ppl_vae.errors import PplVaeError
from ppl_vae.traces import runnable, sample_sites, take

if TYPE_CHECKING:
    from ppl_vae.pair import Pair
    from ppl_vae.trained import Run

RHAT, ESS = 1.01, 100


@contextlib.contextmanager
def fixed_parameters(pair):
    """Every trainable tensor of the pair with ``requires_grad`` off, restored after."""
    with pair.scope():
        tensors = [t for t in pair.named_parameters().values() if t.requires_grad]
    for tensor in tensors:
        tensor.requires_grad_(False)
    try:
        yield
    finally:
        for tensor in tensors:
            tensor.requires_grad_(True)


def _check(plan) -> None:
    if plan.global_sites:
        raise PplVaeError(f"NUTS per example needs every latent local, but site(s) "
                          f"{sorted(plan.global_sites)} are global (shared by all examples)")
    discrete = sorted(plan.enumerated & {name for name, _ in plan.guide})
    if discrete:
        raise PplVaeError(f"NUTS moves continuous latents only; guide site(s) {discrete} are "
                          "discrete")


def _layout(model, x_n: torch.Tensor, inputs_n: dict, nesting: int) -> dict:
    """Per latent site: ``(event_dim, frames, mask)`` from one trace of the model on ``x_n``;
    ``mask`` laid out like a draw (None when unmasked)."""
    with pyro.poutine.block(), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyro.module on frozen parameters
        trace = pyro.poutine.trace(model).get_trace(x_n, **inputs_n)
    out = {}
    for site in sample_sites(trace):
        if not site["is_observed"]:
            frames = {f.name: f.dim for f in site["cond_indep_stack"] if f.dim is not None}
            mask = site_mask(site)
            out[site["name"]] = (site["fn"].event_dim, frames, None if mask is None else
                                 per_example_layout(mask, site["fn"].event_dim, frames,
                                                    nesting, 1)[0, 0])
    return out


def _masked(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """NaN where the site is masked (padding), as in the guide's export."""
    if mask is None:
        return values
    return torch.where(mask, values.to(torch.get_default_dtype()),
                       torch.tensor(float("nan"), device=values.device))


def _one_example(model, x_n, inputs_n, names, nesting, draws, warmup, chains, seed, jit):
    """``{site: (chains, draws, *latent shape)}`` of the sites this example has, and
    ``diverging (chains, draws)``."""
    layout = _layout(model, x_n, inputs_n, nesting)
    per_chain, diverging = [], []
    for chain in range(chains):
        pyro.set_rng_seed(seed + chain)
        kernel = NUTS(lambda: model(x_n, **inputs_n), max_plate_nesting=nesting,
                      init_strategy=init_to_sample, jit_compile=jit, ignore_jit_warnings=True)
        mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, num_chains=1,
                    disable_progbar=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mcmc.run()
        samples = mcmc.get_samples()
        per_chain.append({name: _masked(per_example_layout(
            samples[name], layout[name][0], layout[name][1], nesting, draws)[:, 0],
            layout[name][2]) for name in names if name in samples})
        flags = np.zeros(draws, dtype=bool)
        flags[mcmc.diagnostics()["divergences"]["chain 0"]] = True
        diverging.append(flags)
    return {name: torch.stack([c[name] for c in per_chain]) for name in per_chain[0]}, \
        np.stack(diverging)


def nuts_reference(run: Run | Pair, x: torch.Tensor, test_index: np.ndarray | list[int] | None = None,
                   inputs: dict | None = None,
                   draws: int = 500, warmup: int = 500, chains: int = 4, seed: int = 0,
                   primary: str | None = None, jit: bool = False) -> az.InferenceData:
    """NUTS draws of ``p(z | x_n)`` for each example of ``x``, laid out as the guide's export.

    Args:
        run: a :class:`ppl_vae.Run` or :class:`ppl_vae.Pair`.
        x: the examples ``(N, *event_shape)`` (a few: each gets its own chains).
        test_index: their ``example`` coordinates (default ``0..N-1``): use the guide
            export's, so the two files line up.
        inputs: the pair's per-example keyword inputs, ``N`` rows each.
        draws: NUTS draws per chain.
        warmup: NUTS warm-up steps per chain.
        chains: chains per example.
        seed: chain ``c`` of every example is seeded ``seed + c``.
        primary: the site whose one dimension is called ``latent`` (the export's
            primary site; default the pair's own).
        jit: compile the potential energy with ``torch.jit`` (Pyro's ``jit_compile``):
            about twice as fast for a model whose shapes and control flow do not depend
            on values; off by default, since not every program traces.
    """
    pair = pair_of(run)
    for name, value, low in (("draws", draws, 1), ("warmup", warmup, 1), ("chains", chains, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PplVaeError(f"NUTS {name} must be an integer of at least {low}, got {value!r}"
                              + (" (R-hat needs several chains)" if name == "chains" else ""))
    device = pair.device
    x = x.to(device)
    inputs = {k: None if v is None else v.to(device) for k, v in (inputs or {}).items()}
    test_index = np.arange(x.shape[0]) if test_index is None else np.asarray(test_index)
    with pair.evaluation(), fixed_parameters(pair), torch.enable_grad(), \
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        nesting, plan = pair.plan(x, inputs)
        _check(plan)
        primary = primary or pair.primary_site(x, inputs)
        names = [name for name, _ in plan.guide]
        model = runnable(pair.model)
        results = [_one_example(model, x[n:n + 1], take(inputs, slice(n, n + 1)), names,
                                nesting, draws, warmup, chains, seed, jit)
                   for n in range(x.shape[0])]
    posterior, dims, coords = {}, {}, {"example": test_index}
    for name in names:  # a site one example lacks (a shorter sequence) is NaN there
        shapes = [r[0][name].shape for r in results if name in r[0]]
        if not shapes:
            continue
        values = np.stack([r[0][name].double().cpu().numpy() if name in r[0] else
                           np.full(shapes[0], np.nan) for r in results], 2)
        labels = site_dims(name, values.shape[3:], primary)
        posterior[name], dims[name] = values, ["example", *labels]
        coords.update({d: np.arange(size) for d, size in zip(labels, values.shape[3:])})
    dims["diverging"] = ["example"]
    idata = az.from_dict(posterior=posterior,
                         sample_stats={"diverging": np.stack([r[1] for r in results], 2)},
                         coords=coords, dims=dims)
    idata.posterior.attrs.update(primary_site=primary, sampler="NUTS (pyro.infer.MCMC)",
                                 warmup=warmup, decoder="parameters fixed at trained values")
    return idata


def _warning(sites: dict, divergences: int) -> str | None:
    """One line when NUTS itself is not to be trusted: R-hat above 1.01, bulk ESS under 100
    (Vehtari et al. 2021), or divergences."""
    rhat = max(v["rhat_max"] for v in sites.values())
    ess = min(v["ess_bulk_min"] for v in sites.values())
    problems = [*([f"R-hat {rhat:.3f} > {RHAT}"] if rhat > RHAT else []),
                *([f"bulk ESS {ess:.0f} < {ESS}"] if ess < ESS else []),
                *([f"{divergences} divergent transitions"] if divergences else [])]
    if not problems:
        return None
    return (f"the NUTS reference is not reliable ({', '.join(problems)}); raise --mcmc-warmup "
            "and --mcmc-draws before reading the sd ratios")


def compare_to_guide(guide_idata: az.InferenceData, nuts_idata: az.InferenceData) -> dict:
    """Per site: sd ratios and mean gaps (module docstring) per example and dimension, their
    medians and extremes, with NUTS's R-hat, bulk ESS and divergences."""
    examples = nuts_idata["posterior"]["example"].values
    out: dict[str, Any] = {}
    for name in map(str, nuts_idata["posterior"].data_vars):
        nuts = nuts_idata["posterior"][name]
        guide = guide_idata["posterior"][name].sel(example=examples)
        nuts_sd = nuts.std(("chain", "draw"))
        ratio = (guide.std(("chain", "draw")) / nuts_sd).values.reshape(len(examples), -1)
        gap = ((guide.mean(("chain", "draw")) - nuts.mean(("chain", "draw"))) / nuts_sd
               ).values.reshape(len(examples), -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rhat = az.rhat(nuts_idata, var_names=[name])[name].values
            ess = az.ess(nuts_idata, var_names=[name], method="bulk")[name].values
            out[name] = {"sd_ratio": ratio.tolist(), "mean_gap_in_nuts_sd": gap.tolist(),
                         "sd_ratio_median": float(np.nanmedian(ratio)),
                         "sd_ratio_range": [float(np.nanmin(ratio)), float(np.nanmax(ratio))],
                         "mean_gap_max_abs": float(np.nanmax(np.abs(gap))),
                         "rhat_max": float(np.nanmax(rhat)), "ess_bulk_min": float(np.nanmin(ess))}
    divergences = int(nuts_idata["sample_stats"]["diverging"].values.sum())
    out["warning"] = _warning(out, divergences)
    out["divergences"] = divergences
    out["examples"] = [int(e) for e in examples]
    out["chains"], out["draws"] = (int(nuts_idata["posterior"].sizes["chain"]),
                                   int(nuts_idata["posterior"].sizes["draw"]))
    return out
