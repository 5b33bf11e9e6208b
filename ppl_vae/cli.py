"""The ``ppl-vae`` command: train, evaluate, sample, diagnose, list.

Every user mistake ends as one line on stderr and exit status 2; ``--debug``
(before or after the subcommand) shows the traceback instead. A
:class:`~ppl_vae.errors.PplVaeWarning` is one ``ppl-vae: note:`` line on stderr.
``ppl-vae COMMAND --help`` shows every flag with its default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import torch

from ppl_vae.errors import PplVaeError, PplVaeWarning

# CLI flag -> (build() option type, help); a flag left unset keeps the factory's default.
PAIR_OPTIONS = {
    "latent_dim": (int, "latent dimensions K (default: the model's, 10)"),
    "beta": (float, "beta_vae: weight β of the KL term (default: 4)"),
    "likelihood": (str, "p(x | z): bernoulli, continuous_bernoulli or gaussian "
                        "(default: bernoulli)"),
    "net": (str, "encoder and decoder: auto (conv for square 28/32/64 images, else mlp), "
                 "mlp or conv (default: auto)"),
    "sigma": (float, "gaussian likelihood: fixed noise scale σ (default: learned)"),
    "prior_scale": (float, "autoencoder: scale of the Gaussian prior on the codes (default: 10)"),
    "corruption": (float, "denoising guide: share of pixels masked (default: 0.25)"),
    "activation": (str, "encoder and decoder MLP nonlinearity: relu or elu (default: relu)"),
    "flows": (int, "iaf guide: inverse autoregressive flow layers on the diagonal Gaussian "
                   "(default: 2)"),
    "grid_cols": (int, "grid guide: columns of the latent grid (default: the largest divisor "
                       "of --latent-dim not above its square root)"),
    "concentration1": (float, "ngvae: Gamma shape α1 of the informative component "
                              "(default: 1.5)"),
    "rate1": (float, "ngvae: Gamma rate β1 of the informative component (default: 0.005)"),
    "concentration2": (float, "ngvae: Gamma shape α2 of the uninformative component "
                              "(default: 1.5)"),
    "rate2": (float, "ngvae: Gamma rate β2 of the uninformative component (default: 0.5)"),
    "sharpness": (float, "ngvae: sharpness r of the relaxation (default: 10)"),
    "prior_weight": (float, "ngvae: initial weight π_k of the informative component "
                            "(default: 0.5)"),
    "z_prior": (str, "ngvae: normal or normal_gamma (default: normal)"),
}


def _fraction_or_count(text: str) -> int | float:
    """``--labelled 0.1`` (a fraction) or ``--labelled 500`` (a count)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _count_or_all(text: str) -> int | str:
    """``--n 20000`` or ``--n all`` (every example the source holds)."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count or 'all': {text!r}") from None


def _number(text: str) -> float:
    """``--scale 0.5`` or ``--scale 1/255``."""
    top, _, bottom = text.partition("/")
    try:
        return float(top) / float(bottom) if bottom else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or a ratio a/b: {text!r}") from None


# CLI flag -> (load() option type, help); unset: the dataset's own default.
DATA_OPTIONS = {
    "n": (_count_or_all, "examples before the train/test split, or all (default: the "
                         "dataset's; shapes 20000, dsprites 20000, the others all)"),
    "storage": (str, "auto (0/1 packed in bits, 8-bit grey as uint8), float32, render "
                     "(shapes: each batch drawn from its factors) or mmap (array: the file "
                     "memory-mapped) (default: auto)"),
    "size": (int, "shapes: image side in pixels (default: 64)"),
    "binarize": (str, "none, static (threshold at 0.5 once) or dynamic (bernoulli(x) per "
                      "batch) (default: none)"),
    "test_fraction": (float, "share of examples held out for test (default: 0.1)"),
    "path": (str, "file or folder of dsprites, mnist or array (default: none)"),
    "labelled": (_fraction_or_count, "keep only this many train labels known: a fraction "
                                     "(0.1) or a count (500) (default: all known)"),
    "key": (str, "array: the data's key in an .npz (default: its only array not named by "
                 "--labels/--factors)"),
    "labels": (str, "array: integer labels (n,), a key of the .npz or a .npy/.npz path "
                    "(default: none)"),
    "factors": (str, "array: integer factors (n, F), a key of the .npz or a .npy/.npz path "
                     "(default: none)"),
    "scale": (_number, "array: multiply the values by this, e.g. 1/255 for uint8 images "
                       "(default: 1)"),
    "channels_last": (bool, "array: the images are (n, H, W, C); --no-channels-last keeps the "
                            "axes as stored (default: detected, with a note on stderr, when "
                            "the shape is (n, H, W, 1 or 3) with H, W > 4)"),
}

# fit() keyword -> (RunConfig section it is stored in, default of a new run). The flags
# default to None, so that a resumed run takes every setting not given from its config.
TRAIN_SETTINGS = {
    "epochs": ("training", 10), "batch_size": ("training", 64), "seed": ("training", 0),
    "precision": ("training", "fp32"), "patience": ("training", 0),
    "log_every": ("training", 0), "divergence_factor": ("training", 10.0),
    "lr": ("optimizer", 1e-3), "clip_norm": ("optimizer", None),
    "lr_schedule": ("schedule", "constant"), "lr_step_epochs": ("schedule", None),
    "lr_gamma": ("schedule", 0.1), "warmup_steps": ("schedule", 0),
    "warmup_start": ("schedule", 0.01),
}
DEFAULT_RUN = {"model": "beta_vae", "data": "shapes", "elbo": "trace"}

TRAIN_DESCRIPTION = """Train a model/guide pair and write a run folder.

