"""A reference you can trust, or a loud refusal (issue 11).

Before a sampler's draws serve as the reference, its chains are brought onto one labelling
(a permutation per chain, then per draw) and r-hat, ESS, divergences and the chain modes
are checked on the relabelled draws.  A reference that fails gets no agreement numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gmmkit
from gmmkit import _arviz
from gmmkit.comparisons import align, compare, reference_diagnostics
from gmmkit.comparisons.compare import (
    AGREEMENT_COLUMNS,
    REFERENCE_NOT_CONVERGED,
    TABLE_COLUMNS,
    TRUTH_COLUMNS,
)
from gmmkit.inference.pymc.posterior import DrawsPosterior
from gmmkit.result import Fit

PERM = [2, 0, 1]  # chain 1's labelling of the same clusters


def sampler_fit(model, x, mu, *, method="nuts", sample_stats=None) -> Fit:
    """A Fit holding sampler draws ``mu`` (chain, draw, K), as NUTS would return."""
    posterior = DrawsPosterior(model, {"mu": mu}, sample_stats=sample_stats)
    return Fit(
        method=method, model=model, data=x, posterior=posterior,
        responsibilities=np.exp(posterior.log_responsibilities(x)), elbo=float("nan"),
        elbo_trace=np.empty(0), converged=True, n_iter=0, elapsed_s=1.0,
    )


def posterior_draws(fit: Fit, rng, n_chains=2, n_draws=1000) -> np.ndarray:
    """iid draws from CAVI's q of the means (sorted labels): a well-mixed sampler."""
    order = np.argsort(fit.means[:, 0])
    sd = np.sqrt(fit.variational_params["s2"][order])
    return fit.means[order, 0] + sd * rng.standard_normal((n_chains, n_draws, 3))


@pytest.fixture(scope="module")
def two_labellings(three_clusters_10sd):
    """Two well-mixed chains of one mode, chain 1 with its components listed as PERM."""
    model, x, _, _, cavi = three_clusters_10sd
    clean = posterior_draws(cavi, np.random.default_rng(3))
    permuted = clean.copy()
    permuted[1] = clean[1][:, PERM]
    return model, x, cavi, clean, sampler_fit(model, x, permuted)


def test_chains_in_two_labellings_are_relabelled_and_converge(two_labellings):
    _, _, cavi, clean, nuts = two_labellings
    # Before relabelling the chains disagree completely ...
    raw = _arviz.draws_diagnostics({"mu": nuts.posterior.draws["mu"]})
    assert raw["rhat_max"] > 1.5
    # ... after it they are one well-mixed sample.
    aligned = align(nuts)
    np.testing.assert_array_equal(aligned.posterior.draws["mu"], clean)
    assert aligned.diagnostics["chain_permutations"] == {0: (0, 1, 2), 1: (1, 2, 0)}
    checks = reference_diagnostics(aligned)
    assert checks["rhat_max"] < 1.01
    assert checks["ess_bulk_min"] > 1000 and checks["ess_tail_min"] > 1000
    assert checks["chain_separation_max"] < 0.5
    assert checks["reference_problems"] == () and checks["reference_converged"]

    comparison = compare([cavi, nuts], n_draws=500, psis_draws=200)
    assert comparison.reference == "nuts" and comparison.reference_converged
    assert comparison.reference_problems == ()
    diag = comparison.aligned["nuts"].diagnostics
    assert diag["rhat_max"] < 1.01 and diag["divergences"] == 0
    table = comparison.table
    assert table.loc["nuts", "rhat_max"] == diag["rhat_max"]
    assert table.loc["nuts", "ess_bulk_min"] == diag["ess_bulk_min"]
    assert np.isnan(table.loc["cavi", "rhat_max"]) and np.isnan(table.loc["cavi", "ess_bulk_min"])
    assert table.loc["cavi", "mean_shift_max"] < 0.3  # the draws come from CAVI's q
    assert (table["agreement_note"] == "").all()
    assert not comparison.reading()[0].startswith("The reference")


def test_self_pivot_follows_the_majority_of_chains_not_chain_zero(three_clusters_10sd):
    # Chains 1-3 share a labelling, chain 0 has another: every chain ends on one
    # labelling, and whole chains are permuted (no per-draw switches are reported).
    model, x, _, _, cavi = three_clusters_10sd
    clean = posterior_draws(cavi, np.random.default_rng(4), n_chains=4, n_draws=500)
    permuted = clean.copy()
    permuted[0] = clean[0][:, PERM]
    aligned = align(sampler_fit(model, x, permuted))
    mu = aligned.posterior.draws["mu"]
    chain_means = mu.mean(axis=1)
    assert np.ptp(chain_means, axis=0).max() < 0.1
    assert aligned.diagnostics["switched_chains"] == ()
    assert reference_diagnostics(aligned)["reference_converged"]


