"""``diagnose``: everything ``ppl-vae diagnose RUN`` computes, written into ``RUN/diagnostics/``.

Files written (``out_folder``):

- ``posterior.nc``: ArviZ ``InferenceData`` of guide draws for ``n_examples``
  test examples (see :mod:`ppl_vae.diagnostics.inference_data`);
- ``report.json``: every number below; ``report.md``: a short summary;
- figures (:func:`ppl_vae.figures.diagnostic_figures`, those that apply):
  ``reconstructions.png``, ``prior_samples.png``, ``traversals_by_kl.png``,
  ``correlation.png``, ``posterior_variances.png``, ``khat.png``,
  ``worst_khat.png``, ``latent_scatter.png``, ``pca_spectrum.png``,
  ``posterior_forest.png``, and those of the model's and guide's
  ``figure_data`` hooks (:mod:`ppl_vae.contract`).

Numbers: per-example Pareto k̂ (:mod:`ppl_vae.diagnostics.psis`), the IS
log-likelihood and ELBO from the same draws, the latent statistics
(:mod:`ppl_vae.latents`, with the per-dimension KL of the draws), ``az.summary``
of three examples, the model's and guide's ``report`` hooks, and
for datasets with factors the disentanglement scores
(:mod:`ppl_vae.diagnostics.disentanglement`). The latent statistics, figures, hooks and
the writing are the shared stages of :class:`~ppl_vae.reporting.builder.Report`; the
text is :func:`~ppl_vae.reporting.markdown.diagnostics_markdown`.

A pair taking per-example inputs (``model(x, y=...)``, a run trained with
``fit(inputs=...)``) gets the test inputs, each call the rows of its examples;
the disentanglement metrics, whose representation sees images only, are then
n/a (the reason is in the report). A pair with global sites is refused (no
per-example importance weight); enumerated sites are sampled, as the report's
``psis.note`` says. A figure or hook that fails is named in ``figure_errors`` /
``hook_errors`` and the rest of the report is still written. Each stage prints
one line on stderr unless ``quiet``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ppl_vae.chunks import log_mean_exp
from ppl_vae.data.dataset import ROW_INDEX, split_examples, split_size
from ppl_vae.diagnostics.disentanglement import check_preset, disentanglement_scores
from ppl_vae.diagnostics.draws import enumeration_note, pair_draws, prepare_draws
from ppl_vae.diagnostics.inference_data import (
    posterior_summary,
    to_inference_data,
    write_netcdf,
)
from ppl_vae.diagnostics.psis import pareto_k, summarize_k
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import check_inputs
from ppl_vae.figures import diagnostic_figures
from ppl_vae.latents import pair_representation
from ppl_vae.modules import frozen
from ppl_vae.pair import Pair, built_spec
from ppl_vae.reporting.builder import Report, write_report
from ppl_vae.reporting.markdown import diagnostics_markdown
from ppl_vae.traces import take

SUMMARY_EXAMPLES = 3


def diagnose(run_folder, n_examples: int = 100, draws: int = 1000, device: str = "cpu",
             quiet: bool = False, metrics: str | dict = "fast", seed: int = 0, model=None, guide=None,
             data=None, trust_code: bool = False) -> dict:
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

    Returns:
        The dict written to ``report.json``.
    """
    from ppl_vae.runs import read_run_config
    from ppl_vae.trained import load_run

    recorded = read_run_config(run_folder).data
    if data is None:
        if recorded is None:
            raise PplVaeError(f"{run_folder} was trained on user data; pass data= to "
                              "ppl_vae.diagnose (or use diagnose_pair)")
        from ppl_vae.data import load_spec

        data = load_spec(recorded)
    _check(n_examples, draws, metrics, data)
    run = load_run(run_folder, model=model, guide=guide, device=device, data=data,
                   trust_code=trust_code)
    if run.input_names:
        missing = sorted(set(run.input_names) - set(data.inputs("test")) - {ROW_INDEX})
        if missing:
            raise PplVaeError(f"{run_folder} was trained with input(s) {run.input_names} but the "
                              f"dataset's test split lacks {missing}; pass the dataset it was "
                              "trained on as data=")
    return diagnose_pair(run.model, run.guide, data, Path(run_folder) / "diagnostics",
                         n_examples=n_examples, draws=draws, quiet=quiet, metrics=metrics,
                         seed=seed, pair=run.pair, run_name=str(run_folder),
                         inputs=run.test_inputs(data))


def _check(n_examples: int, draws: int, metrics: str, data) -> None:
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


