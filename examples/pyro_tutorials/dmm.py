"""Pyro's Deep Markov Model (Krishnan et al. 2017), in its own style: one latent and one
observed site per time step up to the batch's longest sequence, masks for the shorter
ones, a gated transition, an emitter, and a guide that combines the previous latent with
an RNN run over the reversed sequence (optionally through IAF flows)::

    z_t | z_{t-1} ~ N(loc(z_{t-1}), scale(z_{t-1})),  x_t | z_t ~ Bernoulli(emitter(z_t))
    q(z_t | z_{t-1}, x_{t:T}) = N(combiner(z_{t-1}, RNN(x_{T:t})))

:class:`DMM`'s ``model``/``guide`` take Pyro's five arguments (the padded batch, its
reversed packed copy, the mask, the lengths, the annealing factor). What ppl_vae needs,
and why: its data are tensors with one row per sequence, so :class:`Sequences` holds the
DMM and turns ``(x, lengths)`` into those arguments — trimming the batch to its longest
sequence, as Pyro's ``get_mini_batch`` does (so the site set changes from batch to batch).
The observed sites ``obs_x_1 ... obs_x_T`` are all the data; Pyro's KL annealing is the
engine's warm-up (``warmup_steps``, ``warmup_start``: the same ``poutine.scale`` on every
latent site); Pyro's ``ClippedAdam`` is ``optim=``::

    seqs = Sequences(DMM(input_dim=88))
    run = ppl_vae.fit(seqs.model, seqs.guide, data, inputs=["lengths"], elbo="trace",
                      optim=ClippedAdam({"lr": 3e-4, "clip_norm": 10.0, "lrd": 0.99996}),
                      warmup_steps=..., warmup_start=0.2)

Data: :func:`load_jsb` reads the JSB chorales through Pyro's loader (``download=True``),
:func:`synthetic_chorales` makes binary sequences of the same shape for tests.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import TransformedDistribution
from pyro.distributions.transforms import affine_autoregressive
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import ppl_vae


class Emitter(nn.Module):
    """``z_t -> p(x_t | z_t)``'s Bernoulli probabilities."""

    def __init__(self, input_dim: int, z_dim: int, emission_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, emission_dim), nn.ReLU(),
                                 nn.Linear(emission_dim, emission_dim), nn.ReLU(),
                                 nn.Linear(emission_dim, input_dim), nn.Sigmoid())

    def forward(self, z_t):
        return self.net(z_t)


class GatedTransition(nn.Module):
    """``z_{t-1} -> (loc, scale)`` of ``p(z_t | z_{t-1})``: a gate between the identity and a
    proposed mean."""

    def __init__(self, z_dim: int, transition_dim: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(z_dim, transition_dim), nn.ReLU(),
                                  nn.Linear(transition_dim, z_dim), nn.Sigmoid())
        self.proposed = nn.Sequential(nn.Linear(z_dim, transition_dim), nn.ReLU(),
                                      nn.Linear(transition_dim, z_dim))
        self.sig = nn.Linear(z_dim, z_dim)
        self.to_loc = nn.Linear(z_dim, z_dim)
        with torch.no_grad():
            self.to_loc.weight.copy_(torch.eye(z_dim))
            self.to_loc.bias.zero_()

    def forward(self, z_prev):
        gate, proposed = self.gate(z_prev), self.proposed(z_prev)
        loc = (1 - gate) * self.to_loc(z_prev) + gate * proposed
        return loc, nn.functional.softplus(self.sig(torch.relu(proposed)))


class Combiner(nn.Module):
    """``(z_{t-1}, h_t) -> (loc, scale)`` of ``q(z_t | z_{t-1}, x_{t:T})``."""

    def __init__(self, z_dim: int, rnn_dim: int):
        super().__init__()
        self.to_hidden = nn.Linear(z_dim, rnn_dim)
        self.to_loc = nn.Linear(rnn_dim, z_dim)
        self.to_scale = nn.Linear(rnn_dim, z_dim)

    def forward(self, z_prev, h_rnn):
        h = 0.5 * (torch.tanh(self.to_hidden(z_prev)) + h_rnn)
        return self.to_loc(h), nn.functional.softplus(self.to_scale(h))


