"""Training: :func:`fit` over a :class:`~ppl_vae.training.session.Session`.

- :mod:`~ppl_vae.training.fit`: ``fit`` — checks, assembly, the epochs
- :mod:`~ppl_vae.training.session`: one run in progress, its steps and epoch ends
- :mod:`~ppl_vae.training.state`: :class:`TrainState`, what a checkpoint holds
- :mod:`~ppl_vae.training.checks`: data, input names, a resume's settings
- :mod:`~ppl_vae.training.optimizers`: fused Adam, or any pyro.optim / torch.optim optimizer
- :mod:`~ppl_vae.training.schedules`: learning-rate schedules, KL warm-up, divergence guard
- :mod:`~ppl_vae.training.board`: TensorBoard events (the ``tensorboard`` extra)
- :mod:`~ppl_vae.training.distributed`: torchrun, DDP over the pair's loss
"""

from ppl_vae.training.fit import fit
from ppl_vae.training.schedules import TrainingDiverged
from ppl_vae.training.state import TrainState

__all__ = ["TrainState", "TrainingDiverged", "fit"]
