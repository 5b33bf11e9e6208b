"""Every importance-sampled number warns in one line when its trust says it is not reliable.

Probabilistic PCA (``tests/ppca.py``) has an exact posterior: with it as the guide every
log weight equals ``log p(x)``, so k̂ is small (no tail), the ESS is every draw, and the IS
estimate is exact; no warning. A guide whose covariance is 100 times too small (standard
deviations a tenth of the posterior's) puts almost no mass where the posterior is: k̂ > 0.7
for most examples, and ``diagnose``, ``evaluate`` and ``compare`` each say so in one line.
"""

import json
import warnings

import numpy as np
import pytest

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.data.tensors import from_tensors
from ppl_vae.errors import PplVaeWarning
from ppl_vae.reporting.diagnostics import Checks, diagnose_pair
from tests.ppca import PosteriorGuide, ppca_data

NARROW = 0.01  # covariance scale: posterior sds times 0.1


@pytest.fixture(scope="module")
def ppca():
    model, x = ppca_data(n=60)
    return model, x, from_tensors(x[:30], x[30:])


def _diagnose(model, guide, data, folder):
    """``diagnose_pair`` of 30 test examples × 400 draws; the report and its PplVaeWarnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = diagnose_pair(model, guide, data, folder, n_examples=30, draws=400,
                               metrics="none", quiet=True, checks=Checks(ppc_draws=0))
    return report, [str(w.message) for w in caught if issubclass(w.category, PplVaeWarning)]


def test_diagnose_of_the_exact_posterior_is_trusted_and_silent(ppca, tmp_path):
    model, x, data = ppca
    report, said = _diagnose(model, PosteriorGuide(model), data, tmp_path)
    psis, trust = report["psis"], report["psis"]["log_likelihood_trust"]
    assert said == [] and trust["warning"] is None
    assert trust["khat_max"] < 0.5 and trust["khat_share_above_0.7"] == 0
    assert trust["ess_min"] == pytest.approx(400, rel=1e-6)  # equal weights: every draw counts
    exact = model.exact_log_prob(data.test).mean().item()
    assert psis["is_log_likelihood"] == pytest.approx(exact, abs=1e-4)
    assert psis["max"] == float("-inf")  # equal weights: no tail, and the report says so
    assert "k̂ = -inf: the example's log weights agree" in (tmp_path / "report.md").read_text()


def test_diagnose_of_a_far_too_narrow_guide_warns_once(ppca, tmp_path):
    model, x, data = ppca
    report, said = _diagnose(model, PosteriorGuide(model, inflate=NARROW), data, tmp_path)
    trust = report["psis"]["log_likelihood_trust"]
    assert trust["khat_share_above_0.7"] > 0.5 and trust["ess_mean"] < 0.1 * 400
    assert said == [f"diagnose: {trust['warning']}"]
    assert "not reliable" in said[0] and "\n" not in said[0]
    text = (tmp_path / "report.md").read_text()
    assert f"**warning: {trust['warning']}**" in text
    exact = model.exact_log_prob(data.test).mean().item()
    assert report["psis"]["is_log_likelihood"] < exact - 1  # the bias the warning speaks of


@pytest.mark.parametrize("inflate,warned", [(1.0, False), (NARROW, True)])
def test_evaluate_and_its_per_example_values_carry_the_same_trust(ppca, inflate, warned):
    model, x, data = ppca
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ppl_vae.evaluate(model, PosteriorGuide(model, inflate=inflate), data.test,
                                  iw_samples=400, per_example=True)
    said = [str(w.message) for w in caught if issubclass(w.category, PplVaeWarning)]
    trust, values = result["log_likelihood_trust"], result["per_example"]
    assert said == ([trust["warning"]] if warned else [])
    assert np.mean(values.khat > 0.7) == pytest.approx(trust["khat_share_above_0.7"])
    assert values.ess.min() == pytest.approx(trust["ess_min"])
    assert (np.median(values.khat) > 0.7) == warned


def test_cli_diagnose_shows_the_warning_in_one_line(tmp_path, capsys):
    data = ppl_vae.data.load("shapes", size=32, n=120)
    pair = ppl_vae.build("vae", data=data, latent_dim=2, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, data, epochs=1, batch_size=20, out=tmp_path, quiet=True,
                device="cpu", pair=pair, report=False)  # one epoch: far from the posterior
    code = main(["diagnose", str(tmp_path), "--n-examples", "8", "--draws", "200",
                 "--metrics", "none", "--ppc-draws", "0", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "diagnostics" / "report.json").read_text())
    warning = report["psis"]["log_likelihood_trust"]["warning"]
    assert warning is not None, "a one-epoch VAE should not be trusted at 200 draws"
    notes = [line for line in err.splitlines() if line.startswith("ppl-vae: note: diagnose:")]
    assert notes == [f"ppl-vae: note: diagnose: {warning}"]


class CollapsingGuide(PosteriorGuide):
    """A far too narrow guide that declares the exact posterior as its collapsed form: the
    collapsed numbers are exact and trusted, the pair as trained is not."""

    def collapsed(self, model):
        return model, PosteriorGuide(model)


def test_the_uncollapsed_pair_warns_on_its_own_with_its_name(ppca, tmp_path):
    model, x, data = ppca
    guide = CollapsingGuide(model, inflate=NARROW)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ppl_vae.evaluate(model, guide, data.test, iw_samples=400)
    said = [str(w.message) for w in caught if issubclass(w.category, PplVaeWarning)]
    raw = result["uncollapsed"]["log_likelihood_trust"]
    assert result["log_likelihood_trust"]["warning"] is None
    assert result["log_likelihood"] == pytest.approx(model.exact_log_prob(data.test).mean().item(),
                                                     abs=1e-4)
    assert said == [raw["warning"]] and raw["warning"].startswith("for the pair as trained")
    report, said = _diagnose(model, guide, data, tmp_path)
    raw = report["psis"]["uncollapsed"]["log_likelihood_trust"]
    assert report["psis"]["log_likelihood_trust"]["warning"] is None
    assert said == [f"diagnose: {raw['warning']}"] and "\n" not in said[0]
    text = (tmp_path / "report.md").read_text()
    assert "the pair as trained (auxiliary sites drawn" in text
    assert f"**warning: {raw['warning']}**" in text
