"""Run under torchrun: train a deterministic autoencoder with DDP, save each rank's parameters.

    torchrun --nproc_per_node=2 -m tests.ddp_driver OUT [EPOCHS] [--resume]
"""

import os
import sys

import torch

import ppl_vae
from tests.conftest import tiny_binary


def train(out, epochs: int = 2, resume: bool = False):
    torch.set_num_threads(1)
    data = tiny_binary()
    pair = ppl_vae.build("autoencoder", latent_dim=2, data=data, net="mlp", seed=0)
    run = ppl_vae.fit(pair.model, pair.guide, data, epochs=epochs, batch_size=20, lr=1e-2,
                      seed=0, out=out, quiet=True, device="cpu", pair=pair, resume=resume)
    return {k: v.detach().clone() for k, v in run.pair.named_parameters().items()}, run


if __name__ == "__main__":
    out = sys.argv[1]
    params, _ = train(out, int(sys.argv[2]) if len(sys.argv) > 2 else 2, "--resume" in sys.argv)
    torch.save(params, os.path.join(out, f"rank{os.environ['RANK']}.pt"))
