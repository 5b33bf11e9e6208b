"""``diagnose``: everything ``ppl-vae diagnose RUN`` computes, written into ``RUN/diagnostics/``.

Files written (``out_folder``):

- ``posterior.nc``: ArviZ ``InferenceData`` of guide draws for ``n_examples``
  test examples (see :mod:`ppl_vae.diagnostics.inference_data`);
- ``report.json``: every number below; ``report.md``: a short summary;
- ``nuts.nc`` (``mcmc_examples``): NUTS draws for the first examples, laid out as
  ``posterior.nc`` (:mod:`ppl_vae.diagnostics.mcmc`); ``sbc_ranks.npy`` (``sbc``);
- figures (:func:`ppl_vae.figures.diagnostic_figures`, those that apply):
  ``reconstructions.png``, ``prior_samples.png``, ``traversals_by_kl.png``,
  ``correlation.png``, ``posterior_variances.png``, ``khat.png``,
  ``worst_khat.png``, ``latent_scatter.png``, ``pca_spectrum.png``,
  ``posterior_forest.png``, and those of the model's and guide's
  ``figure_data`` hooks (:mod:`ppl_vae.contract`); the Bayesian checks' ``ppc.png``,
  ``sbc.png`` and ``nuts_vs_guide.png`` (:mod:`ppl_vae.diagnostics.check_figures`).

The Bayesian checks (:class:`Checks`): a posterior predictive check on the diagnosed
examples (``ppc_draws`` replicates each, written as the netCDF's
``posterior_predictive`` group; :mod:`ppl_vae.diagnostics.predictive`), simulation-based
calibration of the guide (``sbc`` simulations; :mod:`ppl_vae.diagnostics.sbc`) and a
NUTS reference for the first ``mcmc_examples`` examples.

Numbers: per-example Pareto k̂ (:mod:`ppl_vae.diagnostics.psis`), the IS
log-likelihood and ELBO from the same draws (the IS number with its trust, k̂ and ESS;
when they say it is not reliable, one :class:`~ppl_vae.errors.PplVaeWarning` line, as
:func:`ppl_vae.evaluate` gives, after the report is written), the latent statistics
(:mod:`ppl_vae.latents`, with the per-dimension KL of the draws), ``az.summary``
of three examples, the model's and guide's ``report`` hooks, and
for datasets with factors the disentanglement scores
(:mod:`ppl_vae.diagnostics.disentanglement`). The latent statistics, figures, hooks and
the writing are the shared stages of :class:`~ppl_vae.reporting.builder.Report`; the
text is :func:`~ppl_vae.reporting.markdown.diagnostics_markdown`.

A pair taking per-example inputs (``model(x, y=...)``, a run trained with
``fit(inputs=...)``) gets the test inputs, each call the rows of its examples;
the disentanglement metrics, whose representation sees images only, are then
n/a (the reason is in the report). A pair with global sites (outside the ``"data"``
plate) gets their draws without an ``example`` dim and its local sites per example;
PSIS, the IS estimate, SBC and NUTS are not defined for it, and the report's
``missing`` says so, part by part; when every latent is global, the netCDF has a
``log_likelihood`` group over the training examples for ``az.loo``/``az.waic``.
Enumerated sites are sampled, as the report's ``psis.note`` says. ``site`` names the
latent site that statistics and figures describe (a sequence model's step that is
never padding, say). A figure or hook that fails is named in ``figure_errors`` /
``hook_errors`` and the rest of the report is still written. Each stage prints
one line on stderr unless ``quiet``.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppl_vae.chunks import log_mean_exp
from ppl_vae.data.dataset import ROW_INDEX, Dataset, split_examples, split_size
from ppl_vae.diagnostics.check_figures import nuts_figure, ppc_figure, sbc_figure
from ppl_vae.diagnostics.disentanglement import check_preset, disentanglement_scores
from ppl_vae.diagnostics.draws import (
    enumeration_note,
    global_log_likelihood,
    global_note,
    pair_draws,
    prepare_draws,
)
from ppl_vae.diagnostics.inference_data import (
    posterior_summary,
    to_inference_data,
    write_netcdf,
)
from ppl_vae.diagnostics.mcmc import compare_to_guide, nuts_reference
from ppl_vae.diagnostics.predictive import check_statistics, example_means
from ppl_vae.diagnostics.psis import importance_ess, pareto_k, summarize_k, trust_summary
from ppl_vae.diagnostics.sbc import LEVELS, simulation_based_calibration
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.evaluate import UNCOLLAPSED, check_inputs
from ppl_vae.figures import attempt, diagnostic_figures
from ppl_vae.latents import pair_representation
from ppl_vae.modules import frozen
from ppl_vae.pair import Pair, built_spec
from ppl_vae.reporting.builder import Report, write_report
from ppl_vae.reporting.markdown import diagnostics_markdown
from ppl_vae.reporting.run_report import recorded_evaluations
from ppl_vae.traces import take

SUMMARY_EXAMPLES = 3


@dataclass(frozen=True)
class Checks:
    """The Bayesian checks of ``diagnose`` and their sizes (0 turns one off).

    Attributes:
        ppc_draws: replicated data per diagnosed example (posterior predictive check).
        sbc: simulations of simulation-based calibration; ``sbc_draws`` guide draws each.
        levels: central-interval levels whose SBC coverage is reported.
        mcmc_examples: the first this many diagnosed examples get a NUTS reference,
            ``mcmc_chains`` chains of ``mcmc_warmup`` + ``mcmc_draws`` steps, the potential
            compiled with ``mcmc_jit``.
    """

    ppc_draws: int = 100
    sbc: int = 0
    sbc_draws: int = 99
    levels: tuple = LEVELS
    mcmc_examples: int = 0
    mcmc_draws: int = 500
    mcmc_warmup: int = 500
    mcmc_chains: int = 4
    mcmc_jit: bool = False

    def check(self) -> None:
        """One-line errors for bad sizes, before any work."""
        for name, value in asdict(self).items():
            if name == "mcmc_jit":
                continue
            if name == "levels":
                if not value or any(not 0 < a < 1 for a in value):
                    raise PplVaeError(f"SBC levels must lie strictly between 0 and 1, got "
                                      f"{value}")
                continue
            low = {"ppc_draws": 2, "sbc": 2, "sbc_draws": 2, "mcmc_chains": 2,
                   "mcmc_draws": 1, "mcmc_warmup": 1}.get(name, 0)
            off = name in ("ppc_draws", "sbc", "mcmc_examples") and value == 0
            if isinstance(value, bool) or not isinstance(value, int) or (value < low
                                                                         and not off):
                flag = "--" + name.replace("_", "-")
                raise PplVaeError(f"{flag} must be an integer of at least {max(low, 1)}"
                                  f"{' (0: off)' if name in ('ppc_draws', 'sbc') else ''}, "
                                  f"got {value!r}")


def diagnose(run_folder: str | Path, n_examples: int = 100, draws: int = 1000,
             device: str = "cpu", quiet: bool = False, metrics: str | dict = "fast",
             seed: int = 0, model: Callable[..., Any] | None = None,
             guide: Callable[..., Any] | None = None, data: Dataset | None = None,
             trust_code: bool = False, checks: Checks | None = None,
             site: str | None = None) -> dict:
    """Diagnose a run folder; write ``RUN/diagnostics/`` and return the report.

    Args:
        run_folder: a folder written by ``ppl-vae train`` / ``ppl_vae.fit(out=...)``.
        n_examples: test examples with guide draws, PSIS and the netCDF (first rows of the test set).
        draws: guide draws per example (the importance samples of PSIS).
        device: ``cpu``, ``cuda`` or ``auto``.
        quiet: hide progress bars.
        metrics: disentanglement point counts, ``fast`` (default), ``full``
            (disentanglement_lib's), ``none``, or a dict of per-metric settings
            (see :data:`ppl_vae.diagnostics.disentanglement.PRESETS`).
        seed: seeds the guide draws and the metrics.
        model: a fresh instance of the model, for runs of user-written pairs.
        guide: the pair's guide, given with ``model``.
        data: the dataset, for runs trained on user data (``config.json`` has no data spec).
        trust_code: import the user code the run's ``config.json`` names (a
            factory or importable model/guide); see :func:`ppl_vae.load_run`.
        checks: the Bayesian checks (:class:`Checks`; default: the predictive check only).
        site: the latent site statistics and figures describe (default: the pair's own).

    Returns:
        The dict written to ``report.json``.
    """
    from ppl_vae.runs import read_run_config
    from ppl_vae.trained import load_run

    recorded = read_run_config(Path(run_folder)).data
    if data is None:
        if recorded is None:
            raise PplVaeError(f"{run_folder} was trained on user data; pass data= to "
                              "ppl_vae.diagnose (or use diagnose_pair)")
        from ppl_vae.data import load_spec

        data = load_spec(recorded)
    _check(n_examples, draws, metrics, data)
    (checks or Checks()).check()
    run = load_run(run_folder, model=model, guide=guide, device=device, data=data,
                   trust_code=trust_code)
    if run.input_names:
        missing = sorted(set(run.input_names) - set(data.inputs("test")) - {ROW_INDEX})
        if missing:
            raise PplVaeError(f"{run_folder} was trained with input(s) {run.input_names} but the "
                              f"dataset's test split lacks {missing}; pass the dataset it was "
                              "trained on as data=")
    examples = data.training_rows() if run.evaluation_split == "train" else data
    return diagnose_pair(run.model, run.guide, examples, Path(run_folder) / "diagnostics",
                         n_examples=n_examples, draws=draws, quiet=quiet, metrics=metrics,
                         seed=seed, pair=run.pair, run_name=str(run_folder),
                         inputs=run.evaluation_examples(data)[1], run_folder=run_folder,
                         checks=checks, site=site, split=run.evaluation_split)


def _check(n_examples: int, draws: int, metrics: str | dict, data) -> None:
    """One-line errors for bad settings, before any work."""
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise PplVaeError(f"--n-examples must be a positive integer, got {n_examples!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 10:
        raise PplVaeError(f"--draws must be an integer of at least 10 (PSIS fits the largest "
                          f"weights; 1000 is a good value), got {draws!r}")
    if metrics != "none":
        check_preset(metrics, data)
    if split_size(data, "test") == 0:
        raise PplVaeError("the dataset has no test examples to diagnose")


def _check_inputs(inputs: dict | None, data) -> dict:
    """The test inputs, one row per test example (``data.inputs("test")``), or a one-line error."""
    if inputs is not None and not isinstance(inputs, dict):
        raise PplVaeError(f"inputs must be a dict {{name: tensor}} such as data.inputs('test'), "
                          f"got {type(inputs).__name__}")
    return check_inputs(inputs, split_size(data, "test"))


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PplVaeError(f"cannot create {folder}: {error.strerror}") from None


def diagnose_pair(model: Callable[..., Any], guide: Callable[..., Any], data: Dataset,
                  out_folder: str | Path, *, n_examples: int = 100, draws: int = 1000,
                  quiet: bool = False, metrics: str | dict = "fast", seed: int = 0,
                  pair: Pair | None = None, run_name: str | None = None,
                  inputs: dict | None = None, run_folder: str | Path | None = None,
                  checks: Checks | None = None, site: str | None = None,
                  split: str = "test") -> dict:
    """Diagnose any model/guide pair keeping the contract; write into ``out_folder``.

    Args:
        model: the pair's model (its parameters already trained).
        guide: the pair's guide.
        data: a :class:`ppl_vae.data.Dataset` (``test``; factors, labels and a
            renderer are used when present).
        out_folder: where the files go (created).
        n_examples: as :func:`diagnose`.
        draws: as :func:`diagnose`.
        quiet: as :func:`diagnose`.
        metrics: as :func:`diagnose`.
        seed: as :func:`diagnose`.
        pair: the :class:`ppl_vae.Pair` holding the parameters (``run.pair``);
            needed when the pair registers parameters with ``pyro.param`` /
            ``pyro.module``, whose values live in the pair's own store.
        run_name: shown in the report.
        inputs: the pair's per-example keyword inputs for the whole test split
            (``{"y": labels}``, e.g. ``data.inputs("test")`` or ``run.test_inputs(data)``);
            every call of the pair gets the rows of its examples.
        run_folder: the run's folder, whose evaluations the report sets beside its own
            IS numbers (:func:`~ppl_vae.reporting.run_report.recorded_evaluations`).
        checks: the Bayesian checks, as :func:`diagnose`.
        site: the latent site studied, as :func:`diagnose`.
        split: the split ``data.test`` holds, as the report names it: ``"train"`` when it
            holds the training rows (:meth:`~ppl_vae.data.Dataset.training_rows`).

    Returns:
        The dict written to ``out_folder/report.json``.

    Raises:
        PplVaeError: bad settings, before any work.
    """
    _check(n_examples, draws, metrics, data)
    checks = checks or Checks()
    checks.check()
    inputs = _check_inputs(inputs, data)
    folder = Path(out_folder)
    handed = pair
    pair = pair or Pair(model, guide)
    if site is not None:
        pair = replace(pair, site=site)
    scope = pair.scope() if handed is not None else engine_settings(model, guide)
    progress = _Progress(quiet, checks)
    with scope, frozen(model, guide), torch.no_grad():
        device = pair.device
        x_all = split_examples(data, "test").to(device)
        given = {k: None if v is None else v.to(device) for k, v in inputs.items()}
        prepare_draws(pair, x_all, given)  # checks the pair before any work
        pair.primary_site(x_all, given)  # a bad --site, before any work
        _make_folder(folder)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            report = _diagnose(pair, data, x_all, given, folder, n_examples, draws, quiet,
                               metrics, seed, progress, checks)
    report["run"] = run_name
    report["pair"] = _describe(pair)
    report["settings"]["split"] = split
    if run_folder is not None:
        report["evaluations"] = recorded_evaluations(Path(run_folder), report["settings"]["n_examples"],
                                                     draws)
    write_report(folder, report, diagnostics_markdown)
    progress.done(folder)
    _warn_untrusted(report["psis"])
    return report


def _warn_untrusted(psis: dict) -> None:
    """The warning of the IS log-likelihood's trust, when it has one, as one
    :class:`~ppl_vae.errors.PplVaeWarning` (``evaluate`` raises the same)."""
    for numbers in (psis, psis.get("uncollapsed") or {}):
        warning = (numbers.get("log_likelihood_trust") or {}).get("warning")
        if warning:
            warnings.warn(f"diagnose: {warning}", PplVaeWarning, stacklevel=3)


class _Progress:
    """One line per stage on stderr (also off a terminal, where progress bars stay silent)."""

    def __init__(self, quiet: bool, checks: Checks):
        self.quiet, self.start = quiet, time.perf_counter()
        self.stages = ["guide draws and PSIS",
                       *(["posterior predictive check"] if checks.ppc_draws else []),
                       "latent statistics and netCDF", "figures",
                       *(["simulation-based calibration"] if checks.sbc else []),
                       *(["NUTS reference"] if checks.mcmc_examples else []),
                       "disentanglement metrics"]

    def next(self, stage: str) -> None:
        if not self.quiet:
            number = self.stages.index(stage) + 1
            print(f"diagnose [{number}/{len(self.stages)}] {stage} "
                  f"({time.perf_counter() - self.start:.0f} s so far)", file=sys.stderr,
                  flush=True)

    def done(self, folder: Path) -> None:
        if not self.quiet:
            print(f"diagnose: done in {time.perf_counter() - self.start:.0f} s, report in "
                  f"{folder / 'report.md'}", file=sys.stderr, flush=True)


def _describe(pair: Pair) -> str:
    spec = pair.spec or built_spec(pair.model)
    if spec:
        return f"{spec.model} / {spec.guide} {spec.options}"
    return f"user-written ({type(pair.model).__name__} / {type(pair.guide).__name__})"


def _latent_code(built: Report, x_all, inputs, kl_per_dim: dict) -> tuple[dict, dict]:
    """The shared latent statistics over the whole test set (:meth:`Report.latent_code`), with
    the per-dimension KL of the draws."""
    latents, code = built.latent_code(x_all, inputs)
    if "reason" in latents:
        return latents, {}  # no statistics for the figures to draw
    if code:
        kl = kl_per_dim.get(code["site"])
        latents.update({
            "kl_per_dim": None if kl is None else kl.tolist(),
            "kl_per_dim_note": None if kl is not None else
            "n/a: the guide or prior site is not Independent over univariate dimensions",
        })
    return latents, code


def _diagnose(pair, data, x_all, inputs, folder, n_examples, draws, quiet, metrics, seed,
              progress, checks: Checks):
    """The work of :func:`diagnose_pair`, inside the pair's scope."""
    model, guide, device = pair.model, pair.guide, pair.device
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str) -> None:
        seconds[name] = time.perf_counter() - start - sum(seconds.values())

    n = min(n_examples, x_all.shape[0])
    x, shown_inputs = x_all[:n], take(inputs, slice(0, n))
    plan = pair.plan(x_all, inputs)[1]
    missing = _missing(plan)
    progress.next("guide draws and PSIS")
    drawn = pair_draws(pair, x, draws, quiet=quiet, inputs=shown_inputs)
    psis = _psis(pair, drawn, x, shown_inputs, draws, quiet, plan)
    lap("draws_and_psis")

    labels = None if getattr(data, "test_labels", None) is None else \
        data.test_labels[:n].cpu().numpy()
    predictive, ppc = None, None
    if checks.ppc_draws:
        progress.next("posterior predictive check")
        predictive = pair_draws(pair, x, checks.ppc_draws, quiet=quiet, inputs=shown_inputs,
                                replicate=True)
        ppc = {**check_statistics(predictive, labels), "examples": n}
        lap("posterior_predictive")

    progress.next("latent statistics and netCDF")
    built = Report(pair)
    primary = pair.primary_site(x_all, inputs)
    code: dict
    if primary in plan.global_sites:
        latents, code = {"site": None, "reason": f"n/a: the site studied, '{primary}', is "
                         "global (one value for all examples); name a local one with --site"}, {}
    else:
        latents, code = _latent_code(built, x_all, inputs, drawn.kl_per_dim)
    test_factors = getattr(data, "test_factors", None)
    factors = None if test_factors is None else test_factors[:n].cpu().numpy()
    pointwise = _pointwise(pair, data, drawn, plan, quiet, sorted(inputs))
    idata = to_inference_data(drawn, x.cpu().numpy(), np.arange(n), primary, factors, labels,
                              predictive, pointwise)
    write_netcdf(idata, folder / "posterior.nc")
    shown = list(range(min(SUMMARY_EXAMPLES, n)))
    summary = posterior_summary(idata, primary, None if primary in plan.global_sites else shown)
    lap("activity_and_netcdf")

    progress.next("figures")
    khat = None if psis.get("khat") is None else np.asarray(psis["khat"])
    built.draw(lambda errors: diagnostic_figures(model, guide, x, shown_inputs, data, idata, khat,
                                                 np.arange(n), latents, code, folder, shown,
                                                 errors))
    if ppc is not None and predictive is not None:
        means = {site: example_means(values, 2)
                 for site, values in predictive.replicated.items()}
        built.draw(lambda errors: [name for name in [attempt("ppc", lambda: ppc_figure(
            ppc, means, folder), errors)] if name])
    built.ask_hooks(x)
    lap("figures")

    sbc = nuts = None
    if checks.sbc:
        progress.next("simulation-based calibration")
        sbc = _sbc(pair, x_all, inputs, checks, seed, quiet, folder, built, missing)
        lap("sbc")
    if checks.mcmc_examples:
        progress.next("NUTS reference")
        nuts = _nuts(pair, x, shown_inputs, checks, seed, primary, idata, folder, built,
                     missing)
        lap("nuts")

    progress.next("disentanglement metrics")
    scores, reason = None, _no_metrics_reason(metrics, data, inputs)
    if reason is None:
        scores = disentanglement_scores(pair_representation(pair, device), data, metrics,
                                        seed)
    lap("disentanglement")
    seconds["total"] = time.perf_counter() - start

    files = {"inference_data": "posterior.nc",
             **({"nuts": "nuts.nc"} if nuts is not None and "note" not in nuts else {}),
             **({"sbc_ranks": "sbc_ranks.npy"} if sbc is not None and sbc.get("verdict")
                else {})}
    return {
        "settings": {"n_examples": n, "draws": draws, "seed": seed,
                     "metrics": metrics if isinstance(metrics, str) else "custom",
                     "device": str(device), "inputs": sorted(inputs),
                     "checks": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in asdict(checks).items()}},
        "sites": {name: list(v.shape[2:]) for name, v in drawn.sites.items()},
        "global_sites": {name: list(v.shape[1:]) for name, v in drawn.global_sites.items()},
        "primary_site": primary,
        "psis": psis,
        "posterior_predictive": ppc,
        "sbc": sbc,
        "nuts": nuts,
        "missing": missing,
        "latents": latents,
        "posterior_summary": summary,
        "disentanglement": scores,
        "disentanglement_note": reason,
        **built.outcome(),
        "files": files,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _missing(plan) -> dict:
    """Parts of the report not defined for this pair, each with why."""
    if not plan.global_sites:
        return {}
    why = global_note(plan)
    out = {"psis": why, "is_log_likelihood": why, "kl_per_dim": why,
           "sbc": "a global site's q is fitted to the training data, not a function of x, so "
                  "it cannot be re-run on simulated data",
           "nuts": "NUTS per example would need the global sites fixed"}
    local = {name for name, _ in plan.latent} - plan.global_sites
    if local:
        out["log_likelihood"] = ("not written: the pair has local latents "
                                 f"{sorted(local)}, drawn from an amortized guide per example, "
                                 "so there is no pointwise log-likelihood of one posterior for "
                                 "az.loo / az.waic")
    return out


