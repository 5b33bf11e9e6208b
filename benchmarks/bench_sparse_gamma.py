"""Full-batch sparse-gamma DEF steps: ``ppl_vae.fit`` against plain Pyro ``SVI``, side by side.

The program has the structure of Pyro's ``examples/sparse_gamma_def.py`` (Ranganath et al.
2015), written here as a Pyro user writes it: three layers of Gamma latents per example
(widths 100, 40, 15), Gamma weights outside the data plate (global latents), a Poisson
likelihood of 64x64 counts, and a mean-field guide whose per-example parameters are made
with the shape ``(x.size(0), width)`` — the program only makes sense full-batch, as
Pyro's example trains it — trained with ``TraceMeanField_ELBO`` (analytic Gamma KLs),
``pyro.optim.AdagradRMSProp(eta=4.5, t=0.1)`` and the example's ``clip_params()`` after
every step. The data are synthetic counts of the Olivetti faces' shape (320 x 4096).

Columns, seconds per step (median over ``--repeats``, the runs interleaved so machine
load hits all alike):

- ``pyro_svi``: ``svi.step(x)`` then ``clip_params()``, ``--steps`` times, with Pyro's
  default validation (on); ``pyro_svi_no_validation``: the same under
  ``pyro.validation_enabled(False)``, as ``fit`` trains;
- ``fit_loop``: ``fit``'s step loop alone (``metrics.jsonl``'s ``seconds``);
- ``fit``: the whole ``fit(..., optim=AdagradRMSProp, on_step=clip_params, eval_every=0)``
  call over ``--steps`` epochs of one step each: setup and checks, and the one test ELBO
  after the last epoch (16 particles, the default for a program with global latents)
  included;
- ``fit_eval_every_epoch``: the same with a test ELBO after every epoch (``eval_every=1``,
  the old fixed cadence), over ``--eval-steps`` epochs.

Torch builds its first optimizer by importing ``torch._dynamo`` (seconds, once per
process); that is done before any timing.

The test split is the training set itself (``from_tensors(x, test=x)``): the guide's
per-example parameters exist for those rows only.

    python benchmarks/bench_sparse_gamma.py [--steps 20] [--eval-steps 5] [--repeats 2]
                                            [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, TraceMeanField_ELBO

import ppl_vae
from ppl_vae.data import from_tensors
from ppl_vae.training import speedups

WIDTHS, PIXELS, EXAMPLES = (100, 40, 15), 64 * 64, 320
ALPHA_Z, BETA_Z, ALPHA_W, BETA_W = 0.1, 0.1, 0.1, 0.3


class SparseGammaDEF:
    """Model, guide and parameter clipping, as in Pyro's example (``x``: ``(n, 4096)``)."""

    def model(self, x):
        top, mid, bottom = WIDTHS
        with pyro.plate("w_top_plate", top * mid):
            w_top = pyro.sample("w_top", dist.Gamma(ALPHA_W, BETA_W))
        with pyro.plate("w_mid_plate", mid * bottom):
            w_mid = pyro.sample("w_mid", dist.Gamma(ALPHA_W, BETA_W))
        with pyro.plate("w_bottom_plate", bottom * PIXELS):
            w_bottom = pyro.sample("w_bottom", dist.Gamma(ALPHA_W, BETA_W))
        with pyro.plate("data", x.size(0)):
            z_top = pyro.sample("z_top", dist.Gamma(x.new_full((top,), ALPHA_Z), BETA_Z)
                                .to_event(1))
            mean_mid = z_top @ w_top.reshape(*w_top.shape[:-1], top, mid)  # particles pass
            z_mid = pyro.sample("z_mid", dist.Gamma(ALPHA_Z, BETA_Z / mean_mid).to_event(1))
            mean_bottom = z_mid @ w_mid.reshape(*w_mid.shape[:-1], mid, bottom)
            z_bottom = pyro.sample("z_bottom", dist.Gamma(ALPHA_Z, BETA_Z / mean_bottom)
                                   .to_event(1))
            rate = z_bottom @ w_bottom.reshape(*w_bottom.shape[:-1], bottom, PIXELS)
            pyro.sample("x", dist.Poisson(rate).to_event(1), obs=x)

    def guide(self, x):
        top, mid, bottom = WIDTHS
        for name, size in (("top", top * mid), ("mid", mid * bottom),
                           ("bottom", bottom * PIXELS)):
            with pyro.plate(f"w_{name}_plate", size):
                self._gamma(f"w_{name}", (size,), event=False)
        with pyro.plate("data", x.size(0)):
            for name, width in zip(("top", "mid", "bottom"), WIDTHS):
                self._gamma(f"z_{name}", (x.size(0), width), event=True)

    @staticmethod
    def _gamma(site: str, shape: tuple, event: bool):
        """A Gamma with softplus-positive shape and mean, from per-site parameters."""
        log_alpha = pyro.param(f"log_alpha_{site}", lambda: 0.5 + 0.1 * torch.randn(shape))
        log_mean = pyro.param(f"log_mean_{site}", lambda: 0.1 * torch.randn(shape))
        alpha = torch.nn.functional.softplus(log_alpha)
        mean = torch.nn.functional.softplus(log_mean)
        q = dist.Gamma(alpha, alpha / mean)
        pyro.sample(site, q.to_event(1) if event else q)

    @staticmethod
    def clip_params():
        """The example's projection after each step: keep shapes and means away from 0."""
        for kind, floor in (("log_alpha", -2.5), ("log_mean", -4.5)):
            for site in ("w_top", "w_mid", "w_bottom", "z_top", "z_mid", "z_bottom"):
                pyro.param(f"{kind}_{site}").data.clamp_(min=floor)


