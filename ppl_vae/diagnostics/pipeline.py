"""``diagnose``: everything ``ppl-vae diagnose RUN`` computes, written into ``RUN/diagnostics/``.

Files written (``out_folder``):

- ``posterior.nc``: ArviZ ``InferenceData`` of guide draws for ``n_examples``
  test examples (see :mod:`ppl_vae.diagnostics.inference_data`);
- ``report.json``: every number below; ``report.md``: a short summary;
- figures: ``reconstructions.png``, ``prior_samples.png``, ``traversals_by_kl.png``,
  ``correlation.png``, ``posterior_variances.png``, ``khat.png``,
  ``worst_khat.png``, ``latent_scatter.png``, ``pca_spectrum.png``,
  ``posterior_forest.png`` (those that apply).

Numbers: per-example Pareto k̂ (:mod:`~ppl_vae.diagnostics.psis`), the IS
log-likelihood and ELBO from the same draws, latent activity
(:mod:`~ppl_vae.diagnostics.activity`), ``az.summary`` of three examples, and
for datasets with factors the disentanglement scores
(:mod:`~ppl_vae.diagnostics.disentanglement`).

A pair taking per-example inputs (``model(x, y=...)``, a run trained with
``fit(inputs=...)``) gets the test inputs, each call the rows of its examples;
the disentanglement metrics, whose representation sees images only, are then
n/a (the reason is in the report). A pair with global sites is refused (no
per-example importance weight); enumerated sites are sampled, as the report's
``psis.note`` says. A figure that fails is named in ``figure_errors`` and the
rest of the report is still written.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import arviz as az
import numpy as np
import torch
from scipy.special import logsumexp

from ppl_vae import runs
from ppl_vae.diagnostics import figures as fig
from ppl_vae.diagnostics.activity import latent_activity
from ppl_vae.diagnostics.disentanglement import check_preset, disentanglement_scores
from ppl_vae.diagnostics.draws import collect_draws, enumeration_note, prepare_draws
from ppl_vae.diagnostics.inference_data import to_inference_data, write_netcdf
from ppl_vae.diagnostics.psis import pareto_k, summarize_k
from ppl_vae.diagnostics.report import markdown
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import check_inputs, eval_mode
from ppl_vae.latents import posterior_moments
from ppl_vae.traces import collapsed_pair, take

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
        model, guide: fresh instances, for runs of user-written pairs.
        data: the dataset, for runs trained on user data (``config.json`` has no data spec).
        trust_code: import the user code the run's ``config.json`` names (a
            factory or importable model/guide); see :func:`ppl_vae.load_run`.

    Returns:
        The dict written to ``report.json``.
    """
    from ppl_vae.data import load
    from ppl_vae.runs import load_run, read_config

    config = read_config(run_folder)
    if data is None:
        if config.get("data") is None:
            raise PplVaeError(f"{run_folder} was trained on user data; pass data= to "
                              "ppl_vae.diagnose (or use diagnose_pair)")
        data = load(**config["data"])
    _check(n_examples, draws, metrics, data)
    run = load_run(run_folder, model=model, guide=guide, device=device, data=data,
                   trust_code=trust_code)
    if run.input_names:
        missing = sorted(set(run.input_names) - set(data.inputs("test")))
        if missing:
            raise PplVaeError(f"{run_folder} was trained with input(s) {run.input_names} but the "
                              f"dataset's test split lacks {missing}; pass the dataset it was "
                              "trained on as data=")
    return diagnose_pair(run.model, run.guide, data, Path(run_folder) / "diagnostics",
                         n_examples=n_examples, draws=draws, quiet=quiet, metrics=metrics,
                         seed=seed, pair=run.pair, run_name=str(run_folder),
                         inputs=run.test_inputs(data))


def _device(model, guide, pair) -> torch.device:
    """The device of the pair's first parameter (CPU if it has none)."""
    tensors = list(pair.named_parameters().values()) if pair is not None else [
        p for m in (model, guide) if isinstance(m, torch.nn.Module) for p in m.parameters()]
    return tensors[0].device if tensors else torch.device("cpu")


