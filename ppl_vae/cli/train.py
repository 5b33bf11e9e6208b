"""``ppl-vae train``: a new run from the flags, or a resumed one from its stored settings."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING

from ppl_vae.cli.commands import named_for_guide
from ppl_vae.cli.parser import (
    DEFAULT_RUN,
    RUN_TIME_HIDDEN,
    data_flags,
    estimator_options,
    pair_options,
)
from ppl_vae.config import DataSpec, EstimatorSpec, PairSpec, RunOptions, TrainConfig
from ppl_vae.errors import PplVaeError

if TYPE_CHECKING:  # the data package is imported when a command needs it
    from ppl_vae.data import Dataset


def _given(args, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def cmd_train(args) -> None:
    from ppl_vae.pair import build
    from ppl_vae.training import distributed, fit

    spec, data, estimator, config, inputs = (_resume_request if args.resume
                                             else _new_request)(args)
    pair = build(spec.model, spec.guide, data=data, seed=config.seed, **spec.options)
    if not args.quiet and distributed.is_main_process():
        shown = pair.spec or spec  # build records the resolved spec
        print(f"training {shown.model} / {shown.guide} on {data.describe()}",
              file=sys.stderr)
    names = spec.names or {}  # a resumed run's own, unless given again
    run_options = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunOptions)
                   if f.name not in RUN_TIME_HIDDEN}
    run = fit(pair.model, pair.guide, data, elbo=estimator, config=config, inputs=inputs,
              observe=args.observe or names.get("observe", "x"),
              plate=args.plate or names.get("plate", "data"), out=args.out,
              resume=args.resume, overwrite=args.overwrite, pair=pair, **run_options)
    distributed.finish()
    if distributed.is_main_process():
        report = run.report or {}  # (the train command always reports)
        evaluation = report.get("evaluation")
        print(json.dumps({"run": str(run.path), **(named_for_guide(evaluation) if evaluation
                                                   else {"report_error": report.get(
                                                       "report_error")})}))


def _input_names(text: str) -> list[str] | dict[str, str]:
    """``--inputs y`` -> ``["y"]``; ``--inputs ys=y:onehot`` -> ``{"ys": "y:onehot"}``."""
    parts = [part for part in text.split(",") if part]
    if not any("=" in part or ":" in part for part in parts):
        return parts
    return {keyword: target or keyword for keyword, _, target in
            (part.partition("=") for part in parts)}


def _stored_inputs(spec: PairSpec, stored_inputs: dict) -> list[str] | dict[str, str]:
    """The ``inputs`` a stored run was trained with, renamed keywords included."""
    keywords = (spec.names or {}).get("keywords")
    if not keywords:
        return list(stored_inputs)
    return {k: field + (f":{transform}" if transform else "")
            for k, (field, transform, _) in keywords.items()}


def _training_given(args) -> dict:
    """The :class:`~ppl_vae.config.TrainConfig` flags given (unset flags are None)."""
    return _given(args, [f.name for f in dataclasses.fields(TrainConfig)])


Request = tuple[PairSpec, "Dataset", EstimatorSpec, TrainConfig, list[str] | dict[str, str]]


def _new_request(args) -> Request:
    """Pair spec, data, estimator, training settings and inputs of a new run: flags, else
    defaults (:mod:`ppl_vae.config`)."""
    from ppl_vae.data import load_spec

    model = args.model or DEFAULT_RUN["model"]
    spec = PairSpec("factory" if ":" in model else "registry", model, args.guide,
                    options=_given(args, pair_options()))
    config = TrainConfig.create(**_training_given(args))
    data = load_spec(DataSpec.from_json({"name": args.data or DEFAULT_RUN["data"],
                                         "seed": config.seed, **_given(args, data_flags())}))
    estimator = EstimatorSpec(args.elbo or DEFAULT_RUN["elbo"], estimator_options(args))
    return spec, data, estimator, config, _input_names(args.inputs or "")


def _resume_request(args) -> Request:
    """The stored run's settings, overridden by the flags given; any change refused.

    The flags given are laid over the stored :class:`~ppl_vae.runs.RunConfig`
    and compared with :meth:`~ppl_vae.runs.RunConfig.differences`, so a change
    of pair or data (which ``fit`` cannot see: it is handed the built objects)
    is listed in the same line as a change of estimator or learning rate.
    ``fit(resume=True)`` checks the settings again.
    """
    from ppl_vae.data import load_spec
    from ppl_vae.estimators import from_spec
    from ppl_vae.runs import read_run_config

    stored = read_run_config(args.out)
    spec, stored_data = stored.pair, stored.data
    if spec is None or spec.source not in ("registry", "factory") or stored_data is None:
        raise PplVaeError(f"{args.out} holds a run of a user-written pair or data; resume it "
                          "from Python with ppl_vae.fit(..., resume=True)")
    if spec.source == "factory" and args.model is None:
        raise PplVaeError(f"{args.out} was built by the factory '{spec.model}'; give "
                          f"--model {spec.model} again to import it")
    config = dataclasses.replace(stored.training, **_training_given(args))
    recorded = stored.estimator
    name = args.elbo or recorded.name
    estimator = EstimatorSpec(name, {**(recorded.options if name == recorded.name else {}),
                                     **estimator_options(args)},
                              recorded.pyro_settings if name == recorded.name else None)
    if estimator != recorded:  # what it would record: every option, defaults included
        estimator = EstimatorSpec.from_json(from_spec(estimator).describe())
    pair_given = {k: v for k, v in (("model", args.model), ("guide", args.guide)) if v}
    requested_pair = dataclasses.replace(spec, **pair_given, options={
        **spec.options, **_given(args, pair_options())})
    data_given = {**_given(args, data_flags()), **({"name": args.data} if args.data else {}),
                  **({"seed": args.seed} if args.seed is not None else {})}
    requested_data = DataSpec.from_json({**stored_data.to_json(), **data_given})
    data = None
    if requested_data.name == stored_data.name:
        data = load_spec(requested_data)  # the loader's own spec: resolved paths and all
        loaded = data.spec or {}
        requested_data = DataSpec.from_json({**stored_data.to_json(),
                                             **{k: loaded[k] for k in data_given
                                                if k in loaded}})
    requested = dataclasses.replace(stored, pair=requested_pair, data=requested_data,
                                    training=config, estimator=estimator)
    differences = stored.differences(requested)
    if differences:
        raise PplVaeError(f"cannot resume {args.out} with other settings "
                          f"({'; '.join(differences)}); only --epochs may change (to extend "
                          "the run): drop the changed flags, or start a new run with another "
                          "--out")
    if data is None:  # (another data name is among the differences)
        raise PplVaeError(f"internal: {args.out}'s data was not loaded")
    inputs = _stored_inputs(spec, stored.inputs) if args.inputs is None \
        else _input_names(args.inputs)
    return spec, data, estimator, config, inputs
