"""Maximum-likelihood baselines (issue 4): density utilities, EM, hard-assignment GMM,
component matching and parameter errors."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import gmmkit
from gmmkit import GaussianMixture, UnivariateGMM
from gmmkit.comparisons import match_components, parameter_errors
from gmmkit.inference import em
from gmmkit.inference.loop import RestartFailed
from gmmkit.models import gmm_log_responsibilities, gmm_logpdf, gmm_responsibilities, gmm_sample

SEED_POINTS = np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]])
SINGULAR_ADVICE = "increase reg_covar or decrease n_components"


# ----------------------------------------------------------------------------- fixtures
def random_spd(rng, k, d):
    a = rng.normal(size=(k, d, d))
    return a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)


def random_parameters(rng, k=3, d=2):
    weights = rng.dirichlet(np.full(k, 3.0))
    means = rng.normal(0.0, 4.0, size=(k, d))
    return weights, means, random_spd(rng, k, d)


def scipy_log_joint(X, weights, means, covariances):
    """log pi_k + log N(x | mu_k, Sigma_k), shape (N, K), from scipy.stats."""
    return np.column_stack([
        np.log(w) + stats.multivariate_normal(m, c).logpdf(X)
        for w, m, c in zip(weights, means, covariances, strict=True)
    ])


@pytest.fixture
def blobs():
    """Three well-separated 2-D clusters, 300 points, and their true parameters."""
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [6.0, 1.0], [1.0, 7.0]])
    covariances = np.array([
        [[1.0, 0.3], [0.3, 0.8]], [[0.6, -0.2], [-0.2, 1.2]], [[0.9, 0.0], [0.0, 0.5]],
    ])
    X, labels = gmm_sample(weights, means, covariances, 300, seed=11)
    return X, labels, weights, means, covariances


# ----------------------------------------------------------------------------- densities
@pytest.mark.parametrize("d", [1, 2, 4])
def test_logpdf_and_responsibilities_match_scipy_in_the_far_tails(rng, d):
    weights, means, covariances = random_parameters(rng, k=3, d=d)
    sd = np.sqrt(np.max(np.linalg.eigvalsh(covariances)))
    near = rng.normal(0.0, 4.0, size=(20, d))
    far = means[0] + 40.0 * sd * rng.choice([-1.0, 1.0], size=(5, d))  # >= 40 sd away
    X = np.vstack([near, far])

    expected_joint = scipy_log_joint(X, weights, means, covariances)
    expected = logsumexp(expected_joint, axis=1)
    # Exact algebra on both sides: 1e-10 relative.
    np.testing.assert_allclose(gmm_logpdf(X, weights, means, covariances), expected,
                               rtol=1e-10)
    # The naive log(sum(pdf)) underflows to -inf there; the log-space version must not.
    with np.errstate(divide="ignore"):
        naive = np.log(np.exp(expected_joint).sum(axis=1))
    assert np.all(np.isneginf(naive[-5:]))
    assert np.all(np.isfinite(gmm_logpdf(X[-5:], weights, means, covariances)))

    log_resp = gmm_log_responsibilities(X, weights, means, covariances)
    # Log-space absolute error is relative error of the responsibilities: 1e-10.
    np.testing.assert_allclose(
        log_resp, expected_joint - expected[:, None], rtol=1e-10, atol=1e-10
    )
    resp = gmm_responsibilities(X, weights, means, covariances)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(np.isfinite(resp))


def test_logpdf_of_univariate_arrays():
    # (K,) means and (K,) variances with (N,) points: the D = 1 shorthand.
    x = np.array([-3.0, 0.0, 2.5])
    out = gmm_logpdf(x, [0.3, 0.7], [-1.0, 2.0], [0.5, 2.0])
    expected = np.log(0.3 * stats.norm.pdf(x, -1.0, np.sqrt(0.5))
                      + 0.7 * stats.norm.pdf(x, 2.0, np.sqrt(2.0)))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_sample_is_reproducible_and_has_the_right_moments():
    weights = np.array([0.25, 0.75])
    means = np.array([[0.0, 0.0], [5.0, -3.0]])
    covariances = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.3, 0.0], [0.0, 0.3]]])
    state = np.random.get_state()
    X, labels = gmm_sample(weights, means, covariances, 20_000, seed=5)
    X2, labels2 = gmm_sample(weights, means, covariances, 20_000, seed=5)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    assert X.shape == (20_000, 2) and labels.shape == (20_000,)
    # Monte Carlo: every check within 4 standard errors.
    n0 = np.sum(labels == 0)
    assert abs(n0 / 20_000 - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 20_000)
    for k in range(2):
        pts = X[labels == k]
        se = np.sqrt(np.diag(covariances[k]) / len(pts))
        assert np.all(np.abs(pts.mean(axis=0) - means[k]) < 4 * se)
    # Sample covariance of component 0: se of an entry ~ sqrt((s_ii s_jj + s_ij^2) / n).
    c0 = np.cov(X[labels == 0].T)
    s = covariances[0]
    se_cov = np.sqrt((np.outer(np.diag(s), np.diag(s)) + s**2) / n0)
    assert np.all(np.abs(c0 - s) < 4 * se_cov)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0.5, 0.6], [[0, 0], [1, 1]], [np.eye(2)] * 2), "weights must sum to 1"),
        (([0.5, 0.5], [[0, 0], [1, 1], [2, 2]], [np.eye(2)] * 2),
         r"means must have shape \(2, D\)"),
        (([0.5, 0.5], [[0, 0], [1, 1]], [np.eye(3)] * 2),
         r"covariances must have shape \(2, 2, 2\)"),
        (([0.5, 0.5], [[0, 0], [1, 1]], [np.eye(2), -np.eye(2)]),
         "component 1 is not positive definite"),
        (([0.5, 0.5], [[0, 0], [1, 1]], [np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]),
         "component 1 is not symmetric"),
        (([1.5, -0.5], [[0, 0], [1, 1]], [np.eye(2)] * 2), "weights must be non-negative"),
        (([0.5, 0.5], [[0, np.nan], [1, 1]], [np.eye(2)] * 2), "means must be finite"),
    ],
)
def test_density_utilities_refuse_bad_parameters(args, match):
    with pytest.raises(ValueError, match=match):
        gmm_logpdf(np.zeros((3, 2)), *args)


def test_density_utilities_refuse_points_of_the_wrong_dimension():
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\).*got shape \(4, 3\)"):
        gmm_logpdf(np.zeros((4, 3)), [1.0], [[0.0, 0.0]], [np.eye(2)])
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        gmm_sample([1.0], [[0.0, 0.0]], [np.eye(2)], 0, seed=0)


# ----------------------------------------------------------------------------- model
def test_model_is_immutable_and_validated():
    model = GaussianMixture(3)
    assert model.reg_covar == 1e-6 and model.covariance == "full"
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.reg_covar = 0.0
    assert model.to_dict() == {"model": "gaussian_mixture", "n_components": 3,
                               "covariance": "full", "reg_covar": 1e-6}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_components": 0}, "n_components must be an integer >= 1, got 0"),
        ({"n_components": 2, "reg_covar": -1e-3}, "reg_covar must be a non-negative"),
        ({"n_components": 2, "reg_covar": np.nan}, "reg_covar must be a non-negative"),
        ({"n_components": 2, "covariance": "banana"}, "unknown covariance 'banana'"),
    ],
)
def test_bad_model_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_pointwise_log_likelihood_has_chain_draw_axes(rng, blobs):
    X, _, weights, means, covariances = blobs
    model = GaussianMixture(3)
    draws = {
        "weights": np.broadcast_to(weights, (2, 3, 3)),
        "means": np.broadcast_to(means, (2, 3, 3, 2)),
        "covariances": np.broadcast_to(covariances, (2, 3, 3, 2, 2)),
    }
    out = model.pointwise_log_likelihood(X, draws)
    assert out.shape == (2, 3, X.shape[0])
    expected = logsumexp(scipy_log_joint(X, weights, means, covariances), axis=1)
    np.testing.assert_allclose(out[1, 2], expected, rtol=1e-10)  # exact algebra
    assert model.log_likelihood(X, weights, means, covariances) == pytest.approx(
        expected.sum(), rel=1e-10
    )


# ----------------------------------------------------------------------------- EM traces
def em_states(model, X, init_means, n_steps):
    state = em.init_state(model, X, init_means, np.random.default_rng(0))
    states = [state]
    for _ in range(n_steps):
        state = em.step(model, X, state)
        states.append(state)
    return states


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_em_log_likelihood_never_decreases_and_kl_is_non_negative(seed):
    rng = np.random.default_rng(seed)
    k = 2 + seed % 3
    weights, means, covariances = random_parameters(rng, k=k, d=2)
    X, _ = gmm_sample(weights, means, covariances, 400, seed=seed)
    # reg_covar = 0: the exact M-step, for which EM's monotonicity is a theorem.
    fit = gmmkit.fit(GaussianMixture(k, reg_covar=0.0), X, "em", seed=seed, init="random",
                     tol=1e-10, max_iter=300)
    loglik, bound, kl = fit.log_likelihood_trace, fit.elbo_trace, fit.kl_trace
    assert len(loglik) == len(bound) == len(kl) == fit.n_iter + 1
    # Rounding of sums of N * K terms: a few ulps of |loglik| per iteration.
    slack = 64 * np.spacing(np.abs(loglik[1:]))
    assert np.all(np.diff(loglik) >= -slack), np.diff(loglik).min()
    # KL(r || p(z | x)) >= 0; 1e-9 nats for rounding (the threshold).
    assert np.all(kl >= -1e-9), kl.min()
    # The M-step increases the ELBO for fixed r: ELBO(r_{t-1}, theta_t) >= loglik_{t-1}.
    assert np.all(bound[1:] >= loglik[:-1] - slack)
    np.testing.assert_allclose(kl, loglik - bound, rtol=0, atol=0)
    assert fit.elbo == bound[-1]


def test_elbo_equals_log_likelihood_right_after_each_e_step(blobs):
    X, *_ = blobs
    model = GaussianMixture(3)
    init_means = X[[0, 100, 200]]
    for state in em_states(model, X, init_means, 15):
        after_e_step = em.elbo(state.log_prob, np.exp(state.log_resp))
        # Exact algebra: sum_k r (log p - log r) = logsumexp; 1e-10 relative.
        assert after_e_step == pytest.approx(state.log_likelihood, rel=1e-10)
        # The recorded bound used the previous responsibilities: it is at most that.
        assert state.elbo <= state.log_likelihood + 1e-9


def test_em_traces_also_hold_with_the_default_reg_covar(blobs):
    X, *_ = blobs
    fit = gmmkit.fit(GaussianMixture(3), X, "em", seed=4, n_init=2)
    # KL >= 0 holds for any q and theta, whatever reg_covar does to the M-step.
    assert np.all(fit.kl_trace >= -1e-9)
    assert fit.converged
    assert fit.restart_elbos.shape == (2,)
    assert fit.log_likelihood_trace[-1] == pytest.approx(np.nanmax(fit.restart_elbos),
                                                         rel=1e-15)


# ----------------------------------------------------------------------------- sklearn
def initial_parameters(model, X, init_means):
    """The parameters gmmkit's EM starts from: nearest-mean assignment + one M-step."""
    state = em.init_state(model, X, init_means, np.random.default_rng(0))
    return state.weights, state.means, state.covariances


