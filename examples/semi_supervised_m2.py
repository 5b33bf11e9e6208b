"""Kingma et al. 2014's semi-supervised VAE ("M2") as an ordinary Pyro program.

Trained by ``ppl_vae.fit`` on ``mnist5k`` (statically binarized) with 10 % of
the training labels known, and compared with the same classifier network
trained by cross-entropy on those labelled examples alone.

Model, for a digit class ``y``, a style ``z`` and an image ``x``::

    y ~ Cat(1/10, ..., 1/10),   z ~ N(0, I_d),   x | y, z ~ Bernoulli(logits = f(z, onehot y))

Guide::

    q(y | x) = Cat(softmax c(x))             (the classifier; summed out, never sampled)
    q(z | x, y) = N(m(x, y), diag s(x, y)^2)

Objective, maximised (``fit`` minimises its negative, per example)::

    labelled (x, y):  L(x, y) = E_q(z|x,y)[log p(x, y, z) - log q(z | x, y)]  <=  log p(x, y)
    unlabelled x:     U(x) = sum_y q(y|x) [L(x, y) - log q(y | x)]           <=  log p(x)
    J = sum_labelled [L(x, y) + alpha log q(y | x)] + sum_unlabelled U(x)

``U`` sums ``y`` out exactly: the guide marks ``y`` with
``infer={"enumerate": "parallel"}`` and the loss is Pyro's ``TraceEnum_ELBO``.
``fit(..., inputs=["y"])`` calls the pair with ``y=labels`` on the known part of
each batch and ``y=None`` on the rest. ``L`` and ``U`` alone give the
classifier no gradient from labelled examples (``q(y|x)`` is not sampled when
``y`` is given), hence Kingma's auxiliary term ``alpha log q(y | x)``.

alpha: the paper sets ``alpha = 0.1 N`` on the MEAN over labelled examples of
``log q(y|x)``, with ``J`` a SUM over the data set, i.e.
``0.1 N / N_labelled`` per labelled example, here 0.1 * 4500 / 450 = 1. That
lets the 4,050 unlabelled ELBO terms, which are ~100 nats each, dominate the
classifier's gradient. We use ``alpha = 50`` per labelled example (``--alpha``),
the order of Pyro's tuned M2 example (46 with 3,000 of 50,000 labels), chosen
a priori, not tuned on the test set.

Networks: classifier 784-500-10 (ReLU), encoder [x, onehot y] -> 500 -> (m, s),
decoder [z, onehot y] -> 500 -> 784, ``d = 50``. Adam, lr 1e-3, batch 100.
Baseline: the same classifier class, same seed, cross-entropy on the labelled
10 % only, Adam lr 1e-3, batch 64, a fixed 100 epochs (~700 steps; no
validation set, no early stopping), accuracy after the last epoch.

Run::

    python examples/semi_supervised_m2.py --seeds 0 1 2 --epochs 75 --out benchmarks/results/m2/
    python examples/semi_supervised_m2.py --quick           # digits 8x8, seconds

Measured (mnist5k: 4,500 train / 500 test, 450 labels known, one CPU thread)::

    seed  M2 acc  baseline acc  M2 test ELBO (y given)  M2 s  baseline s
       0   0.850         0.864                  -97.08   303         2.1
       1   0.844         0.868                  -95.50   347         2.6
       2   0.822         0.840                  -99.04   233         2.4
    mean  0.839±0.015  0.857±0.015  -97.21±1.78

    (75 epochs of M2, alpha = 50; at this budget M2 does not beat the classifier
    trained on the 450 labels alone: 1.8 points below it on every seed.)

``--pyro-tutorial`` runs M2 as Pyro's ``examples/vae/ss_vae_M2.py`` does instead, on the
full MNIST (:func:`run_pyro_tutorial`): Pyro's networks and init
(``examples/pyro_tutorials/ss_vae_m2.py``: the same initial weights for one seed), its
label draw, training images 0-50,000 and validation 50,000-60,000, labelled-only batches
spaced through the epoch with a second Adam step on the classification pair scaled by 46
(``fit(labelled_batches="spaced", auxiliary=...)``), batch 200, Adam lr 4.2e-4, β1 0.9,
and the test accuracy at the first epoch of best validation accuracy; the baseline is
the same classifier (class, init, seed, Adam) on the known labels alone, selected on the
same validation images. ``benchmarks/reproduce/m2.py`` drives it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import TraceEnum_ELBO
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

import ppl_vae

try:
    from examples.pyro_tutorials.ss_vae_m2 import SSVAE
except ModuleNotFoundError:  # run as a script: examples/ itself is on the path
    from pyro_tutorials.ss_vae_m2 import SSVAE

CLASSES = 10


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate on the last dim after broadcasting every other dim (enumeration, particles)."""
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])], -1)


