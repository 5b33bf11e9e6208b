"""The ``ppl-vae`` command: train, evaluate, sample, diagnose, list.

Every user mistake ends as one line on stderr and exit status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ppl_vae.errors import PplVaeError

# CLI flag -> build() option; a flag left unset keeps the factory's default.
PAIR_OPTIONS = {"latent_dim": int, "beta": float, "likelihood": str, "net": str, "sigma": float,
                "prior_scale": float, "corruption": float, "grid_cols": int,
                "concentration1": float, "rate1": float, "concentration2": float,
                "rate2": float, "sharpness": float, "prior_weight": float, "z_prior": str}


def _fraction_or_count(text: str) -> int | float:
    """``--labelled 0.1`` (a fraction) or ``--labelled 500`` (a count)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


DATA_OPTIONS = {"n": int, "size": int, "binarize": str, "test_fraction": float, "path": str,
                "labelled": _fraction_or_count}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppl-vae", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model/guide pair and write a run folder")
    train.add_argument("--model", default="beta_vae",
                       help="a registered model (ppl-vae list) or your factory "
                            "package.module:make_pair, called as make_pair(data, **options)")
    train.add_argument("--guide", default=None, help="default: the model's own guide")
    train.add_argument("--data", default="shapes")
    train.add_argument("--data-path", dest="path", default=None)
    for name, kind in {**PAIR_OPTIONS, **DATA_OPTIONS}.items():
        if name != "path":
            # torchrun mistakes a bare --n for its own options: --subset-size is the same flag
            flags = ["--n", "--subset-size"] if name == "n" else ["--" + name.replace("_", "-")]
            train.add_argument(*flags, dest=name, type=kind, default=None)
    train.add_argument("--fixed-prior-weight", dest="learn_prior_weight", action="store_const",
                       const=False, default=None, help="ngvae: keep π_k at --prior-weight")
    train.add_argument("--inputs", default="", help="dataset inputs passed to model and guide "
                       "as keywords, comma-separated (y: labels, model(x, y=...))")
    train.add_argument("--elbo", default="trace")
    train.add_argument("--alpha", type=float, default=None)
    train.add_argument("--particles", type=int, default=None)
    train.add_argument("--epochs", type=int, default=None, help="default 10")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--precision", default="fp32",
                       help="fp32, or bf16: networks in bfloat16, densities in float32")
    train.add_argument("--out", required=True)
    train.add_argument("--resume", action="store_true")
    train.add_argument("--overwrite", action="store_true")
    train.add_argument("--checkpoint-every", type=int, default=0)
    train.add_argument("--iw-samples", type=int, default=100, help="for the final report")
    train.add_argument("--eval-examples", type=int, default=None,
                       help="test examples in the final report (default: all)")
    train.add_argument("--detect-anomaly", action="store_true",
                       help="name the operation that first produces NaN (slow)")
    train.add_argument("--quiet", action="store_true")

    evaluate = sub.add_parser("evaluate", help="test ELBO and IS log-likelihood of a run")
    evaluate.add_argument("run")
    evaluate.add_argument("--iw-samples", type=int, default=1000)
    evaluate.add_argument("--elbo", default=None, help="also report this estimator's bound")
    evaluate.add_argument("--particles", type=int, default=None)
    evaluate.add_argument("--alpha", type=float, default=None)
    evaluate.add_argument("--n-examples", type=int, default=None)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.add_argument("--model", default=None, dest="user_model",
                       help="the run's factory package.module:make_pair, given again to import it")
    evaluate.add_argument("--trust-run-code", action="store_true",
                       help="import the user code the run's config.json names")

    sample = sub.add_parser("sample", help="draw images from the prior of a trained model")
    sample.add_argument("run")
    sample.add_argument("-n", type=int, default=64)
    sample.add_argument("--out", required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--model", default=None, dest="user_model",
                       help="the run's factory package.module:make_pair, given again to import it")
    sample.add_argument("--trust-run-code", action="store_true",
                       help="import the user code the run's config.json names")

    diagnose = sub.add_parser("diagnose", help="ArviZ draws, PSIS k-hat, latent activity, "
                              "disentanglement scores and figures into RUN/diagnostics/")
    diagnose.add_argument("run")
    diagnose.add_argument("--n-examples", type=int, default=100)
    diagnose.add_argument("--draws", type=int, default=1000)
    diagnose.add_argument("--metrics", default="fast", choices=["fast", "full", "none"])
    diagnose.add_argument("--seed", type=int, default=0)
    diagnose.add_argument("--device", default="cpu")
    diagnose.add_argument("--quiet", action="store_true")
    diagnose.add_argument("--model", default=None, dest="user_model",
                       help="the run's factory package.module:make_pair, given again to import it")
    diagnose.add_argument("--trust-run-code", action="store_true",
                       help="import the user code the run's config.json names")

    sub.add_parser("list", help="models, guides, ELBOs and datasets with one-line descriptions")
    return parser


