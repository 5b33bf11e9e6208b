"""What NGVAE's informative count measures: one row per latent dimension of trained runs.

For each dimension k of a run's NGVAE guide, on the run's test set:

- ``p_k = mean_x p_k(x)``, the weight on the small-variance component (informative when
  > 0.5, the guide's ``report`` hook), and ``E_x E_q[λ_k⁻¹] = E_x b/(a-1)``;
- the KL to the prior per dimension (nats, :meth:`NGVAE.kl_per_dimension`), i.e. the
  information the dimension carries about x;
- the plug-in mutual information ``I(E_q[z_k | x]; v_f)`` with each generative factor f
  on 10,000 fresh renders (20 bins, :mod:`ppl_vae.metrics.mig`), normalised by ``H(v_f)``:
  which factor the dimension encodes.

If the count measured where the variance head saturates rather than information, a
dimension with ``p_k > 0.5`` would carry little KL and no factor. Usage::

    python benchmarks/ngvae_count.py RUN [RUN ...] [--out benchmarks/results/ngvae_count]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import ppl_vae
from ppl_vae.latents import mean_representation
from ppl_vae.metrics.mig import discretize, entropies, mutual_information
from ppl_vae.metrics.sampling import sample_codes


def dimension_table(folder: Path) -> str:
    """The markdown table of the module docstring for one run folder."""
    run = ppl_vae.load_run(folder)
    data = ppl_vae.data.load_spec(run.config.data)
    with run.pair.scope(), torch.no_grad():
        summary = run.guide.summary(data.test, run.model)

        representation = mean_representation(run.model, run.guide)

        codes, factors = sample_codes(representation, data, 10_000, np.random.default_rng(0))
    info = mutual_information(discretize(codes), factors) / entropies(factors)
    weight, variance = summary["weight"].mean(0), summary["variance"].mean(0)
    kl = summary["kl"].mean(0)
    names = data.factor_names
    lines = [f"{folder}: {run.config.data.to_json()}; {int((weight > 0.5).sum())} informative of "
             f"{len(weight)}", "",
             "| dim | mean p_k | E[λ⁻¹] | KL (nats) | " + " | ".join(f"I/H {n}" for n in names)
             + " |", "|---" * (4 + len(names)) + "|"]
    for k in torch.argsort(kl, descending=True).tolist():
        cells = " | ".join(f"**{v:.2f}**" if v == info[k].max() and v > 0.1 else f"{v:.2f}"
                           for v in info[k])
        lines.append(f"| {k} | {weight[k]:.2f} | {variance[k]:.3f} | {kl[k]:.2f} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ngvae_count"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in args.runs:
        text = dimension_table(folder)
        (args.out / f"{folder.name}.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
