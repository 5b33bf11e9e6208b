"""A user's loss function used as an estimator, recorded as ``callable:<name>``."""

from __future__ import annotations

import torch

from ppl_vae.estimators.base import Estimator
from ppl_vae.naming import program_inputs

CALLABLE_PREFIX = "callable:"


class CallableLoss(Estimator):
    """A user's ``loss(model, guide, x, **inputs)``, summed over the batch like Pyro's; the
    inputs come under the programs' own keywords (``fit(inputs={"ys": "y:onehot"})``: ``ys=``)."""

    def __init__(self, loss):
        super().__init__(1)
        self.function = loss
        self.name = CALLABLE_PREFIX + getattr(loss, "__qualname__", type(loss).__name__)

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        self.prepare(model, guide, x, inputs)
        return self.function(model, guide, x, **program_inputs(model, inputs)) / x.shape[0]
