"""TensorBoard events of a run, in ``RUN/tensorboard/`` (``fit(tensorboard=True)``).

Written with ``torch.utils.tensorboard`` (the ``tensorboard`` extra):

- ``epoch/*`` after every epoch: the ``metrics.jsonl`` line's numbers (training
  objective, test ELBO where measured, learning rate, warm-up scale, speed);
  ``step/*`` for every ``steps.jsonl`` line (``log_every``);
- at every test ELBO (``eval_every``), on the first test examples:

  - ``kl/<site>/<d>``: the per-dimension KL ``E_x E_q[log q_d(z_d|x) - log p_d(z_d)]``
    of every local latent site whose guide and prior factor over dimensions
    (:mod:`ppl_vae.diagnostics.draws`, :data:`KL_DRAWS` draws per example);
  - ``images/reconstructions`` (inputs, then the means of ``p(x | z)`` at
    ``z ~ q(z | x)``) and ``images/prior_samples`` (means at ``z ~ p(z)``), for image
    data (one or three channels);
  - what the model's and guide's ``report`` and ``figure_data`` hooks
    (:mod:`ppl_vae.contract`) hand over: their scalars as ``<role>_report/<key>``,
    their histogram panels as histograms (NGVAE's inferred variances).

A step of these events is an epoch (``step/*``: a training step). On resume the
events after the checkpoint's epoch are purged, so a resumed run's curves have
no doubled points.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from ppl_vae import runs
from ppl_vae.contract import pair_hooks
from ppl_vae.diagnostics.draws import pair_draws
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.figures import as_images, observation_mean
from ppl_vae.pair import Pair
from ppl_vae.traces import take

EXAMPLES, IMAGES, KL_DRAWS, MAX_KL_DIMS = 256, 16, 8, 64


class Board:
    """The event writer of one run and what it reads at each evaluation."""

    def __init__(self, folder: Path, pair: Pair, data: dict, image_shape: tuple | None,
                 epoch: int):
        self.writer = SummaryWriter(str(Path(folder) / runs.TENSORBOARD), purge_step=epoch + 1)
        self.pair, self.image_shape = pair, image_shape
        n = min(EXAMPLES, len(data["test_x"]))
        self.x = data["test_x"][torch.arange(n, device=data["test_x"].index_device)]
        self.inputs = take(data["test_in"], slice(0, n))
        self.failed: set[str] = set()

    def scalars(self, group: str, line: dict, step: int) -> None:
        """The numbers of a metrics or steps line as ``group/key``."""
        for key, value in line.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{group}/{key}", value, step)
        self.writer.flush()

    @torch.no_grad()
    def look(self, epoch: int) -> None:
        """Per-dimension KL, images and the hooks' numbers at an evaluation, in eval mode; a
        part that fails is skipped from then on, with a note."""
        with self.pair.evaluation():
            for part in (self._kl, self._images, self._hooks):
                if part.__name__ in self.failed:
                    continue
                try:
                    part(epoch)
                except Exception as error:  # a figure never stops training: said once
                    self.failed.add(part.__name__)
                    warnings.warn(f"TensorBoard: no {part.__name__[1:]} from epoch {epoch} on "
                                  f"({type(error).__name__}: {str(error).splitlines()[0]})",
                                  PplVaeWarning, stacklevel=2)
        self.writer.flush()

    def _kl(self, epoch: int) -> None:
        try:
            draws = pair_draws(self.pair, self.x[:64], KL_DRAWS, inputs=take(self.inputs,
                                                                             slice(0, 64)))
        except PplVaeError:  # a global latent: no per-example draws, no per-dimension KL
            return
        for site, kl in draws.kl_per_dim.items():
            for d, value in enumerate([] if kl is None else kl[:MAX_KL_DIMS]):
                self.writer.add_scalar(f"kl/{site}/{d}", float(value), epoch)

    def _images(self, epoch: int) -> None:
        x, inputs = self.x[:IMAGES], take(self.inputs, slice(0, IMAGES))
        model, guide = self.pair.model, self.pair.guide
        recon = observation_mean(model, guide, x, inputs=inputs)
        prior = observation_mean(model, guide, x, from_prior=True, inputs=inputs)
        for name, images in (("reconstructions", torch.cat([x, recon]) if recon.shape == x.shape
                              else None), ("prior_samples", prior)):
            images = None if images is None else as_images(images, self.image_shape)
            if images is not None and images.dim() == 4 and images.shape[1] in (1, 3):
                self.writer.add_images(f"images/{name}", images.float().clamp(0, 1).cpu(),
                                       epoch)

    def _hooks(self, epoch: int) -> None:
        for role, report, other in pair_hooks(self.pair.model, self.pair.guide, "report"):
            for key, value in report(self.x, other).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{role}_report/{key}", value, epoch)
        for _, figure_data, other in pair_hooks(self.pair.model, self.pair.guide,
                                                "figure_data"):
            for figure in figure_data(self.x, other):
                for i, panel in enumerate(figure.panels):
                    if panel.kind == "histogram":
                        self.writer.add_histogram(f"{figure.name}/{panel.xlabel or i}",
                                                  torch.as_tensor(panel.values).flatten(),
                                                  epoch)

    def close(self) -> None:
        self.writer.close()
