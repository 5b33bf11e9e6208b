"""A user's loss function used as an estimator, recorded as ``callable:<name>``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ppl_vae.estimators.base import Batch, Estimator
from ppl_vae.naming import program_inputs

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair

CALLABLE_PREFIX = "callable:"


class CallableLoss(Estimator):
    """A user's ``loss(model, guide, x, **inputs)``, summed over the batch like Pyro's; the
    inputs come under the programs' own keywords (``fit(inputs={"ys": "y:onehot"})``: ``ys=``)."""

    def __init__(self, loss):
        super().__init__(1)
        self.function = loss
        self.name = CALLABLE_PREFIX + getattr(loss, "__qualname__", type(loss).__name__)

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        self.prepare(pair, batch.x, batch.inputs)
        inputs = program_inputs(pair.model, batch.inputs)
        return self.function(pair.model, pair.guide, batch.x, **inputs) / batch.size
