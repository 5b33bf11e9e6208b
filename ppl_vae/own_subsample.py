"""A program whose ``"data"`` plate draws its own rows.

Pyro's SVI hands a program the whole data set and lets ``pyro.plate("data", N,
subsample_size=B)`` pick the rows. ``ppl_vae`` draws the batches itself and needs a term
for every row of the ``x`` it hands over (the per-example ELBO, IS weights, reports): a
plate of ``N`` rows picks rows ``x`` may not have (a raw ``IndexError``), and a plate
subsampling the batch leaves rows without terms (a raw shape error). Either is refused in
one line saying what to write instead."""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoGuide
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ppl_vae.errors import PplVaeError


class _Reached(Exception):
    """The program reached its ``"data"`` plate: nothing more to see."""


class _DataPlateWatch(Messenger):
    """Stops a program at its data plate and keeps the plate's own subsample draw."""

    def __init__(self, plate: str) -> None:
        super().__init__()
        self.plate, self.subsample = plate, None

    def _process_message(self, msg) -> None:
        if msg["type"] != "sample":
            return
        if msg["name"] == self.plate and site_is_subsample(msg):
            self.subsample = msg["fn"]  # pyro's _Subsample(size, subsample_size)
            raise _Reached
        if any(frame.name == self.plate for frame in msg["cond_indep_stack"]):
            raise _Reached  # inside a plate given its rows (or none): nothing drawn


def check_own_subsample(model, guide, x: torch.Tensor, inputs: dict, plate: str) -> None:
    """Refuse a model or guide whose data plate (named ``plate``) draws its own rows: of
    another size than ``x.shape[0]``, or fewer than all. (An AutoGuide's plates are judged
    with its other needs, in :mod:`ppl_vae.traces`.)

    Each runs only up to its data plate, in a passing param store (nothing it creates is
    kept: parameters are made from the batch that trains), with a forked RNG and its
    messages blocked.
    """
    programs = {"model": model} if isinstance(guide, AutoGuide) else {"guide": guide,
                                                                      "model": model}
    for role, program in programs.items():
        watch = _DataPlateWatch(plate)
        with pyro.get_param_store().scope(), poutine.block(), watch, \
                torch.random.fork_rng(devices=[]), torch.no_grad():
            try:
                program(x, **inputs)
            except _Reached:
                pass
            except Exception:  # noqa: BLE001 (the engine's own first trace reports it)
                return
        drawn = watch.subsample  # subsample_size None: all rows, in order (a plain plate)
        if drawn is not None and drawn.subsample_size is not None \
                and not drawn.size == drawn.subsample_size == x.shape[0]:
            raise PplVaeError(
                f"the {role}'s pyro.plate('{plate}', {drawn.size}, subsample_size="
                f"{drawn.subsample_size}) draws its own rows, but ppl_vae draws the batches "
                f"and needs every row of the x it gives ({x.shape[0]} here): write "
                f"pyro.plate('{plate}', x.shape[0]) and fit(batch_size="
                f"{drawn.subsample_size}), or pyro.plate('{plate}', N, subsample=index) with "
                "fit(..., inputs=['index'])")
