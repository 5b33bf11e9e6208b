"""Pyro's ProdLDA tutorial (Srivastava & Sutton 2017), in its own style: documents as
word-count vectors, topic proportions ``logtheta`` under a logistic-normal prior, an
encoder with dropout and BatchNorm, a decoder whose topic-word matrix passes through
BatchNorm, the observed site ``"obs"`` in a plate called ``"documents"``.

    logtheta ~ N(0, I_K),  theta = softmax(logtheta),
    docs | theta ~ Multinomial(L, softmax(BN(beta theta)))
    q(logtheta | docs) = N(BN(mu(docs)), diag exp(BN(logvar(docs)) / 2)^2)

ppl_vae needs the two names (evaluation then runs with dropout off and BatchNorm on its
running statistics, which checkpoints keep)::

    lda = ProdLDA(vocab_size, num_topics=20)
    run = ppl_vae.fit(lda.model, lda.guide, data, observe="obs", plate="documents")

:func:`planted_corpus` makes a corpus with known topics (no real corpus ships here).
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


class Encoder(nn.Module):
    """``docs -> (loc, scale)`` of ``logtheta``."""

    def __init__(self, vocab_size: int, num_topics: int, hidden: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(vocab_size, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fcmu = nn.Linear(hidden, num_topics)
        self.fclv = nn.Linear(hidden, num_topics)
        self.bnmu = nn.BatchNorm1d(num_topics, affine=False)
        self.bnlv = nn.BatchNorm1d(num_topics, affine=False)

    def forward(self, inputs):
        h = F.softplus(self.fc1(inputs))
        h = F.softplus(self.fc2(h))
        h = self.drop(h)
        logtheta_loc = self.bnmu(self.fcmu(h))
        logtheta_logvar = self.bnlv(self.fclv(h))
        return logtheta_loc, (0.5 * logtheta_logvar).exp()


class Decoder(nn.Module):
    """``theta -> word probabilities``."""

    def __init__(self, vocab_size: int, num_topics: int, dropout: float):
        super().__init__()
        self.beta = nn.Linear(num_topics, vocab_size, bias=False)
        self.bn = nn.BatchNorm1d(vocab_size, affine=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, inputs):
        inputs = self.drop(inputs)
        return F.softmax(self.bn(self.beta(inputs)), dim=1)


class ProdLDA(nn.Module):
    """The pair: ``lda.model(docs)`` and ``lda.guide(docs)``."""

    def __init__(self, vocab_size: int = 100, num_topics: int = 5, hidden: int = 100,
                 dropout: float = 0.2):
        super().__init__()
        self.vocab_size, self.num_topics = vocab_size, num_topics
        self.encoder = Encoder(vocab_size, num_topics, hidden, dropout)
        self.decoder = Decoder(vocab_size, num_topics, dropout)

    def model(self, docs):
        pyro.module("decoder", self.decoder)
        with pyro.plate("documents", docs.shape[0]):
            logtheta_loc = docs.new_zeros((docs.shape[0], self.num_topics))
            logtheta_scale = docs.new_ones((docs.shape[0], self.num_topics))
            logtheta = pyro.sample("logtheta",
                                   dist.Normal(logtheta_loc, logtheta_scale).to_event(1))
            theta = F.softmax(logtheta, -1)
            count_param = self.decoder(theta)
            total_count = int(docs.sum(-1).max())
            pyro.sample("obs", dist.Multinomial(total_count, count_param, validate_args=False),
                        obs=docs)

    def guide(self, docs):
        pyro.module("encoder", self.encoder)
        with pyro.plate("documents", docs.shape[0]):
            logtheta_loc, logtheta_scale = self.encoder(docs)
            pyro.sample("logtheta", dist.Normal(logtheta_loc, logtheta_scale).to_event(1))

    def beta(self) -> torch.Tensor:
        """The topic-word weights ``(num_topics, vocab_size)``."""
        return self.decoder.beta.weight.detach().T


def planted_corpus(n_docs: int, vocab_size: int = 100, num_topics: int = 5, length: int = 50,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(docs, topics)``: each topic owns ``vocab_size / num_topics`` words; each document
    mixes two topics (Dirichlet(0.3) over all) and draws ``length`` words."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    topics = torch.full((num_topics, vocab_size), 1e-3)
    for k, words in enumerate(torch.arange(vocab_size).chunk(num_topics)):
        topics[k, words] = 1.0
    topics = topics / topics.sum(-1, keepdim=True)
    weights = torch.as_tensor(rng.dirichlet(np.full(num_topics, 0.3), n_docs), dtype=torch.float32)
    words = weights @ topics
    docs = torch.stack([torch.bincount(torch.multinomial(p, length, True, generator=generator),
                                       minlength=vocab_size) for p in words]).float()
    return docs, topics


if __name__ == "__main__":
    import ppl_vae

    docs, topics = planted_corpus(5000)
    data = ppl_vae.data.from_tensors(docs, name="planted topics")
    lda = ProdLDA()
    run = ppl_vae.fit(lda.model, lda.guide, data, observe="obs", plate="documents", epochs=30,
                      lr=1e-2, batch_size=100, out="runs/pyro_prodlda", overwrite=True)
    print(run.evaluate(data.test, iw_samples=10))
    print("top words of each topic:", lda.beta().topk(5, dim=-1).indices.tolist())