@pytest.mark.parametrize("reg_covar", [1e-6, 1e-2])
def test_same_iterates_as_sklearn_for_a_fixed_number_of_iterations(blobs, reg_covar):
    X, *_ = blobs
    model = GaussianMixture(3, reg_covar=reg_covar)
    init_means = X[[0, 1, 2]]  # deliberately poor: three points of one cluster
    w0, m0, c0 = initial_parameters(model, X, init_means)
    n_iter = 7
    ours = em.fit_em(model, X, seed=0, n_init=1, init=init_means, tol=0.0, max_iter=n_iter,
                     progress=False, method="em")
    reference = SklearnGaussianMixture(
        3, covariance_type="full", reg_covar=reg_covar, tol=0.0, max_iter=n_iter,
        weights_init=w0, means_init=m0, precisions_init=np.linalg.inv(c0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that tol=0 did not converge
        reference.fit(X)
    assert ours.n_iter == n_iter
    # Same algorithm, same start, same floating-point updates: 1e-10 relative (measured
    # ~1e-15) leaves room only for rounding, e.g. sklearn's inverse of our covariances.
    np.testing.assert_allclose(ours.weights, reference.weights_, rtol=1e-10)
    np.testing.assert_allclose(ours.means, reference.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.covariances, reference.covariances_, rtol=1e-10)
    # sklearn's score is the mean log-likelihood per sample; ours is the total.
    assert ours.log_likelihood_trace[-1] == pytest.approx(
        reference.score(X) * X.shape[0], rel=1e-10
    )


def test_converged_log_likelihood_and_parameters_agree_with_sklearn(blobs):
    X, *_ = blobs
    model = GaussianMixture(3)
    # Three points of one cluster: a slow climb (~75 iterations) to a local optimum, so
    # the two stopping rules (ours: relative change of the total; sklearn: absolute
    # change of the mean per point) really are exercised.
    init_means = X[[0, 1, 2]]
    w0, m0, c0 = initial_parameters(model, X, init_means)
    ours = em.fit_em(model, X, seed=0, n_init=1, init=init_means, tol=1e-12, max_iter=2000,
                     progress=False, method="em")
    reference = SklearnGaussianMixture(
        3, reg_covar=model.reg_covar, tol=1e-12, max_iter=2000, weights_init=w0,
        means_init=m0, precisions_init=np.linalg.inv(c0),
    ).fit(X)
    assert ours.converged and reference.converged_ and ours.n_iter > 20
    # The criterion: converged log-likelihoods agree to 1e-6 relative.
    assert ours.log_likelihood_trace[-1] == pytest.approx(
        reference.score(X) * X.shape[0], rel=1e-6
    )
    perm = match_components(ours.means, reference.means_)
    # The log-likelihood is flat (quadratic) at the optimum, so stopping at a change of
    # 1e-12 relative leaves parameters ~sqrt(1e-12 * |loglik|) ~ 3e-5 from it (measured
    # gap 5e-6): 1e-4.
    np.testing.assert_allclose(ours.means[perm], reference.means_, atol=1e-4)
    np.testing.assert_allclose(ours.weights[perm], reference.weights_, atol=1e-4)
    np.testing.assert_allclose(ours.covariances[perm], reference.covariances_, atol=1e-4)


# ----------------------------------------------------------------------------- restarts
def test_seed_four_point_data_with_default_reg_covar_converges():
    fit = gmmkit.fit(GaussianMixture(2), SEED_POINTS, "em", seed=0, n_init=3)
    # Each component sits on two points with identical x (or y): a variance of exactly
    # reg_covar in that direction keeps the covariance SPD.
    assert fit.converged
    assert np.all(np.isfinite(fit.log_likelihood_trace))
    assert fit.restart_failures == ()
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(fit.covariances), axis=1)[:, 0],
                               1e-6, rtol=1e-6)


