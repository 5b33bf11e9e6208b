"""The four disentanglement metrics of :mod:`ppl_vae.metrics` on a run's representation.

The representation is ``r(x) = E_q[z | x]`` of the primary site, as in
disentanglement_lib (``postprocess mean``). Point counts come from a preset:

=====================  =================================  ==========================
metric                 ``full`` (disentanglement_lib)      ``fast`` (CPU default)
=====================  =================================  ==========================
BetaVAE score          batch 64, 10,000 train, 5,000 eval  batch 64, 2,000 / 1,000
FactorVAE score        batch 64, 10,000 / 5,000 votes,     batch 64, 2,000 / 1,000,
                       10,000 for the variances            5,000 for the variances
MIG                    10,000 points, 20 bins              10,000 points, 20 bins
DCI                    10,000 train, 5,000 test            2,000 train, 1,000 test
=====================  =================================  ==========================

``fast`` keeps every recipe and cuts the point counts, which adds sampling
noise (a few points of accuracy on BetaVAE/FactorVAE, DCI's importances from
gradient boosting on 2,000 points) but no bias in MIG. Datasets with stored
factors but no renderer (an ``array`` with ``factors=``) get MIG and DCI on the
stored test split (the codes of the test images) instead of fresh draws;
BetaVAE and FactorVAE need rendered batches and are n/a there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ppl_vae.errors import PplVaeError
from ppl_vae.metrics import (
    compute_beta_vae,
    compute_dci,
    compute_factor_vae,
    compute_mig,
    dci_from_codes,
    mig_from_codes,
)
from ppl_vae.metrics.sampling import encode, factor_indices

PRESETS = {
    "full": {
        "beta_vae": {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000},
        "factor_vae": {"batch_size": 64, "num_train": 10_000, "num_eval": 5_000,
                       "num_variance_estimate": 10_000},
        "mig": {"num_train": 10_000, "num_bins": 20},
        "dci": {"num_train": 10_000, "num_test": 5_000},
    },
    "fast": {
        "beta_vae": {"batch_size": 64, "num_train": 2_000, "num_eval": 1_000},
        "factor_vae": {"batch_size": 64, "num_train": 2_000, "num_eval": 1_000,
                       "num_variance_estimate": 5_000},
        "mig": {"num_train": 10_000, "num_bins": 20},
        "dci": {"num_train": 2_000, "num_test": 1_000},
    },
}
COMPUTE: dict[str, Callable[..., dict]] = {
    "beta_vae": compute_beta_vae, "factor_vae": compute_factor_vae, "mig": compute_mig,
    "dci": compute_dci}


def disentanglement_scores(representation, data, preset: str | dict = "fast",
                           seed: int = 0) -> dict | None:
    """Scores of every metric with the ``preset``'s point counts; None without factors.

    Args:
        representation: ``images -> codes (n, D)`` numpy.
        data: the dataset.
        preset: ``"fast"``, ``"full"``, or a dict like ``PRESETS["fast"]`` (metric ->
            keyword arguments of its ``compute_*``; metrics left out are skipped).
        seed: seeds every metric.

    Returns:
        ``{metric: {"scores": ..., "settings": ..., "seconds": ...}}`` plus
        ``"preset"`` and ``"source"`` (``"renderer"`` or ``"test split"``).
    """
    settings_of = check_preset(preset)
    if getattr(data, "factor_sizes", None) is None:
        return None
    if not hasattr(data, "images_for_factors") or getattr(data, "renderer", True) is None:
        return _from_test_split(representation, data, seed)
    out: dict[str, Any] = {"preset": preset if isinstance(preset, str) else "custom",
           "source": "renderer",
           "seed": seed, **{name: None for name in COMPUTE}}
    for name, settings in settings_of.items():
        start = time.perf_counter()
        scores = COMPUTE[name](representation, data, seed=seed, **settings)
        out[name] = {"scores": scores, "settings": settings,
                     "seconds": round(time.perf_counter() - start, 2)}
    return out


def with_beta_vae_factors(preset: str | dict, factors) -> str | dict:
    """``preset`` with the BetaVAE score restricted to ``factors`` (None: unchanged)."""
    if factors is None:
        return preset
    settings = {name: dict(kwargs) for name, kwargs in check_preset(preset).items()}
    if "beta_vae" in settings:
        settings["beta_vae"]["factors"] = list(factors)
    return settings


def check_preset(preset: str | dict, data=None) -> dict:
    """The per-metric settings of ``preset``, or a one-line error."""
    if isinstance(preset, dict):
        unknown = set(preset) - set(COMPUTE)
        if unknown:
            raise PplVaeError(f"unknown metric(s) {sorted(unknown)} in the metrics settings; "
                              f"known: {sorted(COMPUTE)}")
        if data is not None and getattr(data, "factor_sizes", None) is not None:
            factor_indices(data, (preset.get("beta_vae") or {}).get("factors"))
        return preset
    if not isinstance(preset, str) or preset not in PRESETS:
        raise PplVaeError(f"unknown metrics preset {preset!r}; use one of {sorted(PRESETS)} "
                          "or 'none'")
    return PRESETS[preset]


def _from_test_split(representation, data, seed: int) -> dict:
    """MIG and DCI on the stored test images and factors (no renderer to draw from)."""
    codes = np.concatenate([encode(representation, chunk) for chunk in data.test_store.chunks(4096)])
    factors = data.test_factors.cpu().numpy()
    half = len(codes) * 2 // 3
    out = {"preset": "test split", "source": "test split", "seed": seed,
           "beta_vae": None, "factor_vae": None}
    start = time.perf_counter()
    out["mig"] = {"scores": mig_from_codes(codes, factors), "settings": {"num_train": len(codes)},
                  "seconds": round(time.perf_counter() - start, 2)}
    start = time.perf_counter()
    out["dci"] = {"scores": dci_from_codes(codes[:half], factors[:half], codes[half:],
                                           factors[half:], seed),
                  "settings": {"num_train": half, "num_test": len(codes) - half},
                  "seconds": round(time.perf_counter() - start, 2)}
    return out