def _psis(pair, drawn, x, inputs, draws, quiet, plan) -> dict:
    """The PSIS section: k̂ and the IS numbers (of the collapsed pair where declared), or why
    they are not defined."""
    if plan.global_sites:
        return {"khat": None, "draws": draws, "note": global_note(plan)}
    weighted, uncollapsed = drawn, None
    if pair.collapsed is not None:  # PSIS and IS on the pair with its auxiliary sites integrated out
        weighted = pair_draws(pair.collapsed, x, draws, quiet=quiet, inputs=inputs)
        uncollapsed = _psis_numbers(drawn.log_weight, pareto_k(drawn.log_weight),
                                    f"{UNCOLLAPSED}the IS log-likelihood")
    khat = pareto_k(weighted.log_weight)
    psis = {**_psis_numbers(weighted.log_weight, khat), "draws": draws,
            "khat": khat.tolist(), "note": enumeration_note(plan)}
    if uncollapsed is not None:
        psis["collapsed"] = ("k-hat, IS log p(x) and ELBO of the pair with its auxiliary sites "
                             "integrated out (the guide's collapsed form)")
        psis["uncollapsed"] = uncollapsed
    return psis


def _pointwise(pair, data, drawn, plan, quiet, input_names: list[str]) -> dict | None:
    """``log p(x_n | θ_s)`` per observed site over the training examples, when every latent
    is global (the ``log_likelihood`` group); None otherwise."""
    latent = {name for name, _ in plan.latent}
    if not latent or not latent <= plan.global_sites:
        return None
    x_train = split_examples(data, "train").to(pair.device)
    train_inputs = data.inputs("train") if input_names else {}
    given = {k: train_inputs[k].to(pair.device) for k in input_names}
    return global_log_likelihood(pair, drawn.global_sites, x_train, given, quiet=quiet)


