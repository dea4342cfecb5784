"""The "loo" criterion: PSIS-LOO through ArviZ on genuine posterior draws only."""

import warnings

import numpy as np
import pytest

from gmmkit.comparisons.selection import CRITERIA, select
from gmmkit.inference.methods import ADVI, CAVI, EM, FULLRANK_ADVI, NUTS, SMC, get_method


@pytest.mark.parametrize("method", [ADVI.name, FULLRANK_ADVI.name, CAVI.name])
def test_loo_refuses_q_draws_presented_as_posterior_draws(method):
    """ADVI's draws come from a fitted q: refused before anything is fitted (so this
    test does not sample), with a message that says why."""
    x = np.random.default_rng(0).standard_normal((30, 2))
    with pytest.raises(ValueError, match=r"loo.*genuine posterior draws.*variational q"):
        select(x, [1, 2], models="bayesian", criteria=("loo",),
               methods={"bayesian": method})


def test_loo_applies_exactly_to_posterior_samples():
    for method in (CAVI, ADVI, FULLRANK_ADVI, EM, NUTS, SMC):
        kind = get_method(method.name).kind
        assert CRITERIA["loo"].applies(kind) == kind.is_posterior_sample, method.name


@pytest.mark.slow
def test_loo_on_nuts_candidates_reports_elpd_se_and_k_hat():
    """Tiny data (15 points and an outlier at 12), K in {1, 2}, 2 chains x 200 draws.
    With one component the outlier drags the whole posterior, so leaving it out changes
    the posterior a lot: its Pareto k-hat is high and the table and notes say so."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0.0, 1.0, size=(15, 1)), [[12.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = select(x, [1, 2], models="bayesian", covariance="full",
                     weight_prior="dirichlet_distribution", criteria=("loo",),
                     methods={"bayesian": NUTS.name}, n_jobs=1, seed=1,
                     fit_options={"draws": 200, "tune": 200, "chains": 2})
    t = sel.table.set_index("n_components")
    assert (t["method"] == NUTS.name).all()
    assert np.isfinite(t["loo"]).all() and (t["loo_se"] > 0).all()
    # elpd is a sum of N log predictive densities: below N x the largest possible one.
    assert (t["loo"] < 0).all()
    assert np.isfinite(t["loo_khat_max"]).all()
    assert t.loc[1, "loo_n_high_khat"] >= 1
    for k, row in t.iterrows():
        flagged = [note for note in sel.notes if f"K={k}:" in note and "k-hat" in note]
        assert bool(flagged) == (row["loo_n_high_khat"] > 0), (k, sel.notes)
    assert sel.best["loo"] is not None


def test_evidence_needs_a_sampler_and_is_noted_otherwise():
    x = np.random.default_rng(0).standard_normal((30, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = select(x, [1, 2], models="bayesian", covariance="full",
                     weight_prior="dirichlet_distribution", criteria=("bound", "evidence"),
                     n_jobs=1)
    assert sel.table["evidence"].isna().all() and sel.best["evidence"] is None
    assert any("'evidence' applies to none" in note for note in sel.notes)


@pytest.mark.slow
def test_smc_evidence_agrees_with_the_exact_evidence_on_tiny_data():
    """N = 8 in two tight groups, K in {1, 2}: SMC's log evidence (2 chains x 300 draws)
    is within 0.5 nats + 4 se of the enumeration, and both pick K = 2."""
    x = np.array([-5.1, -4.9, -5.0, -5.2, 5.0, 5.2, 4.8, 5.1])[:, None]
    prior = {"bayesian": {"m0": [0.0], "W0": [[1.0]], "nu0": 2.0, "beta0": 0.04}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = select(x, [1, 2], models="bayesian", covariance="full",
                     weight_prior="dirichlet_distribution", alpha0=1.0,
                     criteria=("evidence", "exact"), methods={"bayesian": SMC.name},
                     model_options=prior, n_jobs=1, seed=2,
                     fit_options={"draws": 300, "chains": 2})
    t = sel.table.set_index("n_components")
    assert np.isfinite(t["evidence"]).all() and (t["evidence_se"] >= 0).all()
    np.testing.assert_array_less(np.abs(t["evidence"] - t["exact"]),
                                 0.5 + 4 * t["evidence_se"])
    assert sel.best["evidence"].n_components == sel.best["exact"].n_components == 2
