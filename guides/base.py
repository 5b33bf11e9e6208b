"""What every guide for a single-latent model reads off its model."""

from __future__ import annotations

from ppl_vae.errors import PplVaeError


def single_latent(model, guide_name: str) -> tuple[str, int, float]:
    """``(site, latent_dim, latent_scale)`` of a model with one vector latent site.

    Models built by this project expose ``latent_site``, ``latent_dim`` and
    ``latent_scale`` (β, 1 for a plain VAE); a guide copies the scale onto its
    own site so the whole KL term is scaled (see :mod:`ppl_vae.models.beta_vae`).
    """
    try:
        return model.latent_site, int(model.latent_dim), float(model.latent_scale)
    except AttributeError:
        raise PplVaeError(
            f"guide '{guide_name}' needs a model with one vector latent site (attributes "
            "latent_site, latent_dim, latent_scale); pass your own guide for this model"
        ) from None
