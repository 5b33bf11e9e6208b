"""``ppl-vae train``: a new run from the flags, or a resumed one from its stored settings."""

from __future__ import annotations

import json
import sys

from ppl_vae.cli.commands import load_data, named_for_guide
from ppl_vae.cli.parser import DATA_OPTIONS, DEFAULT_RUN, PAIR_OPTIONS, TRAIN_SETTINGS
from ppl_vae.errors import PplVaeError


def _given(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


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
    names = spec.get("names") or {}  # a resumed run's own, unless given again
    run = fit(pair.model, pair.guide, data, **estimator, **settings, inputs=inputs,
              observe=args.observe or names.get("observe", "x"),
              plate=args.plate or names.get("plate", "data"),
              device=args.device, out=args.out, resume=args.resume, overwrite=args.overwrite,
              quiet=args.quiet, checkpoint_every=args.checkpoint_every,
              detect_anomaly=args.detect_anomaly, iw_samples=args.iw_samples,
              eval_examples=args.eval_examples, pair=pair)
    distributed.finish()
    if distributed.is_main_process():
        print(json.dumps({"run": str(run.path), **named_for_guide(run.report["evaluation"])}))


def _input_names(text: str) -> list[str] | dict[str, str]:
    """``--inputs y`` -> ``["y"]``; ``--inputs ys=y:onehot`` -> ``{"ys": "y:onehot"}``."""
    parts = [part for part in text.split(",") if part]
    if not any("=" in part or ":" in part for part in parts):
        return parts
    return {keyword: target or keyword for keyword, _, target in
            (part.partition("=") for part in parts)}


def _stored_inputs(spec: dict, stored_inputs: dict) -> list[str] | dict[str, str]:
    """The ``inputs`` a stored run was trained with, renamed keywords included."""
    keywords = (spec.get("names") or {}).get("keywords")
    if not keywords:
        return list(stored_inputs)
    return {k: field + (f":{transform}" if transform else "")
            for k, (field, transform, _) in keywords.items()}


def _new_request(args) -> tuple[dict, object, dict, dict, list[str]]:
    """Pair spec, data, estimator, fit settings and inputs of a new run: flags, else defaults."""
    spec = {"model": args.model or DEFAULT_RUN["model"], "guide": args.guide,
            "options": _given(args, [*PAIR_OPTIONS, "learn_prior_weight"])}
    settings = {name: default if getattr(args, name) is None else getattr(args, name)
                for name, (_, default) in TRAIN_SETTINGS.items()}
    data = load_data({"name": args.data or DEFAULT_RUN["data"], "seed": settings["seed"],
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
        data = load_data(requested_data)  # the loader's own spec: resolved paths and all
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
    inputs = _stored_inputs(spec, stored.inputs) if args.inputs is None \
        else _input_names(args.inputs)
    return spec, data, {"elbo": estimator}, settings, inputs


