"""The trust of every importance-sampled number in the reports: the run report shows its SE,
k̂ and ESS; diagnose carries the same fields and says when evaluate used other examples."""


import warnings

import numpy as np
import pytest

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.errors import PplVaeWarning
from ppl_vae.per_example import FILE
from ppl_vae.reporting.diagnostics import diagnose
from ppl_vae.reporting.markdown import trust_line
from ppl_vae.reporting.run_report import finish_run, recorded_evaluations
from ppl_vae.runs import write_json
from tests.ppca import PosteriorGuide, ppca_data

TRUST = {"draws", "khat_share_above_0.7", "khat_median", "khat_max", "ess_mean", "ess_min",
         "warning"}


def test_run_report_shows_the_se_and_trust_report_json_holds(trained):
    run, data = trained
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PplVaeWarning)
        report = finish_run(run, data, iw_samples=40)
    evaluation = report["evaluation"]
    trust = evaluation["log_likelihood_trust"]
    assert set(trust) == TRUST and trust["draws"] == 40
    text = (run.path / "report.md").read_text()
    assert f"{evaluation['log_likelihood']:.2f} ± {evaluation['log_likelihood_se']:.2f}" in text
    assert f"min {trust['ess_min']:.1f} of 40 draws" in text
    said = [str(w.message) for w in caught if issubclass(w.category, PplVaeWarning)]
    assert said == ([trust["warning"]] if trust["warning"] else [])
    assert ("**warning:" in text) == bool(trust["warning"])


def test_an_unreliable_estimate_is_one_bold_line_in_the_report():
    model, x = ppca_data(n=30)
    with pytest.warns(PplVaeWarning, match="not reliable"):
        trust = ppl_vae.evaluate(model, PosteriorGuide(model, inflate=0.1), x,
                                 iw_samples=200)["log_likelihood_trust"]
    lines = trust_line(trust)
    assert len(lines) == 2 and lines[1] == f"- **warning: {trust['warning']}**"
    assert "k̂ > 0.7 for" in lines[0] and "of 200 draws" in lines[0]


@pytest.mark.filterwarnings("ignore::ppl_vae.errors.PplVaeWarning")
def test_diagnose_carries_the_same_fields_and_says_which_examples_evaluate_used(trained):
    run, data = trained
    finish_run(run, data, iw_samples=30)  # the run report: all 20 test examples, K = 30
    evaluated = run.evaluate(data.test[:10], iw_samples=30, per_example=True)  # as the CLI's
    evaluated.pop("per_example").save(run.path / FILE)
    write_json(run.path / "evaluation.json", evaluated)
    report = diagnose(run.path, data=data, n_examples=4, draws=30, metrics="none", quiet=True)
    psis = report["psis"]
    assert set(psis["log_likelihood_trust"]) == TRUST and psis["is_log_likelihood_se"] > 0
    (from_report, from_evaluate) = report["evaluations"]
    assert from_report["source"] == "report.json" and from_report["n_examples"] == 20
    assert not from_report["same_examples"] and from_report["same_draws"]
    assert from_evaluate["n_examples"] == 10 and not from_evaluate["same_examples"]
    per_example = np.load(run.path / FILE)["log_likelihood"]
    assert from_evaluate["log_likelihood_on_these_examples"] == pytest.approx(
        per_example[:4].mean())
    text = (run.path / "diagnostics" / "report.md").read_text()
    assert "on different examples (the first 20, not these 4)" in text
    assert "differ for that reason alone" in text
    same = recorded_evaluations(run.path, 10, 30)[1]
    assert same["same_examples"] and same["same_draws"]
    assert recorded_evaluations(run.path, 10, 50)[1]["same_draws"] is False


def test_a_failed_training_leaves_no_empty_figures_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "vae", "--data", "shapes", "--size", "32", "--n", "120",
                 "--epochs", "1", "--latent-dim", "2", "--batch-size", "20", "--quiet",
                 "--lr", "1e9", "--out", str(out)])
    assert code == 2 and "NaN" in capsys.readouterr().err
    assert out.is_dir() and not (out / "figures").exists()
    assert main(["diagnose", str(out), "--quiet"]) == 2
    assert not (out / "figures").exists() and not (out / "diagnostics").exists()