def test_seed_four_point_data_without_reg_covar_fails_with_advice():
    model = GaussianMixture(2, reg_covar=0.0)
    with pytest.warns(RuntimeWarning, match=f"restart [01]: .*component .*{SINGULAR_ADVICE}"):
        with pytest.raises(RuntimeError, match=f"every one of the 2 restart.*{SINGULAR_ADVICE}"):
            gmmkit.fit(model, SEED_POINTS, "em", seed=0, n_init=2)
    with pytest.warns(RuntimeWarning, match=SINGULAR_ADVICE):
        with pytest.raises(RuntimeError, match="every one of the 1 restart"):
            gmmkit.fit(model, SEED_POINTS, "kmeans", seed=0)


def test_failed_restarts_are_reported_not_dropped():
    rng = np.random.default_rng(3)
    # A round cloud plus three collinear points: with reg_covar = 0 a component that
    # captures only the line is singular, and some random restarts end there.
    X = np.vstack([rng.normal(0, 1, (50, 2)), [[100, 100], [101, 101], [102, 102]]])
    with pytest.warns(RuntimeWarning, match=SINGULAR_ADVICE):
        fit = gmmkit.fit(GaussianMixture(2, reg_covar=0.0), X, "em", seed=3, n_init=8,
                         init="random")
    failed = np.flatnonzero(np.isnan(fit.restart_elbos))
    assert 0 < failed.size < 8  # the seed gives a mix of failed and successful restarts
    assert len(fit.restart_failures) == failed.size
    for index, message in zip(failed, fit.restart_failures, strict=True):
        assert message.startswith(f"restart {index}: the covariance of component ")
        assert SINGULAR_ADVICE in message
    assert fit.log_likelihood_trace[-1] == np.nanmax(fit.restart_elbos)