def counts(seed: int = 0) -> torch.Tensor:
    """Synthetic Poisson counts of the faces' shape, drawn from the model's own structure."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(EXAMPLES, WIDTHS[-1], generator=g) @ torch.rand(WIDTHS[-1], PIXELS,
                                                                      generator=g)
    return torch.poisson(rate, generator=g)


def optimizer():
    return pyro.optim.AdagradRMSProp({"eta": 4.5, "t": 0.1})


def pyro_svi(x: torch.Tensor, steps: int, validation: bool = True) -> float:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    program = SparseGammaDEF()
    svi = SVI(program.model, program.guide, optimizer(), TraceMeanField_ELBO())
    start = time.perf_counter()
    with pyro.validation_enabled(validation):
        for _ in range(steps):
            svi.step(x)
            program.clip_params()
    return (time.perf_counter() - start) / steps


def ours(data, steps: int, eval_every: int) -> dict[str, float]:
    """Seconds per step of the whole call and of its loop; seconds of its test ELBOs and of
    the rest (setup and checks), once per call."""
    program = SparseGammaDEF()
    start = time.perf_counter()
    run = ppl_vae.fit(program.model, program.guide, data, elbo=TraceMeanField_ELBO(),
                      optim=optimizer(), on_step=program.clip_params, epochs=steps,
                      batch_size=EXAMPLES, eval_every=eval_every, quiet=True, report=False,
                      device="cpu")
    total = time.perf_counter() - start
    loop = sum(m["seconds"] for m in run.metrics)
    evaluation = sum(m["eval_seconds"] or 0.0 for m in run.metrics)
    return {"total": total / steps, "loop": loop / steps, "test_elbo": evaluation,
            "setup": total - loop - evaluation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speedups.keep_freed_memory()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # torch's one-off import, untimed
    x = counts()
    data = from_tensors(x, test=x)
    times: dict[str, list[float]] = {"pyro_svi": [], "pyro_svi_no_validation": [],
                                     "fit_loop": [], "fit": [], "fit_eval_every_epoch": []}
    once: dict[str, list[float]] = {"setup and checks": [], "the final test ELBO": []}
    for _ in range(args.repeats):
        times["pyro_svi"].append(pyro_svi(x, args.steps))
        times["pyro_svi_no_validation"].append(pyro_svi(x, args.steps, validation=False))
        fitted = ours(data, args.steps, eval_every=0)
        times["fit"].append(fitted["total"])
        times["fit_loop"].append(fitted["loop"])
        once["setup and checks"].append(fitted["setup"])
        once["the final test ELBO"].append(fitted["test_elbo"])
        times["fit_eval_every_epoch"].append(ours(data, args.eval_steps, eval_every=1)["total"])
    base = statistics.median(times["pyro_svi"])
    print(f"sparse-gamma DEF, full batch {EXAMPLES} x {PIXELS}, {args.steps} steps "
          f"({args.eval_steps} with a test ELBO every epoch), {args.threads} threads, "
          f"median of {args.repeats}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>22}: {1000 * median:8.1f} ms/step   {median / base:5.2f}x pyro_svi")
    print("fit's one-off costs: " + ", ".join(f"{name} {statistics.median(values):.1f} s"
                                              for name, values in once.items()))


if __name__ == "__main__":
    main()
