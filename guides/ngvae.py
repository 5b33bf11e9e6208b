"""NGVAE guide: a relaxed inverse-gamma mixture on each latent variance, then a Gaussian.

The encoder outputs ``μ_k(x)`` and ``p_k(x) = sigmoid(ℓ_k(x)) ∈ (0, 1)``. The mixture
``q(λ_k⁻¹ | x) = p_k IG(α1, β1) + (1 - p_k) IG(α2, β2)`` is relaxed into one
inverse-gamma ``IG(a(p_k), b(p_k))`` by the model's
:class:`~ppl_vae.models.ngvae.Relaxation` (``p_k → 1`` selects component 1, the
small-variance "informative" one)::

    λ_k ~ Gamma(a(p_k), b(p_k))     (λ_k⁻¹ ~ IG(a(p_k), b(p_k)); implicit reparameterization)
    z_k | λ_k ~ N(μ_k, λ_k⁻¹)

Both sites are reparameterized (``Gamma.rsample`` differentiates through the
concentration and rate), so gradients reach ``p_k`` through ``a(p_k), b(p_k)``
and ``trace``, ``meanfield`` and ``iwae`` all apply (the ELBO and which of its terms
are analytic are in :mod:`ppl_vae.models.ngvae`). Reading off the code:
dimension k is *informative* when ``mean_x p_k(x) > 0.5``; the ``report`` hook
hands over that count, the per-dimension mean ``p_k`` and mean variance
``E_x E_q[λ_k⁻¹]``, the ``figure_data`` hook the numbers of the histogram of
inferred variances and of the latent correlation heat map, which the engine draws.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from ppl_vae.contract import Figure, Panel
from ppl_vae.errors import PplVaeError
from ppl_vae.latents import decorrelation
from ppl_vae.models.ngvae import NormalGivenGammaPrecision, Relaxation, student_t_marginal
from ppl_vae.nets import make_encoder
from ppl_vae.registry import GUIDES

INFORMATIVE_WEIGHT = 0.5


class NGVAEGuide(PyroModule):
    """``q(λ, z | x)`` of the module docstring on the sites ``precision`` and ``z``."""

    def __init__(self, event_shape, latent_dim: int, relaxation: Relaxation, net: str = "auto",
                 site: str = "z", precision_site: str = "precision",
                 informative_rate: nn.Module | None = None):
        super().__init__()
        self.latent_dim, self.relaxation = latent_dim, relaxation
        self.site, self.precision_site = site, precision_site
        self.informative_rate = informative_rate  # the model's learned β1, shared
        self.encoder = make_encoder(tuple(event_shape), 2 * latent_dim, net)

    def components(self, weight: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a(p_k), b(p_k))`` on the relaxation path, with the model's β1 (learned or fixed)."""
        rate1 = None if self.informative_rate is None else self.informative_rate()
        return self.relaxation(weight, rate1)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ(x), p(x))``, each ``(*batch, K)``."""
        loc, logit = self.encoder(x).chunk(2, dim=-1)
        return loc, torch.sigmoid(logit)

    def precision_distribution(self, weight: torch.Tensor) -> dist.TorchDistribution:
        """``Π_k Gamma(λ_k; a(p_k), b(p_k))``."""
        return dist.Gamma(*self.components(weight)).to_event(1)

    def forward(self, x: torch.Tensor) -> None:
        loc, weight = self.heads(x)
        a, b = self.components(weight)
        with pyro.plate("data", x.shape[0]):
            precision = pyro.sample(self.precision_site, dist.Gamma(a, b).to_event(1))
            pyro.sample(self.site, NormalGivenGammaPrecision(loc, precision, a, b).to_event(1))

    def collapsed_guide(self, x: torch.Tensor) -> None:
        """``q(z | x) = Π_k t_{2a_k}(μ_k, √(b_k/a_k))``: λ integrated out."""
        loc, weight = self.heads(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample(self.site, student_t_marginal(loc, *self.components(weight)).to_event(1))

    def collapsed(self, model) -> tuple:
        """The pair with λ integrated out: ``(model.collapsed, self.collapsed_guide)``."""
        return model.collapsed, self.collapsed_guide

    @torch.no_grad()
    def summary(self, x: torch.Tensor, model=None, batch: int = 500) -> dict[str, torch.Tensor]:
        """Per-example ``loc``, ``weight`` p_k, mean variance ``b/(a-1)`` and, given an NGVAE
        model, the KL per dimension ``kl`` (all ``(n, K)``; see ``NGVAE.kl_per_dimension``)."""
        parts: dict[str, list[torch.Tensor]] = {"loc": [], "weight": [], "variance": [], "kl": []}
        for chunk in x.split(batch):
            loc, weight = self.heads(chunk)
            a, b = self.components(weight)
            parts["loc"].append(loc)
            parts["weight"].append(weight)
            parts["variance"].append(b / (a - 1))
            if hasattr(model, "kl_per_dimension"):
                parts["kl"].append(model.kl_per_dimension(loc, a, b))
        return {k: torch.cat(v) for k, v in parts.items() if v}

    def report(self, x: torch.Tensor, model=None) -> dict:
        """Informative dimensions (``mean_x p_k > 0.5``) and the per-dimension statistics."""
        s = self.summary(x, model)
        weight, variance = s["weight"].mean(0), s["variance"].mean(0)
        informative = weight > INFORMATIVE_WEIGHT
        score = decorrelation(s["loc"][:, informative])[1] if informative.sum() >= 2 else None
        out = {"informative_components": int(informative.sum()),
               "informative_dims": informative.nonzero().flatten().tolist(),
               "mean_weight": weight.tolist(), "mean_variance": variance.tolist(),
               "decorrelation_informative": score, "weight_threshold": INFORMATIVE_WEIGHT}
        if self.informative_rate is not None:
            a, b = self.components(1.0)
            out["informative_component_variance"] = (b / (a - 1)).detach().tolist()
        if "kl" in s:
            out["kl_per_dimension"] = s["kl"].mean(0).tolist()
            out["prior_weight"] = model.prior_weight().tolist()
        return out

    def figure_data(self, x: torch.Tensor, model=None) -> list[Figure]:
        """The slides' figures, as numbers: the histogram of inferred variances
        ``E_q[λ_k⁻¹ | x]`` over examples and dimensions (informative ones red; dashed:
        the two components' means) beside the mean weight ``p_k`` per dimension, and the
        correlation of the posterior means (informative dimensions' labels red)."""
        s = {k: v.cpu().numpy() for k, v in self.summary(x).items()}
        weight = s["weight"].mean(0)
        informative = weight > INFORMATIVE_WEIGHT
        ends = tuple(float((b / (a - 1)).mean().detach()) for a, b in map(self.components, (1.0, 0.0)))
        variances = Figure("ngvae_variances", [
            Panel("histogram", s["variance"], highlight=informative, log_x=True, lines=ends,
                  legend=("informative", "uninformative"), ylabel="examples × dimensions",
                  xlabel="inferred variance E_q[1/λ_k | x]  (dashed: component means)"),
            Panel("bars", weight, highlight=informative, lines=(INFORMATIVE_WEIGHT,), ylim=(0, 1),
                  xlabel="latent dimension k", ylabel="mean_x p_k(x)")],
            f"{int(informative.sum())} informative of {len(weight)} latent dimensions")
        correlation = Figure("ngvae_correlation", [Panel(
            "heatmap", decorrelation(torch.as_tensor(s["loc"]))[0].numpy(), highlight=informative,
            title="correlation of E_q[z | x] over the data (red: informative)")])
        return [variances, correlation]


@GUIDES.register("ngvae", "relaxed inverse-gamma mixture on each variance, then N(μ, λ⁻¹) "
                          "(NGVAE; reports informative latents)")
def build_ngvae_guide(model, event_shape, net: str = "auto") -> NGVAEGuide:
    relaxation = getattr(model, "relaxation", None)
    if not isinstance(relaxation, Relaxation):
        raise PplVaeError("guide 'ngvae' needs the 'ngvae' model (it reads the relaxation "
                          "hyperparameters off it); use --model ngvae")
    return NGVAEGuide(event_shape, int(model.latent_dim), relaxation, net, model.latent_site,
                      model.precision_site, getattr(model, "informative_rate", None))
