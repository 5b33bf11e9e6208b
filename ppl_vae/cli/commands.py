"""``ppl-vae evaluate``, ``compare``, ``sample``, ``diagnose`` and ``list``, and loading a run
for them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyro
import torch

from ppl_vae.errors import PplVaeError
from ppl_vae.runs import RunConfig, read_run_config


def trusts_code(args, config: RunConfig) -> bool:
    """Whether the user allowed importing the code ``config.json`` names (flag, or path given)."""
    recorded = None if config.pair is None else config.pair.model
    given = getattr(args, "user_model", None)
    if given is not None and given != recorded:
        raise PplVaeError(f"--model {given} differs from the run's '{recorded}'; give the "
                          "factory the run was trained with")
    return bool(getattr(args, "trust_run_code", False) or given)


def _load(args, device: str = "cpu"):
    from ppl_vae.trained import load_run

    config = read_run_config(args.run)
    if config.data is None:
        raise PplVaeError(f"{args.run} was trained on data held in memory (from_tensors), which "
                          "the CLI cannot load again; evaluate it from Python "
                          "(ppl_vae.load_run(RUN).evaluate(x)), or save the arrays as .npz and "
                          "train with --data array --data-path FILE to use the CLI")
    from ppl_vae.data import load_spec

    data = load_spec(config.data)
    run = load_run(args.run, device=device, data=data, trust_code=trusts_code(args, config))
    return run, data


SCALES_NOTE = ("the estimator with the model's site scales (beta; a KL warm-up at its final "
               "scale 1), so not the ELBO unless every scale is 1")


def cmd_evaluate(args) -> None:
    from ppl_vae.cli.parser import estimator_options
    from ppl_vae.estimators import Batch, create
    from ppl_vae.per_example import FILE
    from ppl_vae.runs import write_json

    run, data = _load(args, args.device)
    x, inputs = run.evaluation_examples(data, args.n_examples or None)
    pyro.set_rng_seed(args.seed)
    result = run.evaluate(x, inputs=inputs, iw_samples=args.iw_samples, quiet=args.quiet,
                          per_example=True)
    result.pop("per_example").save(Path(args.run) / FILE)
    result["split"] = run.evaluation_split
    if args.elbo:
        estimator = create(args.elbo, **estimator_options(args))
        with run.pair.evaluation(), torch.no_grad():
            losses = [estimator.loss(run.pair, Batch(
                x[i:i + 256].to(run.device), {k: v[i:i + 256] for k, v in inputs.items()},
                dataset_size=x.shape[0])) * x[i:i + 256].shape[0]
                for i in range(0, x.shape[0], 256)]
        result["training_objective"] = {
            **estimator.describe(), "value": -float(sum(losses)) / x.shape[0],
            "note": f"{SCALES_NOTE}; 'elbo' is the unweighted ELBO"}
    result = named_for_guide(result)
    write_json(Path(args.run) / "evaluation.json", result)
    print(json.dumps(result))


def cmd_compare(args) -> None:
    from ppl_vae.compare import compare

    print(json.dumps(compare(args.run_a, args.run_b)))


def named_for_guide(result: dict) -> dict:
    """An evaluation as the CLI shows it: a point-mass guide has no ELBO and no KL.

    With ``q = δ(z - f(x))`` the ``elbo`` and ``kl`` terms of :func:`ppl_vae.evaluate`
    are ``log p(x | z) + log p(z)`` and ``-log p(z)`` at the code: an autoencoder's
    objective, shown as ``reconstruction`` (already there) and ``regulariser``.
    """
    if "point mass" not in (result.get("log_likelihood_note") or ""):
        return result
    renamed = {("regulariser" if k == "kl" else k): v for k, v in result.items() if k != "elbo"}
    if "training_objective" in renamed:
        renamed["training_objective"] = {**renamed["training_objective"], "note": f"{SCALES_NOTE}; "
                                         "a point-mass guide has no ELBO"}
    return renamed


MAX_CLASS_ROWS = 20


def _sample_inputs(run, data, n: int) -> tuple[dict, int, list[str] | None, str]:
    """Inputs to sample at: a row per class for a label input, else the first test examples.

    Returns ``(inputs, rows, row labels, title)``.
    """
    inputs = run.evaluation_examples(data)[1]
    labels = inputs.get("y")
    if labels is not None and labels.dim() == 1 and not labels.is_floating_point():
        classes = torch.cat([data.inputs("train")["y"].to(labels), labels]).unique()
        if len(classes) <= MAX_CLASS_ROWS:
            per_class = max(1, n // len(classes))
            y = classes.repeat_interleave(per_class)
            given = {k: v[:1].expand(len(y), *v.shape[1:]) for k, v in inputs.items() if k != "y"}
            return {**given, "y": y}, len(classes), [f"y={int(c)}" for c in classes], \
                f"samples given each class, {per_class} per row"
    if inputs:
        m = min(n, *(v.shape[0] for v in inputs.values()))
        return {k: v[:m] for k, v in inputs.items()}, max(1, int(m**0.5)), None, \
            f"{m} samples at the inputs of the first test examples"
    return {}, max(1, int(n**0.5)), None, f"{n} prior samples"


def cmd_sample(args) -> None:
    from ppl_vae.figures import NoImage, as_images, observation_mean
    from ppl_vae.plots import image_grid

    out = _image_path(args.out)
    if args.n < 1:
        raise PplVaeError(f"-n must be at least 1, got {args.n}")
    run, data = _load(args)
    torch.manual_seed(args.seed)
    inputs, rows, row_labels, title = _sample_inputs(run, data, args.n)
    count = next(iter(inputs.values())).shape[0] if inputs else args.n
    test = data.examples("test", count)  # as x: a model conditioning on part of x reads it
    given = test[torch.arange(count) % test.shape[0]].to(run.device)
    try:
        with run.pair.evaluation():
            images = observation_mean(run.model, run.guide, given, from_prior=True,
                                      inputs=inputs)
        drawn = image_grid(as_images(images, data.image_shape), out, rows, title, row_labels)
    except NoImage:
        drawn = False
    if not drawn:  # not images (sequences, several observed sites): the draws as arrays
        out = out.with_suffix(".npz")
        draws = run.sample(count, inputs=inputs, x=given)
        draws = draws if isinstance(draws, dict) else {"x": draws}
        np.savez(out, **{name: value.cpu().numpy() for name, value in draws.items()})
    print(out)


# matplotlib's writers that make an image file without extra software (pgf needs LaTeX)
_NOT_IMAGES = {"pgf", "raw", "rgba"}


def _image_path(text: str) -> Path:
    """``sample --out``: an image file matplotlib writes, in a folder that exists."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - _NOT_IMAGES)
    listed = ", ".join("." + f for f in formats)
    path = Path(text).expanduser()
    if path.is_dir():
        raise PplVaeError(f"--out {text} is a folder; name an image file in it, e.g. "
                          f"{path / 'samples.png'}")
    suffix = path.suffix[1:].lower()
    if not suffix:
        raise PplVaeError(f"--out {text} has no suffix to choose the image format; use e.g. "
                          f"{text}.png ({listed})")
    if suffix not in formats:
        raise PplVaeError(f"--out {text}: .{suffix} is not an image format matplotlib writes; "
                          f"use one of {listed}")
    folder = path.parent
    if not folder.is_dir():
        raise PplVaeError(f"--out {text}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise PplVaeError(f"--out {text}: folder {folder} is not writable")
    return path


def cmd_diagnose(args) -> None:
    from ppl_vae.diagnostics.disentanglement import with_beta_vae_factors
    from ppl_vae.reporting.diagnostics import Checks, diagnose

    metrics = args.metrics if args.metrics == "none" else with_beta_vae_factors(args.metrics,
                                                                                args.factors)
    checks = Checks(ppc_draws=args.ppc_draws, sbc=args.sbc, sbc_draws=args.sbc_draws,
                    levels=args.sbc_levels, mcmc_examples=args.mcmc_examples,
                    mcmc_draws=args.mcmc_draws, mcmc_warmup=args.mcmc_warmup,
                    mcmc_chains=args.mcmc_chains, mcmc_jit=args.mcmc_jit)
    report = diagnose(args.run, n_examples=args.n_examples, draws=args.draws, device=args.device,
                      quiet=args.quiet, metrics=metrics, seed=args.seed,
                      trust_code=trusts_code(args, read_run_config(args.run)), checks=checks,
                      site=args.site)
    psis = {k: v for k, v in report["psis"].items() if not isinstance(v, list)}
    print(json.dumps({"diagnostics": str(Path(args.run) / "diagnostics"), "psis": psis,
                      **_checks_summary(report),
                      "disentanglement": report.get("disentanglement")}, default=str))


def _checks_summary(report: dict) -> dict:
    """The headline numbers of the Bayesian checks, for the printed JSON."""
    out = {}
    ppc = report.get("posterior_predictive")
    if ppc:
        out["posterior_predictive"] = {
            "share_extreme_mean": {k: v["share_extreme"] for k, v in ppc["mean"].items()},
            "share_extreme_log_lik": ppc["log_lik"]["share_extreme"]}
    if report.get("sbc"):
        out["sbc"] = {k: report["sbc"].get(k) for k in ("verdict", "coverage_median", "note")
                      if k in report["sbc"]}
    nuts = report.get("nuts")
    if nuts:
        out["nuts"] = {k: ({f: v[f] for f in ("sd_ratio_median", "sd_ratio_range",
                                              "mean_gap_max_abs", "rhat_max")}
                           if isinstance(v, dict) else v) for k, v in nuts.items()
                       if k not in ("examples",)}
    if report.get("missing"):
        out["missing"] = report["missing"]
    return out


def cmd_list(args) -> None:
    import ppl_vae.data  # noqa: F401 (its modules register the sources)
    from ppl_vae.estimators import ESTIMATORS
    from ppl_vae.registry import DATA_SOURCES, GUIDES, MODELS

    for title, entries in (("models", [(e.name, e.description) for e in MODELS.entries()]),
                           ("guides", [(e.name, e.description) for e in GUIDES.entries()]),
                           ("estimators", [(e.name, e.description)
                                           for e in ESTIMATORS.entries()]),
                           ("datasets", [(e.name, e.description)
                                         for e in DATA_SOURCES.entries()])):
        print(f"{title}:")
        for name, description in entries:
            print(f"  {name:22s} {description}")


