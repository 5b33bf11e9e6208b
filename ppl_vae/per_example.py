"""Per-example results of :func:`ppl_vae.evaluate`, and their file ``RUN/evaluation_examples.npz``.

``evaluate(..., per_example=True)`` returns, beside the summary, one value per
evaluated example ``n``: the importance-sampled ``log p̂(x_n)``, the ELBO, and
the trust of ``log p̂(x_n)`` (Pareto k̂ and the importance-sampling ESS of its
``K`` weights, :mod:`ppl_vae.diagnostics.psis`). Two evaluations of different
models on the same examples then compare *paired* (:mod:`ppl_vae.compare`).

What "the same examples" means is checked, not assumed: the file keeps the
examples' row indices in the test split, a SHA-256 digest of their values as
float32, ``K`` and what the likelihood measures (``log p(x)``, ``log p(x, y)``).
The file is a plain ``.npz`` (numpy arrays only, read with ``allow_pickle=False``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ppl_vae.errors import PplVaeError
from ppl_vae.runs import atomic_write

FILE = "evaluation_examples.npz"


@dataclass(frozen=True, eq=False)
class PerExample:
    """One evaluation's values per example (arrays ``(n,)``, float64).

    Attributes:
        index: the examples' rows in their split (``arange(n)``: the first ``n``).
        log_likelihood: ``log p̂(x_n) = logsumexp_k log w_nk - log K``; None where the
            evaluation has no IS log-likelihood (point-mass guide, global latents).
        elbo: ``(1/K) Σ_k log w_nk``.
        khat: Pareto k̂ of the ``K`` weights (NaN when ``K < 21``); None with no weights.
        ess: Kish's ESS of the ``K`` weights, in ``[1, K]``; None with no weights.
        iw_samples: ``K``.
        examples_sha256: SHA-256 of the examples' float32 values, in row order.
        likelihood_of: what ``log_likelihood`` measures, e.g. ``log p(x)``.
    """

    index: np.ndarray
    log_likelihood: np.ndarray | None
    elbo: np.ndarray
    khat: np.ndarray | None
    ess: np.ndarray | None
    iw_samples: int
    examples_sha256: str
    likelihood_of: str

    def save(self, path: Path) -> None:
        """Write the arrays and settings to ``path`` (``.npz``), atomically."""
        arrays: dict[str, Any] = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)
                  if getattr(self, f.name) is not None}
        atomic_write(Path(path), lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: Path) -> PerExample:
        """Read a file written by :meth:`save`; a one-line error when it is not one."""
        try:
            with np.load(Path(path), allow_pickle=False) as stored:
                values = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise PplVaeError(f"cannot read {path}: {error}; rerun ppl-vae evaluate") from None
        missing = {"index", "elbo", "iw_samples", "examples_sha256"} - set(values)
        if missing:
            raise PplVaeError(f"{path} lacks {sorted(missing)}; rerun ppl-vae evaluate")
        return cls(index=values["index"], log_likelihood=values.get("log_likelihood"),
                   elbo=values["elbo"], khat=values.get("khat"), ess=values.get("ess"),
                   iw_samples=int(values["iw_samples"]),
                   examples_sha256=str(values["examples_sha256"]),
                   likelihood_of=str(values.get("likelihood_of", "log p(x)")))

