"""Pyro's ``examples/vae/ss_vae_M2.py`` (Kingma et al. 2014's M2), in its own style: one
``nn.Module`` registered with ``pyro.module("ss_vae", self)``, an unsized
``pyro.plate("data")``, one-hot labels passed as ``ys=``, ``y`` summed out by
``TraceEnum_ELBO`` where unknown, and the auxiliary classification loss as a second pair
``model_classify``/``guide_classify`` scaled by ``aux_loss_multiplier``.

Model and guide, for a flat image ``xs``, a one-hot class ``ys`` and a style ``zs``::

    zs ~ N(0, I),  ys ~ OneHotCat(1/10),  xs | ys, zs ~ Bernoulli(f(zs, ys))
    q(ys | xs) = OneHotCat(c(xs)),  q(zs | xs, ys) = N(m(xs, ys), diag s(xs, ys)^2)

What ppl_vae needs: the one-hot keyword (``inputs={"ys": "y:onehot"}``, the mask of
known labels follows it); flat vectors, as these networks take (``load(..., flatten=True)``,
or ``xs = xs.reshape(xs.shape[0], -1)`` inside, which this file does so that image-shaped
data work too); and the enumeration
written on the site (``infer={"enumerate": "parallel"}``) rather than by
``config_enumerate(ss_vae.guide)`` outside the class, so that a run folder can name the
guide as ``module:SSVAE.guide`` and rebuild it::

    m2 = SSVAE()
    run = ppl_vae.fit(m2.model, m2.guide, data, elbo=m2_loss(m2), inputs={"ys": "y:onehot"})
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import nn


def hidden_layers(sizes: list[int]) -> list[nn.Module]:
    """Linear layers, each followed by softplus, weights and biases drawn from N(0, 0.001²)
    after PyTorch's default draw (Pyro's example's ``MLP``: the same draws for one seed)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        linear = nn.Linear(a, b)
        nn.init.normal_(linear.weight, 0.0, 1e-3)
        nn.init.normal_(linear.bias, 0.0, 1e-3)
        layers += [linear, nn.Softplus()]
    return layers


def mlp(sizes: list[int], last: nn.Module | None = None) -> nn.Sequential:
    """Hidden layers (:func:`hidden_layers`), then a linear output layer (PyTorch's
    default init) and ``last``."""
    return nn.Sequential(*hidden_layers(sizes[:-1]), nn.Linear(sizes[-2], sizes[-1]),
                         *([last] if last is not None else []))


class LocScale(nn.Module):
    """Hidden layers, then two linear heads: the location and ``exp`` of the second (the
    scale), built in Pyro's order (``output_activation=[None, Exp]``)."""

    def __init__(self, sizes: list[int], out: int):
        super().__init__()
        self.hidden = nn.Sequential(*hidden_layers(sizes))
        self.loc, self.log_scale = nn.Linear(sizes[-1], out), nn.Linear(sizes[-1], out)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(inputs)
        return self.loc(h), torch.exp(self.log_scale(h))


def concat(*parts: torch.Tensor) -> torch.Tensor:
    """Concatenate on the last dim after broadcasting the others (an enumerated ``ys``)."""
    batch = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return torch.cat([p.expand(*batch, p.shape[-1]) for p in parts], -1)


class SSVAE(nn.Module):
    """The semi-supervised VAE; ``model``/``guide`` and ``model_classify``/``guide_classify``."""

    def __init__(self, output_size: int = 10, input_size: int = 784, z_dim: int = 50,
                 hidden: int = 500, aux_loss_multiplier: float = 46.0):
        super().__init__()
        self.output_size, self.z_dim = output_size, z_dim
        self.aux_loss_multiplier = aux_loss_multiplier
        self.encoder_y = mlp([input_size, hidden, output_size], nn.Softmax(dim=-1))
        self.encoder_z = LocScale([input_size + output_size, hidden], z_dim)
        self.decoder = mlp([z_dim + output_size, hidden, input_size], nn.Sigmoid())

    def model(self, xs, ys=None):
        pyro.module("ss_vae", self)
        xs = xs.reshape(xs.shape[0], -1)
        batch_size = xs.size(0)
        options = dict(dtype=xs.dtype, device=xs.device)
        with pyro.plate("data"):
            prior_loc = torch.zeros(batch_size, self.z_dim, **options)
            prior_scale = torch.ones(batch_size, self.z_dim, **options)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            alpha_prior = torch.ones(batch_size, self.output_size, **options) / self.output_size
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)
            loc = self.decoder(concat(zs, ys))
            pyro.sample("x", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=xs)

    def guide(self, xs, ys=None):
        xs = xs.reshape(xs.shape[0], -1)
        with pyro.plate("data"):
            if ys is None:
                alpha = self.encoder_y(xs)
                ys = pyro.sample("y", dist.OneHotCategorical(alpha),
                                 infer={"enumerate": "parallel"})
            loc, scale = self.encoder_z(concat(xs, ys))
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def model_classify(self, xs, ys=None):
        pyro.module("ss_vae", self)
        xs = xs.reshape(xs.shape[0], -1)
        with pyro.plate("data"):
            if ys is not None:
                alpha = self.encoder_y(xs)
                with pyro.poutine.scale(scale=self.aux_loss_multiplier):
                    pyro.sample("y_aux", dist.OneHotCategorical(alpha), obs=ys)

    def guide_classify(self, xs, ys=None):
        pass

    def classifier(self, xs) -> torch.Tensor:
        """Predicted class indices."""
        return self.encoder_y(xs.reshape(xs.shape[0], -1)).argmax(-1)


def m2_loss(m2: SSVAE):
    """The two losses Pyro's example steps with two SVIs, summed into one step (mixed
    batches): ``TraceEnum_ELBO`` on the pair and, for labelled examples, ``Trace_ELBO`` on
    the classification pair. Pyro's own schedule, two steps on labelled-only batches, is
    ``fit(..., labelled_batches="spaced", auxiliary=(m2.model_classify, m2.guide_classify))``
    with ``elbo=TraceEnum_ELBO(max_plate_nesting=1)``."""
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    aux = Trace_ELBO()

    def loss(model, guide, x, ys=None):
        value = elbo.differentiable_loss(model, guide, x, ys=ys)
        if ys is None:
            return value
        return value + aux.differentiable_loss(m2.model_classify, m2.guide_classify, x, ys=ys)

    return loss


if __name__ == "__main__":
    import ppl_vae

    data = ppl_vae.data.load("mnist5k", binarize="static", labelled=500)
    m2 = SSVAE()
    run = ppl_vae.fit(m2.model, m2.guide, data, elbo=m2_loss(m2), inputs={"ys": "y:onehot"},
                      epochs=10, batch_size=200, lr=4.2e-4, out="runs/pyro_m2", overwrite=True)
    m2.eval()
    with torch.no_grad():
        print("test accuracy", (m2.classifier(data.test) == data.test_labels).float().mean())