def test_factor_covariances_flags_numerically_singular_components():
    ok = np.array([np.eye(2), [[1.0, 0.0], [0.0, 1e-6]]])
    assert em.factor_covariances(ok, 1e-6).shape == (2, 2, 2)
    # Positive "definite" only through rounding: a 1e-30 variance next to a 0.25 one.
    tiny = np.array([np.eye(2), [[1e-30, 0.0], [0.0, 0.25]]])
    with pytest.raises(RestartFailed, match=f"component 1 is singular.*{SINGULAR_ADVICE}"):
        em.factor_covariances(tiny, 0.0)
    with pytest.raises(RestartFailed, match="component 0 is singular"):
        em.factor_covariances(np.array([[[1.0, 1.0], [1.0, 1.0]]]), 0.0)


# ----------------------------------------------------------------------------- k-means
def test_kmeans_gmm_is_hard_and_its_bound_never_decreases(blobs):
    X, labels, *_ = blobs
    fit = gmmkit.fit(GaussianMixture(3, reg_covar=0.0), X, "kmeans", seed=2, tol=1e-12)
    assert fit.converged
    # One-hot responsibilities at the highest weighted density.
    assert set(np.unique(fit.responsibilities)) == {0.0, 1.0}
    np.testing.assert_array_equal(fit.responsibilities.sum(axis=1), 1.0)
    log_joint = scipy_log_joint(X, fit.weights, fit.means, fit.covariances)
    np.testing.assert_array_equal(fit.predict(X), np.argmax(log_joint, axis=1))
    # The classification log-likelihood (ELBO of the one-hot q) is what it climbs.
    slack = 64 * np.spacing(np.abs(fit.elbo_trace[1:]))
    assert np.all(np.diff(fit.elbo_trace) >= -slack)
    assert np.all(fit.kl_trace >= -1e-9)
    assert fit.elbo == pytest.approx(
        np.sum(log_joint[np.arange(X.shape[0]), fit.predict(X)]), rel=1e-10
    )
    # Well-separated blobs: every point recovered (adjusted for the label permutation).
    perm = match_components(fit.means, np.array([[0.0, 0.0], [6.0, 1.0], [1.0, 7.0]]))
    assert np.mean(np.argsort(perm)[fit.predict(X)] == labels) > 0.97


