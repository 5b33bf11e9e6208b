"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018).

disentanglement_lib's recipe: for each factor ``v_k`` a
``sklearn.ensemble.GradientBoostingClassifier`` (defaults) predicts the factor
class from the codes; its feature importances fill column k of the
importance matrix ``R`` (``D`` codes × ``K`` factors, ``R_jk ≥ 0``). Then::

    P_jk = R_jk / Σ_k' R_jk'            (code j's importance spread over factors)
    D    = Σ_j ρ_j (1 - H_K(P_j·)),      ρ_j = Σ_k R_jk / Σ_jk R_jk
    C    = Σ_k ρ'_k (1 - H_D(R̃_·k)),     R̃_jk = R_jk / Σ_j' R_j'k,  ρ'_k = Σ_j R_jk / Σ_jk R_jk

with ``H_K`` the entropy in base K (so each term lies in [0, 1]). D is 1 when
every code informs one factor only, C is 1 when every factor is captured by
one code. Informativeness is the classifiers' mean accuracy on ``num_train``
training and ``num_test`` held-out points (the paper uses a regression error
instead; the library reports accuracy, so do we).

Deviations: ``random_state=seed`` is passed to the classifier so the score
is reproducible (the library leaves it unset; it only breaks ties between
equally good splits). With a single code C is defined as 1, with a single
factor D as 1 (the library divides by ``log 1``). A factor with one class in
the training sample gets zero importance and accuracy 1.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier

from ppl_vae.metrics.sampling import Representation, check_count, sample_codes

EPS = 1e-11


def importance_matrix(train_codes: np.ndarray, train_factors: np.ndarray,
                      test_codes: np.ndarray, test_factors: np.ndarray,
                      seed: int = 0) -> tuple[np.ndarray, float, float]:
    """``(R (D, K), mean train accuracy, mean test accuracy)`` of one classifier per factor."""
    n_codes, n_factors = train_codes.shape[1], train_factors.shape[1]
    importance = np.zeros((n_codes, n_factors))
    train_acc, test_acc = [], []
    for k in range(n_factors):
        y_train, y_test = train_factors[:, k], test_factors[:, k]
        if len(np.unique(y_train)) < 2:
            train_acc.append(1.0)
            test_acc.append(float(np.mean(y_test == y_train[0])))
            continue
        model = GradientBoostingClassifier(random_state=seed).fit(train_codes, y_train)
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc.append(float(np.mean(model.predict(train_codes) == y_train)))
        test_acc.append(float(np.mean(model.predict(test_codes) == y_test)))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def disentanglement(importance: np.ndarray) -> float:
    """``Σ_j ρ_j (1 - H_K(P_j·))`` over codes j (rows of the ``(D, K)`` matrix)."""
    return _weighted_purity(importance)


def completeness(importance: np.ndarray) -> float:
    """``Σ_k ρ'_k (1 - H_D(R̃_·k))`` over factors k (columns of the ``(D, K)`` matrix)."""
    return _weighted_purity(importance.T)


def _weighted_purity(matrix: np.ndarray) -> float:
    """``Σ_i w_i (1 - H(row_i))``, entropy in base ``#columns``, rows weighted by their mass."""
    if matrix.shape[1] < 2:
        return 1.0
    if matrix.sum() == 0:
        matrix = np.ones_like(matrix)
    purity = 1.0 - entropy(matrix.T + EPS, base=matrix.shape[1])
    weight = matrix.sum(axis=1) / matrix.sum()
    return float(np.sum(purity * weight))


def dci_from_codes(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                   test_factors: np.ndarray, seed: int = 0) -> dict:
    """DCI scores from codes and factor classes already drawn; see the module docstring.

    Returns:
        dict with ``disentanglement``, ``completeness``, ``informativeness_train``,
        ``informativeness_test`` and ``importance_matrix`` (a ``D × K`` list of lists).
    """
    importance, train_acc, test_acc = importance_matrix(
        train_codes, np.asarray(train_factors), test_codes, np.asarray(test_factors), seed)
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_train": train_acc,
        "informativeness_test": test_acc,
        "importance_matrix": importance.tolist(),
    }


def compute_dci(representation: Representation, dataset, *, num_train: int = 10_000,
                num_test: int = 5_000, seed: int = 0) -> dict:
    """DCI of ``representation`` on fresh uniform draws from ``dataset``.

    Args:
        representation: ``images (m, *event) -> codes (m, D)`` numpy.
        dataset: a ground-truth dataset (see :mod:`ppl_vae.metrics.sampling`).
        num_train: training points (disentanglement_lib: 10,000).
        num_test: held-out points (disentanglement_lib: 5,000).
        seed: seeds the factor draws and the classifiers.

    Returns:
        dict as :func:`dci_from_codes`.
    """
    num_train = check_count("num_train", num_train, 2)
    num_test = check_count("num_test", num_test, 1)
    rng = np.random.default_rng(seed)
    train_codes, train_factors = sample_codes(representation, dataset, num_train, rng)
    test_codes, test_factors = sample_codes(representation, dataset, num_test, rng)
    return dci_from_codes(train_codes, train_factors, test_codes, test_factors, seed)