The default run (only --out given) is --model beta_vae (β = 4, 10 latent dimensions,
Bernoulli likelihood) with its own guide, diagonal (a Gaussian q(z | x) with diagonal
covariance), conv encoder and decoder (--net auto), on --data shapes (20,000 64x64
sprites, 10% held out for test), 10 epochs of --elbo trace (1 particle), Adam at
--lr 0.001, batch 64, seed 0, constant learning rate, no KL warm-up.

--resume --out RUN continues RUN with its stored settings; give only --epochs (to
extend it) and, if you like, --device and the reporting flags: any other setting that
differs from the stored one is refused, listing each as stored → requested."""

EVALUATE_DESCRIPTION = """Test ELBO and importance-sampled log-likelihood of a run, as JSON
(also written to RUN/evaluation.json).

elbo is the unweighted ELBO, E_q[log p(x, z) - log q(z | x)], whatever the training
objective was. --elbo NAME adds training_objective: that estimator's value with the
model's site scales (β of a β-VAE; a KL warm-up at its final scale 1), which is not
the ELBO unless every scale is 1. A run whose guide is a point mass (delta,
denoising) has no ELBO: its JSON has reconstruction (-log p(x | z) at the code) and
regulariser (-log p(z) at the code) instead of elbo and kl."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default is not argparse.SUPPRESS \
                and not action.required and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _add_pair_and_data_flags(train: argparse.ArgumentParser) -> None:
    """``--latent-dim``, ``--beta``, ... (build options) and ``--n``, ``--key``, ... (load options)."""
    pair = train.add_argument_group("model and guide options (each goes to whichever of the "
                                    "pair's factories takes it)")
    for name, (kind, text) in PAIR_OPTIONS.items():
        pair.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                          help=text)
    pair.add_argument("--fixed-prior-weight", dest="learn_prior_weight", action="store_const",
                      const=False, default=None,
                      help="ngvae: keep π_k at --prior-weight (default: learned)")
    data = train.add_argument_group("data options")
    for name, (kind, text) in DATA_OPTIONS.items():
        if name == "channels_last":
            data.add_argument("--channels-last", dest=name, default=None, help=text,
                              action=argparse.BooleanOptionalAction)
            continue
        # torchrun mistakes a bare --n for its own options: --subset-size is the same flag
        flags = {"n": ["--n", "--subset-size"], "path": ["--data-path"]}.get(
            name, ["--" + name.replace("_", "-")])
        data.add_argument(*flags, dest=name, type=kind, default=None, help=text)


