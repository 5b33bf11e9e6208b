"""Datasets: ``load(name, **options) -> Dataset``.

Every source returns the same :class:`Dataset` (train/test tensors, optional
factors and labels, binarization flags); ``load(**ds.spec)`` rebuilds it.
Options every source takes: ``n`` (total before the split), those of
:class:`~ppl_vae.config.SplitOptions` (``test_fraction``, ``seed``,
``binarize``: ``"sampled"`` is one kept ``bernoulli(x)`` draw per pixel, the
fixed binarization of the literature; ``storage``), and ``labelled`` and
``flatten`` (see :func:`load`); their defaults and checks live there only.
Each source's own options are in its loader's docstring. Data already in
memory: :func:`from_tensors`.
"""

from __future__ import annotations

import dataclasses

from ppl_vae.config import DataSpec, SplitOptions
from ppl_vae.data import array, digits, dsprites, mnist, shapes  # noqa: F401 (they register)
from ppl_vae.data.common import apply_labelled, check_labelled
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.tensors import from_tensors
from ppl_vae.errors import PplVaeError
from ppl_vae.registry import DATA_SOURCES

__all__ = ["DATASETS", "Dataset", "from_tensors", "load", "load_spec"]

# the stock sources, name -> one line (ppl_vae.registry.DATA_SOURCES holds later ones too)
DATASETS: dict[str, str] = {entry.name: entry.description for entry in DATA_SOURCES.entries()}


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
        **options: Keyword options of that source (see its ``load_*`` function) and
            those every source takes (:class:`~ppl_vae.config.SplitOptions`).

    Returns:
        The :class:`Dataset`; ``load(**ds.spec)`` rebuilds it exactly, label
        mask included.

    Raises:
        PplVaeError: Unknown name or option, missing file, bad data, or a
            ``labelled`` that is out of range or given for a source without labels.
    """
    if not isinstance(name, str) or name not in DATA_SOURCES:
        known = ", ".join(entry.name for entry in DATA_SOURCES.entries())
        raise PplVaeError(f"unknown dataset {name!r}; known datasets: {known}")
    source = DATA_SOURCES.get(name)
    accepted = [*source.options(), *(f.name for f in dataclasses.fields(SplitOptions)),
                "labelled"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise PplVaeError(
            f"dataset {name!r} has no option {', '.join(unknown)}; "
            f"its options are: {', '.join(accepted)}"
        )
    labelled = check_labelled(labelled)  # before a slow load
    data = apply_labelled(source.factory(**options), labelled)
    return data.flattened() if flatten else data


def load_spec(spec: DataSpec) -> Dataset:
    """The dataset a recorded :class:`~ppl_vae.config.DataSpec` describes (a run folder's
    ``data`` section): ``load(**spec.to_json())``."""
    return load(**spec.to_json())