def test_kmeans_reseeds_an_emptied_cluster_from_the_farthest_point(blobs):
    X, *_ = blobs
    model = GaussianMixture(3)
    # The third initial mean is far from every point, so its cluster starts empty.
    init_means = np.array([[0.0, 0.0], [6.0, 1.0], [500.0, 500.0]])
    nearest = np.argmin(((X[:, None, :] - init_means[None]) ** 2).sum(-1), axis=1)
    assert not np.any(nearest == 2)
    distance = ((X - init_means[nearest]) ** 2).sum(axis=1)
    farthest = int(np.argmax(distance))

    state = em.init_state(model, X, init_means, np.random.default_rng(0), hard=True)
    assert state.n_reseeded == 1
    assert np.flatnonzero(state.labels == 2).tolist() == [farthest]
    np.testing.assert_allclose(state.means[2], X[farthest], rtol=1e-12)
    assert np.all(np.isfinite(state.means)) and np.all(np.isfinite(state.log_prob))

    fit = em.fit_kmeans(model, X, seed=0, n_init=1, init=init_means, tol=1e-12,
                        max_iter=100, progress=False, method="kmeans")
    assert fit.diagnostics["reseeded_clusters"] >= 1
    assert np.all(fit.responsibilities.sum(axis=0) >= 1)  # no component is left empty
    assert np.all(np.isfinite(fit.log_likelihood_trace))


def test_hard_assignment_never_empties_another_cluster():
    X = np.array([[0.0], [0.1], [10.0], [10.1], [20.0]])
    labels, n = em.hard_assignment(X, np.array([0, 0, 1, 1, 1]), np.array([[0.0], [10.0],
                                                                              [99.0]]))
    assert n == 1
    assert labels.tolist() == [0, 0, 1, 1, 2]  # 20.0 is farthest from its mean (10.0)
    assert np.all(np.bincount(labels, minlength=3) >= 1)


