"""The loss of one training batch, whatever the pair's inputs and global sites.

For a batch of ``B`` of the training set's ``N`` examples the loss estimates
the whole set's negative objective per example. Where some examples' inputs
are unknown (partially labelled data), the batch is split by which inputs are
known, and each part of ``m`` examples is run as ``model(x_part, y=y_part)``
or ``model(x_part, y=None)``::

    loss = Σ_parts (m / B) · estimator(model, guide, x_part, **inputs_part)

so labelled and unlabelled examples count once each, as in the ELBO of the
whole data set ``Σ_labelled log p(x, y) + Σ_unlabelled log p(x)`` (Kingma et
al. 2014, M2). Sites outside the ``"data"`` plate are scaled by ``m / N``
(:class:`ppl_vae.traces.ScaleGlobal`): once per data set, not once per batch.
During a KL warm-up every latent site is scaled by ``latent_scale``
(:class:`ppl_vae.traces.ScaleLatent`).
"""

from __future__ import annotations

import contextlib

import torch

from ppl_vae.traces import ScaleGlobal, ScaleLatent


def part_loss(estimator, model, guide, x: torch.Tensor, inputs: dict, dataset_size: int,
              latent_scale: float = 1.0) -> torch.Tensor:
    """The estimator on examples whose inputs are all given or all ``None``, globals scaled."""
    _, plan = estimator.prepare(model, guide, x, inputs)
    warmup = ScaleLatent(latent_scale) if latent_scale != 1.0 else contextlib.nullcontext()
    if not plan.global_sites:
        with warmup:
            return estimator(model, guide, x, **inputs)
    with ScaleGlobal(x.shape[0] / dataset_size), warmup:
        return estimator(model, guide, x, **inputs)


def batch_loss(estimator, model, guide, x: torch.Tensor, inputs: dict, known: dict,
               dataset_size: int, latent_scale: float = 1.0) -> torch.Tensor:
    """See the module docstring. ``known``: input name -> bool mask of the batch."""
    if not known:
        return part_loss(estimator, model, guide, x, inputs, dataset_size, latent_scale)
    names = sorted(known)
    code = sum(known[name].long() << i for i, name in enumerate(names))
    total = x.new_zeros(())
    for pattern in code.unique().tolist():
        index = (code == pattern).nonzero().squeeze(1)
        given = {name: bool(pattern >> i & 1) for i, name in enumerate(names)}
        part = {name: value[index] if given.get(name, True) else None
                for name, value in inputs.items()}
        total = total + part_loss(estimator, model, guide, x[index], part, dataset_size,
                                  latent_scale) * (index.numel() / x.shape[0])
    return total
