"""Amortized variational families q(z | x), one per file; importing registers them."""

from ppl_vae.guides import delta, diagonal, iaf, ngvae, structured  # noqa: F401