@pytest.fixture(scope="module")
def two_modes(three_clusters_10sd):
    """A 'NUTS' whose chain 1 sits in a different mode (its middle cluster 3 sd away
    from the data's): no relabelling can reconcile the chains."""
    model, x, means, labels, cavi = three_clusters_10sd
    draws = posterior_draws(cavi, np.random.default_rng(5))
    draws[1, :, 1] += 3.0
    nuts = sampler_fit(model, x, draws)
    return cavi, compare([cavi, nuts], truth={"means": means, "labels": labels},
                         n_draws=500, psis_draws=200)


def test_a_reference_in_two_modes_is_flagged_and_gets_no_agreement_numbers(two_modes):
    _, comparison = two_modes
    assert comparison.reference == "nuts" and not comparison.reference_converged
    problems = comparison.reference_problems
    assert any(p.startswith("r-hat") for p in problems)
    assert any("different modes" in p for p in problems)
    assert comparison.aligned["nuts"].diagnostics["reference_problems"] == problems
    table = comparison.table
    # Agreement columns are not numbers, for every fit, and the note says why.
    assert table[list(AGREEMENT_COLUMNS)].isna().all().all()
    assert (table["agreement_note"] == REFERENCE_NOT_CONVERGED).all()
    assert table.loc["nuts", "rhat_max"] > 1.01
    # What does not depend on the reference's draws is still reported.
    assert np.isfinite(table.loc["cavi", "elbo"])
    assert np.isfinite(table.loc["cavi", "truth_mean_error"])
    first = comparison.reading()[0]
    assert first.startswith("The reference nuts has not converged (r-hat")
    assert "different modes" in first
    assert "init=" in first and "--chains" in first and "--tune" in first
    # no sentence about agreement with a reference that cannot be trusted
    assert not any("agree within" in line or "differ by up to" in line
                   for line in comparison.reading())


def test_divergences_and_a_low_ess_fail_the_reference(three_clusters_10sd):
    model, x, _, _, cavi = three_clusters_10sd
    draws = posterior_draws(cavi, np.random.default_rng(6))
    diverging = np.zeros(draws.shape[:2], dtype=bool)
    diverging[0, [3, 30, 300]] = True
    checks = reference_diagnostics(align(sampler_fit(
        model, x, draws, sample_stats={"diverging": diverging})))
    assert checks["divergences"] == 3
    assert checks["reference_problems"] == ("3 divergent transitions",)

    # A sticky chain (AR(1), rho = 0.99): a few dozen effective draws, not 200.
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(draws.shape)
    sticky = np.empty_like(noise)
    sticky[:, 0] = noise[:, 0]
    for t in range(1, noise.shape[1]):
        sticky[:, t] = 0.99 * sticky[:, t - 1] + np.sqrt(1 - 0.99**2) * noise[:, t]
    order = np.argsort(cavi.means[:, 0])
    mu = cavi.means[order, 0] + 0.05 * sticky
    checks = reference_diagnostics(align(sampler_fit(model, x, mu)))
    assert checks["ess_bulk_min"] < 200 and not checks["reference_converged"]
    assert any(p.startswith("bulk ESS") and "< 100 per chain (200)" in p
               for p in checks["reference_problems"])


def test_a_non_sampler_reference_has_nothing_to_check(three_clusters_10sd):
    _, _, _, _, cavi = three_clusters_10sd
    comparison = compare([cavi], n_draws=100, psis_draws=100)
    assert comparison.reference_converged and comparison.reference_problems == ()
    assert comparison.table.loc["cavi", "agreement_note"] == ""
    assert np.isnan(comparison.table.loc["cavi", "rhat_max"])


# ----------------------------------------------------------------------------- table
def test_columns_that_do_not_apply_are_nan_never_zero(two_labellings):
    _, _, cavi, _, nuts = two_labellings
    truth = {"means": np.array([-10.0, 0.0, 10.0]), "weights": np.full(3, 1 / 3),
             "covariances": np.ones((3, 1, 1))}
    table = compare([cavi, nuts], truth=truth, n_draws=200, psis_draws=200).table
    assert list(table.columns) == list(TABLE_COLUMNS) + list(TRUTH_COLUMNS)
    assert list(table.columns).count("method") == 1 and table.index.name == "fit"
    # The univariate model fixes the weights (1/K) and variances: nothing is estimated,
    # so there is no error to report (it used to be a perfect 0).
    assert table["truth_weight_error"].isna().all()
    assert table["truth_cov_error"].isna().all()
    assert table["log_likelihood"].isna().all()  # no maximum-likelihood fit
    assert np.isnan(table.loc["nuts", "elbo"]) and np.isnan(table.loc["nuts", "psis_khat"])
    # ELBO at full precision (the report rounds)
    assert table.loc["cavi", "elbo"] == float(cavi.elbo)


