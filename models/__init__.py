"""Generative models p(x, z), one family per file; importing registers them."""

from ppl_vae.models import autoencoder, beta_vae, ngvae, vae  # noqa: F401
