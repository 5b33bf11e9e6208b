"""scikit-learn's 8x8 handwritten digits (1,797 images, ships with scikit-learn)."""

from __future__ import annotations

import numpy as np

from ppl_vae.data.common import assemble, check_common, check_n, resolve_n, subset_split
from ppl_vae.data.compact import check_storage, compact
from ppl_vae.data.dataset import Dataset


def load_digits(
    *,
    n: int | str | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    binarize: str = "none",
    storage: str = "auto",
) -> Dataset:
    """Load ``sklearn.datasets.load_digits`` as ``(n, 1, 8, 8)`` images.

    Pixel counts 0..16 are scaled to [0, 1] by ``x / 16`` (kept as uint8 and
    converted per batch); the digit is kept as the label. The ``n`` images (all
    1,797 by default and for ``"all"``) are drawn and split at random with
    ``numpy.random.default_rng(seed)``.

    Args:
        n: Total images, at most 1,797 (default all).
        test_fraction: Share held out for test, in (0, 1).
        seed: Seed of the subset draw and split.
        binarize: ``"none"``, ``"static"`` or ``"dynamic"``.
        storage: ``"auto"`` (uint8, or bits once binarized) or ``"float32"``.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    n, test_fraction, seed = check_common(n, test_fraction, seed, binarize)
    storage = check_storage(storage)
    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # counts 0..16, exact
    labels = bunch.target.astype(np.int64)
    n = check_n(resolve_n(n, len(images), len(images)), len(images), "digits")
    train, test = subset_split(len(images), n, test_fraction, np.random.default_rng(seed))
    spec = {"name": "digits", "n": n, "test_fraction": test_fraction, "seed": seed,
            "binarize": binarize}
    return assemble(
        spec, compact(images[train], divisor=16.0), compact(images[test], divisor=16.0),
        storage=storage, train_labels=labels[train], test_labels=labels[test]
    )