class DMM(nn.Module):
    """The model and guide with Pyro's arguments (sizes are Pyro's defaults)."""

    def __init__(self, input_dim: int = 88, z_dim: int = 100, emission_dim: int = 100,
                 transition_dim: int = 200, rnn_dim: int = 600, num_iafs: int = 0,
                 iaf_dim: int = 50):
        super().__init__()
        self.emitter = Emitter(input_dim, z_dim, emission_dim)
        self.trans = GatedTransition(z_dim, transition_dim)
        self.combiner = Combiner(z_dim, rnn_dim)
        self.rnn = nn.RNN(input_dim, rnn_dim, nonlinearity="relu", batch_first=True)
        self.iafs = nn.ModuleList(affine_autoregressive(z_dim, hidden_dims=[iaf_dim])
                                  for _ in range(num_iafs))
        self.z_0 = nn.Parameter(torch.zeros(z_dim))
        self.z_q_0 = nn.Parameter(torch.zeros(z_dim))
        self.h_0 = nn.Parameter(torch.zeros(1, 1, rnn_dim))

    def model(self, mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths,
              annealing_factor=1.0):
        pyro.module("dmm", self)
        z_prev = self.z_0.expand(mini_batch.size(0), self.z_0.size(0))
        with pyro.plate("z_minibatch", len(mini_batch)):
            for t in pyro.markov(range(1, mini_batch.size(1) + 1)):
                z_loc, z_scale = self.trans(z_prev)
                with poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(f"z_{t}", dist.Normal(z_loc, z_scale)
                                      .mask(mini_batch_mask[:, t - 1:t]).to_event(1))
                pyro.sample(f"obs_x_{t}", dist.Bernoulli(self.emitter(z_t))
                            .mask(mini_batch_mask[:, t - 1:t]).to_event(1),
                            obs=mini_batch[:, t - 1, :])
                z_prev = z_t

    def guide(self, mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths,
              annealing_factor=1.0):
        pyro.module("dmm", self)
        h_0 = self.h_0.expand(1, mini_batch.size(0), self.rnn.hidden_size).contiguous()
        rnn_output, _ = self.rnn(mini_batch_reversed, h_0)
        rnn_output = pad_and_reverse(rnn_output, mini_batch_seq_lengths)
        z_prev = self.z_q_0.expand(mini_batch.size(0), self.z_q_0.size(0))
        with pyro.plate("z_minibatch", len(mini_batch)):
            for t in pyro.markov(range(1, mini_batch.size(1) + 1)):
                z_loc, z_scale = self.combiner(z_prev, rnn_output[:, t - 1, :])
                with poutine.scale(scale=annealing_factor):
                    if len(self.iafs):
                        z_dist = TransformedDistribution(dist.Normal(z_loc, z_scale).to_event(1),
                                                         list(self.iafs))
                        z_t = pyro.sample(f"z_{t}", z_dist.mask(mini_batch_mask[:, t - 1]))
                    else:
                        z_t = pyro.sample(f"z_{t}", dist.Normal(z_loc, z_scale)
                                          .mask(mini_batch_mask[:, t - 1:t]).to_event(1))
                z_prev = z_t


