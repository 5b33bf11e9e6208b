"""FactorVAE score (Kim & Mnih 2018), disentanglement_lib's recipe.

1. Global scale: ``s_j² = Var(r_j)`` (ddof 1) over ``num_variance_estimate``
   random images; codes with ``s_j < prune_threshold`` are *inactive* and left out.
2. One vote: draw factor index ``k`` uniformly, draw ``batch_size`` factor
   vectors all sharing the first one's value of factor k, encode them, and
   take the active code with the smallest normalised variance::

       d* = argmin_j  Var_batch(r_j) / s_j²           (ddof 1, active j only)

   The vote is ``(k, d*)``.
3. A majority-vote classifier ``class(d) = argmax_k V_train[k, d]`` is read off
   ``num_train`` votes; the score is its accuracy on ``num_eval`` fresh votes,
   ``Σ_d V_eval[class(d), d] / Σ V_eval``.

A code with one dimension per factor scores 1; a random code about ``1/K``;
a code with no active dimension scores 0 (as in the library).

The library's ``prune_dims.threshold`` defaults to 0 in code and is set to
0.05 by its evaluation configs; 0.05 is the default here.
"""

from __future__ import annotations

import numpy as np

from ppl_vae.metrics.sampling import (
    Representation,
    check_count,
    codes_for_factors,
    factor_sizes,
    sample_codes,
)

VOTES_PER_CHUNK = 32


def _votes(representation: Representation, dataset, batch_size: int, num_votes: int,
           scale2: np.ndarray, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vote counts ``(K, #active)``: how often fixing factor k made active code d the stillest."""
    sizes = factor_sizes(dataset)
    votes = np.zeros((len(sizes), int(active.sum())), dtype=np.int64)
    for start in range(0, num_votes, VOTES_PER_CHUNK):
        m = min(VOTES_PER_CHUNK, num_votes - start)
        k = rng.integers(0, len(sizes), size=m)
        factors = np.asarray(dataset.sample_factors(m * batch_size, rng)).reshape(m, batch_size, -1)
        factors[np.arange(m), :, k] = factors[np.arange(m), :1, k]
        codes = codes_for_factors(representation, dataset, factors.reshape(m * batch_size, -1))
        local = codes.reshape(m, batch_size, -1)[:, :, active].var(axis=1, ddof=1)
        np.add.at(votes, (k, np.argmin(local / scale2[active], axis=1)), 1)
    return votes


def compute_factor_vae(representation: Representation, dataset, *, batch_size: int = 64,
                       num_train: int = 10_000, num_eval: int = 5_000,
                       num_variance_estimate: int = 10_000, prune_threshold: float = 0.05,
                       seed: int = 0) -> dict:
    """FactorVAE score of ``representation`` on ``dataset``; see the module docstring.

    Args:
        representation: ``images (m, *event) -> codes (m, D)`` numpy.
        dataset: a ground-truth dataset (see :mod:`ppl_vae.metrics.sampling`).
        batch_size: images per vote (disentanglement_lib: 64).
        num_train: training votes (disentanglement_lib: 10,000).
        num_eval: evaluation votes (disentanglement_lib: 5,000).
        num_variance_estimate: images for the global variances (disentanglement_lib: 10,000).
        prune_threshold: least standard deviation of an active code (library configs: 0.05).
        seed: seeds ``numpy.random.default_rng``.

    Returns:
        dict with ``train_accuracy``, ``eval_accuracy`` (the score) and ``num_active_dims``.
    """
    batch_size = check_count("batch_size", batch_size, 2)
    num_train = check_count("num_train", num_train)
    num_eval = check_count("num_eval", num_eval)
    num_variance_estimate = check_count("num_variance_estimate", num_variance_estimate, 2)
    rng = np.random.default_rng(seed)
    codes, _ = sample_codes(representation, dataset, num_variance_estimate, rng)
    scale2 = codes.var(axis=0, ddof=1)
    active = np.sqrt(scale2) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train = _votes(representation, dataset, batch_size, num_train, scale2, active, rng)
    evaluation = _votes(representation, dataset, batch_size, num_eval, scale2, active, rng)
    classifier = np.argmax(train, axis=0)
    columns = np.arange(train.shape[1])
    return {
        "train_accuracy": float(train[classifier, columns].sum() / train.sum()),
        "eval_accuracy": float(evaluation[classifier, columns].sum() / evaluation.sum()),
        "num_active_dims": int(active.sum()),
    }