def test_maximum_likelihood_fits_report_a_log_likelihood_not_an_elbo(tmp_path):
    from gmmkit.models import GaussianMixture

    X = gmmkit.datasets.old_faithful(standardize=True)
    model = GaussianMixture(2)
    em = gmmkit.fit(model, X, "em", seed=0, n_init=2)
    kmeans = gmmkit.fit(model, X, "kmeans", seed=1, n_init=2)
    vb = gmmkit.fit(gmmkit.BayesianGMM(2), X, "cavi", seed=0)
    comparison = gmmkit.compare({"em": em, "kmeans": kmeans, "vb": vb}, reference="em",
                                truth={"means": em.means, "weights": em.weights,
                                       "covariances": em.covariances})
    table = comparison.table
    assert table.loc[["em", "kmeans"], "elbo"].isna().all()
    assert table.loc[["em", "kmeans"], "elbo_gap"].isna().all()
    # EM's log-likelihood is its converged objective; k-means' mixture likelihood is lower
    assert table.loc["em", "log_likelihood"] == pytest.approx(em.log_likelihood_trace[-1],
                                                              abs=1e-6)
    assert table.loc["em", "log_likelihood"] > table.loc["kmeans", "log_likelihood"]
    assert np.isnan(table.loc["vb", "log_likelihood"]) and np.isfinite(table.loc["vb", "elbo"])
    # the full Gaussian mixture estimates weights: their errors are numbers
    assert table.loc["em", "truth_weight_error"] == pytest.approx(0.0, abs=1e-12)
    # no ELBO ranking between a point estimate and a Bayesian bound
    assert not any("looser" in line for line in comparison.reading())
    # the written table repeats no column
    out = comparison.save(tmp_path / "ml", log_likelihood=False)
    written = pd.read_csv(out / "table.csv")
    assert list(written.columns) == ["fit", *table.columns]
    headers = [line for line in (out / "report.md").read_text().splitlines()
               if line.startswith("| fit |")]
    # "vb" was fitted by another method's name, so the method column is shown, once
    assert headers and all(h.count("| method |") == 1 for h in headers)


# ----------------------------------------------------------------------------- CLI
def test_cli_compare_exits_3_when_the_reference_has_not_converged(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import gmmkit.api
    from gmmkit.cli import cli

    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(-5, 1, 60), rng.normal(5, 1, 60)])
    np.savetxt(tmp_path / "x.txt", x)
    real_fit = gmmkit.api.fit

    def fake_fit(model, data, method, **kwargs):
        if method != "nuts":
            return real_fit(model, data, method, **kwargs)
        draws = np.array([-5.0, 5.0]) + 0.1 * np.random.default_rng(0).standard_normal(
            (2, 500, 2))
        draws[1, :, 0] -= 3.0  # chain 1 elsewhere: not converged
        return sampler_fit(model, data, draws)

    monkeypatch.setattr(gmmkit.api, "fit", fake_fit)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(cli, [
        "compare", str(tmp_path / "x.txt"), "--model", "univariate", "-k", "2",
        "--methods", "cavi,nuts", "--psis-draws", "100", "--no-log-likelihood",
        "--quiet", "--out", str(out),
    ])
    assert result.exit_code == 3, result.output
    assert "reference 'nuts' did not converge" in result.output
    assert (out / "report.md").is_file()  # the report is written first
    table = pd.read_csv(out / "table.csv", index_col="fit")
    assert table["mean_shift_max"].isna().all()
    assert (table["agreement_note"] == REFERENCE_NOT_CONVERGED).all()
    assert "has not converged" in (out / "report.md").read_text()


def test_compare_epilog_documents_the_exit_status():
    from gmmkit.cli.compare import COMPARE_EPILOG, EXIT_REFERENCE_NOT_CONVERGED

    assert EXIT_REFERENCE_NOT_CONVERGED == 3
    assert "Exit status" in COMPARE_EPILOG and "3 the report was written" in COMPARE_EPILOG