def _sbc(pair, x_all, inputs, checks: Checks, seed, quiet, folder, built, missing) -> dict:
    """SBC numbers (ranks to ``sbc_ranks.npy``) and its figure; the reason where refused."""
    if "sbc" in missing:
        return {"verdict": None, "note": missing["sbc"]}
    try:
        result = simulation_based_calibration(pair, x_all, checks.sbc, checks.sbc_draws, inputs,
                                              checks.levels, seed, quiet=quiet)
    except PplVaeError as error:
        missing["sbc"] = str(error)
        return {"verdict": None, "note": str(error)}
    np.save(folder / "sbc_ranks.npy", np.asarray(result["ranks"]))
    built.draw(lambda errors: [name for name in [attempt("sbc", lambda: sbc_figure(
        result, folder), errors)] if name])
    return {k: v for k, v in result.items() if k != "ranks"}


def _nuts(pair, x, inputs, checks: Checks, seed, primary, idata, folder, built,
          missing) -> dict:
    """NUTS on the first examples (``nuts.nc``), compared with the guide; figure."""
    if "nuts" in missing:
        return {"note": missing["nuts"]}
    m = min(checks.mcmc_examples, x.shape[0])
    try:
        reference = nuts_reference(pair, x[:m], np.arange(m), take(inputs, slice(0, m)),
                                   checks.mcmc_draws, checks.mcmc_warmup, checks.mcmc_chains,
                                   seed, primary, checks.mcmc_jit)
    except PplVaeError as error:
        missing["nuts"] = str(error)
        return {"note": str(error)}
    write_netcdf(reference, folder / "nuts.nc")
    built.draw(lambda errors: [name for name in [attempt("nuts_vs_guide", lambda: nuts_figure(
        idata, reference, primary, folder), errors)] if name])
    return compare_to_guide(idata, reference)