def _onehot(y: torch.Tensor) -> torch.Tensor:
    return F.one_hot(y, CLASSES).float()


ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus}


class Classifier(nn.Module):
    """``c(x)``: logits of ``q(y | x)``, an MLP pixels-hidden-10 (also the baseline)."""

    def __init__(self, pixels: int = 784, hidden: int = 500, activation: str = "relu"):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(-3), nn.Linear(pixels, hidden),
                                 ACTIVATIONS[activation](), nn.Linear(hidden, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class M2Model(PyroModule):
    """``p(y) p(z) p(x | y, z)``: uniform class, standard normal style, Bernoulli pixels."""

    def __init__(self, pixels: int = 784, latent_dim: int = 50, hidden: int = 500,
                 activation: str = "relu", grey: bool = False):
        super().__init__()
        self.latent_dim, self.grey = latent_dim, grey
        self.decoder = nn.Sequential(nn.Linear(latent_dim + CLASSES, hidden),
                                     ACTIVATIONS[activation](), nn.Linear(hidden, pixels))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=x.new_zeros(CLASSES)), obs=y)
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            logits = self.decoder(_cat(z, _onehot(y))).reshape(*z.shape[:-1], *x.shape[1:])
            pixels = dist.Bernoulli(logits=logits, validate_args=False if self.grey else None)
            pyro.sample("x", pixels.to_event(len(x.shape) - 1), obs=x)


class M2Guide(PyroModule):
    """``q(y | x) q(z | x, y)``; ``y`` is enumerated when not given.

    ``detach_unlabelled``: the control arm, ``q(y|x)`` inside ``U(x)`` enters as a constant
    (no gradient reaches the classifier from unlabelled examples).
    """

    def __init__(self, pixels: int = 784, latent_dim: int = 50, hidden: int = 500,
                 activation: str = "relu", detach_unlabelled: bool = False):
        super().__init__()
        self.detach_unlabelled = detach_unlabelled
        self.classifier = Classifier(pixels, hidden, activation)
        self.encoder = nn.Sequential(nn.Linear(pixels + CLASSES, hidden),
                                     ACTIVATIONS[activation](), nn.Linear(hidden, 2 * latent_dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            if y is None:  # enumerated: y has shape (10, 1, ...) left of the batch
                logits = self.classifier(x)
                if self.detach_unlabelled:
                    logits = logits.detach()
                y = pyro.sample("y", dist.Categorical(logits=logits),
                                infer={"enumerate": "parallel"})
            loc, raw = self.encoder(_cat(x.flatten(-3), _onehot(y))).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, F.softplus(raw) + 1e-4).to_event(1))


