"""The maximum-likelihood covariance families (issue 13): "full", "diag", "spherical" and
"tied" fitted by EM and the hard-assignment GMM, against scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import gmmkit
from gmmkit import GaussianMixture
from gmmkit.comparisons import match_components
from gmmkit.inference import em
from gmmkit.models import gmm_sample
from gmmkit.models.gaussian import (
    covariance_matrices,
    family_log_gaussian_prob,
    family_precision_factor,
    log_gaussian_prob,
    precision_cholesky,
)

FAMILIES = ["full", "diag", "spherical", "tied"]
RESTRICTED = ["diag", "spherical", "tied"]
NATIVE_SHAPES = {"full": lambda k, d: (k, d, d), "diag": lambda k, d: (k, d),
                 "spherical": lambda k, d: (k,), "tied": lambda k, d: (d, d)}


# ----------------------------------------------------------------------------- data
def blob_data(d: int, n: int = 400, seed: int = 11):
    """Three clusters in d dimensions with unequal, correlated covariances."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2])
    means = rng.normal(0.0, 4.0, size=(3, d)) + np.arange(3)[:, None] * 3.0
    a = rng.normal(size=(3, d, d)) * 0.5
    covariances = a @ np.swapaxes(a, 1, 2) + np.linspace(0.4, 1.2, 3)[:, None, None] * np.eye(d)
    X, _ = gmm_sample(weights, means, covariances, n, seed=seed)
    return X


DATA = {"2d": blob_data(2), "5d": blob_data(5, n=500, seed=12)}


def sklearn_precisions(native, family):
    """precisions_init in scikit-learn's per-family shape from our native covariances."""
    if family in ("diag", "spherical"):
        return 1.0 / native
    return np.linalg.inv(native)  # (K, D, D) for full, (D, D) for tied


def start(model, X, init_means):
    """gmmkit's starting point (nearest-mean assignment + one M-step), native shape."""
    state = em.init_state(model, X - X.mean(axis=0), init_means - X.mean(axis=0),
                          np.random.default_rng(0))
    return state.weights, state.means + X.mean(axis=0), state.covariances


# ----------------------------------------------------------------------------- model
def test_every_family_is_accepted_and_n_parameters_matches_sklearn():
    X = DATA["5d"]
    for family in FAMILIES:
        model = GaussianMixture(3, covariance=family)
        assert model.to_dict()["covariance"] == family
        reference = SklearnGaussianMixture(3, covariance_type=family, max_iter=5,
                                           random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference.fit(X)
        assert model.n_parameters(X.shape[1]) == reference._n_parameters(), family
    # Hand counts for K = 3, D = 5: 2 weights + 15 means + covariances.
    assert [GaussianMixture(3, covariance=f).n_parameters(5) for f in FAMILIES] == [
        17 + 45, 17 + 15, 17 + 3, 17 + 15]
    with pytest.raises(ValueError, match="n_features must be an integer >= 1"):
        GaussianMixture(3).n_parameters(0)


@pytest.mark.parametrize("family", RESTRICTED)
def test_family_kernels_match_scipy(rng, family):
    k, d = 3, 4
    means = rng.normal(0, 3, size=(k, d))
    native = {"diag": rng.uniform(0.2, 3.0, size=(k, d)),
              "spherical": rng.uniform(0.2, 3.0, size=k),
              "tied": np.cov(rng.normal(size=(d, 3 * d))) + 0.3 * np.eye(d)}[family]
    X = rng.normal(0, 5, size=(50, d))
    full = covariance_matrices(native, family, k, d)
    assert full.shape == (k, d, d)
    expected = np.column_stack([stats.multivariate_normal(m, c).logpdf(X)
                                for m, c in zip(means, full, strict=True)])
    ours = family_log_gaussian_prob(X, means, family_precision_factor(native, family), family)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)  # exact algebra
    # And the full kernel on the (K, D, D) matrices agrees.
    np.testing.assert_allclose(log_gaussian_prob(X, means, precision_cholesky(full)),
                               expected, rtol=1e-10)