def _add_training_flags(train: argparse.ArgumentParser) -> None:
    """Estimator, optimizer, schedule and training settings (None: new-run default or stored)."""
    group = train.add_argument_group("training settings (on --resume: default the stored run's)")
    group.add_argument("--elbo", default=None, help="estimator: trace, meanfield, renyi, iwae "
                       "(ppl-vae list) (default: trace)")
    group.add_argument("--alpha", type=float, default=None,
                       help="renyi: order α in [0, 1) (default: the estimator's, 0.5)")
    group.add_argument("--particles", type=int, default=None,
                       help="samples of z per example (default: the estimator's: 1 for "
                            "trace/meanfield, 5 for renyi/iwae)")

    def setting(flag, text, none="none", **kwargs):
        name = flag[2:].replace("-", "_")
        default = TRAIN_SETTINGS[name][1]
        group.add_argument(flag, dest=name, default=None, **kwargs,
                           help=f"{text} (default: {none if default is None else default})")

    setting("--epochs", "passes over the training set; on --resume, the new total",
            type=int)
    setting("--batch-size", "examples per step (under torchrun: the global batch)", type=int)
    setting("--lr", "Adam learning rate", type=float)
    setting("--lr-schedule", "learning rate over the run: constant, cosine (annealed to 0) "
            "or step (× --lr-gamma every --lr-step-epochs)", choices=["constant", "cosine",
                                                                      "step"])
    setting("--lr-step-epochs", "step schedule: epochs between decays", type=int,
            none="a third of --epochs")
    setting("--lr-gamma", "step schedule: factor per decay", type=float)
    setting("--warmup-steps", "KL warm-up: steps over which the latent sites' scale rises "
            "linearly from --warmup-start to 1 (0: off)", type=int)
    setting("--warmup-start", "KL warm-up: the scale at step 0, in (0, 1]", type=float)
    setting("--clip-norm", "clip the gradients' global norm to this", type=float,
            none="no clipping")
    setting("--patience", "early stopping: stop when the test ELBO has not improved for "
            "this many epochs, keeping RUN/best.pt (0: off)", type=int)
    setting("--log-every", "also record the training loss every this many steps in "
            "RUN/steps.jsonl (0: per epoch only)", type=int)
    setting("--divergence-factor", "stop, keeping the last good checkpoint, when the loss "
            "gets this many times its magnitude worse than its best", type=float)
    setting("--seed", "seeds the weights, the data subset and split, and the batches",
            type=int)
    setting("--precision", "fp32, or bf16: networks in bfloat16, densities in float32",
            choices=["fp32", "bf16"])
    group.add_argument("--inputs", default=None, help="dataset inputs passed to model and "
                       "guide as keywords, comma-separated (y: labels, model(x, y=...)) "
                       "(default: none)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand it sets the flag, absent it keeps the main one
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors (default: off)")
    parser = argparse.ArgumentParser(prog="ppl-vae", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of "
                        "one-line errors (also accepted after the subcommand)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, text, description=None):
        return sub.add_parser(name, help=text, description=description or text,
                              parents=[common], formatter_class=HelpFormatter)

    train = command("train", "train a model/guide pair and write a run folder",
                    TRAIN_DESCRIPTION)
    train.add_argument("--model", default=None,
                       help="a registered model (ppl-vae list) or your factory "
                            "package.module:make_pair, called as make_pair(data, **options) "
                            f"(default: {DEFAULT_RUN['model']})")
    train.add_argument("--guide", default=None,
                       help="a registered guide (ppl-vae list) (default: the model's own; "
                            "diagonal for vae and beta_vae)")
    train.add_argument("--data", default=None,
                       help="shapes, dsprites, mnist, mnist5k, digits or array (ppl-vae list) "
                            f"(default: {DEFAULT_RUN['data']})")
    train.add_argument("--out", required=True, help="the run folder to write (required)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out with its stored settings")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out")
    _add_training_flags(train)
    _add_pair_and_data_flags(train)
    run_time = train.add_argument_group("where and how to run (may change on --resume)")
    run_time.add_argument("--device", default="auto", help="auto, cpu or cuda")
    run_time.add_argument("--checkpoint-every", type=int, default=0,
                          help="also checkpoint every this many steps (0: once per epoch)")
    run_time.add_argument("--iw-samples", type=int, default=100,
                          help="importance samples per example for the final report")
    run_time.add_argument("--eval-examples", type=int, default=None,
                          help="test examples in the final report (default: all)")
    run_time.add_argument("--detect-anomaly", action="store_true",
                          help="name the operation that first produces NaN (slow)")
    run_time.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = command("evaluate", "test ELBO and IS log-likelihood of a run",
                       EVALUATE_DESCRIPTION)
    evaluate.add_argument("run", help="a run folder")
    evaluate.add_argument("--iw-samples", type=int, default=1000,
                          help="importance samples per example")
    evaluate.add_argument("--elbo", default=None,
                          help="also report this estimator's training objective, β and other "
                               "site scales included (default: none)")
    evaluate.add_argument("--particles", type=int, default=None,
                          help="particles of --elbo (default: the estimator's)")
    evaluate.add_argument("--alpha", type=float, default=None,
                          help="renyi order α of --elbo (default: the estimator's)")
    evaluate.add_argument("--n-examples", type=int, default=None,
                          help="the first this many test examples (default: all)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_user_code_flags(evaluate)

    sample = command("sample", "draw images from the prior of a trained model")
    sample.add_argument("run", help="a run folder")
    sample.add_argument("-n", type=int, default=64, help="images to draw")
    sample.add_argument("--out", required=True,
                        help="the image file to write, in an existing folder; its suffix "
                             "sets the format: .png, .pdf, .svg, .jpg, ... (required)")
    sample.add_argument("--seed", type=int, default=0, help="seeds the prior draws")
    _add_user_code_flags(sample)

    diagnose = command("diagnose", "ArviZ draws, PSIS k-hat, latent activity, "
                       "disentanglement scores and figures into RUN/diagnostics/")
    diagnose.add_argument("run", help="a run folder")
    diagnose.add_argument("--n-examples", type=int, default=100,
                          help="test examples to diagnose")
    diagnose.add_argument("--draws", type=int, default=1000,
                          help="guide draws per example for ArviZ and PSIS")
    diagnose.add_argument("--metrics", default="fast", choices=["fast", "full", "none"],
                          help="disentanglement metrics: fast, full or none")
    diagnose.add_argument("--factors", default=None, type=lambda text: text.split(","),
                          help="the factors the BetaVAE score tells apart, comma-separated "
                               "names or indices, e.g. scale,orientation,pos_x,pos_y as "
                               "Higgins et al. (default: all, as disentanglement_lib)")
    diagnose.add_argument("--seed", type=int, default=0, help="seeds the draws")
    diagnose.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    diagnose.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_user_code_flags(diagnose)

    command("list", "models, guides, ELBOs and datasets with one-line descriptions")
    return parser


def _add_user_code_flags(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--trust-run-code``: how a command may import a run's user code."""
    parser.add_argument("--model", default=None, dest="user_model",
                        help="the run's factory package.module:make_pair, given again to "
                             "import it (default: none)")
    parser.add_argument("--trust-run-code", action="store_true",
                        help="import the user code the run's config.json names")


def _given(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _load_data(spec: dict):
    from ppl_vae.data import load

    return load(**spec)


def cmd_train(args) -> None:
    from ppl_vae import distributed
    from ppl_vae.pair import build
    from ppl_vae.train import fit

    spec, data, estimator, settings, inputs = (_resume_request if args.resume
                                               else _new_request)(args)
    pair = build(spec["model"], spec["guide"], data=data, seed=settings["seed"], **spec["options"])
    if not args.quiet and distributed.is_main_process():
        print(f"training {pair.spec['model']} / {pair.spec['guide']} on {data.describe()}",
              file=sys.stderr)
    run = fit(pair.model, pair.guide, data, **estimator, **settings, inputs=inputs,
              device=args.device, out=args.out, resume=args.resume, overwrite=args.overwrite,
              quiet=args.quiet, checkpoint_every=args.checkpoint_every,
              detect_anomaly=args.detect_anomaly, iw_samples=args.iw_samples,
              eval_examples=args.eval_examples, pair=pair)
    distributed.finish()
    if distributed.is_main_process():
        print(json.dumps({"run": str(run.path), **_named_for_guide(run.report["evaluation"])}))


def _input_names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _new_request(args) -> tuple[dict, object, dict, dict, list[str]]:
    """Pair spec, data, estimator, fit settings and inputs of a new run: flags, else defaults."""
    spec = {"model": args.model or DEFAULT_RUN["model"], "guide": args.guide,
            "options": _given(args, [*PAIR_OPTIONS, "learn_prior_weight"])}
    settings = {name: default if getattr(args, name) is None else getattr(args, name)
                for name, (_, default) in TRAIN_SETTINGS.items()}
    data = _load_data({"name": args.data or DEFAULT_RUN["data"], "seed": settings["seed"],
                       **_given(args, DATA_OPTIONS)})
    estimator = {"elbo": args.elbo or DEFAULT_RUN["elbo"], "particles": args.particles,
                 "alpha": args.alpha}
    return spec, data, estimator, settings, _input_names(args.inputs or "")


def _resume_request(args) -> tuple[dict, object, dict, dict, list[str]]:
    """The stored run's settings, overridden by the flags given; any change refused.

    The flags given are laid over the stored :class:`~ppl_vae.runs.RunConfig`
    and compared with :meth:`~ppl_vae.runs.RunConfig.differences`, so a change
    of pair or data (which ``fit`` cannot see: it is handed the built objects)
    is listed in the same line as a change of estimator or learning rate.
    ``fit(resume=True)`` checks the settings again.
    """
    from dataclasses import replace

    from ppl_vae.elbo import make_elbo
    from ppl_vae.runs import read_run_config

    stored = read_run_config(args.out)
    spec = stored.pair or {}
    if spec.get("source", "registry") not in ("registry", "factory") or stored.data is None:
        raise PplVaeError(f"{args.out} holds a run of a user-written pair or data; resume it "
                          "from Python with ppl_vae.fit(..., resume=True)")
    if spec.get("source") == "factory" and args.model is None:
        raise PplVaeError(f"{args.out} was built by the factory '{spec['model']}'; give "
                          f"--model {spec['model']} again to import it")
    given = {name: getattr(args, name) for name in TRAIN_SETTINGS
             if getattr(args, name) is not None}
    sections = {section: {**getattr(stored, section),
                          **{k: v for k, v in given.items() if TRAIN_SETTINGS[k][0] == section}}
                for section in ("optimizer", "schedule", "training")}
    recorded = stored.estimator
    name = args.elbo or recorded["elbo"]
    same = name == recorded["elbo"]
    estimator = make_elbo(name, recorded.get("particles") if args.particles is None and same
                          else args.particles,
                          recorded.get("alpha") if args.alpha is None and same else args.alpha,
                          recorded.get("pyro_settings") if same else None)
    pair_given = {k: v for k, v in (("model", args.model), ("guide", args.guide)) if v}
    requested_pair = {**spec, **pair_given, "options": {
        **spec.get("options", {}), **_given(args, [*PAIR_OPTIONS, "learn_prior_weight"])}}
    data_given = {**_given(args, DATA_OPTIONS), **({"name": args.data} if args.data else {}),
                  **({"seed": args.seed} if args.seed is not None else {})}
    requested_data = {**stored.data, **data_given}
    data = None
    if requested_data.get("name") == stored.data.get("name"):
        data = _load_data(requested_data)  # the loader's own spec: resolved paths and all
        requested_data = {**stored.data, **{k: data.spec.get(k) for k in data_given}}
    requested = replace(stored, pair=requested_pair, data=requested_data, **sections,
                        estimator=estimator.describe() if args.elbo or args.particles is not None
                        or args.alpha is not None else recorded)
    differences = stored.differences(requested)
    if differences:
        raise PplVaeError(f"cannot resume {args.out} with other settings "
                          f"({'; '.join(differences)}); only --epochs may change (to extend "
                          "the run): drop the changed flags, or start a new run with another "
                          "--out")
    settings = {k: sections[section].get(k, default)
                for k, (section, default) in TRAIN_SETTINGS.items()}
    inputs = list(stored.inputs) if args.inputs is None else _input_names(args.inputs)
    return spec, data, {"elbo": estimator}, settings, inputs


def trusts_code(args, config: dict) -> bool:
    """Whether the user allowed importing the code ``config.json`` names (flag, or path given)."""
    spec = config.get("pair") or {}
    given = getattr(args, "user_model", None)
    if given is not None and given != spec.get("model"):
        raise PplVaeError(f"--model {given} differs from the run's '{spec.get('model')}'; give the "
                          "factory the run was trained with")
    return bool(getattr(args, "trust_run_code", False) or given)


def _load(args, device: str = "cpu"):
    from ppl_vae.runs import load_run, read_config

    config = read_config(args.run)
    if config.get("data") is None:
        raise PplVaeError(f"{args.run} was trained on user data; evaluate it from Python")
    data = _load_data(config["data"])
    run = load_run(args.run, device=device, data=data, trust_code=trusts_code(args, config))
    return run, data


SCALES_NOTE = ("the estimator with the model's site scales (beta; a KL warm-up at its final "
               "scale 1), so not the ELBO unless every scale is 1")


def cmd_evaluate(args) -> None:
    from ppl_vae.elbo import make_elbo
    from ppl_vae.objective import batch_loss
    from ppl_vae.runs import write_json

    run, data = _load(args, args.device)
    x = data.test[: args.n_examples] if args.n_examples else data.test
    inputs = run.test_inputs(data, args.n_examples)
    result = run.evaluate(x, inputs=inputs, iw_samples=args.iw_samples, quiet=args.quiet)
    if args.elbo:
        estimator = make_elbo(args.elbo, args.particles, args.alpha)
        with run.pair.scope(), torch.no_grad():
            losses = [batch_loss(estimator, run.model, run.guide, x[i:i + 256].to(run.device),
                                 {k: v[i:i + 256] for k, v in inputs.items()}, {}, x.shape[0])
                      * x[i:i + 256].shape[0] for i in range(0, x.shape[0], 256)]
        result["training_objective"] = {
            **estimator.describe(), "value": -float(sum(losses)) / x.shape[0],
            "note": f"{SCALES_NOTE}; 'elbo' is the unweighted ELBO"}
    result = _named_for_guide(result)
    write_json(Path(args.run) / "evaluation.json", result)
    print(json.dumps(result))


def _named_for_guide(result: dict) -> dict:
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
    inputs = run.test_inputs(data)
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
    from ppl_vae.figures import observation_mean
    from ppl_vae.plots import image_grid

    out = _image_path(args.out)
    if args.n < 1:
        raise PplVaeError(f"-n must be at least 1, got {args.n}")
    run, data = _load(args)
    torch.manual_seed(args.seed)
    inputs, rows, row_labels, title = _sample_inputs(run, data, args.n)
    count = next(iter(inputs.values())).shape[0] if inputs else args.n
    dummy = data.test[:1].to(run.device).expand(count, *data.test.shape[1:])
    with run.pair.scope():
        images = observation_mean(run.model, run.guide, dummy, from_prior=True, inputs=inputs)
    if not image_grid(images, out, rows, title, row_labels):
        raise PplVaeError("this run's examples are not images; nothing to draw")
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
    from ppl_vae.diagnostics import diagnose
    from ppl_vae.diagnostics.disentanglement import with_beta_vae_factors
    from ppl_vae.runs import read_config

    metrics = args.metrics if args.metrics == "none" else with_beta_vae_factors(args.metrics,
                                                                                args.factors)
    report = diagnose(args.run, n_examples=args.n_examples, draws=args.draws, device=args.device,
                      quiet=args.quiet, metrics=metrics, seed=args.seed,
                      trust_code=trusts_code(args, read_config(args.run)))
    psis = {k: v for k, v in report["psis"].items() if not isinstance(v, list)}
    print(json.dumps({"diagnostics": str(Path(args.run) / "diagnostics"), "psis": psis,
                      "disentanglement": report.get("disentanglement")}, default=str))


def cmd_list(args) -> None:
    from ppl_vae.data import DATASETS
    from ppl_vae.registry import ELBOS, GUIDES, MODELS

    for title, entries in (("models", [(e.name, e.description) for e in MODELS.entries()]),
                           ("guides", [(e.name, e.description) for e in GUIDES.entries()]),
                           ("ELBOs", [(e.name, e.description) for e in ELBOS.entries()]),
                           ("datasets", sorted(DATASETS.items()))):
        print(f"{title}:")
        for name, description in entries:
            print(f"  {name:22s} {description}")


def _one_line_warnings(fallback):
    """``warnings.showwarning`` showing a :class:`PplVaeWarning` as one line on stderr."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, PplVaeWarning):
            print(f"ppl-vae: note: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)
    return show


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    command = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample,
               "diagnose": cmd_diagnose, "list": cmd_list}[args.command]
    from ppl_vae.speedups import keep_freed_memory

    keep_freed_memory()  # this process is ours: large host tensors are reused, not re-faulted
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            command(args)
    except PplVaeError as error:
        if args.debug:
            raise
        print(f"ppl-vae: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppl-vae: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not a user mistake: still one line by default
        if args.debug:
            raise
        print(f"ppl-vae: internal error: {type(error).__name__}: {error}; rerun with --debug "
              "for the traceback and report it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