# ----------------------------------------------------------------------------- Fit API
def test_fit_methods_and_inference_data(blobs):
    X, *_ = blobs
    fit = gmmkit.fit(GaussianMixture(3), X, "em", seed=1)
    assert fit.method == "em" and fit.posterior.kind.is_point_estimate
    new = np.array([[0.0, 0.5], [6.0, 0.0], [1.0, 8.0], [50.0, -40.0]])
    np.testing.assert_allclose(fit.score_samples(new),
                               gmm_logpdf(new, fit.weights, fit.means, fit.covariances),
                               rtol=1e-12)
    proba = fit.predict_proba(new)
    np.testing.assert_allclose(proba, gmm_responsibilities(new, fit.weights, fit.means,
                                                           fit.covariances), rtol=1e-12)
    np.testing.assert_array_equal(fit.predict(new), np.argmax(proba, axis=1))
    with pytest.raises(ValueError, match=r"must have 2 feature\(s\).*got 3"):
        fit.predict(np.zeros((2, 3)))

    idata = fit.to_inference_data()
    assert idata.posterior.sizes["chain"] == 1 and idata.posterior.sizes["draw"] == 1
    np.testing.assert_array_equal(idata.posterior["means"].values[0, 0], fit.means)
    assert idata.fit.attrs["point_estimate"] == 1
    assert idata.log_likelihood["x"].shape == (1, 1, X.shape[0])
    np.testing.assert_allclose(idata.log_likelihood["x"].values[0, 0],
                               fit.score_samples(X), rtol=1e-12)
    np.testing.assert_array_equal(idata.fit["kl_trace"].values, fit.kl_trace)


def test_posterior_group_is_flagged_as_a_point_estimate(blobs):
    X, *_ = blobs
    idata = gmmkit.fit(GaussianMixture(3), X, "em", seed=1).to_inference_data()
    assert idata.posterior.attrs["point_estimate"] == 1


@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_same_seed_same_fit_and_the_global_rng_is_untouched(blobs, method):
    X, *_ = blobs
    before = np.random.get_state()
    a = gmmkit.fit(GaussianMixture(3), X, method, seed=9, n_init=3, init="random")
    b = gmmkit.fit(GaussianMixture(3), X, method, seed=9, n_init=3, init="random")
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.log_likelihood_trace, b.log_likelihood_trace)
    np.testing.assert_array_equal(a.restart_elbos, b.restart_elbos)
    c = gmmkit.fit(GaussianMixture(3), X, method, seed=10, n_init=3, init="random")
    assert not np.array_equal(a.restart_elbos, c.restart_elbos)


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), {}, "X must be finite"),
        (np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, 1.0]]), {}, "X must be finite"),
        (np.zeros((3, 2, 2)), {}, r"X must have shape \(N, D\)"),
        (np.array([[0.0, 1.0], [2.0, 3.0]]), {}, "X must hold at least 3 points, got 2"),
        (np.zeros((5, 2)), {"n_init": 0}, "n_init must be an integer >= 1"),
        (np.zeros((5, 2)), {"init": "kmeans"}, "unknown init 'kmeans'"),
        (np.zeros((5, 2)), {"method": "cavi"}, "method 'cavi' does not apply"),
    ],
)
def test_bad_input_is_refused(x, kwargs, match):
    kwargs = {"method": "em", **kwargs}
    with pytest.raises(ValueError, match=match):
        gmmkit.fit(GaussianMixture(3), x, seed=0, **kwargs)


def test_init_means_of_the_wrong_shape_are_refused(blobs):
    X, *_ = blobs
    with pytest.raises(ValueError, match=r"init means must have shape \(3, 2\)"):
        em.fit_em(GaussianMixture(3), X, seed=0, n_init=1, init=np.zeros((2, 2)), tol=1e-8,
                  max_iter=10, progress=False, method="em")


def test_univariate_data_is_read_as_one_feature():
    x = np.concatenate([np.linspace(-1, 1, 30), np.linspace(9, 11, 30)])
    fit = gmmkit.fit(GaussianMixture(2), x, "em", seed=0)
    assert fit.data.shape == (60, 1) and fit.means.shape == (2, 1)
    np.testing.assert_allclose(np.sort(fit.means[:, 0]), [0.0, 10.0], atol=1e-8)


