"""Latent statistics of a padded sequence model never see the padding.

Sequences of lengths 1..4 with two keys per step; the model masks each step past the
sequence's length (``poutine.mask``), the guide's latent at step t is
``N(0.5 x_t, 0.7²)`` (masked too, or not: the model's mask alone says where padding is).
Padding the data with 0 or with 1000 moves the padded latents from 0 to 500: the
statistics of the last step's latent (padded in most sequences) and its per-dimension KL
must not move, and must equal the ones computed by hand over the unpadded sequences.
"""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from ppl_vae import Pair
from ppl_vae.diagnostics import pair_draws
from ppl_vae.errors import PplVaeWarning
from ppl_vae.latents import pair_moments, pair_statistics
from ppl_vae.reporting.builder import Report

STEPS, KEYS = 4, 2


def model(x, lengths):
    steps = torch.arange(STEPS) < lengths[:, None]
    with pyro.plate("data", x.shape[0]):
        for t in range(STEPS):
            with poutine.mask(mask=steps[:, t]):
                z = pyro.sample(f"z_{t}", dist.Normal(0.0, 1.0).expand([KEYS]).to_event(1))
                pyro.sample(f"x_{t}", dist.Normal(z, 1.0).to_event(1), obs=x[:, t])


def make_guide(masked: bool):
    def guide(x, lengths):
        steps = torch.arange(STEPS) < lengths[:, None]
        with pyro.plate("data", x.shape[0]):
            for t in range(STEPS):
                fn = dist.Normal(0.5 * x[:, t], 0.7)
                fn = fn.mask(steps[:, t, None]) if masked else fn
                pyro.sample(f"z_{t}", fn.to_event(1))
    return guide


def sequences(padding: float):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, STEPS + 1, (60,), generator=g)
    x = torch.randn(60, STEPS, KEYS, generator=g)
    x[torch.arange(STEPS) >= lengths[:, None]] = padding
    return x, {"lengths": lengths}


def _numbers(value):
    """Every number of a nested dict/list, flattened (names left out)."""
    if isinstance(value, dict):
        return [n for k in sorted(value) for n in _numbers(value[k])]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, str):
        return []
    return [float("nan") if value is None else float(value)]


@pytest.mark.parametrize("masked", [True, False], ids=["guide-masks", "model-masks-only"])
def test_statistics_do_not_move_with_the_padding(masked):
    pair = Pair(model, make_guide(masked))
    (x0, inputs), (x1, _) = sequences(0.0), sequences(1000.0)
    torch.manual_seed(0)  # the sampled decorrelation draws one z per example
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zero = pair_statistics(pair, x0, inputs)
    on_masks = [w for w in caught if issubclass(w.category, PplVaeWarning)
                and "mask different entries" in str(w.message)]
    assert len(on_masks) == (0 if masked else 1)  # masked in the model only: no bound
    torch.manual_seed(0)
    far = pair_statistics(pair, x1, inputs)
    assert zero["site"] == f"z_{STEPS - 1}"
    full = inputs["lengths"] == STEPS
    assert zero["examples"] == int(full.sum()) and zero["padded_examples"] == int((~full).sum())
    np.testing.assert_allclose(_numbers(zero), _numbers(far), rtol=1e-6, equal_nan=True)
    by_hand = (0.5 * x0[full, -1]).var(0)  # the means of the unpadded sequences only
    np.testing.assert_allclose(zero["activity"], by_hand, rtol=1e-5)
    np.testing.assert_allclose(zero["mean_posterior_variance"], [0.49, 0.49], rtol=1e-5)
    means = pair_moments(pair, x1, inputs=inputs)[1]
    assert means[~full].isnan().all() and means[full].isfinite().all()


def test_the_kl_per_dimension_leaves_the_padding_out():
    pair = Pair(model, make_guide(True))
    kl = []
    for padding in (0.0, 1000.0):
        x, inputs = sequences(padding)
        torch.manual_seed(0)
        kl.append(pair_draws(pair, x, 400, inputs=inputs).kl_per_dim[f"z_{STEPS - 1}"])
    np.testing.assert_allclose(kl[0], kl[1], rtol=1e-6)
    x, inputs = sequences(0.0)
    full = inputs["lengths"] == STEPS
    m = 0.5 * x[full, -1]  # KL(N(m, 0.7²) ‖ N(0, 1)) per dimension, averaged over them
    exact = (0.5 * (0.49 + m**2 - 1) - np.log(0.7)).mean(0)
    np.testing.assert_allclose(kl[0], exact, atol=0.03)


def test_a_site_with_under_two_unpadded_examples_has_no_statistics_and_says_why():
    x, inputs = sequences(0.0)
    inputs = {"lengths": torch.where(torch.arange(60) == 7, STEPS, 1)}  # one full sequence
    latents, code = Report(Pair(model, make_guide(True))).latent_code(x, inputs)
    assert latents["reason"].startswith("n/a: 1 example(s) hold no padding at latent site 'z_3'")
    assert code["means"].shape == (1, KEYS)  # that example's, for the traversals
    np.testing.assert_allclose(code["means"][0], 0.5 * x[7, -1].numpy(), rtol=1e-6)


def test_the_latent_scatter_colours_each_drawn_mean_by_its_own_example():
    from ppl_vae.data.dataset import Dataset
    from ppl_vae.figures import scatter_colours

    x, inputs = sequences(0.0)
    labels = torch.arange(60)  # label n = example n: a shifted pairing cannot pass
    data = Dataset("padded", None, train=x, test=x, train_labels=labels, test_labels=labels)
    latents, code = Report(Pair(model, make_guide(True))).latent_code(x, inputs)
    full = (inputs["lengths"] == STEPS).nonzero().squeeze(1).numpy()
    np.testing.assert_array_equal(code["rows"], full)
    colours = scatter_colours(data, code["rows"])
    assert len(colours["label"]) == len(code["means"])
    np.testing.assert_array_equal(colours["label"], full)
    np.testing.assert_allclose(code["means"], 0.5 * x[full, -1].numpy(), rtol=1e-6)