def m2_loss(alpha: float):
    """``loss(model, guide, x, y=None)``: ``-J`` of the module docstring, summed over the batch."""
    elbo = TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)

    def loss(model, guide, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        value = elbo.differentiable_loss(model, guide, x, y=y)
        if y is None:
            return value
        return value + alpha * F.cross_entropy(guide.classifier(x), y, reduction="sum")

    return loss


def accuracy(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` whose argmax class is ``y``."""
    with torch.no_grad():
        return (classifier(x).argmax(-1) == y).float().mean().item()


def train_baseline(data, seed: int, epochs: int, pixels: int, hidden: int,
                   activation: str) -> nn.Module:
    """The classifier alone, cross-entropy on the known labels, Adam, fixed epochs."""
    torch.manual_seed(seed)
    classifier = Classifier(pixels, hidden, activation)
    known = data.known["y"]
    x, y = data.train[known], data.train_labels[known]
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(classifier(x[index]), y[index]).backward()
            optimizer.step()
    return classifier.eval()


def load_data(args, seed: int):
    """``mnist5k`` (90/10 split), or the full MNIST with Pyro's split: the first
    ``--train-size`` training images for training, the official 10,000 for test.
    ``seed`` draws the known labels (stratified over classes)."""
    binarize = "none" if args.grey else "static"
    if args.dataset != "mnist":
        return ppl_vae.data.load(args.dataset, labelled=args.labelled, seed=seed,
                                 binarize=binarize)
    full = ppl_vae.data.load("mnist", path=args.data_path, n="all", binarize=binarize)
    train, labels = full.train[: args.train_size], full.train_labels[: args.train_size]
    return ppl_vae.data.from_tensors(train, full.test, labels=labels,
                                     test_labels=full.test_labels, labelled=args.labelled,
                                     seed=seed, name=f"mnist (first {len(train)} train)")


def run_seed(seed: int, args) -> dict:
    """Train M2 and the baseline on one seed's split and label mask; their test numbers."""
    if args.pyro_tutorial:
        return run_pyro_tutorial(seed, args)
    data = load_data(args, seed)
    pixels = data.train[0].numel()
    pyro.set_rng_seed(seed)
    model = M2Model(pixels, args.latent_dim, args.hidden, args.activation, args.grey)
    guide = M2Guide(pixels, args.latent_dim, args.hidden, args.activation, args.detach_unlabelled)
    folder = None if args.runs is None else args.runs / f"seed{seed}"
    resume = folder is not None and (folder / "checkpoint.pt").exists()
    start = time.perf_counter()
    run = ppl_vae.fit(model, guide, data, elbo=m2_loss(args.alpha), inputs=["y"],
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed,
                      device=args.device, quiet=True, out=folder, resume=resume,
                      overwrite=not resume, report=False)
    m2_seconds = time.perf_counter() - start
    result = run.evaluate(data.test, inputs={"y": data.test_labels}, iw_samples=args.iw_samples)
    start = time.perf_counter()
    baseline = train_baseline(data, seed, args.baseline_epochs, pixels, args.hidden,
                              args.activation)
    baseline_seconds = time.perf_counter() - start
    test_x, test_y = data.test.to(run.device), data.test_labels.to(run.device)
    return {
        "seed": seed, "n_train": len(data.train), "n_labelled": int(data.known["y"].sum()),
        "detach_unlabelled": args.detach_unlabelled,
        "m2_accuracy": accuracy(run.guide.classifier.eval(), test_x, test_y),
        "baseline_accuracy": accuracy(baseline, data.test, data.test_labels),
        "m2_test_elbo": result["elbo"], "m2_test_log_p_xy": result["log_likelihood"],
        "m2_seconds": round(m2_seconds, 1), "baseline_seconds": round(baseline_seconds, 1),
        "train_objective": [m["train_objective"] for m in run.metrics],
        "test_elbo_per_epoch": [m["test_elbo"] for m in run.metrics],
    }


def table(rows: list[dict]) -> str:
    """The printed (and docstring) result table, with mean ± sd over seeds."""
    lines = ["seed  M2 acc  baseline acc  M2 test ELBO (y given)  M2 s  baseline s"]
    for r in rows:
        lines.append(f"{r['seed']:>4}  {r['m2_accuracy']:6.3f}  {r['baseline_accuracy']:12.3f}  "
                     f"{r['m2_test_elbo']:22.2f}  {r['m2_seconds']:4.0f}  "
                     f"{r['baseline_seconds']:10.1f}")
    if len(rows) > 1:
        def ms(key):
            values = [r[key] for r in rows]
            return statistics.mean(values), statistics.stdev(values)
        (a, sa), (b, sb), (e, se) = ms("m2_accuracy"), ms("baseline_accuracy"), ms("m2_test_elbo")
        lines.append(f"mean  {a:.3f}±{sa:.3f}  {b:.3f}±{sb:.3f}  {e:.2f}±{se:.2f}")
    return "\n".join(lines)


PYRO_VALIDATION = 10_000  # Pyro's example validates on training images 50,000-60,000


def pyro_label_draw(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """The known-label mask Pyro's example draws: ``count / 10`` per class, each class's
    rows (in data order) shuffled in turn by numpy's legacy generator seeded with ``seed``
    (what ``pyro.set_rng_seed(seed)`` leaves it), the first ones kept."""
    if count % CLASSES:
        raise SystemExit(f"--labelled {count}: Pyro's draw takes the same count per class, "
                         f"give a multiple of {CLASSES}")
    rng = np.random.RandomState(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(CLASSES):
        rows = np.flatnonzero(labels.numpy() == digit)
        rng.shuffle(rows)
        mask[torch.from_numpy(rows[: count // CLASSES])] = True
    return mask


def load_pyro_split(args, seed: int):
    """Pyro's example's data: grey levels; training images 0-50,000 for training with
    :func:`pyro_label_draw`'s labels known, 50,000-60,000 for validation; the official
    10,000 for test. Returns the data set and the validation images and labels."""
    full = ppl_vae.data.load("mnist", path=args.data_path, n="all", binarize="none")
    n = len(full.train) - PYRO_VALIDATION
    labels = full.train_labels[:n]
    data = ppl_vae.data.from_tensors(full.train[:n], full.test, labels=labels,
                                     test_labels=full.test_labels,
                                     name=f"mnist (first {n} train, Pyro's label draw)")
    data.known = {"y": pyro_label_draw(labels, args.labelled, seed)}
    return data, full.train[n:], full.train_labels[n:]


def pyro_accuracy(m2: SSVAE, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` the classifier ``q(y | x)`` labels ``y`` (argmax)."""
    with torch.no_grad():
        return (m2.classifier(x) == y).float().mean().item()


def train_pyro_baseline(data, valid_x, valid_y, seed: int, args) -> dict:
    """The classifier alone, as the M2 arm builds it (same class, init and seed): Adam
    (lr, betas as M2), cross-entropy on the known labels, batches of ``--batch-size``,
    ``--baseline-steps`` steps; test accuracy at the best validation accuracy (measured
    every 25 steps)."""
    pyro.set_rng_seed(seed)
    classifier = SSVAE().encoder_y  # softmax output: its log is the log-probability
    known = data.known["y"]
    x, y = data.train[known].flatten(1), data.train_labels[known]
    optimizer = torch.optim.Adam(classifier.parameters(), lr=args.lr, betas=tuple(args.betas))
    generator = torch.Generator().manual_seed(seed)
    best, step = {"validation_accuracy": -1.0}, 0
    while step < args.baseline_steps:
        for index in torch.randperm(len(x), generator=generator).split(args.batch_size):
            optimizer.zero_grad()
            F.nll_loss(classifier(x[index]).log(), y[index], reduction="sum").backward()
            optimizer.step()
            step += 1
            if step % 25 == 0 or step == args.baseline_steps:
                with torch.no_grad():
                    valid = (classifier(valid_x.flatten(1)).argmax(-1) == valid_y).float().mean()
                    test = (classifier(data.test.flatten(1)).argmax(-1)
                            == data.test_labels).float().mean()
                if valid.item() > best["validation_accuracy"]:
                    best = {"validation_accuracy": valid.item(), "test_accuracy": test.item(),
                            "step": step}
            if step == args.baseline_steps:
                break
    return best


def run_pyro_tutorial(seed: int, args) -> dict:
    """M2 as Pyro's ``ss_vae_M2.py`` runs it, trained by ``fit``: its networks and init
    (:class:`SSVAE`), labelled-only batches spaced through the epoch with a second Adam
    step on the classification pair (``labelled_batches="spaced"``, ``auxiliary=``), Adam
    lr 4.2e-4, β1 0.9; validation and test accuracy after every epoch, the test accuracy
    reported at the first epoch of best validation accuracy."""
    data, valid_x, valid_y = load_pyro_split(args, seed)
    valid_x = valid_x.flatten(1)
    pyro.set_rng_seed(seed)
    m2 = SSVAE(aux_loss_multiplier=args.alpha)
    labelled = int(data.known["y"].sum())
    steps = -(-labelled // args.batch_size) + -(-(len(data.train) - labelled) // args.batch_size)
    curve: list[dict] = []
    clock = [time.perf_counter(), 0]

    def after_step():
        clock[1] += 1
        if clock[1] % steps == 0:
            curve.append({"epoch": len(curve) + 1,
                          "validation_accuracy": pyro_accuracy(m2, valid_x, valid_y),
                          "test_accuracy": pyro_accuracy(m2, data.test.flatten(1),
                                                         data.test_labels),
                          "seconds": round(time.perf_counter() - clock[0], 1)})
            print(f"draw {seed} epoch {len(curve)}: validation {curve[-1]['validation_accuracy']:.4f} "
                  f"test {curve[-1]['test_accuracy']:.4f}", file=sys.stderr, flush=True)
            clock[0] = time.perf_counter()
            if args.progress is not None:  # what is done so far, should the run be cut short
                Path(args.progress).write_text(json.dumps({"seed": seed, "per_epoch": curve},
                                                          indent=1) + "\n")

    start = time.perf_counter()
    run = ppl_vae.fit(m2.model, m2.guide, data,
                      elbo=TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False),
                      inputs={"ys": "y:onehot"}, labelled_batches="spaced",
                      auxiliary=(m2.model_classify, m2.guide_classify), epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, betas=tuple(args.betas),
                      seed=seed, device=args.device, quiet=True, eval_every=0, report=False,
                      on_step=after_step)
    m2_seconds = time.perf_counter() - start
    best = max(curve, key=lambda r: r["validation_accuracy"])  # the first of equals
    start = time.perf_counter()
    baseline = train_pyro_baseline(data, valid_x, valid_y, seed, args)
    return {
        "seed": seed, "n_train": len(data.train), "n_labelled": labelled,
        "n_validation": len(valid_x), "schedule": "spaced", "steps_per_epoch": steps,
        "m2_accuracy": best["test_accuracy"], "m2_best_validation_epoch": best["epoch"],
        "m2_best_validation_accuracy": best["validation_accuracy"],
        "m2_last_accuracy": curve[-1]["test_accuracy"],
        "baseline_accuracy": baseline["test_accuracy"], "baseline": baseline,
        "m2_test_elbo": run.metrics[-1]["test_elbo"],
        "m2_seconds": round(m2_seconds, 1),
        "baseline_seconds": round(time.perf_counter() - start, 1),
        "labelled_images_sum": float(data.train[data.known["y"]].sum()),
        "per_epoch": curve,
        "train_objective": [m["train_objective"] for m in run.metrics],
    }


def _labelled(text: str) -> int | float:
    """``--labelled``: a count (``100``) or a fraction (``0.1``)."""
    value = float(text)
    return int(value) if value > 1 else value


PYRO_TUTORIAL = {"dataset": "mnist", "train_size": 50_000, "epochs": 50, "batch_size": 200,
                 "lr": 4.2e-4, "betas": [0.9, 0.999], "alpha": 46.0, "activation": "softplus",
                 "grey": True}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=75)
    parser.add_argument("--out", type=Path, default=None, help="folder for m2_results.json")
    parser.add_argument("--quick", action="store_true", help="digits 8x8, tiny nets, 2 epochs")
    parser.add_argument("--pyro-tutorial", action="store_true",
                        help="Pyro's ss-vae settings on the full MNIST: " + ", ".join(
                            f"{k}={v}" for k, v in PYRO_TUTORIAL.items()))
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "mnist", "digits"])
    parser.add_argument("--data-path", default="../shared/data/mnist")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--grey", action="store_true",
                        help="keep grey levels, Bernoulli cross-entropy on them (Pyro's ss-vae)")
    parser.add_argument("--activation", default="relu", choices=list(ACTIVATIONS))
    parser.add_argument("--detach-unlabelled", action="store_true",
                        help="control arm: no classifier gradient from the unlabelled term")
    parser.add_argument("--alpha", type=float, default=50.0,
                        help="weight of log q(y|x) per labelled example")
    parser.add_argument("--labelled", type=_labelled, default=0.1,
                        help="known train labels: a count (100) or a fraction (0.1)")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--betas", type=float, nargs=2, default=[0.9, 0.999])
    parser.add_argument("--baseline-steps", type=int, default=2000,
                        help="--pyro-tutorial: steps of the classifier trained alone")
    parser.add_argument("--baseline-epochs", type=int, default=100)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--progress", type=Path, default=None,
                        help="--pyro-tutorial: rewrite this JSON file with the per-epoch "
                             "accuracies after every epoch")
    parser.add_argument("--runs", type=Path, default=None,
                        help="keep each seed's run folder here (an interrupted run resumes)")
    args = parser.parse_args(argv)
    if args.pyro_tutorial:
        given = {k: v for k, v in vars(args).items() if v != parser.get_default(k)}
        vars(args).update({**PYRO_TUTORIAL, **{k: given[k] for k in
                                                ("epochs", "batch_size") if k in given}})
        if args.detach_unlabelled:
            parser.error("--detach-unlabelled is an arm of the mixed-batch M2 classes, not of "
                         "--pyro-tutorial")
    if args.quick:
        args.dataset, args.labelled, args.epochs = "digits", 0.2, 2
        args.latent_dim, args.hidden, args.baseline_epochs, args.iw_samples = 8, 64, 20, 10
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        (args.out / "m2_results.json").write_text(
            json.dumps({"settings": settings, "runs": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
