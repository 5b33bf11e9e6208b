"""A program whose ``"data"`` plate draws its own rows: Pyro's idiom for SVI on the whole
data set, which meets ``ppl_vae``'s own batches. Refused in one line, naming the plate and
what to write: of the whole data set (batches smaller than it, or the test rows after a
full-batch epoch) or of the batch (rows left without terms); what it says to write
trains."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_vae
from ppl_vae.errors import PplVaeError

N = 12


def _data():
    x = torch.randn(N + 4, 3, generator=torch.Generator().manual_seed(0))
    return ppl_vae.data.from_tensors(x[:N], x[N:])


def _pair(size):
    encoder = torch.nn.Linear(3, 3)

    def model(x):
        with pyro.plate("data", size(x), subsample_size=3) as rows:
            z = pyro.sample("z", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x[rows])

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", size(x), subsample_size=3) as rows:
            pyro.sample("z", dist.Normal(encoder(x[rows]), 0.7).to_event(1))

    return model, guide


@pytest.mark.parametrize("size, batch_size, shown", [
    (lambda x: N, 4, "pyro.plate('data', 12, subsample_size=3)"),
    (lambda x: N, N, "pyro.plate('data', 12, subsample_size=3)"),  # then the 4 test rows
    (lambda x: x.shape[0], 4, "pyro.plate('data', 4, subsample_size=3)"),
])
def test_a_plate_drawing_its_own_rows_is_refused_in_one_line(size, batch_size, shown):
    model, guide = _pair(size)
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, guide, _data(), epochs=1, batch_size=batch_size, quiet=True,
                    report=False, device="cpu")
    message = str(error.value)
    assert f"{shown} draws its own rows" in message
    assert "fit(batch_size=3)" in message and "\n" not in message


def test_what_the_refusal_says_to_write_trains():
    def batch_model(x):  # the same program with the plate over the batch it is given
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    encoder = torch.nn.Linear(3, 3)

    def batch_guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(encoder(x), 0.7).to_event(1))

    run = ppl_vae.fit(batch_model, batch_guide, _data(), epochs=2, batch_size=3, quiet=True,
                      report=False, device="cpu")
    assert all(torch.isfinite(torch.tensor(m["test_elbo"])) for m in run.metrics)
