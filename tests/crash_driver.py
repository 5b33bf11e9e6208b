"""Train a tiny VAE in its own process, optionally dying by SIGKILL at a chosen moment.

It trains with every stateful control on (KL warm-up, cosine schedule, gradient
clipping, step logging), so resuming must restore them all to match bit for bit.

    python tests/crash_driver.py OUT MODE AT      MODE: none | kill_step | kill_checkpoint | resume

``kill_step`` kills the process inside training step AT (after the loss, before
the update); ``kill_checkpoint`` kills it halfway through writing checkpoint
number AT (the temporary file holds half of the bytes); ``resume`` continues OUT.
"""

import os
import signal
import sys

import torch

import ppl_vae
from ppl_vae import runs
from ppl_vae.estimators import Estimator, make_elbo
from tests.conftest import tiny_binary


class KillAtStep(Estimator):
    name = "trace"

    def __init__(self, at: int):
        super().__init__(1)
        self.inner, self.at, self.calls = make_elbo("trace"), at, 0

    def __call__(self, model, guide, x):
        self.calls += 1
        loss = self.inner(model, guide, x)
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return loss


def kill_in_checkpoint(at: int) -> None:
    """Cut the ``at``-th checkpoint's temporary file to half, then SIGKILL the process."""
    real_fsync, count = runs.os.fsync, [0]

    def half_then_die(fd):
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            count[0] += 1
            if count[0] == at:
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        return real_fsync(fd)

    runs.os.fsync = half_then_die


def main(out: str, mode: str, at: int) -> None:
    torch.set_num_threads(1)
    data = tiny_binary()
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    elbo = KillAtStep(at) if mode == "kill_step" else "trace"
    if mode == "kill_checkpoint":
        kill_in_checkpoint(at)
    ppl_vae.fit(pair.model, pair.guide, data, elbo=elbo, epochs=3, batch_size=20, seed=1,
                out=out, resume=mode == "resume", quiet=True, device="cpu", checkpoint_every=2,
                pair=pair, warmup_steps=7, lr_schedule="cosine", clip_norm=5.0, log_every=3,
                report=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
