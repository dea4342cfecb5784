"""Blei et al. (2017) univariate GMM and its closed-form CAVI (issue 2)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.optimize import linear_sum_assignment
from scipy.special import entr, logsumexp

import gmmkit
from gmmkit import UnivariateGMM, datasets

# ----------------------------------------------------------------------------- oracles


def independent_elbo(model: UnivariateGMM, x, m, s2, phi) -> float:
    """The ELBO term by term from scipy.stats, written independently of gmmkit.

    E_q[log N(mu | 0, sigma^2)] = log N(m | 0, sigma^2) - s2 / (2 sigma^2)
    E_q[log N(x | mu, tau^2)]   = log N(x | m, tau^2) - s2 / (2 tau^2)
    """
    sigma, tau, k = model.prior_sd, model.obs_sd, model.n_components
    e_log_prior_mu = np.sum(stats.norm.logpdf(m, 0.0, sigma) - s2 / (2 * sigma**2))
    entropy_mu = np.sum(stats.norm(m, np.sqrt(s2)).entropy())
    e_log_prior_c = -x.size * np.log(k)
    e_loglik = np.sum(phi * (stats.norm.logpdf(x[:, None], m, tau) - s2 / (2 * tau**2)))
    entropy_c = np.sum(entr(phi))
    return float(e_log_prior_mu + entropy_mu + e_log_prior_c + e_loglik + entropy_c)


def monte_carlo_log_evidence(model: UnivariateGMM, x, n_draws, rng):
    """log p(x) = log E_prior[p(x | mu)] by simple Monte Carlo, with its standard error."""
    mu = rng.normal(0.0, model.prior_sd, size=(n_draws, model.n_components))
    log_lik = model.pointwise_log_likelihood(x, {"mu": mu}).sum(axis=1)
    estimate = logsumexp(log_lik) - np.log(n_draws)
    w = np.exp(log_lik - log_lik.max())
    # Delta method: sd(log mean w) = sd(w) / (sqrt(S) mean(w)).
    se = w.std(ddof=1) / (np.sqrt(n_draws) * w.mean())
    return estimate, se


# ----------------------------------------------------------------------------- model


def test_model_is_immutable_and_validated():
    model = UnivariateGMM(3, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.prior_sd = 1.0
    assert model.obs_sd == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_components": 0, "prior_sd": 1.0}, "n_components must be an integer >= 1, got 0"),
        ({"n_components": 2.5, "prior_sd": 1.0}, "n_components must be an integer"),
        ({"n_components": 2, "prior_sd": 0.0}, "prior_sd must be a positive .*got 0.0"),
        ({"n_components": 2, "prior_sd": -1.0}, "prior_sd must be a positive .*got -1.0"),
        ({"n_components": 2, "prior_sd": 1.0, "obs_sd": 0}, "obs_sd must be a positive .*got 0"),
        ({"n_components": 2, "prior_sd": np.nan}, "prior_sd must be a positive"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UnivariateGMM(**kwargs)


def test_log_joint_matches_scipy(rng):
    model = UnivariateGMM(3, 2.5, obs_sd=0.7)
    x = rng.normal(size=11)
    mu = rng.normal(size=(4, 3))
    expected = stats.norm.logpdf(mu, 0, 2.5).sum(axis=1) + np.log(
        stats.norm.pdf(x[None, :, None], mu[:, None, :], 0.7).mean(axis=2)
    ).sum(axis=1)
    np.testing.assert_allclose(model.log_joint(x, mu), expected, rtol=1e-12)


def test_sample_is_reproducible_and_shaped():
    a = UnivariateGMM(4, 3.0).sample(50, seed=7)
    b = UnivariateGMM(4, 3.0).sample(50, seed=7)
    assert a.x.shape == (50,) and a.labels.shape == (50,) and a.means.shape == (4,)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.means, b.means)


@pytest.mark.parametrize("k", [2, 3])
def test_exact_log_evidence_matches_monte_carlo(k, rng):
    model = UnivariateGMM(k, 1.5)
    x = model.sample(5, seed=int(rng.integers(1000))).x
    exact = model.exact_log_evidence(x)
    estimate, se = monte_carlo_log_evidence(model, x, 400_000, rng)
    # Monte Carlo: 4 standard errors.
    assert abs(exact - estimate) < 4 * se, (exact, estimate, se)


def test_exact_log_evidence_k1_is_the_gaussian_marginal(rng):
    # With K = 1, x ~ N(0, tau^2 I + sigma^2 11^T) exactly.
    model = UnivariateGMM(1, 2.0, obs_sd=0.5)
    x = rng.normal(size=6)
    cov = 0.25 * np.eye(6) + 4.0 * np.ones((6, 6))
    expected = stats.multivariate_normal(np.zeros(6), cov).logpdf(x)
    assert model.exact_log_evidence(x) == pytest.approx(expected, rel=1e-10)


def test_exact_log_evidence_refuses_large_problems():
    with pytest.raises(ValueError, match=r"K\*\*N = 3\*\*14 .* exceeds"):
        UnivariateGMM(3, 1.0).exact_log_evidence(np.zeros(14))


# ----------------------------------------------------------------------------- CAVI


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 6),
    n=st.integers(6, 300),
    prior_sd=st.floats(0.1, 20.0),
    obs_sd=st.floats(0.2, 3.0),
    init=st.sampled_from(["kmeans++", "random"]),
)
def test_elbo_never_decreases(seed, k, n, prior_sd, obs_sd, init):
    model = UnivariateGMM(k, prior_sd, obs_sd)
    x = model.sample(n, seed=seed).x
    fit = gmmkit.fit(model, x, seed=seed, init=init, max_iter=200)
    trace = fit.elbo_trace
    # Each coordinate update maximises the ELBO in its block, so the trace is
    # non-decreasing up to rounding: a few ulps of |ELBO|.
    slack = 8 * np.spacing(np.abs(trace[1:]))
    assert np.all(np.diff(trace) >= -slack), np.diff(trace).min()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([2, 3]), n=st.integers(1, 8),
       prior_sd=st.floats(0.3, 5.0))
def test_elbo_is_below_exact_log_evidence(seed, k, n, prior_sd):
    model = UnivariateGMM(k, prior_sd)
    x = model.sample(max(n, k), seed=seed).x
    fit = gmmkit.fit(model, x, seed=seed, n_init=2)
    # A true lower bound; 1e-10 relative slack for the rounding of both sums.
    evidence = model.exact_log_evidence(x)
    assert fit.elbo <= evidence + 1e-10 * abs(evidence)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reported_elbo_matches_independent_recomputation(seed):
    model = UnivariateGMM(4, 3.0, obs_sd=1.3)
    x = model.sample(500, seed=seed).x
    fit = gmmkit.fit(model, x, seed=seed, max_iter=15)
    params = fit.variational_params
    expected = independent_elbo(model, x, params["m"], params["s2"], fit.responsibilities)
    # Exact algebra, two different summation orders: 1e-10 relative.
    assert fit.elbo == pytest.approx(expected, rel=1e-10)
    # ... and also at the initial state of a 1-iteration fit (not only at convergence).
    short = gmmkit.fit(model, x, seed=seed, max_iter=1)
    p = short.variational_params
    assert short.elbo == pytest.approx(
        independent_elbo(model, x, p["m"], p["s2"], short.responsibilities), rel=1e-10
    )


def test_updates_are_the_closed_form_coordinate_optima():
    # At the returned state, q(mu) is exactly the closed-form update given phi.
    model = UnivariateGMM(3, 2.0, obs_sd=0.8)
    x = model.sample(200, seed=3).x
    fit = gmmkit.fit(model, x, seed=3, max_iter=5)
    phi = fit.responsibilities
    p = fit.variational_params
    # phi is the softmax of the assignment update at (m, s2) (log space).
    logits = (x[:, None] * p["m"] - (p["m"] ** 2 + p["s2"]) / 2) / 0.8**2
    np.testing.assert_allclose(np.log(phi), logits - logsumexp(logits, 1, keepdims=True),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(phi.sum(axis=1), 1.0, rtol=1e-12)


def test_recovers_the_fixed_means():
    data = datasets.fixed_means(1000, seed=0)
    fit = gmmkit.fit(UnivariateGMM(5, 10.0), data.x, seed=0, n_init=3)
    np.testing.assert_allclose(np.sort(fit.variational_params["m"]), data.means, atol=0.1)
    assert fit.converged


@pytest.mark.parametrize("seed", [2, 4, 6])  # data sets with >= 2 means more than 1 apart
def test_recovers_blei_example_best_of_ten(seed):
    data = datasets.blei_example(seed=seed)
    model = UnivariateGMM(5, 3.0)
    fit = gmmkit.fit(model, data.x, seed=seed, n_init=10)
    assert fit.restart_elbos.shape == (10,)
    assert fit.elbo == np.nanmax(fit.restart_elbos)
    true = data.means
    gaps = np.abs(true[:, None] - true[None, :]) + np.diag(np.full(5, np.inf))
    separated = gaps.min(axis=1) > 1.0
    assert separated.sum() >= 2  # the assertion below must test something
    m = fit.variational_params["m"]
    rows, cols = linear_sum_assignment(np.abs(true[:, None] - m[None, :]))
    errors = np.abs(true[rows] - m[cols])
    assert np.all(errors[separated[rows]] < 0.2), (true, m)


def test_same_seed_same_result_and_global_rng_untouched():
    data = datasets.blei_example(seed=4)
    model = UnivariateGMM(5, 3.0)
    before = np.random.get_state()[1].copy()
    a = gmmkit.fit(model, data.x, seed=123, n_init=3, init="random")
    b = gmmkit.fit(model, data.x, seed=123, n_init=3, init="random")
    np.testing.assert_array_equal(a.elbo_trace, b.elbo_trace)
    np.testing.assert_array_equal(a.responsibilities, b.responsibilities)
    np.testing.assert_array_equal(
        a.to_inference_data(draws=50).posterior["mu"], b.to_inference_data(draws=50).posterior["mu"]
    )
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    c = gmmkit.fit(model, data.x, seed=124, n_init=3, init="random")
    assert not np.array_equal(a.restart_elbos, c.restart_elbos)
    # A Generator works as a seed too and is recorded as an int.
    g = gmmkit.fit(model, data.x, seed=np.random.default_rng(5))
    assert isinstance(g.seed, int)


def test_empty_component_stays_finite():
    # K = 4 on one tight cluster: three components get (almost) no points.
    x = np.random.default_rng(0).normal(0.0, 0.01, size=50)
    fit = gmmkit.fit(UnivariateGMM(4, 5.0), x, seed=0, init="random")
    assert np.isfinite(fit.elbo)
    assert np.all(np.isfinite(fit.responsibilities))
    assert np.all(np.isfinite(fit.variational_params["s2"]))


def test_far_outliers_do_not_underflow():
    # exp(logit) underflows for every component at |x| ~ 1e3 unless normalised in log space.
    model = UnivariateGMM(2, 1.0)
    x = np.array([-0.5, 0.5, 1e3, -2e3])
    fit = gmmkit.fit(model, x, seed=0)
    assert np.all(np.isfinite(fit.responsibilities))
    np.testing.assert_allclose(fit.responsibilities.sum(axis=1), 1.0)
    assert np.all(np.isfinite(fit.score_samples(x)))


# ----------------------------------------------------------------------------- Fit


@pytest.fixture(scope="module")
def small_fit():
    data = datasets.blei_example(n=300, seed=2)
    return gmmkit.fit(UnivariateGMM(5, 3.0), data.x, seed=2, n_init=2)


def test_fit_is_immutable(small_fit):
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_fit.elbo = 0.0
    with pytest.raises(ValueError, match="read-only"):
        small_fit.responsibilities[0, 0] = 1.0
    with pytest.raises(TypeError):
        small_fit.variational_params["m"] = np.zeros(5)


def test_fit_fields(small_fit):
    assert small_fit.method == "cavi"
    assert small_fit.responsibilities.shape == (300, 5)
    assert small_fit.elbo_trace.shape == (small_fit.n_iter + 1,)
    assert small_fit.time_trace.shape == small_fit.elbo_trace.shape
    assert small_fit.elbo == small_fit.elbo_trace[-1]
    assert set(small_fit.variational_params) == {"m", "s2"}
    assert small_fit.elapsed_s > 0


def test_score_samples_is_the_posterior_predictive(small_fit):
    grid = np.linspace(-10, 10, 7)
    p = small_fit.variational_params
    expected = np.log(
        stats.norm.pdf(grid[:, None], p["m"], np.sqrt(1.0 + p["s2"])).mean(axis=1)
    )
    np.testing.assert_allclose(small_fit.score_samples(grid), expected, rtol=1e-12)
    # The predictive density integrates to 1.
    fine = np.linspace(-40, 40, 40001)
    mass = np.trapezoid(np.exp(small_fit.score_samples(fine)), fine)
    assert mass == pytest.approx(1.0, abs=1e-8)


def test_predict_and_predict_proba(small_fit):
    proba = small_fit.predict_proba(small_fit.data)
    np.testing.assert_allclose(proba, small_fit.responsibilities, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(small_fit.predict(small_fit.data), proba.argmax(axis=1))
    assert small_fit.predict_proba(np.array([[0.3], [1.0]])).shape == (2, 5)


def test_inference_data_round_trip(small_fit, tmp_path):
    import arviz as az

    idata = small_fit.to_inference_data(draws=400, seed=0)
    assert idata.posterior["mu"].dims == ("chain", "draw", "component")
    assert idata.posterior["mu"].shape == (1, 400, 5)
    assert idata.log_likelihood["x"].shape == (1, 400, 300)
    path = tmp_path / "fit.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    np.testing.assert_array_equal(back.posterior["mu"], idata.posterior["mu"])
    np.testing.assert_array_equal(back.fit["elbo_trace"], small_fit.elbo_trace)
    np.testing.assert_array_equal(back.fit["q_m"], small_fit.variational_params["m"])
    np.testing.assert_array_equal(back.observed_data["x"], small_fit.data)
    summary = az.summary(back)
    assert len(summary) == 5
    np.testing.assert_allclose(summary["mean"], small_fit.variational_params["m"], atol=0.05)
    loo = az.loo(back)
    assert np.isfinite(loo.elpd_loo)
    # draws from q have the right moments (Monte Carlo: 5 standard errors).
    draws = idata.posterior["mu"].values[0]
    se = np.sqrt(small_fit.variational_params["s2"] / 400)
    assert np.all(np.abs(draws.mean(0) - small_fit.variational_params["m"]) < 5 * se)


def test_save_writes_parseable_files(small_fit, tmp_path):
    import json

    out = small_fit.save(tmp_path / "out", draws=100)
    resp = np.loadtxt(out / "responsibilities.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-8)
    params = json.loads((out / "params.json").read_text())
    np.testing.assert_allclose(params["variational_params"]["m"], small_fit.variational_params["m"])
    assert params["model"] == {"model": "univariate", "n_components": 5, "prior_sd": 3.0,
                               "obs_sd": 1.0}
    trace = np.loadtxt(out / "elbo_trace.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(trace[:, 1], small_fit.elbo_trace)
    assert (out / "idata.nc").stat().st_size > 0


def test_progress_bar_runs():
    data = datasets.fixed_means(50, seed=0)
    fit = gmmkit.fit(UnivariateGMM(5, 10.0), data.x, seed=0, progress=True)
    assert fit.converged


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (np.array([0.0, np.nan, 1.0]), {}, "x must be finite.*1 NaN/inf.*index 1"),
        (np.array([0.0, 1.0, np.inf]), {}, "x must be finite.*index 2"),
        (np.zeros((5, 2)), {}, r"x must be 1-D .*shape \(5, 2\)"),
        (np.zeros(2), {}, "x must hold at least 3 points, got 2"),
        (np.zeros(5), {"method": "gibbs"}, "unknown method 'gibbs'; expected one of"),
        (np.zeros(5), {"method": "em"}, "method 'em' does not apply to UnivariateGMM"),
        (np.zeros(5), {"init": "kmeans"}, "unknown init 'kmeans'; expected one of"),
        (np.zeros(5), {"tol": float("nan")}, "tol must be a non-negative finite number, got nan"),
        (np.zeros(5), {"tol": -1e-3}, "tol must be a non-negative"),
        (np.zeros(5), {"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
        (np.zeros(5), {"n_init": 0}, "n_init must be an integer >= 1, got 0"),
        (np.zeros(5), {"seed": -3}, "seed must be a non-negative int"),
        (np.zeros(5), {"draws": 10}, "unexpected option"),
        (["a", "b", "c"], {}, "x must be numeric"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmmkit.fit(UnivariateGMM(3, 1.0), x, **kwargs)


def test_bad_input_at_predict_time(small_fit):
    with pytest.raises(ValueError, match="x must be finite"):
        small_fit.predict(np.array([np.nan]))
    with pytest.raises(ValueError, match="x must be 1-D"):
        small_fit.score_samples(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="model must be a gmmkit model"):
        gmmkit.fit(object(), np.zeros(3))
