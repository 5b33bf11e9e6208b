"""scikit-learn's 8x8 handwritten digits (1,797 images, ships with scikit-learn)."""

from __future__ import annotations

import numpy as np

from ppl_vae.data.common import assemble, draw_subset, split_options
from ppl_vae.data.compact import compact
from ppl_vae.data.dataset import Dataset
from ppl_vae.registry import DATA_SOURCES


@DATA_SOURCES.register("digits", "scikit-learn's 1,797 8x8 digits")
def load_digits(*, n: int | str | None = None, **shared: object) -> Dataset:
    """Load ``sklearn.datasets.load_digits`` as ``(n, 1, 8, 8)`` images.

    Pixel counts 0..16 are scaled to [0, 1] by ``x / 16`` (kept as uint8 and
    converted per batch); the digit is kept as the label. The ``n`` images (all
    1,797 by default and for ``"all"``) are drawn and split at random with
    ``numpy.random.default_rng(seed)``.

    Args:
        n: Total images, at most 1,797 (default all).
        **shared: The options every source takes (:class:`~ppl_vae.config.SplitOptions`);
            ``storage="auto"`` keeps uint8, or bits once binarized.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    split = split_options("digits", shared)
    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # counts 0..16, exact
    labels = bunch.target.astype(np.int64)
    n, train, test = draw_subset(n, len(images), len(images), "digits", split)
    return assemble(
        {"name": "digits", "n": n}, split, compact(images[train], divisor=16.0),
        compact(images[test], divisor=16.0), train_labels=labels[train], test_labels=labels[test]
    )