def diagnose_pair(model, guide, data, out_folder, *, n_examples: int = 100, draws: int = 1000,
                  quiet: bool = False, metrics: str | dict = "fast", seed: int = 0, pair=None,
                  run_name: str | None = None, inputs: dict | None = None) -> dict:
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

    Returns:
        The dict written to ``out_folder/report.json``.

    Raises:
        PplVaeError: bad settings, or a pair with sites outside the ``"data"``
            plate (PSIS needs one importance weight per example), before any work.
    """
    _check(n_examples, draws, metrics, data)
    inputs = _check_inputs(inputs, data)
    folder = Path(out_folder)
    scope = pair.scope() if pair is not None else engine_settings(model, guide)
    pair = pair or Pair(model, guide)
    progress = _Progress(quiet)
    with scope, frozen(model, guide), torch.no_grad():
        device = pair.device
        x_all = split_examples(data, "test").to(device)
        given = {k: None if v is None else v.to(device) for k, v in inputs.items()}
        prepare_draws(pair, x_all, given)  # refuses global sites before any work
        _make_folder(folder)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            report = _diagnose(pair, data, x_all, given, folder, n_examples, draws, quiet,
                               metrics, seed, progress)
    report["run"] = run_name
    report["pair"] = _describe(pair)
    write_report(folder, report, diagnostics_markdown)
    progress.done(folder)
    return report


class _Progress:
    """One line per stage on stderr (also off a terminal, where progress bars stay silent)."""

    STAGES = ("guide draws and PSIS", "latent statistics and netCDF", "figures",
              "disentanglement metrics")

    def __init__(self, quiet: bool):
        self.quiet, self.start, self.stage = quiet, time.perf_counter(), 0

    def next(self) -> None:
        if not self.quiet:
            self.stage += 1
            print(f"diagnose [{self.stage}/{len(self.STAGES)}] {self.STAGES[self.stage - 1]} "
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
    if code:
        kl = kl_per_dim.get(code["site"])
        latents.update({
            "kl_per_dim": None if kl is None else kl.tolist(),
            "kl_per_dim_note": None if kl is not None else
            "n/a: the guide or prior site is not Independent over univariate dimensions",
        })
    return latents, code


def _diagnose(pair, data, x_all, inputs, folder, n_examples, draws, quiet, metrics, seed,
              progress):
    """The work of :func:`diagnose_pair`, inside the pair's scope."""
    model, guide, device = pair.model, pair.guide, pair.device
    seconds, start = {}, time.perf_counter()
    n = min(n_examples, x_all.shape[0])
    x, shown_inputs = x_all[:n], take(inputs, slice(0, n))
    progress.next()
    drawn = pair_draws(pair, x, draws, quiet=quiet, inputs=shown_inputs)
    weighted, uncollapsed = drawn, None
    if pair.collapsed is not None:  # PSIS and IS on the pair with its auxiliary sites integrated out
        weighted = pair_draws(pair.collapsed, x, draws, quiet=quiet, inputs=shown_inputs)
        uncollapsed = _psis_numbers(drawn.log_weight, pareto_k(drawn.log_weight))
    khat = pareto_k(weighted.log_weight)
    seconds["draws_and_psis"] = time.perf_counter() - start

    progress.next()
    built = Report(pair)
    latents, code = _latent_code(built, x_all, inputs, drawn.kl_per_dim)
    primary = pair.primary_site(x_all, inputs)
    test_factors = getattr(data, "test_factors", None)
    factors = None if test_factors is None else test_factors[:n].cpu().numpy()
    labels = None if getattr(data, "test_labels", None) is None else \
        data.test_labels[:n].cpu().numpy()
    idata = to_inference_data(drawn, x.cpu().numpy(), np.arange(n), primary, factors, labels)
    write_netcdf(idata, folder / "posterior.nc")
    shown = list(range(min(SUMMARY_EXAMPLES, n)))
    summary = posterior_summary(idata, primary, shown)
    seconds["activity_and_netcdf"] = time.perf_counter() - start - sum(seconds.values())

    progress.next()
    built.draw(lambda errors: diagnostic_figures(model, guide, x, shown_inputs, data, idata, khat,
                                                 np.arange(n), latents, code, folder, shown,
                                                 errors))
    built.ask_hooks(x)
    seconds["figures"] = time.perf_counter() - start - sum(seconds.values())

    progress.next()
    scores, reason = None, _no_metrics_reason(metrics, data, inputs)
    if reason is None:
        scores = disentanglement_scores(pair_representation(pair, device), data, metrics,
                                        seed)
    seconds["disentanglement"] = time.perf_counter() - start - sum(seconds.values())
    seconds["total"] = time.perf_counter() - start

    psis = {**_psis_numbers(weighted.log_weight, khat), "draws": draws,
            "khat": khat.tolist(), "note": enumeration_note(pair.plan(x_all, inputs)[1])}
    if uncollapsed is not None:
        psis["collapsed"] = ("k-hat, IS log p(x) and ELBO of the pair with its auxiliary sites "
                             "integrated out (the guide's collapsed form)")
        psis["uncollapsed"] = uncollapsed
    return {
        "settings": {"n_examples": n, "draws": draws, "seed": seed,
                     "metrics": metrics if isinstance(metrics, str) else "custom",
                     "device": str(device), "inputs": sorted(inputs)},
        "sites": {name: list(v.shape[2:]) for name, v in drawn.sites.items()},
        "primary_site": primary,
        "psis": psis,
        "latents": latents,
        "posterior_summary": summary,
        "disentanglement": scores,
        "disentanglement_note": reason,
        **built.outcome(),
        "files": {"inference_data": "posterior.nc"},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _psis_numbers(log_weight: np.ndarray, khat: np.ndarray) -> dict:
    """k̂ summary, IS log-likelihood and ELBO of ``(draws, examples)`` log weights."""
    numbers = summarize_k(khat)
    numbers["worst_test_index"] = numbers.pop("worst_examples")
    numbers.update(is_log_likelihood=float(log_mean_exp(torch.from_numpy(log_weight)).mean()),
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
