"""The ``ppl-vae`` command line: every subcommand, flag, default and help text.

``ppl-vae COMMAND --help`` shows every flag with its default (:class:`HelpFormatter`).
"""

from __future__ import annotations

import argparse
import dataclasses

from ppl_vae.config import RunOptions, TrainConfig, counts

DESCRIPTION = "The ``ppl-vae`` command: train, evaluate, sample, diagnose, list."

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
    "binarize": (str, "none, static (threshold at 0.5 once), sampled (one bernoulli(x) "
                      "draw per pixel with --seed, kept: fixed binarization) or dynamic "
                      "(bernoulli(x) per batch) (default: none)"),
    "test_fraction": (float, "share of examples held out for test (default: 0.1)"),
    "path": (str, "file or folder of dsprites, mnist or array (default: none)"),
    "labelled": (_fraction_or_count, "keep only this many train labels known: a fraction "
                                     "(0.1) or a count (500) (default: all known)"),
    "flatten": (bool, "examples as flat vectors (n, D), for networks written for flat "
                      "inputs (Pyro's examples); figures still draw images (default: off)"),
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

DEFAULT_RUN = {"model": "beta_vae", "data": "shapes", "elbo": "trace"}
RUN_TIME_HIDDEN = ("report",)  # RunOptions fields the train command fixes

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


def pair_options() -> dict:
    """Option name -> [(factory name, Option), ...] over every registered model and guide."""
    from ppl_vae.pair import GUIDES, MODELS  # (importing pair registers the stock families)

    table = MODELS.all_options()
    for name, owners in GUIDES.all_options().items():
        table.setdefault(name, []).extend(owners)
    return table


def _add_pair_and_data_flags(train: argparse.ArgumentParser) -> None:
    """``--latent-dim``, ``--beta``, ... (every registered factory's options) and ``--n``,
    ``--key``, ... (load options)."""
    pair = train.add_argument_group("model and guide options (each goes to whichever of the "
                                    "pair's factories takes it)")
    for name, owners in pair_options().items():
        option = owners[0][1]
        defaults = ", ".join(sorted({f"{o.default}" for _, o in owners}))
        text = f"{option.help} (default: {defaults})"
        if option.kind is bool:
            pair.add_argument(option.flag, dest=name, default=None, help=text,
                              action=argparse.BooleanOptionalAction)
        else:
            kind = counts if option.kind is tuple else option.kind
            pair.add_argument(option.flag, dest=name, type=kind, default=None, help=text)
    data = train.add_argument_group("data options")
    for name, (kind, text) in DATA_OPTIONS.items():
        if kind is bool:
            data.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                              help=text, action=argparse.BooleanOptionalAction)
            continue
        # torchrun mistakes a bare --n for its own options: --subset-size is the same flag
        flags = {"n": ["--n", "--subset-size"], "path": ["--data-path"]}.get(
            name, ["--" + name.replace("_", "-")])
        data.add_argument(*flags, dest=name, type=kind, default=None, help=text)


def _flag_kwargs(f: dataclasses.Field, default) -> dict:
    """argparse keywords for a :mod:`ppl_vae.config` field (its parser, choices, help)."""
    meta = f.metadata
    if f.type in ("bool", bool):
        return {"action": "store_true", "help": meta["help"]}
    kind = meta["parse"] or {"int": int, "float": float, "str": str}.get(
        str(f.type).split(" |")[0], float)
    shown = meta["none"] if f.default is None else (
        ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default)
    return {"type": kind, "choices": meta["choices"], "default": default,
            "help": f"{meta['help']} (default: {shown})"}


def add_estimator_flags(group) -> None:
    """``--elbo`` and one flag per option any registered estimator takes (``--tc-weight``)."""
    from ppl_vae.estimators import ESTIMATORS

    names = ", ".join(e.name for e in ESTIMATORS.entries())
    group.add_argument("--elbo", default=None, help=f"estimator: {names} (ppl-vae list; "
                       "or pyro.infer.<Class> on --resume) (default: trace)")
    for name, owners in ESTIMATORS.all_options().items():
        option = owners[0][1]
        defaults = ", ".join(f"{entry} {o.default}" for entry, o in owners)
        kind = type(option.default) if option.default is not None else float
        group.add_argument(option.flag, dest=name, type=kind, default=None,
                           help=f"{option.help} (default: the estimator's: {defaults})")


def estimator_options(args) -> dict:
    """The estimator options given on the command line (unset flags keep the defaults)."""
    from ppl_vae.estimators import ESTIMATORS

    return {name: getattr(args, name) for name in ESTIMATORS.all_options()
            if getattr(args, name, None) is not None}


def _add_training_flags(train: argparse.ArgumentParser) -> None:
    """Estimator and :class:`~ppl_vae.config.TrainConfig` flags (None: new-run default or stored)."""
    group = train.add_argument_group("training settings (on --resume: default the stored run's)")
    add_estimator_flags(group)
    for f in dataclasses.fields(TrainConfig):
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name,
                           **_flag_kwargs(f, None))
    group.add_argument("--inputs", default=None, help="dataset inputs passed to model and "
                       "guide as keywords, comma-separated (y: labels, model(x, y=...)); "
                       "keyword=field[:onehot] when the programs call it otherwise "
                       "(ys=y:onehot: model(x, ys=one-hot labels)) (default: none)")
    group.add_argument("--observe", default=None, help="the model's observed sample site, "
                       "when not 'x' (Pyro's examples: obs)")
    group.add_argument("--plate", default=None, help="the per-example plate of model and "
                       "guide, when not 'data' (e.g. documents)")


def _add_run_time_flags(train: argparse.ArgumentParser) -> None:
    """:class:`~ppl_vae.config.RunOptions` flags: where and how to run."""
    group = train.add_argument_group("where and how to run (may change on --resume)")
    for f in dataclasses.fields(RunOptions):
        if f.name not in RUN_TIME_HIDDEN:
            group.add_argument("--" + f.name.replace("_", "-"), dest=f.name,
                               **_flag_kwargs(f, f.default))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand it sets the flag, absent it keeps the main one
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors (default: off)")
    parser = argparse.ArgumentParser(prog="ppl-vae", description=DESCRIPTION,
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
    _add_run_time_flags(train)

    evaluate = command("evaluate", "test ELBO and IS log-likelihood of a run",
                       EVALUATE_DESCRIPTION)
    evaluate.add_argument("run", help="a run folder")
    evaluate.add_argument("--iw-samples", type=int, default=1000,
                          help="importance samples per example")
    add_estimator_flags(evaluate.add_argument_group(
        "also report this estimator's training objective, β and other site scales included"))
    evaluate.add_argument("--n-examples", type=int, default=None,
                          help="the first this many test examples (default: all)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seeds the importance samples (default: 0)")
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


