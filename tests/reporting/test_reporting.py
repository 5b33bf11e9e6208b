"""The one report builder (ppl_vae.reporting): the run report and diagnose share its stages, and
a stage that fails is named in the report while the rest is still written."""

import json

import ppl_vae
import ppl_vae.trained
from ppl_vae.figures import attempt
from ppl_vae.reporting import builder
from ppl_vae.reporting.builder import Report, write_report
from ppl_vae.reporting.diagnostics import diagnose_pair
from ppl_vae.reporting.markdown import run_markdown
from ppl_vae.reporting.run_report import finish_run
from tests.conftest import tiny_binary

BROKEN = "RuntimeError: broken on purpose"
SHARED = ["figures", "figure_errors", "hook_errors"]



def _broken(*args):
    raise RuntimeError("broken on purpose")


def _written(folder) -> tuple[dict, str]:
    return json.loads((folder / "report.json").read_text()), (folder / "report.md").read_text()


def test_the_builder_names_a_failing_figure_and_hook_and_keeps_the_rest(trained, tmp_path):
    run, data = trained
    run.model.report = _broken
    run.guide.report = lambda x, model: {"rows": int(x.shape[0])}
    built = Report(run.pair)
    with run.pair.evaluation():
        built.draw(lambda errors: [name for name in (attempt("lost", _broken, errors),
                                                     attempt("kept", lambda: "kept.png", errors))
                                   if name])
        built.ask_hooks(data.test[:5])
    outcome = built.outcome("figures/")
    assert outcome == {"guide_report": {"rows": 5}, "figures": ["figures/kept.png"],
                       "figure_errors": [{"figure": "lost", "error": BROKEN}],
                       "hook_errors": [{"hook": "model.report", "error": BROKEN}]}
    write_report(tmp_path, {"n": 1, **outcome}, lambda report: f"n = {report['n']}")
    assert _written(tmp_path) == ({"n": 1, **outcome}, "n = 1")


def test_run_report_and_diagnose_end_with_the_same_shared_stages(trained, tmp_path):
    run, data = trained
    run.guide.figure_data = _broken
    run.model.report = _broken
    finished = finish_run(run, data, iw_samples=5)
    diagnosed = diagnose_pair(run.model, run.guide, data, tmp_path / "diag", pair=run.pair,
                              n_examples=5, draws=20, metrics="none", quiet=True)
    expected_errors = ([{"figure": "guide.figure_data", "error": BROKEN}],
                       [{"hook": "model.report", "error": BROKEN}])
    for report, folder, first in ((finished, run.path, "evaluation"),
                                  (diagnosed, tmp_path / "diag", "psis")):
        written, text = _written(folder)
        assert [k for k in written if k in SHARED] == SHARED and written == json.loads(
            json.dumps(report))
        assert (written["figure_errors"], written["hook_errors"]) == expected_errors
        assert "reconstructions" in " ".join(written["figures"])  # the other figures drawn
        assert written[first] and written["latents"]["active_units"] >= 0
        assert "guide.figure_data: `RuntimeError: broken on purpose`" in text
        assert "model.report: `RuntimeError: broken on purpose`" in text


def test_a_guide_without_moments_gets_its_reason_and_the_rest_of_the_run_report(
        trained, monkeypatch):
    run, data = trained

    def no_moments(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(builder, "pair_moments", no_moments)
    report = finish_run(run, data, iw_samples=5)
    assert report["latents"] == {"site": None, "reason": builder.NO_MOMENTS}
    assert [e["figure"] for e in report["figure_errors"]] == ["traversals"]
    assert "figures/reconstructions.png" in report["figures"] and report["evaluation"]["elbo"] < 0
    text = (run.path / "report.md").read_text()
    assert text == run_markdown(report) and builder.NO_MOMENTS in text


def test_a_failing_evaluation_after_training_is_one_line_and_keeps_the_run(
        tmp_path, monkeypatch, capsys):
    def broken_evaluate(self, *args, **kwargs):
        raise RuntimeError("The size of tensor a (8) must match the size of tensor b (100)\n"
                           "Trace Shapes: ...")

    monkeypatch.setattr(ppl_vae.trained.Run, "evaluate", broken_evaluate)
    data = tiny_binary(n=60)
    pair = ppl_vae.build("vae", data=data, latent_dim=3, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, data, epochs=1, batch_size=20, quiet=True,
                      device="cpu", out=tmp_path / "run", pair=pair)
    line = "RuntimeError: The size of tensor a (8) must match the size of tensor b (100)"
    assert run.report["report_error"] == line and len(run.metrics) == 1
    assert json.loads((tmp_path / "run" / "report.json").read_text())["report_error"] == line
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert line in capsys.readouterr().err
    assert ppl_vae.load_run(tmp_path / "run").metrics == run.metrics
