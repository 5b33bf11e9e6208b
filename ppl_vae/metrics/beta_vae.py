"""BetaVAE score (Higgins et al. 2017), disentanglement_lib's ``beta_vae_sklearn`` recipe.

One training point: draw a factor index ``y`` uniformly from the scored factors
(all of them by default, as disentanglement_lib; Higgins et al. scored 4 of
dSprites' 5, leaving out shape: ``factors=["scale", "orientation", "pos_x",
"pos_y"]``; the others still vary at random in every pair); draw two batches of
``batch_size`` factor vectors and copy column ``y`` of the first into the
second, so the pairs ``(x1_l, x2_l)`` share factor ``y`` and nothing else on
purpose; the feature is::

    f = (1/L) Σ_l | r(x1_l) - r(x2_l) |        (a vector of length D)

with label ``y``. A ``sklearn.linear_model.LogisticRegression`` (defaults)
is fitted on ``num_train`` points; the score is its accuracy on ``num_eval``
fresh points. A code whose dimension j tracks factor y exactly has ``f_j = 0``
for label y, so a disentangled code scores near 1; a random or constant code
scores about ``1/K`` (K scored factors).

Deviation: the classifier gets ``random_state=seed`` (it is deterministic for
the default lbfgs solver anyway). Work is vectorised over points; the draws
differ from the library's, not their distribution.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ppl_vae.errors import PplVaeError
from ppl_vae.metrics.sampling import (
    Representation,
    check_count,
    codes_for_factors,
    factor_indices,
)

POINTS_PER_CHUNK = 16


def _features(representation: Representation, dataset, batch_size: int, num_points: int,
              scored: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` features ``(n, D)`` and their labels ``(n,)``, see the module docstring."""
    features, labels = [], []
    for start in range(0, num_points, POINTS_PER_CHUNK):
        m = min(POINTS_PER_CHUNK, num_points - start)
        y = np.asarray(scored)[rng.integers(0, len(scored), size=m)]
        first = np.asarray(dataset.sample_factors(m * batch_size, rng)).reshape(m, batch_size, -1)
        second = np.asarray(dataset.sample_factors(m * batch_size, rng)).reshape(m, batch_size, -1)
        second[np.arange(m), :, y] = first[np.arange(m), :, y]
        both = np.concatenate([first, second]).reshape(2 * m * batch_size, -1)
        codes = codes_for_factors(representation, dataset, both).reshape(2, m, batch_size, -1)
        features.append(np.abs(codes[0] - codes[1]).mean(axis=1))
        labels.append(y)
    return np.concatenate(features), np.concatenate(labels)


def compute_beta_vae(representation: Representation, dataset, *, batch_size: int = 64,
                     num_train: int = 10_000, num_eval: int = 5_000, seed: int = 0,
                     factors=None) -> dict:
    """BetaVAE score of ``representation`` on ``dataset``; see the module docstring.

    Args:
        representation: ``images (m, *event) -> codes (m, D)`` numpy.
        dataset: a ground-truth dataset (see :mod:`ppl_vae.metrics.sampling`).
        batch_size: pairs averaged per point (disentanglement_lib: 64).
        num_train: training points (disentanglement_lib: 10,000).
        num_eval: evaluation points (disentanglement_lib: 5,000).
        seed: seeds the draws and the classifier.
        factors: the factors to tell apart, names or indices (default: all).

    Returns:
        dict with ``train_accuracy``, ``eval_accuracy`` (the score), ``converged``
        (False when lbfgs stopped at its default 100 iterations, as the library
        would, silently) and ``factors`` (the indices scored).
    """
    batch_size = check_count("batch_size", batch_size)
    num_train = check_count("num_train", num_train, 2)
    num_eval = check_count("num_eval", num_eval)
    scored = factor_indices(dataset, factors)
    if len(scored) < 2:
        raise PplVaeError("the BetaVAE score needs at least two factors to tell apart")
    rng = np.random.default_rng(seed)
    train_x, train_y = _features(representation, dataset, batch_size, num_train, scored, rng)
    eval_x, eval_y = _features(representation, dataset, batch_size, num_eval, scored, rng)
    if len(np.unique(train_y)) < 2:
        raise PplVaeError(f"num_train={num_train} drew a single factor; use more points")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = LogisticRegression(random_state=seed).fit(train_x, train_y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"train_accuracy": float(model.score(train_x, train_y)),
            "eval_accuracy": float(model.score(eval_x, eval_y)), "converged": converged,
            "factors": scored}