def _check(n_examples: int, draws: int, metrics: str, data) -> None:
    """One-line errors for bad settings, before any work."""
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise PplVaeError(f"--n-examples must be a positive integer, got {n_examples!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 10:
        raise PplVaeError(f"--draws must be an integer of at least 10 (PSIS fits the largest "
                          f"weights; 1000 is a good value), got {draws!r}")
    if metrics != "none":
        check_preset(metrics, data)
    if getattr(data, "test", None) is None or len(data.test) == 0:
        raise PplVaeError("the dataset has no test examples to diagnose")


def _check_inputs(inputs: dict | None, data) -> dict:
    """The test inputs, one row per test example (``data.inputs("test")``), or a one-line error."""
    if inputs is not None and not isinstance(inputs, dict):
        raise PplVaeError(f"inputs must be a dict {{name: tensor}} such as data.inputs('test'), "
                          f"got {type(inputs).__name__}")
    return check_inputs(inputs, len(data.test))


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
        model, guide: the pair (its parameters already trained).
        data: a :class:`ppl_vae.data.Dataset` (``test``; factors, labels and a
            renderer are used when present).
        out_folder: where the files go (created).
        n_examples, draws, quiet, metrics, seed: as :func:`diagnose`.
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
    with scope, eval_mode(model, guide), torch.no_grad():
        device = _device(model, guide, pair)
        x_all = data.test.to(device)
        given = {k: None if v is None else v.to(device) for k, v in inputs.items()}
        prepared = prepare_draws(model, guide, x_all, given)
        _make_folder(folder)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            report = _diagnose(model, guide, data, x_all, given, prepared, folder, n_examples,
                               draws, quiet, metrics, seed, device)
    report["run"] = run_name
    report["pair"] = _describe(model, guide, pair)
    runs.write_json(folder / "report.json", report)
    runs.atomic_write(folder / "report.md", lambda f: f.write(markdown(report).encode()))
    return report


def _describe(model, guide, pair) -> str:
    spec = getattr(pair, "spec", None) or getattr(model, "ppl_vae_spec", None)
    if spec:
        return f"{spec['model']} / {spec['guide']} {spec.get('options', {})}"
    return f"user-written ({type(model).__name__} / {type(guide).__name__})"


def _diagnose(model, guide, data, x_all, inputs, prepared, folder, n_examples, draws, quiet,
              metrics, seed, device):
    """The work of :func:`diagnose_pair`, inside the pair's scope."""
    seconds, start = {}, time.perf_counter()
    n = min(n_examples, x_all.shape[0])
    x, shown_inputs = x_all[:n], take(inputs, slice(0, n))
    drawn = collect_draws(model, guide, x, draws, quiet=quiet, inputs=shown_inputs,
                          prepared=prepared)
    weighted, uncollapsed = drawn, None
    collapsed = collapsed_pair(model, guide)
    if collapsed is not None:  # PSIS and IS on the pair with its auxiliary sites integrated out
        weighted = collect_draws(*collapsed, x, draws, quiet=quiet, inputs=shown_inputs,
                                 prepared=prepare_draws(*collapsed, x_all, inputs))
        uncollapsed = _psis_numbers(drawn.log_weight, pareto_k(drawn.log_weight))
    khat = pareto_k(weighted.log_weight)
    seconds["draws_and_psis"] = time.perf_counter() - start

    latents, arrays = latent_activity(model, guide, x_all, drawn.kl_per_dim, inputs)
    primary = arrays.get("site") or getattr(model, "latent_site", None)
    primary = primary if primary in drawn.sites else list(drawn.sites)[-1]
    test_factors = getattr(data, "test_factors", None)
    factors = None if test_factors is None else test_factors[:n].cpu().numpy()
    labels = None if getattr(data, "test_labels", None) is None else \
        data.test_labels[:n].cpu().numpy()
    idata = to_inference_data(drawn, x.cpu().numpy(), np.arange(n), primary, factors, labels)
    write_netcdf(idata, folder / "posterior.nc")
    shown = list(range(min(SUMMARY_EXAMPLES, n)))
    summary = az.summary(idata, var_names=[primary], coords={"example": shown}, kind="stats")
    seconds["activity_and_netcdf"] = time.perf_counter() - start - sum(seconds.values())

    errors: list[dict] = []
    written = _figures(model, guide, x, shown_inputs, data, idata, primary, khat, latents,
                       arrays, folder, shown, errors)
    seconds["figures"] = time.perf_counter() - start - sum(seconds.values())

    scores, reason = None, _no_metrics_reason(metrics, data, inputs)
    if reason is None:
        def representation(images: torch.Tensor) -> np.ndarray:
            return posterior_moments(model, guide, images.to(device))[1].cpu().numpy()

        scores = disentanglement_scores(representation, data, metrics, seed)
    seconds["disentanglement"] = time.perf_counter() - start - sum(seconds.values())
    seconds["total"] = time.perf_counter() - start

    psis = {**_psis_numbers(weighted.log_weight, khat), "draws": draws,
            "khat": khat.tolist(), "note": enumeration_note(prepared[1])}
    if uncollapsed is not None:
        psis["collapsed"] = ("k-hat, IS log p(x) and ELBO of the pair with its auxiliary sites "
                             "integrated out (the guide's collapsed form)")
        psis["uncollapsed"] = uncollapsed
    rows = summary.reset_index().rename(columns={"index": "variable"}).to_dict("records")
    return {
        "settings": {"n_examples": n, "draws": draws, "seed": seed,
                     "metrics": metrics if isinstance(metrics, str) else "custom",
                     "device": str(device), "inputs": sorted(inputs)},
        "sites": {name: list(v.shape[2:]) for name, v in drawn.sites.items()},
        "primary_site": primary,
        "psis": psis,
        "latents": latents,
        "posterior_summary": rows,
        "disentanglement": scores,
        "disentanglement_note": reason,
        "figures": written,
        "figure_errors": errors,
        "files": {"inference_data": "posterior.nc"},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _psis_numbers(log_weight: np.ndarray, khat: np.ndarray) -> dict:
    """k̂ summary, IS log-likelihood and ELBO of ``(draws, examples)`` log weights."""
    numbers = summarize_k(khat)
    numbers["worst_test_index"] = numbers.pop("worst_examples")
    draws = log_weight.shape[0]
    numbers.update(is_log_likelihood=float(np.mean(logsumexp(log_weight, axis=0)
                                                   - math.log(draws))),
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


def _figures(model, guide, x, inputs, data, idata, primary, khat, latents, arrays, folder,
             shown, errors: list[dict]) -> list[str]:
    """Every figure that applies; returns the file names written, failures go to ``errors``."""
    psis_worst = [int(i) for i in np.argsort(-np.nan_to_num(khat, nan=np.inf))[:8]]
    first = take(inputs, slice(0, 16))
    figures = [
        ("reconstructions", lambda: fig.reconstructions(model, guide, x[:16], folder, first)),
        ("prior_samples", lambda: fig.prior_samples(model, guide, x, folder, inputs=inputs)),
        ("khat", lambda: fig.khat_histogram(khat, folder)),
        ("worst_khat", lambda: fig.worst_khat(model, guide, x, khat, psis_worst, folder,
                                              inputs)),
        ("posterior_forest", lambda: fig.posterior_forest(idata, primary, shown, folder)),
    ]
    if arrays:
        colours = {}
        if getattr(data, "test_labels", None) is not None:
            colours["label"] = data.test_labels.cpu().numpy()
        factors = getattr(data, "test_factors", None)
        if factors is not None:
            factor_names = getattr(data, "factor_names", None) or range(factors.shape[1])
            for j, name in enumerate(factor_names):
                colours[str(name)] = factors[:, j].cpu().numpy()
        kl = latents["kl_per_dim"]
        kl = None if kl is None else np.asarray(kl)
        figures += [
            ("traversals_by_kl", lambda: fig.traversals_by_kl(
                model, guide, x, arrays["site"], arrays["means"], kl, folder, inputs)),
            ("correlation", lambda: fig.correlation_heatmap(
                np.asarray(latents["correlation_all"]), np.asarray(latents["activity"]), folder)),
            ("posterior_variances", lambda: fig.variance_histogram(arrays["variances"], folder)),
            ("latent_scatter", lambda: fig.latent_scatter(arrays["means"], colours, folder)),
            ("pca_spectrum", lambda: fig.pca_spectrum(latents["pca"]["explained"], folder)),
        ]
    names = [fig.attempt(name, draw, errors) for name, draw in figures]
    return [name for name in names if name is not None]
