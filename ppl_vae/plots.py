"""Figures for a run, drawn from model/guide traces only.

- reconstructions: the mean of ``p(x | z)`` at ``z ~ q(z | x)``, under the inputs;
- prior samples: the mean of ``p(x | z)`` at ``z ~ p(z)`` (the model run with its
  observation unconditioned);
- latent traversals: one example's posterior mean with one latent dimension
  swept over [-2.5, 2.5], a row per dimension, rows ordered by activity (the
  variance over examples of the posterior mean, Burda et al. 2016);
- loss curve: training objective and test ELBO per epoch.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from pyro import poutine  # noqa: E402

from ppl_vae.evaluate import eval_mode  # noqa: E402
from ppl_vae.latents import site_moments  # noqa: E402
from ppl_vae.traces import OBS_SITE, sample_sites, take  # noqa: E402


def _images(x: torch.Tensor) -> torch.Tensor | None:
    """``(n, H, W)`` or ``(n, H, W, 3)`` images from examples, or None if not images."""
    x = x.detach().cpu().float()
    if x.dim() == 4 and x.shape[1] in (1, 3):
        return x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    if x.dim() == 3:
        return x
    side = math.isqrt(x[0].numel())
    return x.reshape(-1, side, side) if side * side == x[0].numel() else None


def image_grid(x: torch.Tensor, path: Path, rows: int, title: str = "",
               row_labels: list[str] | None = None) -> bool:
    """Save examples ``x`` as a ``rows``-row grid; False when they are not images."""
    images = _images(x)
    if images is None:
        return False
    cols = math.ceil(images.shape[0] / rows)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        if i < images.shape[0]:
            ax.imshow(images[i].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.axis("off")
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def repeat_first(inputs: dict, n: int) -> dict:
    """The first example's inputs, repeated ``n`` times."""
    return {k: None if v is None else v[:1].expand(n, *v.shape[1:]) for k, v in inputs.items()}


@torch.no_grad()
def observation_mean(model, guide, x: torch.Tensor, condition: dict | None = None,
                     from_prior: bool = False, inputs: dict | None = None) -> torch.Tensor:
    """Mean of the observation site, at guide draws, at given latents, or at prior draws.

    ``inputs`` (e.g. labels) go to both programs; under ``from_prior`` the
    latents come from the model itself, given those inputs (class-conditional
    samples of a conditional model).
    """
    inputs = inputs or {}
    if from_prior:
        program = model
    elif condition is not None:
        program = poutine.condition(model, data=condition)
    else:
        guide_trace = poutine.trace(guide).get_trace(x, **inputs)
        program = poutine.replay(model, trace=guide_trace)
    return poutine.trace(program).get_trace(x, **inputs).nodes[OBS_SITE]["fn"].mean


@torch.no_grad()
def posterior_means(model, guide, x: torch.Tensor, inputs: dict | None = None
                    ) -> tuple[str, torch.Tensor]:
    """The traversed site (``model.latent_site`` or the guide's last) and its means ``(n, K)``."""
    sites = {s["name"]: s for s in sample_sites(poutine.trace(guide).get_trace(x,
                                                                               **(inputs or {})))}
    name = getattr(model, "latent_site", None)
    name = name if name in sites else list(sites)[-1]
    return name, site_moments(sites[name]["fn"])[0].reshape(x.shape[0], -1)


def traversal_grid(model, guide, x: torch.Tensor, site: str, means: torch.Tensor,
                   score: torch.Tensor, what: str, path: Path, steps: int = 9,
                   max_rows: int = 10, inputs: dict | None = None) -> bool:
    """Sweep dimensions of ``means[0]`` over [-2.5, 2.5], a row each, highest ``score`` first."""
    order = score.argsort(descending=True)[:max_rows]
    values = torch.linspace(-2.5, 2.5, steps, dtype=x.dtype, device=x.device)
    z = means[:1].to(x).repeat(len(order) * steps, 1)
    for row, dim in enumerate(order):
        z[row * steps:(row + 1) * steps, dim] = values
    dummy = x[:1].expand(z.shape[0], *x.shape[1:])
    images = observation_mean(model, guide, dummy, condition={site: z},
                              inputs=repeat_first(inputs or {}, z.shape[0]))
    labels = [f"z{int(d)} ({what} {float(score[d]):.2f})" for d in order]
    return image_grid(images, path, len(order), f"traversals of '{site}' by {what}, -2.5 to 2.5",
                      labels)


def traversals(model, guide, x: torch.Tensor, path: Path, inputs: dict | None = None) -> bool:
    """Traversals of one example, rows ordered by activity ``Var_x E_q[z_d]``."""
    site, means = posterior_means(model, guide, x, inputs)
    return traversal_grid(model, guide, x, site, means, means.var(0), "activity", path,
                          inputs=inputs)


def loss_curve(metrics: list[dict], path: Path, steps: list[dict] | None = None) -> None:
    """Training objective and test ELBO (nats per example), per step when ``steps`` are logged.

    With step lines (``fit(log_every=...)``) the objective is drawn per logged
    window and the test ELBO at each epoch's last step; a KL warm-up's scale
    goes on a second axis.
    """
    fig, ax = plt.subplots(figsize=(6, 3.4))
    if steps:
        ax.plot([s["step"] for s in steps], [s["train_objective"] for s in steps], "-", lw=1,
                label="train objective")
        ax.plot([m.get("step", m["epoch"]) for m in metrics], [m["test_elbo"] for m in metrics],
                "s-", label="test ELBO")
        ax.set_xlabel("step")
        if any(s.get("warmup_scale", 1) < 1 for s in steps):
            scale = ax.twinx()
            scale.plot([s["step"] for s in steps], [s["warmup_scale"] for s in steps], ":",
                       color="grey")
            scale.set_ylabel("KL warm-up scale", color="grey")
    else:
        epochs = [m["epoch"] for m in metrics]
        ax.plot(epochs, [m["train_objective"] for m in metrics], "o-", label="train objective")
        ax.plot(epochs, [m["test_elbo"] for m in metrics], "s-", label="test ELBO")
        ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_figures(model, guide, x: torch.Tensor, metrics: list[dict], folder: Path,
                n: int = 16, inputs: dict | None = None,
                steps: list[dict] | None = None) -> list[str]:
    """Write the standard figures of a run into ``folder``; return the file names.

    With ``inputs``, prior samples are drawn at the inputs of the first 64 examples.
    """
    folder.mkdir(parents=True, exist_ok=True)
    inputs = inputs or {}
    x, shown = x[:n], take(inputs, slice(0, n))
    written = []
    with eval_mode(model, guide):
        recon = observation_mean(model, guide, x, inputs=shown)
        if image_grid(torch.cat([x, recon]), folder / "reconstructions.png", 2,
                      "inputs (top) and reconstructions (bottom)"):
            written.append("reconstructions.png")
        m = min(64, *(v.shape[0] for v in inputs.values())) if inputs else 64
        prior = observation_mean(model, guide, x[:1].expand(m, *x.shape[1:]), from_prior=True,
                                 inputs=take(inputs, slice(0, m)))
        if image_grid(prior, folder / "prior_samples.png", 8, "means of p(x|z), z ~ p(z)"):
            written.append("prior_samples.png")
        if traversals(model, guide, x, folder / "traversals.png", shown):
            written.append("traversals.png")
    if metrics:
        loss_curve(metrics, folder / "loss_curve.png", steps)
        written.append("loss_curve.png")
    return written