def _psis_numbers(log_weight: np.ndarray, khat: np.ndarray,
                  what: str = "the IS log-likelihood") -> dict:
    """k̂ summary, IS log-likelihood with its SE and trust (the fields ``evaluate`` gives it;
    ``what`` names the estimate in its warning), and ELBO of ``(draws, examples)`` log
    weights."""
    numbers = summarize_k(khat)
    numbers["worst_test_index"] = numbers.pop("worst_examples")
    log_p = log_mean_exp(torch.from_numpy(log_weight)).numpy()
    numbers.update(is_log_likelihood=float(log_p.mean()),
                   is_log_likelihood_se=float(log_p.std(ddof=1) / np.sqrt(log_p.size))
                   if log_p.size > 1 else None,
                   log_likelihood_trust=trust_summary(khat, importance_ess(log_weight),
                                                      log_weight.shape[0], what),
                   elbo=float(log_weight.mean()))
    return numbers


def _no_metrics_reason(metrics, data, inputs: dict) -> str | None:
    """Why the disentanglement metrics are not computed, or None when they are."""
    if metrics == "none":
        return "not computed (metrics 'none')"
    if getattr(data, "factor_sizes", None) is None:
        return "n/a: the dataset has no ground-truth factors"
    if inputs:
        return (f"n/a: the pair takes per-example inputs {sorted(inputs)}, but the metrics' "
                "representation E_q[z|x] is computed from images alone (fresh renders have "
                "no inputs)")
    return None
