"""Paired comparison of two models on the same examples, against exact log p(x) (PPCA)."""

import json
import warnings

import arviz as az
import numpy as np
import pytest

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.compare import to_elpd_data
from ppl_vae.errors import PplVaeError, PplVaeWarning
from tests.ppca import PPCA, K, PosteriorGuide, ppca_data


def _two_models(n: int):
    """PPCA A (which drew the data) and B = A with W scaled by 1.15: close models whose
    per-example log p(x) move together (correlation ≈ 0.99)."""
    model_a, x = ppca_data(n=n)
    model_b = PPCA()
    model_b.W = model_a.W * 1.15
    return model_a, model_b, x


def _evaluations(models, x, inflate: float, iw_samples: int):
    return [ppl_vae.evaluate(m, PosteriorGuide(m, inflate=inflate), x, iw_samples=iw_samples,
                             per_example=True) for m in models]


def _se(values):
    return values.std(ddof=1) / np.sqrt(values.size)


def test_exact_guides_give_the_se_of_exact_per_example_differences():
    model_a, model_b, x = _two_models(200)
    exact_a, exact_b = (m.exact_log_prob(x).double().numpy() for m in (model_a, model_b))
    result = ppl_vae.compare(*_evaluations((model_a, model_b), x, 1.0, 10))
    shown = result["log_likelihood"]
    assert shown["difference"] == pytest.approx((exact_a - exact_b).mean(), abs=1e-5)
    assert shown["se_paired"] == pytest.approx(_se(exact_a - exact_b), rel=1e-3)
    assert shown["se_unpaired"] == pytest.approx(np.hypot(_se(exact_a), _se(exact_b)), rel=1e-3)
    assert shown["se_unpaired"] > 5 * shown["se_paired"]  # the examples' shared difficulty
    assert "not leave-one-out" in result["note"] and "±" in result["summary"]


def test_paired_se_adds_the_importance_sampling_noise_to_the_exact_spread():
    # q = N(m, 3Σ): Var(log p̂_n) ≈ (E w²/E w² - 1)/K = ((c/√(2c-1))^k - 1)/K = 0.8/K per model,
    # independent between the models, so SE² = (Var_n(exact d_n) + 2·0.8/K) / N
    n, iw_samples = 400, 30
    model_a, model_b, x = _two_models(n)
    exact = model_a.exact_log_prob(x).double().numpy() - model_b.exact_log_prob(x).double().numpy()
    result = ppl_vae.compare(*_evaluations((model_a, model_b), x, 3.0, iw_samples))
    shown = result["log_likelihood"]
    mc_variance = (3.0 / np.sqrt(5.0)) ** K - 1  # 0.8
    expected = np.sqrt((exact.var(ddof=1) + 2 * mc_variance / iw_samples) / n)
    assert shown["se_paired"] == pytest.approx(expected, rel=0.12)
    assert shown["se_paired"] > 1.3 * _se(exact)  # the draws' noise is visibly in it
    assert abs(shown["difference"] - exact.mean()) < 3 * shown["se_paired"]
    assert result["trust"]["A"]["ess_mean"] == pytest.approx(iw_samples / 1.8, rel=0.1)


def test_compare_refuses_other_draws_and_other_examples_in_one_line():
    model_a, model_b, x = _two_models(20)
    a = ppl_vae.evaluate(model_a, PosteriorGuide(model_a), x, iw_samples=30, per_example=True)
    for other, match in (
            (ppl_vae.evaluate(model_b, PosteriorGuide(model_b), x, iw_samples=40,
                              per_example=True), "K = 30 .* K = 40"),
            (ppl_vae.evaluate(model_b, PosteriorGuide(model_b), x[:19], iw_samples=30,
                              per_example=True), "different examples"),
            (ppl_vae.evaluate(model_b, PosteriorGuide(model_b), x + 0.1, iw_samples=30,
                              per_example=True), "different examples .*different values"),
            (ppl_vae.evaluate(model_b, PosteriorGuide(model_b), x, iw_samples=30),
             "per_example=True")):
        with pytest.raises(PplVaeError, match=match) as error:
            ppl_vae.compare(a, other)
        assert "\n" not in str(error.value)


def test_an_unreliable_side_is_named_in_one_warning():
    model_a, model_b, x = _two_models(30)
    good = ppl_vae.evaluate(model_a, PosteriorGuide(model_a), x, iw_samples=200,
                            per_example=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PplVaeWarning)
        bad = ppl_vae.evaluate(model_b, PosteriorGuide(model_b, inflate=0.1), x,
                               iw_samples=200, per_example=True)
    with pytest.warns(PplVaeWarning, match="^bad: the IS log p\\(x\\) is not reliable") as caught:
        result = ppl_vae.compare(good, bad, names=("good", "bad"))
    assert len(caught) == 1 and result["trust"]["good"]["warning"] is None


def test_az_compare_ranks_the_held_out_log_likelihoods_with_the_same_paired_numbers():
    model_a, model_b, x = _two_models(100)
    a, b = _evaluations((model_a, model_b), x, 1.5, 200)
    ours = ppl_vae.compare(a, b)["log_likelihood"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no ArviZ warning on this recipe
        table = az.compare({"A": to_elpd_data(a), "B": to_elpd_data(b)})
    better, worse = ("A", "B") if ours["difference"] > 0 else ("B", "A")
    assert list(table.index) == [better, worse]
    # az.compare works with sums over examples and a population variance
    assert table.loc[worse, "elpd_diff"] == pytest.approx(100 * abs(ours["difference"]))
    assert table.loc[worse, "dse"] == pytest.approx(100 * ours["se_paired"] * np.sqrt(99 / 100))
    assert table.loc["A", "elpd_loo"] == pytest.approx(100 * ours["a"])


def test_cli_evaluate_writes_per_example_values_and_compare_pairs_them(tmp_path, capsys):
    tiny = ["--data", "shapes", "--size", "32", "--n", "120", "--epochs", "1", "--latent-dim",
            "2", "--batch-size", "20", "--iw-samples", "5", "--quiet", "--device", "cpu"]
    runs = [tmp_path / "diag", tmp_path / "full"]
    for run, guide in zip(runs, ("diagonal", "full")):
        assert main(["train", "--model", "vae", "--guide", guide, *tiny, "--out", str(run)]) == 0
        assert main(["evaluate", str(run), "--iw-samples", "25", "--quiet"]) == 0
        saved = np.load(run / "evaluation_examples.npz")
        assert saved["log_likelihood"].shape == (12,) and int(saved["iw_samples"]) == 25
        assert json.loads((run / "evaluation.json").read_text())["log_likelihood"] == \
            pytest.approx(saved["log_likelihood"].mean())
    capsys.readouterr()
    assert main(["compare", *map(str, runs)]) == 0
    result = json.loads(capsys.readouterr().out)
    per_example = [np.load(run / "evaluation_examples.npz")["log_likelihood"] for run in runs]
    assert result["log_likelihood"]["difference"] == pytest.approx(
        (per_example[0] - per_example[1]).mean())
    assert main(["evaluate", str(runs[1]), "--iw-samples", "30", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", *map(str, runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "K = 25" in err and "--iw-samples" in err
    assert main(["compare", str(runs[0]), str(tmp_path)]) == 2
    assert "run ppl-vae evaluate" in capsys.readouterr().err
