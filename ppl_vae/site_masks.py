"""Masks that make a bound stop being a bound, and Pyro's ``obs_mask`` sites.

A latent site's term in the ELBO is ``log p(z) - log q(z)`` entry by entry. Where the model
masks an entry out (``poutine.mask``, ``dist.mask``) and its guide does not, only
``-log q(z)`` is left: the entry's entropy is added to the bound with nothing of the model
against it, so the "ELBO" can exceed ``log p(x)`` and grows without limit as q widens
there. Masked the other way (the guide only), ``log p(z)`` is left without its entropy and
q collapses there. Pyro's SVI computes either number without a word; the engine warns in
one line when model and guide keep different entries of a site.

``pyro.sample(name, fn, obs=x, obs_mask=m)`` splits into ``{name}_observed`` (observed
where ``m``) and a latent ``{name}_unobserved`` (masked by ``~m`` in the model), joined in a
``pyro.deterministic`` ``name``. The unobserved entries are latents, so the guide must draw
them, under the same ``~m`` mask.
"""

from __future__ import annotations

import warnings

import torch
from pyro.distributions import MaskedDistribution
from torch.distributions import Independent

from ppl_vae.errors import PplVaeWarning

UNOBSERVED = "_unobserved"


def _kept(site: dict) -> torch.Tensor:
    """The entries of a site's innermost distribution that count (True): its
    ``poutine.mask`` and every ``.mask(...)`` on the way in, each broadcast over the event
    dims an ``Independent`` (``to_event``) folded in below it."""
    fn, depth, masks = site["fn"], 0, [(site["mask"], 0)]
    while isinstance(fn, (MaskedDistribution, Independent)):
        if isinstance(fn, MaskedDistribution):
            masks.append((fn._mask, depth))
        else:
            depth += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    kept = torch.ones(fn.batch_shape, dtype=torch.bool)
    for mask, level in masks:
        if mask is None or mask is True:
            continue
        mask = torch.as_tensor(mask, dtype=torch.bool).cpu()
        kept = kept & mask.reshape(mask.shape + (1,) * (depth - level))
    return kept


def warn_on_unmatched_masks(model_trace, guide_trace, latent_names) -> None:
    """One :class:`~ppl_vae.errors.PplVaeWarning` naming the latent sites whose model and
    guide keep different entries (see the module docstring)."""
    unmatched = []
    for name in sorted(latent_names):
        model_site, guide_site = model_trace.nodes[name], guide_trace.nodes.get(name)
        if guide_site is None:
            continue
        model_kept, guide_kept = _kept(model_site), _kept(guide_site)
        try:
            shape = torch.broadcast_shapes(model_kept.shape, guide_kept.shape)
        except RuntimeError:
            continue
        if (guide_kept.expand(shape) != model_kept.expand(shape)).any():
            unmatched.append(name)
    if unmatched:
        warnings.warn(
            f"the model and the guide mask different entries of {unmatched}: an entry with "
            "log q but no log p inflates the ELBO past log p(x) (q widens there without "
            "limit), one with log p but no log q lets q collapse (Pyro's SVI computes the "
            "same); mask the guide's site as the model's (poutine.mask(mask=...))",
            PplVaeWarning, stacklevel=2)


def unobserved_advice(missing: set[str], model_trace) -> str:
    """What to write when the guide lacks a site made by ``obs_mask`` ("" if none is)."""
    made = sorted(name for name in missing if name.endswith(UNOBSERVED)
                  and name.removesuffix(UNOBSERVED) + "_observed" in model_trace.nodes)
    if not made:
        return ""
    return (f"; {made} come from obs_mask=: its missing entries are latents, so the guide "
            "draws them under poutine.mask(mask=~obs_mask), or the model leaves them out "
            "with poutine.mask(mask=obs_mask) around an ordinary observation (the exact "
            "marginal when they are independent given the latents)")