def _given(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _load_data(spec: dict):
    from ppl_vae.data import load

    return load(**spec)


def cmd_train(args) -> None:
    from ppl_vae import distributed
    from ppl_vae.elbo import make_elbo
    from ppl_vae.pair import build
    from ppl_vae.runs import read_config
    from ppl_vae.train import fit

    if args.resume:
        config = read_config(args.out)
        spec, data_spec, train = config.get("pair") or {}, config.get("data"), config["train"]
        if spec.get("source", "registry") not in ("registry", "factory") or data_spec is None:
            raise PplVaeError(f"{args.out} holds a run of a user-written pair or data; resume it "
                              "from Python with ppl_vae.fit(..., resume=True)")
        if spec.get("source") == "factory" and args.model != spec["model"]:
            raise PplVaeError(f"{args.out} was built by the factory '{spec['model']}'; give "
                              f"--model {spec['model']} again to import it")
        epochs = train["epochs"] if args.epochs is None else args.epochs
        settings = {k: train[k] for k in ("batch_size", "lr", "seed")}
        settings["precision"] = train.get("precision", "fp32")
        estimator = {"elbo": make_elbo(train["elbo"], train["particles"], train.get("alpha"),
                                       train.get("pyro_settings"))}
        inputs = list(config.get("inputs", {}))
    else:
        spec = {"model": args.model, "guide": args.guide,
                "options": _given(args, [*PAIR_OPTIONS, "learn_prior_weight"])}
        data_spec = {"name": args.data, "seed": args.seed, **_given(args, DATA_OPTIONS)}
        epochs = 10 if args.epochs is None else args.epochs
        settings = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                    "precision": args.precision}
        estimator = {"elbo": args.elbo, "particles": args.particles, "alpha": args.alpha}
        inputs = [name for name in args.inputs.split(",") if name]
    data = _load_data(data_spec)
    pair = build(spec["model"], spec["guide"], data=data, seed=settings["seed"], **spec["options"])
    if not args.quiet and distributed.is_main_process():
        print(f"training {pair.spec['model']} / {pair.spec['guide']} on {data.describe()}",
              file=sys.stderr)
    run = fit(pair.model, pair.guide, data, **estimator, **settings, inputs=inputs, epochs=epochs,
              device=args.device, out=args.out, resume=args.resume, overwrite=args.overwrite,
              quiet=args.quiet, checkpoint_every=args.checkpoint_every,
              detect_anomaly=args.detect_anomaly, iw_samples=args.iw_samples,
              eval_examples=args.eval_examples, pair=pair)
    distributed.finish()
    if distributed.is_main_process():
        print(json.dumps({"run": str(run.path), **run.report["evaluation"]}))


def trusts_code(args, config: dict) -> bool:
    """Whether the user allowed importing the code ``config.json`` names (flag, or path given)."""
    spec = config.get("pair") or {}
    given = getattr(args, "user_model", None)
    if given is not None and given != spec.get("model"):
        raise PplVaeError(f"--model {given} differs from the run's '{spec.get('model')}'; give the "
                          "factory the run was trained with")
    return bool(getattr(args, "trust_run_code", False) or given)


def _load(args, device: str = "cpu"):
    from ppl_vae.pair import load_run
    from ppl_vae.runs import read_config

    config = read_config(args.run)
    if config.get("data") is None:
        raise PplVaeError(f"{args.run} was trained on user data; evaluate it from Python")
    data = _load_data(config["data"])
    run = load_run(args.run, device=device, data=data, trust_code=trusts_code(args, config))
    return run, data


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
            bounds = [batch_loss(estimator, run.model, run.guide, x[i:i + 256].to(run.device),
                                 {k: v[i:i + 256] for k, v in inputs.items()}, {}, x.shape[0])
                      * x[i:i + 256].shape[0] for i in range(0, x.shape[0], 256)]
        result["bound"] = {**estimator.describe(), "value": -float(sum(bounds)) / x.shape[0]}
    write_json(Path(args.run) / "evaluation.json", result)
    print(json.dumps(result))


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
    from ppl_vae.plots import image_grid, observation_mean

    run, data = _load(args)
    if args.n < 1:
        raise PplVaeError(f"-n must be at least 1, got {args.n}")
    torch.manual_seed(args.seed)
    inputs, rows, row_labels, title = _sample_inputs(run, data, args.n)
    count = next(iter(inputs.values())).shape[0] if inputs else args.n
    dummy = data.test[:1].to(run.device).expand(count, *data.test.shape[1:])
    with run.pair.scope():
        images = observation_mean(run.model, run.guide, dummy, from_prior=True, inputs=inputs)
    if not image_grid(images, Path(args.out), rows, title, row_labels):
        raise PplVaeError("this run's examples are not images; nothing to draw")
    print(args.out)


def cmd_diagnose(args) -> None:
    from ppl_vae.diagnostics import diagnose
    from ppl_vae.runs import read_config

    report = diagnose(args.run, n_examples=args.n_examples, draws=args.draws, device=args.device,
                      quiet=args.quiet, metrics=args.metrics, seed=args.seed,
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


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    command = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample,
               "diagnose": cmd_diagnose, "list": cmd_list}[args.command]
    from ppl_vae.speedups import keep_freed_memory

    keep_freed_memory()  # this process is ours: large host tensors are reused, not re-faulted
    try:
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
