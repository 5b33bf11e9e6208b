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
DATA_OPTIONS = {"n": int, "size": int, "binarize": str, "test_fraction": float, "path": str}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppl-vae", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model/guide pair and write a run folder")
    train.add_argument("--model", default="beta_vae")
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

    sample = sub.add_parser("sample", help="draw images from the prior of a trained model")
    sample.add_argument("run")
    sample.add_argument("-n", type=int, default=64)
    sample.add_argument("--out", required=True)
    sample.add_argument("--seed", type=int, default=0)

    diagnose = sub.add_parser("diagnose", help="ArviZ draws, PSIS k-hat, latent activity, "
                              "disentanglement scores and figures into RUN/diagnostics/")
    diagnose.add_argument("run")
    diagnose.add_argument("--n-examples", type=int, default=100)
    diagnose.add_argument("--draws", type=int, default=1000)
    diagnose.add_argument("--metrics", default="fast", choices=["fast", "full", "none"])
    diagnose.add_argument("--seed", type=int, default=0)
    diagnose.add_argument("--device", default="cpu")
    diagnose.add_argument("--quiet", action="store_true")

    sub.add_parser("list", help="models, guides, ELBOs and datasets with one-line descriptions")
    return parser


def _given(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def _load_data(spec: dict):
    from ppl_vae.data import load

    return load(**spec)


def cmd_train(args) -> None:
    from ppl_vae import distributed
    from ppl_vae.pair import build
    from ppl_vae.report import finish_run
    from ppl_vae.runs import read_config
    from ppl_vae.train import fit

    if args.resume:
        config = read_config(args.out)
        if config.get("pair") is None or config.get("data") is None:
            raise PplVaeError(f"{args.out} holds a run of a user-written pair or data; resume it "
                              "from Python with ppl_vae.fit(..., resume=True)")
        spec, data_spec, train = config["pair"], config["data"], config["train"]
        epochs = train["epochs"] if args.epochs is None else args.epochs
        settings = {k: train[k] for k in ("batch_size", "lr", "seed")}
        settings["precision"] = train.get("precision", "fp32")
        estimator = {"elbo": train["elbo"], "particles": train["particles"],
                     "alpha": train.get("alpha")}
        device = args.device
    else:
        spec = {"model": args.model, "guide": args.guide,
                "options": _given(args, [*PAIR_OPTIONS, "learn_prior_weight"])}
        data_spec = {"name": args.data, "seed": args.seed, **_given(args, DATA_OPTIONS)}
        epochs = 10 if args.epochs is None else args.epochs
        settings = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                    "precision": args.precision}
        estimator = {"elbo": args.elbo, "particles": args.particles, "alpha": args.alpha}
        device = args.device
    data = _load_data(data_spec)
    pair = build(spec["model"], spec["guide"], data=data, seed=settings["seed"], **spec["options"])
    if not args.quiet and distributed.is_main_process():
        print(f"training {pair.spec['model']} / {pair.spec['guide']} on {data.describe()}",
              file=sys.stderr)
    run = fit(pair.model, pair.guide, data, **estimator, **settings, epochs=epochs, device=device,
              out=args.out, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
              checkpoint_every=args.checkpoint_every, detect_anomaly=args.detect_anomaly,
              pair=pair)
    distributed.finish()
    if not distributed.is_main_process():
        return
    report = finish_run(run, data, iw_samples=args.iw_samples, examples=args.eval_examples,
                        quiet=args.quiet)
    print(json.dumps({"run": str(run.path), **report["evaluation"]}))


def _load(run_folder: str, device: str = "cpu"):
    from ppl_vae.pair import load_run
    from ppl_vae.runs import read_config

    config = read_config(run_folder)
    if config.get("data") is None:
        raise PplVaeError(f"{run_folder} was trained on user data; evaluate it from Python")
    return load_run(run_folder, device=device), _load_data(config["data"])


def cmd_evaluate(args) -> None:
    from ppl_vae.elbo import make_elbo
    from ppl_vae.runs import write_json

    run, data = _load(args.run, args.device)
    x = data.test[: args.n_examples] if args.n_examples else data.test
    result = run.evaluate(x, iw_samples=args.iw_samples, quiet=args.quiet)
    if args.elbo:
        estimator = make_elbo(args.elbo, args.particles, args.alpha)
        device = next(iter(run.pair.named_parameters().values())).device
        with run.pair.scope(), torch.no_grad():
            bounds = [estimator(run.model, run.guide, chunk.to(device)) * chunk.shape[0]
                      for chunk in x.split(256)]
        result["bound"] = {**estimator.describe(), "value": -float(sum(bounds)) / x.shape[0]}
    write_json(Path(args.run) / "evaluation.json", result)
    print(json.dumps(result))


def cmd_sample(args) -> None:
    from ppl_vae.plots import image_grid, observation_mean

    run, data = _load(args.run)
    if args.n < 1:
        raise PplVaeError(f"-n must be at least 1, got {args.n}")
    torch.manual_seed(args.seed)
    dummy = data.test[:1].expand(args.n, *data.test.shape[1:])
    with run.pair.scope():
        images = observation_mean(run.model, run.guide, dummy, from_prior=True)
    rows = max(1, int(args.n**0.5))
    if not image_grid(images, Path(args.out), rows, f"{args.n} prior samples"):
        raise PplVaeError("this run's examples are not images; nothing to draw")
    print(args.out)


def cmd_diagnose(args) -> None:
    from ppl_vae.diagnostics import diagnose

    report = diagnose(args.run, n_examples=args.n_examples, draws=args.draws, device=args.device,
                      quiet=args.quiet, metrics=args.metrics, seed=args.seed)
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
