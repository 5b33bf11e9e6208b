"""Disentanglement metrics, one per file, after disentanglement_lib's recipes.

Each ``compute_*`` takes a representation ``r(images) -> codes (n, D)`` and a
ground-truth dataset (``factor_sizes``, ``sample_factors``,
``images_for_factors``), and returns a dict of named scores. The point counts
default to the library's; pass smaller ones for speed (``ppl-vae diagnose``
does, and says so in its report).

=================  ==========================  ============================
metric             score key                   known answers
=================  ==========================  ============================
BetaVAE score      ``eval_accuracy``           ground truth ≈ 1, random ≈ 1/K
FactorVAE score    ``eval_accuracy``           ground truth ≈ 1, random ≈ 1/K
MIG                ``discrete_mig``            ground truth ≈ 0.9, random ≈ 0
DCI                ``disentanglement``, ...    ground truth ≈ 1, random ≈ 0
=================  ==========================  ============================
"""

from ppl_vae.metrics.beta_vae import compute_beta_vae
from ppl_vae.metrics.dci import compute_dci, dci_from_codes
from ppl_vae.metrics.factor_vae import compute_factor_vae
from ppl_vae.metrics.mig import compute_mig, mig_from_codes
from ppl_vae.metrics.sampling import Representation

__all__ = ["Representation", "compute_beta_vae", "compute_dci", "compute_factor_vae",
           "compute_mig", "dci_from_codes", "mig_from_codes"]