# ----------------------------------------------------------------------------- sklearn
@pytest.mark.parametrize("reg_covar", [1e-6, 1e-2], ids=["reg1e-6", "reg1e-2"])
@pytest.mark.parametrize("data", list(DATA), ids=list(DATA))
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_same_iterates_as_sklearn_for_a_fixed_number_of_iterations(family, data, reg_covar):
    X = DATA[data]
    model = GaussianMixture(3, covariance=family, reg_covar=reg_covar)
    init_means = X[[0, 1, 2]]  # deliberately poor: a slow climb
    w0, m0, c0 = start(model, X, init_means)
    assert c0.shape == NATIVE_SHAPES[family](3, X.shape[1])
    n_iter = 7
    ours = em.fit_em(model, X, seed=0, n_init=1, init=init_means, tol=0.0, max_iter=n_iter,
                     progress=False, method="em")
    reference = SklearnGaussianMixture(
        3, covariance_type=family, reg_covar=reg_covar, tol=0.0, max_iter=n_iter,
        weights_init=w0, means_init=m0, precisions_init=sklearn_precisions(c0, family),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges
        reference.fit(X)
    assert ours.n_iter == n_iter
    # Same algorithm from the same start; the rest is rounding (ours runs on centred data
    # and two-pass covariances, sklearn's on raw data with E[x^2] - mu^2): 1e-10 relative.
    np.testing.assert_allclose(ours.weights, reference.weights_, rtol=1e-10)
    np.testing.assert_allclose(ours.means, reference.means_, rtol=1e-10, atol=1e-12)
    native = ours.posterior.native_params().get(
        {"full": "covariances", "diag": "variances", "spherical": "variance",
         "tied": "covariance"}[family], ours.covariances)
    np.testing.assert_allclose(native, reference.covariances_, rtol=1e-10)
    # The reported (K, D, D) matrices are the native ones expanded.
    np.testing.assert_allclose(
        ours.covariances, covariance_matrices(reference.covariances_, family, 3, X.shape[1]),
        rtol=1e-10, atol=1e-300)
    assert ours.log_likelihood_trace[-1] == pytest.approx(
        reference.score(X) * X.shape[0], rel=1e-8)


@pytest.mark.parametrize("data", list(DATA), ids=list(DATA))
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_converged_log_likelihood_agrees_with_sklearn(family, data):
    X = DATA[data]
    model = GaussianMixture(3, covariance=family)
    init_means = X[[0, 1, 2]]
    w0, m0, c0 = start(model, X, init_means)
    ours = em.fit_em(model, X, seed=0, n_init=1, init=init_means, tol=1e-12, max_iter=3000,
                     progress=False, method="em")
    reference = SklearnGaussianMixture(
        3, covariance_type=family, reg_covar=model.reg_covar, tol=1e-12, max_iter=3000,
        weights_init=w0, means_init=m0, precisions_init=sklearn_precisions(c0, family),
    ).fit(X)
    assert ours.converged and reference.converged_
    # The issue asks 1e-6; measured <= 7e-11 (2-D diag), so 1e-8.
    assert ours.log_likelihood_trace[-1] == pytest.approx(
        reference.score(X) * X.shape[0], rel=1e-8)
    perm = match_components(ours.means, reference.means_)
    # Flat optimum and, on the overlapping 2-D clusters, a slow climb (900-1300 EM steps
    # of ever smaller changes): the two stopping rules (relative change of the total vs
    # absolute change of the mean per point) stop up to 1.3e-4 apart (measured, 2-D
    # diag; 5-D at most 8e-7): 1e-3.
    np.testing.assert_allclose(ours.means[perm], reference.means_, atol=1e-3)
    np.testing.assert_allclose(ours.weights[perm], reference.weights_, atol=1e-3)


# ----------------------------------------------------------------------------- fits
@pytest.mark.parametrize("method", ["em", "kmeans"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_fit_reports_matrices_and_native_parameters(family, method):
    X = DATA["5d"]
    k, d = 3, X.shape[1]
    fit = gmmkit.fit(GaussianMixture(k, covariance=family), X, method, seed=1)
    assert fit.covariances.shape == (k, d, d)
    params = fit.variational_params
    assert params["covariances"].shape == (k, d, d)
    native = fit.posterior.native_params()
    if family == "full":
        assert native == {}
    else:
        (name, value), = native.items()
        assert value.shape == NATIVE_SHAPES[family](k, d)
        np.testing.assert_array_equal(covariance_matrices(value, family, k, d),
                                      fit.covariances)
        if family != "tied":
            np.testing.assert_array_equal(params[name], value)
    if family in ("diag", "spherical"):
        off = fit.covariances - np.einsum("kd,de->kde",
                                          np.diagonal(fit.covariances, axis1=1, axis2=2),
                                          np.eye(d))
        assert np.all(off == 0.0)
    if family == "spherical":
        diag = np.diagonal(fit.covariances, axis1=1, axis2=2)
        assert np.all(diag == diag[:, :1])
    if family == "tied":
        assert np.all(fit.covariances == fit.covariances[0])
    # Predictions use the family's kernel; they equal the full kernel on the matrices.
    new = np.vstack([X[:5], X[:5] + 30.0])
    full_log = logsumexp(
        np.log(fit.weights) + log_gaussian_prob(new, fit.means,
                                                precision_cholesky(fit.covariances)), axis=1)
    np.testing.assert_allclose(fit.score_samples(new), full_log, rtol=1e-10)
    idata = fit.to_inference_data()
    assert idata.posterior["covariances"].shape == (1, 1, k, d, d)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(family=st.sampled_from(FAMILIES), seed=st.integers(0, 2**31 - 1),
       k=st.integers(1, 4), d=st.integers(1, 4), n=st.integers(10, 80))
def test_kmeans_is_hard_and_its_objective_never_decreases(family, seed, k, d, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(0, 5, size=d)
    X[: n // 2] += rng.normal(0, 4, size=d)  # two groups, to give the clusters something
    fit = gmmkit.fit(GaussianMixture(k, covariance=family), X, "kmeans", seed=seed % 1000,
                     init="random", tol=1e-12, max_iter=200)
    resp = fit.responsibilities
    assert set(np.unique(resp)) <= {0.0, 1.0}
    np.testing.assert_array_equal(resp.sum(axis=1), 1.0)
    # The classification log-likelihood climbs (a few ulps of rounding per step).
    slack = 64 * np.spacing(np.abs(fit.elbo_trace[1:]))
    assert np.all(np.diff(fit.elbo_trace) >= -slack), np.diff(fit.elbo_trace).min()
    assert np.all(fit.kl_trace >= -1e-9)
    assert np.all(np.isfinite(fit.log_likelihood_trace))


@pytest.mark.parametrize("family", RESTRICTED, ids=RESTRICTED)
def test_em_log_likelihood_never_decreases_without_reg_covar(family):
    X = DATA["2d"]
    fit = gmmkit.fit(GaussianMixture(3, covariance=family, reg_covar=0.0), X, "em", seed=2,
                     init="random", tol=1e-12, max_iter=300)
    loglik = fit.log_likelihood_trace
    slack = 64 * np.spacing(np.abs(loglik[1:]))
    assert np.all(np.diff(loglik) >= -slack), np.diff(loglik).min()
    assert np.all(fit.kl_trace >= -1e-9)


# ----------------------------------------------------------------------------- edges
@pytest.mark.parametrize("method", ["em", "kmeans"])
@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_translation_invariance(family, method):
    X = DATA["2d"]
    a = gmmkit.fit(GaussianMixture(3, covariance=family), X, method, seed=3)
    b = gmmkit.fit(GaussianMixture(3, covariance=family), X + 1e6, method, seed=3)
    # The data themselves are rounded to ulp(1e6) ~ 1.2e-10 when shifted: relative to
    # an sd of ~1 that moves the log-likelihood by ~N * 1e-10; 1e-8 relative.
    assert b.log_likelihood_trace[-1] == pytest.approx(a.log_likelihood_trace[-1], rel=1e-8)
    np.testing.assert_allclose(b.means - 1e6, a.means, atol=1e-6)
    np.testing.assert_allclose(b.score_samples(X[:10] + 1e6), a.score_samples(X[:10]),
                               rtol=1e-7)


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_an_empty_initial_component_is_reseeded_and_finite(family):
    X = DATA["2d"]
    model = GaussianMixture(3, covariance=family)
    centre = X.mean(axis=0)
    init_means = centre + np.array([[0.0, 0.0], [5.0, 0.0], [500.0, 500.0]])
    for method in (em.fit_em, em.fit_kmeans):
        fit = method(model, X, seed=0, n_init=1, init=init_means, tol=1e-10, max_iter=200,
                     progress=False, method="em")
        assert fit.diagnostics["reseeded_clusters"] >= 1
        assert np.all(np.isfinite(fit.log_likelihood_trace))
        assert np.all(np.isfinite(fit.covariances)) and np.all(np.isfinite(fit.means))
        assert np.all(np.isfinite(fit.score_samples(X)))


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILIES)
def test_a_component_collapsing_onto_one_point_stays_finite(family):
    # Two clusters and one far outlier: with K = 3 a component ends on the outlier alone,
    # where reg_covar alone keeps its covariance (reg_covar I, or shared for tied) finite.
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(0, 1, (60, 2)), rng.normal(8, 1, (60, 2)), [[60.0, -60.0]]])
    init_means = np.array([[0.0, 0.0], [8.0, 8.0], [60.0, -60.0]])
    for fit_fn in (em.fit_em, em.fit_kmeans):
        fit = fit_fn(GaussianMixture(3, covariance=family), X, seed=0, n_init=1,
                     init=init_means, tol=1e-10, max_iter=200, progress=False, method="em")
        assert np.all(np.isfinite(fit.log_likelihood_trace))
        assert np.all(np.isfinite(fit.score_samples(X)))
        lonely = int(np.argmin(np.linalg.norm(fit.means - [60.0, -60.0], axis=1)))
        if family != "tied":  # the outlier's own covariance is reg_covar I
            np.testing.assert_allclose(np.diagonal(fit.covariances[lonely]), 1e-6, rtol=1e-3)


@pytest.mark.parametrize("family", ["diag", "spherical"])
def test_a_collapsed_component_without_reg_covar_fails_with_advice(family):
    # Each component of two sits on two points equal in one coordinate (diag) or on one
    # repeated point (spherical): a zero variance with reg_covar = 0.
    X = (np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]]) if family == "diag"
         else np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]]))
    with pytest.warns(RuntimeWarning, match="increase reg_covar or decrease n_components"):
        with pytest.raises(RuntimeError, match="every one of the 1 restart"):
            gmmkit.fit(GaussianMixture(2, covariance=family, reg_covar=0.0), X, "kmeans",
                       seed=0)


def test_a_singular_tied_covariance_names_the_tied_covariance():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [10.0, 10.0]])
    with pytest.warns(RuntimeWarning, match="tied covariance"):
        with pytest.raises(RuntimeError, match="every one of the 1 restart"):
            gmmkit.fit(GaussianMixture(2, covariance="tied", reg_covar=0.0), X, "em", seed=0)


def test_tied_covariance_is_stored_without_a_component_axis():
    # K = D = 3: a (D, D) tied covariance must not be read (or permuted) as per-component.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 3)) + np.repeat(np.eye(3) * 6, 50, axis=0)
    fit = gmmkit.fit(GaussianMixture(3, covariance="tied"), X, "em", seed=0)
    tied = fit.variational_params["covariance"]
    assert fit.to_inference_data().fit["q_covariance"].dims == ("feature", "feature_bis")
    aligned = gmmkit.align(fit, fit.means[::-1])
    np.testing.assert_array_equal(aligned.variational_params["covariance"], tied)
    np.testing.assert_array_equal(aligned.means, fit.means[::-1])
