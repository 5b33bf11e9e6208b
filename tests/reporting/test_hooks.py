"""The optional hooks of the contract: read only through ppl_vae.contract, drawn by the engine,
and a failing hook never costs the report."""

import json

import numpy as np
import pytest

from ppl_vae.contract import Figure, GuideHooks, ModelHooks, Panel, hook
from ppl_vae.reporting.diagnostics import diagnose_pair
from ppl_vae.reporting.run_report import finish_run


def _figure_of_numbers(x, model):
    """A guide hook handing over numbers: one bar per latent dimension, one heat map."""
    return [Figure("user_bars", [Panel("bars", [0.2, 0.5, 0.9], highlight=[False, True, True],
                                       lines=(0.5,)),
                                 Panel("heatmap", np.eye(3), ticks=["a", "b", "c"])],
                   "numbers from the guide")]


def _raises(*args):
    raise RuntimeError("the hook broke")


def test_diagnose_with_a_failing_figure_hook_still_writes_the_report(trained, tmp_path):
    run, data = trained
    run.guide.figure_data = _raises
    run.model.report = _raises
    report = diagnose_pair(run.model, run.guide, data, tmp_path / "diag", pair=run.pair,
                           n_examples=5, draws=20, metrics="none", quiet=True)
    written = json.loads((tmp_path / "diag" / "report.json").read_text())
    assert written["figure_errors"] == [{"figure": "guide.figure_data",
                                         "error": "RuntimeError: the hook broke"}]
    assert written["hook_errors"] == [{"hook": "model.report",
                                       "error": "RuntimeError: the hook broke"}]
    assert written["psis"]["khat"] == report["psis"]["khat"] and "khat.png" in written["figures"]
    text = (tmp_path / "diag" / "report.md").read_text()
    assert "guide.figure_data: `RuntimeError: the hook broke`" in text
    assert "model.report: `RuntimeError: the hook broke`" in text


def test_figures_handed_over_as_numbers_are_drawn_in_run_and_diagnostics(trained, tmp_path):
    run, data = trained
    run.guide.figure_data = _figure_of_numbers
    run.guide.report = lambda x, model: {"examples_seen": int(x.shape[0])}
    report = finish_run(run, data, iw_samples=5)
    assert "figures/user_bars.png" in report["figures"] and report["figure_errors"] == []
    assert (run.path / "figures" / "user_bars.png").stat().st_size > 1000
    assert report["guide_report"] == {"examples_seen": len(data.test)}
    assert "examples seen" in (run.path / "report.md").read_text()
    diagnosed = diagnose_pair(run.model, run.guide, data, tmp_path / "diag", pair=run.pair,
                              n_examples=5, draws=20, metrics="none", quiet=True)
    assert "user_bars.png" in diagnosed["figures"] and diagnosed["guide_report"] == {
        "examples_seen": 5}


def test_a_panel_of_an_unknown_kind_is_named_in_the_report(trained, tmp_path):
    run, data = trained
    run.guide.figure_data = lambda x, model: [Figure("odd", [Panel("pie", [1, 2])])]
    report = finish_run(run, data, iw_samples=5)
    assert report["figure_errors"][0]["figure"] == "odd"
    assert "'pie' is not one of" in report["figure_errors"][0]["error"]


def test_the_engine_reads_only_the_listed_hooks():
    class Model:
        latent_site = "z"

    assert hook(Model(), ModelHooks, "latent_site") == "z"
    assert hook(Model(), GuideHooks, "collapsed") is None
    with pytest.raises(AttributeError, match="not a hook of GuideHooks"):
        hook(Model(), GuideHooks, "latent_site")
