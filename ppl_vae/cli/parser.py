"""The ``ppl-vae`` command line: every subcommand, flag, default and help text.

``ppl-vae COMMAND --help`` shows every flag with its default (:class:`HelpFormatter`).
"""

from __future__ import annotations

import argparse
import dataclasses

from ppl_vae.config import DataSpec, RunOptions, SplitOptions, TrainConfig, counts

DESCRIPTION = "The ``ppl-vae`` command: train, evaluate, compare, sample, diagnose, list."

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


# Text forms of the source options that are not plain str/int/float/bool, and extra spellings
# (torchrun mistakes a bare --n for its own options: --subset-size is the same flag).
SOURCE_PARSERS = {"n": _count_or_all, "scale": _number,
                  "factor_names": lambda text: [part for part in text.split(",") if part]}
SOURCE_FLAGS = {"n": ["--n", "--subset-size"], "path": ["--data-path"]}
# load()'s own options and those every source takes (but seed: the data's seed is --seed)
LOAD_FIELDS = [f for f in dataclasses.fields(DataSpec) if f.name in ("labelled", "flatten")] \
    + [f for f in dataclasses.fields(SplitOptions) if f.name != "seed"]


def _sources():
    """The registry of dataset sources, the stock ones registered."""
    import ppl_vae.data  # noqa: F401 (its modules register the sources)
    from ppl_vae.registry import DATA_SOURCES

    return DATA_SOURCES


def source_names() -> list[str]:
    """Every registered dataset source."""
    return [entry.name for entry in _sources().entries()]


def source_options() -> dict:
    """Option name -> [(source name, Option), ...] over every registered dataset source, the
    Python-only ones (registered without help: no text form) left out."""
    return {name: owners for name, owners in _sources().all_options().items()
            if owners[0][1].help}


def data_flags() -> list[str]:
    """The destinations of every data flag (a source's own, load()'s and the shared ones)."""
    return [*source_options(), *(f.name for f in LOAD_FIELDS)]


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
regulariser (-log p(z) at the code) instead of elbo and kl.

log_likelihood_trust gives the Pareto k-hat and importance-sampling ESS of the
weights behind log_likelihood (a one-line note when they say it is not reliable).
Each example's log p(x) and ELBO go to RUN/evaluation_examples.npz, for compare."""

COMPARE_DESCRIPTION = """The paired difference RUN_A - RUN_B of held-out log p(x) and ELBO
in nats per example, with its standard error over the same test examples, and the
unpaired standard error for contrast, as JSON.

Run ppl-vae evaluate on both runs first, with the same --n-examples and --iw-samples:
compare reads their RUN/evaluation_examples.npz and refuses examples or K that differ.
This is held-out likelihood of test examples the models never saw, not leave-one-out
cross-validation."""


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
    every = len(source_names())
    data = train.add_argument_group("data options (each goes to the --data source that takes it)")
    for name, owners in source_options().items():
        option, sources = owners[0][1], [source for source, _ in owners]
        text = option.help if len(sources) == every \
            else f"{', '.join(sources)}: {option.help}"
        if "default" not in text:
            text += f" (default: {option.default})"
        flags = SOURCE_FLAGS.get(name, [option.flag])
        if option.kind is bool:
            data.add_argument(*flags, dest=name, default=None, help=text,
                              action=argparse.BooleanOptionalAction)
        else:
            data.add_argument(*flags, dest=name, type=SOURCE_PARSERS.get(name, option.kind),
                              default=None, help=text)
    for f in LOAD_FIELDS:
        if f.type in ("bool", bool):
            data.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                              action=argparse.BooleanOptionalAction,
                              help=f"{f.metadata['help']} (default: off)")
        else:
            data.add_argument("--" + f.name.replace("_", "-"), dest=f.name,
                              **_flag_kwargs(f, None))


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
                       help=f"the dataset: {', '.join(source_names())} (ppl-vae list) "
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

    compare = command("compare", "paired difference of two runs' held-out log p(x) ± its SE",
                      COMPARE_DESCRIPTION)
    compare.add_argument("run_a", metavar="RUN_A", help="a run folder, evaluated")
    compare.add_argument("run_b", metavar="RUN_B", help="another, evaluated on the same "
                         "examples with the same --iw-samples")

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
    diagnose.add_argument("--site", default=None, help="the latent site statistics and "
                          "figures describe (default: the model's latent_site, else the "
                          "guide's last site)")
    _add_check_flags(diagnose.add_argument_group("Bayesian checks"))
    _add_user_code_flags(diagnose)

    command("list", "models, guides, ELBOs and datasets with one-line descriptions")
    return parser


def _levels(text: str) -> tuple[float, ...]:
    """``--sbc-levels 0.5,0.9``."""
    try:
        return tuple(float(part) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None


def _add_check_flags(group) -> None:
    """The flags of :class:`ppl_vae.reporting.diagnostics.Checks`."""
    group.add_argument("--ppc-draws", type=int, default=100, help="replicated data per "
                       "diagnosed example for the posterior predictive check (0: off)")
    group.add_argument("--sbc", type=int, default=0, help="simulations for simulation-based "
                       "calibration of the guide (0: off; 200 is a good start)")
    group.add_argument("--sbc-draws", type=int, default=99, help="guide draws per SBC "
                       "simulation")
    group.add_argument("--sbc-levels", type=_levels, default=(0.5, 0.9),
                       help="central-interval levels whose SBC coverage is reported")
    group.add_argument("--mcmc-examples", type=int, default=0, help="NUTS reference for the "
                       "first this many diagnosed examples (0: off)")
    group.add_argument("--mcmc-draws", type=int, default=500, help="NUTS draws per chain")
    group.add_argument("--mcmc-warmup", type=int, default=500, help="NUTS warm-up steps per "
                       "chain")
    group.add_argument("--mcmc-chains", type=int, default=4, help="NUTS chains per example")
    group.add_argument("--mcmc-jit", action="store_true", help="compile NUTS's potential "
                       "energy with torch.jit (about 2x faster; for programs that trace) "
                       "(default: off)")


def _add_user_code_flags(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--trust-run-code``: how a command may import a run's user code."""
    parser.add_argument("--model", default=None, dest="user_model",
                        help="the run's factory package.module:make_pair, given again to "
                             "import it (default: none)")
    parser.add_argument("--trust-run-code", action="store_true",
                        help="import the user code the run's config.json names")