def reverse_sequences(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence's first ``length`` steps in reverse order (padding stays at the end)."""
    steps = torch.arange(x.size(1), device=x.device)
    index = (lengths[:, None] - 1 - steps).where(steps < lengths[:, None], steps)
    return x.gather(1, index[:, :, None].expand_as(x))


def pad_and_reverse(rnn_output, lengths: torch.Tensor) -> torch.Tensor:
    """The packed RNN output padded back and put in forward time order."""
    padded, _ = pad_packed_sequence(rnn_output, batch_first=True)
    return reverse_sequences(padded, lengths)


class Sequences:
    """The DMM as ``model(x, lengths)`` / ``guide(x, lengths)``: Pyro's ``get_mini_batch``
    (trim to the longest sequence, mask, reversed packed copy) inside the programs."""

    def __init__(self, dmm: DMM):
        self.dmm = dmm

    @staticmethod
    def arguments(x: torch.Tensor, lengths: torch.Tensor) -> tuple:
        steps = int(lengths.max())
        x = x[:, :steps]
        mask = (torch.arange(steps, device=x.device) < lengths[:, None]).to(x.dtype)
        reversed_ = pack_padded_sequence(reverse_sequences(x, lengths), lengths.cpu(),
                                         batch_first=True, enforce_sorted=False)
        return x, reversed_, mask, lengths

    def model(self, x, lengths):
        self.dmm.model(*self.arguments(x, lengths))

    def guide(self, x, lengths):
        self.dmm.guide(*self.arguments(x, lengths))


def make_pair(data, **sizes) -> tuple:
    """``(model, guide)`` of a :class:`DMM` sized for ``data`` (``ppl-vae train --model
    examples.pyro_tutorials.dmm:make_pair --inputs lengths --plate z_minibatch``)."""
    sequences = Sequences(DMM(input_dim=data.event_shape[-1], **sizes))
    return sequences.model, sequences.guide


def load_jsb(download: bool = False):
    """The JSB chorales (88 piano keys per step) through Pyro's loader, padded, with lengths."""
    if not download:
        raise ppl_vae.PplVaeError("the JSB chorales are fetched by Pyro's loader; pass "
                                  "download=True (--download) on a machine with a network")
    from pyro.contrib.examples import polyphonic_data_loader as poly

    data = poly.load_data(poly.JSB_CHORALES)
    train, test = data["train"], data["test"]
    return ppl_vae.data.from_tensors(
        train["sequences"].float(), test["sequences"].float(),
        fields={"lengths": train["sequence_lengths"].long()},
        test_fields={"lengths": test["sequence_lengths"].long()})


def synthetic_chorales(n: int = 60, steps: int = 24, keys: int = 88, seed: int = 0):
    """Binary ``(n, steps, keys)`` sequences of random lengths (each key held with
    probability 0.9 from one step to the next), zero-padded; 5 of every 6 for training."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(steps // 3, steps + 1, (n,), generator=g)
    x = torch.zeros(n, steps, keys)
    x[:, 0] = (torch.rand(n, keys, generator=g) < 0.1).float()
    for t in range(1, steps):
        flip = torch.rand(n, keys, generator=g) < torch.where(x[:, t - 1] > 0, 0.1, 0.02)
        x[:, t] = (x[:, t - 1] != flip.float()).float()
    x *= (torch.arange(steps) < lengths[:, None])[:, :, None]
    cut = n - n // 6
    return ppl_vae.data.from_tensors(x[:cut], x[cut:], fields={"lengths": lengths[:cut]},
                                     test_fields={"lengths": lengths[cut:]})


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--epochs", type=int, default=5000 // 40)
    parser.add_argument("--num-iafs", type=int, default=0)
    parser.add_argument("--out", default="runs/dmm")
    args = parser.parse_args()
    data = load_jsb(True) if args.download else synthetic_chorales()
    sequences = Sequences(DMM(num_iafs=args.num_iafs))
    run = ppl_vae.fit(sequences.model, sequences.guide, data, inputs=["lengths"], elbo="trace",
                      epochs=args.epochs, batch_size=20, out=args.out, warmup_steps=1000,
                      warmup_start=0.2,
                      optim=pyro.optim.ClippedAdam({"lr": 3e-4, "betas": (0.96, 0.999),
                                                    "clip_norm": 10.0, "lrd": 0.99996}))
    print(run.report["evaluation"])
