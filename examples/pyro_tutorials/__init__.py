"""Pyro's four VAE examples, rewritten by us in Pyro's own style, trained by ppl_vae."""