# ----------------------------------------------------------------------------- errors
def test_match_components_recovers_a_known_permutation(rng):
    reference = rng.normal(0, 10, size=(6, 3))
    perm = rng.permutation(6)
    estimated = np.empty_like(reference)
    estimated[perm] = reference + rng.normal(0, 0.01, size=reference.shape)
    np.testing.assert_array_equal(match_components(estimated, reference), perm)
    # (K,) means are read as D = 1.
    np.testing.assert_array_equal(match_components([5.0, -1.0, 2.0], [-1.0, 2.0, 5.0]),
                                  [1, 2, 0])
    with pytest.raises(ValueError, match="must have the same shape"):
        match_components(np.zeros((3, 2)), np.zeros((2, 2)))


def test_parameter_errors_recovers_a_known_permutation_exactly(blobs):
    X, *_ = blobs
    fit = gmmkit.fit(GaussianMixture(3), X, "em", seed=0)
    perm = np.array([2, 0, 1])
    # The truth is the fit itself relabelled: component k of the truth is fit's perm[k].
    truth = {"weights": fit.weights[perm], "means": fit.means[perm],
             "covariances": fit.covariances[perm]}
    table = parameter_errors(fit, **truth)
    assert isinstance(table, pd.DataFrame) and len(table) == 9
    assert list(table["parameter"].unique()) == ["weights", "means", "covariances"]
    for _, group in table.groupby("parameter"):
        assert group["estimated_component"].tolist() == perm.tolist()
        assert group["component"].tolist() == [0, 1, 2]
    assert (table["error"] == 0.0).all()  # identical numbers once aligned: exactly 0


def test_parameter_errors_measures_the_errors(blobs):
    X, _, weights, means, covariances = blobs
    fit = gmmkit.fit(GaussianMixture(3), X, "em", seed=0, n_init=2)
    table = parameter_errors(fit, weights, means, covariances).set_index(
        ["parameter", "component"]
    )
    perm = match_components(fit.means, means)
    for k in range(3):
        assert table.loc[("weights", k), "error"] == pytest.approx(
            abs(fit.weights[perm[k]] - weights[k]), rel=1e-12)
        assert table.loc[("means", k), "error"] == pytest.approx(
            np.linalg.norm(fit.means[perm[k]] - means[k]), rel=1e-12)
        assert table.loc[("covariances", k), "error"] == pytest.approx(
            np.linalg.norm(fit.covariances[perm[k]] - covariances[k], "fro"), rel=1e-12)
    # Monte Carlo: each coordinate of a mean has sd <= sqrt(max variance 1.2 / 60 points
    # in the smallest cluster); 4 of those per coordinate bounds the 2-D Euclidean norm.
    assert table.xs("means", level="parameter")["error"].max() < 4 * np.sqrt(2 * 1.2 / 60)


def test_parameter_errors_works_for_a_univariate_fit():
    model = UnivariateGMM(2, 10.0)
    x = np.concatenate([np.linspace(-1, 1, 40), np.linspace(7, 9, 40)])
    fit = gmmkit.fit(model, x, seed=0)
    table = parameter_errors(fit, means=np.array([8.0, 0.0]), covariances=[1.0, 1.0])
    means_rows = table[table["parameter"] == "means"]
    assert means_rows["estimated_component"].tolist() == match_components(
        fit.means, [8.0, 0.0]).tolist()
    assert (means_rows["error"] < 0.1).all()
    with pytest.raises(ValueError, match="means must be given"):
        parameter_errors(fit)
    with pytest.raises(ValueError, match=r"means must have shape \(2, 1\)"):
        parameter_errors(fit, means=[0.0, 1.0, 2.0])


def test_model_samples_data_from_given_parameters():
    model = GaussianMixture(2)
    data = model.sample_data(50, [0.4, 0.6], [[0.0, 0.0], [3.0, 3.0]], [np.eye(2)] * 2, seed=1)
    again = model.sample_data(50, [0.4, 0.6], [[0.0, 0.0], [3.0, 3.0]], [np.eye(2)] * 2,
                              seed=1)
    assert data.x.shape == (50, 2) and data.labels.shape == (50,)
    np.testing.assert_array_equal(data.x, again.x)
    np.testing.assert_array_equal(data.weights, [0.4, 0.6])
    with pytest.raises(ValueError, match=r"weights must have 2 entries \(n_components\), got 3"):
        model.sample_data(5, [0.2, 0.2, 0.6], np.zeros((3, 2)), [np.eye(2)] * 3, seed=0)
