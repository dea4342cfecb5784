"""Numerical edges and option validation (issue 12): refused dtypes and scales,
translation invariance, ridged default priors, extreme priors, PyMC options."""

from __future__ import annotations

import warnings
from decimal import Decimal, getcontext

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gmmkit
from gmmkit import BayesianGMM, GaussianMixture, UnivariateGMM
from gmmkit.inference import em
from gmmkit.inference.pymc._common import MIN_ELBO_DRAWS, _check_options
from gmmkit.models import gmm_sample

EPS = np.finfo(float).eps


def _blobs():
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [6.0, 1.0], [1.0, 7.0]])
    covariances = np.array([
        [[1.0, 0.3], [0.3, 0.8]], [[0.6, -0.2], [-0.2, 1.2]], [[0.9, 0.0], [0.0, 0.5]],
    ])
    X, _ = gmm_sample(weights, means, covariances, 300, seed=11)
    return X


# ----------------------------------------------------------------------------- 1. dtypes
@pytest.mark.parametrize("model", [UnivariateGMM(2, 10.0), BayesianGMM(2), GaussianMixture(2)],
                         ids=["univariate", "bayesian", "gmm"])
@pytest.mark.parametrize(
    ("x", "kind"),
    [
        (np.array([1.0 + 2j, 3.0, 4.0, 5.0]), "complex"),
        (np.array([True, False, True, True]), "bool"),
        (np.array(["1", "2", "3", "4"]), "string"),
        (np.array([1.0, 2.0, 3.0, 4.0], dtype=object), "object"),
    ],
)
def test_non_real_data_is_refused_by_check_data(model, x, kind):
    # Complex input used to be truncated to its real part without a word.
    name = "x" if isinstance(model, UnivariateGMM) else "X"
    with pytest.raises(ValueError, match=rf"{name} must be numeric .*real.*{kind}"):
        model.check_data(x)


def test_integer_data_are_accepted():
    out = GaussianMixture(2).check_data(np.arange(10).reshape(5, 2))
    assert out.dtype == np.float64


# ----------------------------------------------------------------------------- 7. scale
@pytest.mark.parametrize("scale", [1e160, 1e200])
def test_data_whose_squares_overflow_are_refused(scale):
    x = np.array([1.0, 2.0, 3.0, 4.0]) * scale
    with pytest.raises(ValueError, match="x is too large in scale"):
        gmmkit.fit(UnivariateGMM(2, 10.0), x, "cavi", seed=0)
    fit = gmmkit.fit(UnivariateGMM(2, 10.0), x / scale, "cavi", seed=0)
    # predict_proba at 1e200 used to return NaN.
    with pytest.raises(ValueError, match="x is too large in scale"):
        fit.predict_proba(x)


def test_large_but_representable_data_still_fit():
    X = _blobs() * 1e100  # sum of squares ~1e205, far below the 1e300 limit
    fit = gmmkit.fit(BayesianGMM(3), X, "cavi", seed=0)
    assert np.all(np.isfinite(fit.elbo_trace))


# ----------------------------------------------------------------------------- 2. EM
@pytest.mark.parametrize("method", ["em", "kmeans"])
@pytest.mark.parametrize("offset", [1e9, 1e15])
def test_em_is_translation_invariant(method, offset):
    X = _blobs()
    shifted = X + offset
    # The same points, exactly: fl(x + c) - c is exact (Sterbenz), so both fits see data
    # that differ by a representable translation and nothing else.
    back = shifted - offset
    far = gmmkit.fit(GaussianMixture(3), shifted, method, seed=0)
    near = gmmkit.fit(GaussianMixture(3), back, method, seed=0)
    # Centred, both fits run on identical data up to the rounding of the data mean (a
    # common shift of ~ulp(offset)), so they agree to a few ulps of the log-likelihood
    # (measured: 0 to 1 ulp); before centring, 1e9 gave a different optimum path and
    # 1e15 a decreasing trace.
    assert far.log_likelihood_trace[-1] == pytest.approx(near.log_likelihood_trace[-1],
                                                         rel=1e-12)
    trace = far.log_likelihood_trace
    if method == "em":
        # Non-decreasing up to the O(reg_covar) perturbation of the M-step (em docstring).
        assert np.all(np.diff(trace) >= -1e-6 * np.abs(trace[1:]))
    np.testing.assert_allclose(far.predict_proba(shifted), near.predict_proba(back),
                               atol=1e-12)
    # The reported means are in the original coordinates: off by one rounding of
    # mean + offset at most.
    np.testing.assert_allclose(far.means - offset, near.means, atol=2 * EPS * offset)


def test_em_at_offset_1e9_matches_the_unshifted_data_to_their_resolution():
    X = _blobs()
    at_zero = gmmkit.fit(GaussianMixture(3), X, "em", seed=0)
    at_1e9 = gmmkit.fit(GaussianMixture(3), X + 1e9, "em", seed=0)
    # X + 1e9 rounds each coordinate by up to ulp(1e9)/2 = 6e-8.  The log-likelihood moves
    # by at most sum_n |d loglik / d x_n| * 6e-8 ~ N * |Sigma^-1 (x - mu)| * 6e-8, about
    # 300 * 3 * 6e-8 = 5e-5 nats: 1e-7 relative of |loglik| ~ 1100 covers it (measured
    # 3e-10; before centring the gap was visible in the 7th digit at 1e9).
    assert at_1e9.log_likelihood_trace[-1] == pytest.approx(
        at_zero.log_likelihood_trace[-1], rel=1e-7)


def test_sklearn_parity_data_give_the_same_log_likelihood_as_before_centring():
    # A measured pin: before centring, this fit ended at -1095.1485083052544.
    fit = gmmkit.fit(GaussianMixture(3), _blobs(), "em", seed=0)
    assert fit.log_likelihood_trace[-1] == pytest.approx(-1095.1485083052544, rel=1e-12)


# ----------------------------------------------------------------------------- 5. scales
def test_columns_on_scales_1e8_apart_are_refused_with_advice_to_standardise():
    X = _blobs() * np.array([1e-8, 1e8])
    with pytest.raises(ValueError, match=r"X has features on incompatible scales.*standardise"):
        gmmkit.fit(GaussianMixture(3), X, "em", seed=0)
    # Standardised, the same data fit.
    Z = (X - X.mean(0)) / X.std(0)
    fit = gmmkit.fit(GaussianMixture(3), Z, "em", seed=0)
    assert np.isfinite(fit.log_likelihood_trace[-1])


def test_feature_scale_limit_is_the_documented_ratio():
    X = np.random.default_rng(0).normal(size=(50, 2))
    ok = X * np.array([1.0, 1e5])  # variance ratio 1e10 < 1e12
    em.check_feature_scales(ok, 0.0)
    with pytest.raises(ValueError, match="ratio"):
        em.check_feature_scales(X * np.array([1.0, 1e7]), 0.0)  # 1e14 > 1e12


# ----------------------------------------------------------------------------- 3. evidence
def test_bayesian_exact_evidence_is_translation_invariant():
    base = np.array([[0.3, -0.2], [-0.5, 0.1], [0.4, 0.6], [-0.2, -0.5]]) * 1e-5
    model = BayesianGMM(2)
    reference = model.exact_log_evidence(base)
    for offset in (100.0, 1e6):
        X = base + offset
        back = X - offset  # the same points, exactly
        # Before centring: 84.864 at 100 (vs 85.044 centred) and NaN at 1e6.
        got = model.exact_log_evidence(X)
        assert np.isfinite(got)
        # The default W0 comes from np.cov of X, whose rounding differs from that of
        # ``back`` by ~eps * offset / spread ~ 1e-3 relative at 1e6 in S: only through
        # log|W0|-type terms, measured 6e-13 relative; 1e-9 leaves room.
        assert got == pytest.approx(model.exact_log_evidence(back), rel=1e-9)
        fit = gmmkit.fit(model, X, "cavi", seed=0, tol=1e-12, max_iter=2000)
        assert fit.elbo <= got + 1e-9 * abs(got)
    assert model.exact_log_evidence(base + 100.0) == pytest.approx(reference, rel=1e-9)


def _decimal_single_cluster_evidence(x, sigma, tau):
    """log N(x | 0, tau^2 I + sigma^2 11^T) in 50-digit decimal arithmetic (K = 1)."""
    getcontext().prec = 50
    xs = [Decimal(float(v)) for v in x]
    n = len(xs)
    s2, t2 = Decimal(sigma) ** 2, Decimal(tau) ** 2
    s1 = sum(xs)
    sq = sum(v * v for v in xs)
    two_pi = 2 * Decimal("3.14159265358979323846264338327950288419716939937510")
    quad = (sq - s2 * s1 * s1 / (t2 + n * s2)) / t2
    log_det = n * t2.ln() + (1 + n * s2 / t2).ln()
    return float(-(n * two_pi.ln() + log_det + quad) / 2)


@pytest.mark.parametrize(("offset", "sigma"), [(0.0, 1.0), (1e5, 1e4), (1e3, 1e6)])
def test_univariate_exact_evidence_has_no_catastrophic_cancellation(offset, sigma):
    x = np.random.default_rng(3).normal(size=6) + offset
    got = UnivariateGMM(1, prior_sd=sigma).exact_log_evidence(x)
    # The raw form sum x^2 - sigma^2 (sum x)^2 / (tau^2 + n sigma^2) lost ~7 digits at
    # offset 1e5, sigma 1e4 (1.2e-7 relative); the centred form keeps ~15.
    assert got == pytest.approx(_decimal_single_cluster_evidence(x, sigma, 1.0), rel=1e-12)


# ----------------------------------------------------------------------------- 4. W0
@pytest.mark.parametrize("kind", ["collinear", "n_le_d", "constant"])
def test_default_w0_is_ridged_and_the_elbo_is_monotone(kind):
    rng = np.random.default_rng(0)
    if kind == "collinear":
        x = rng.normal(size=(8, 1))
        X = np.hstack([x, 2 * x, x - 1])  # rank 1
    elif kind == "n_le_d":
        X = rng.normal(size=(3, 5))
    else:
        X = np.hstack([rng.normal(size=(8, 2)), np.full((8, 1), 4.2)])
    model = BayesianGMM(2).resolve(X)
    S = np.atleast_2d(np.cov(X, rowvar=False))
    d = X.shape[1]
    expected = np.linalg.inv(S + 1e-6 * np.trace(S) / d * np.eye(d))
    np.testing.assert_allclose(model.W0, expected, rtol=1e-6)
    fit = gmmkit.fit(BayesianGMM(2), X, "cavi", seed=0, tol=1e-12, max_iter=500)
    trace = fit.elbo_trace
    assert np.all(np.isfinite(trace))
    # Monotone up to rounding.  The ridge leaves W0 with condition number ~1e6 D in the
    # directions the data do not span, and the bound's terms (ln|W_k|, nu_k tr(W0^-1 W_k))
    # carry rounding errors ~cond(W0) eps times their size ~|ELBO| + N D: measured
    # decrease 1.5e-8 nats (collinear) against a slack of ~7e-8.  Before the ridge was
    # always added, the collinear case ran on a W0 with condition number ~1e16.
    slack = np.linalg.cond(model.W0) * EPS * (np.abs(trace[1:]) + X.size)
    assert np.all(np.diff(trace) >= -slack)


def test_default_w0_ridge_is_always_added_even_for_a_regular_covariance():
    X = _blobs()
    S = np.cov(X, rowvar=False)
    expected = np.linalg.inv(S + 1e-6 * np.trace(S) / 2 * np.eye(2))
    np.testing.assert_allclose(BayesianGMM(3).resolve(X).W0, expected, rtol=1e-10)


def test_identical_points_give_a_clear_error_not_nan():
    X = np.tile([1.0, 2.0], (5, 1))
    with pytest.raises(ValueError, match=r"X must not be 5 copies of one point.*pass W0"):
        gmmkit.fit(BayesianGMM(2), X, "cavi", seed=0)


# ----------------------------------------------------------------------------- 6. priors
@pytest.mark.parametrize("name", ["prior_sd", "obs_sd"])
@pytest.mark.parametrize("value", [1e-300, 1e300, 1e-160, 1e160])
def test_univariate_scales_outside_the_range_are_refused(name, value):
    # 1e-300 used to raise ZeroDivisionError and 1e300 OverflowError.
    kwargs = {"prior_sd": 1.0, name: value}
    with pytest.raises(ValueError, match=rf"{name} must lie in \[1e-150, 1e\+150\]"):
        UnivariateGMM(2, **kwargs)


@pytest.mark.parametrize(("prior_sd", "obs_sd"), [(1e-150, 1.0), (1e150, 1.0), (1.0, 1e150),
                                                  (1e150, 1e-150)])
def test_univariate_scales_at_the_range_ends_fit_without_nan(prior_sd, obs_sd):
    x = np.random.default_rng(0).normal(size=20)
    fit = gmmkit.fit(UnivariateGMM(2, prior_sd, obs_sd), x, "cavi", seed=0)
    assert np.all(np.isfinite(fit.elbo_trace))
    assert np.all(np.isfinite(fit.predict_proba(x)))
    assert np.isfinite(UnivariateGMM(2, prior_sd, obs_sd).exact_log_evidence(x[:6]))


@pytest.mark.parametrize(
    "prior",
    [{"alpha0": 1e-300}, {"alpha0": 1e-30}, {"alpha0": 1e30}, {"alpha0": 1e300},
     {"beta0": 1e-300}, {"beta0": 1e300}, {"nu0": 1e300}, {"W0": 1e-300 * np.eye(2)}],
    ids=lambda p: f"{next(iter(p))}={np.max(next(iter(p.values()))):g}",
)
def test_extreme_bayesian_priors_give_a_bound_below_the_evidence(prior):
    X = np.random.default_rng(0).normal(size=(6, 2))
    model = BayesianGMM(2, **prior)
    fit = gmmkit.fit(model, X, "cavi", seed=0)
    evidence = model.exact_log_evidence(X)
    trace = fit.elbo_trace
    assert np.all(np.isfinite(trace)) and np.isfinite(evidence)
    # alpha0 = 1e-30 used to give an "ELBO" of +0.61 above the evidence -15.85
    # (cancellation of two ~1e30 terms in E[ln p(pi)] - E[ln q(pi)]).
    assert fit.elbo <= evidence + 1e-9 * abs(evidence)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_a_w0_too_large_for_the_evidence_is_refused_by_name():
    X = np.random.default_rng(0).normal(size=(6, 2))
    # Used to return NaN.
    with pytest.raises(ValueError, match="W0 is too large for the data"):
        BayesianGMM(2, W0=1e30 * np.eye(2)).exact_log_evidence(X)


# ----------------------------------------------------------------------------- 8. PyMC
@pytest.mark.parametrize(
    ("method", "options", "match"),
    [
        ("advi", {"learning_rate": 0.0}, "learning_rate must be a positive"),
        ("advi", {"learning_rate": float("inf")}, "learning_rate must be a positive finite"),
        ("advi", {"learning_rate": -1.0}, "learning_rate"),
        ("advi", {"convergence_tol": float("nan")}, "convergence_tol must be a positive"),
        ("advi", {"convergence_tol": 0}, "convergence_tol"),
        ("fullrank_advi", {"elbo_se_target": 0.0}, "elbo_se_target"),
        ("nuts", {"target_accept": 1.0}, r"target_accept must be a number in \(0, 1\)"),
        ("nuts", {"target_accept": 0.0}, "target_accept"),
        ("nuts", {"target_accept": "high"}, "target_accept"),
        ("nuts", {"ordered": "no"}, "ordered must be True or False"),
        ("smc", {"ordered": 0}, "ordered must be True or False"),
        ("advi", {"max_elbo_draws": 1}, f"max_elbo_draws must be an integer >= {MIN_ELBO_DRAWS}"),
        ("advi", {"max_elbo_draws": 2.5}, "max_elbo_draws"),
        ("nuts", {"draws": 0}, "draws must be an integer >= 1"),
        ("nuts", {"tune": 1.5}, "tune must be an integer"),
        ("smc", {"chains": True}, "chains must be an integer"),
        ("advi", {"n_iter": -3}, "n_iter must be an integer >= 1"),
    ],
)
def test_pymc_options_are_validated_by_name(method, options, match):
    with pytest.raises(ValueError, match=match):
        _check_options(method, options)


def test_valid_pymc_options_pass_through():
    opts = _check_options("nuts", {"target_accept": 0.8, "ordered": np.bool_(False)})
    assert opts["target_accept"] == 0.8 and opts["ordered"] is False
    assert _check_options("advi", {"max_elbo_draws": MIN_ELBO_DRAWS})["max_elbo_draws"] == 500


def test_a_pymc_option_error_comes_from_fit_before_any_sampling():
    x = np.random.default_rng(0).normal(size=20)
    with pytest.raises(ValueError, match="learning_rate"):
        gmmkit.fit(UnivariateGMM(2, 10.0), x, "advi", seed=0, learning_rate=-0.1)


def test_an_init_fit_of_the_wrong_shape_is_refused_before_pymc_work():
    x = np.random.default_rng(0).normal(size=30)
    three = gmmkit.fit(UnivariateGMM(3, 10.0), x, "cavi", seed=0)
    with pytest.raises(ValueError, match=r"init must be a Fit with 2 components.*got a Fit with 3"):
        gmmkit.fit(UnivariateGMM(2, 10.0), x, "advi", seed=0, init=three)
    X = np.random.default_rng(1).normal(size=(30, 2))
    two_d = gmmkit.fit(GaussianMixture(2), X, "em", seed=0)
    with pytest.raises(ValueError, match=r"init must be a Fit of 1-dimensional data.*got a Fit "
                                         r"of 2-dimensional"):
        gmmkit.fit(UnivariateGMM(2, 10.0), x, "nuts", seed=0, init=two_d)


# ----------------------------------------------------------------------------- 9. property
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 7),
    d=st.integers(1, 2),
    k=st.integers(1, 2),
    log_offset=st.floats(0.0, 6.0),
    log_scale=st.floats(-6.0, 6.0),
)
def test_vb_elbo_is_monotone_and_below_the_exact_evidence(seed, n, d, k, log_offset,
                                                          log_scale):
    rng = np.random.default_rng(seed)
    scale = 10.0**log_scale
    offset = 10.0**log_offset * rng.choice([-1.0, 1.0], size=d)
    X = offset + scale * rng.normal(size=(n, d))
    model = BayesianGMM(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = gmmkit.fit(model, X, "cavi", seed=0, tol=1e-10, max_iter=300)
    evidence = model.exact_log_evidence(X)
    trace = fit.elbo_trace
    assert np.all(np.isfinite(trace)) and np.isfinite(evidence)
    assert np.all(np.isfinite(fit.responsibilities))
    # Each VB sweep maximises the bound exactly, so it cannot decrease in exact
    # arithmetic.  In float64 the bound is a sum of O(N K + K D^2) terms, the largest of
    # size ~|ELBO| + N D |log scale| (the Gaussian normalisers): rounding can move it by
    # ~1e3 eps of that size, so allow 1e-10 relative to |ELBO| + N D (log scale ~ 14 at
    # most here).
    slack = 1e-10 * (np.abs(trace[1:]) + n * d * 20.0)
    assert np.all(np.diff(trace) >= -slack)
    # ELBO <= log p(X), with the same rounding slack.
    assert fit.elbo <= evidence + 1e-10 * (abs(evidence) + n * d * 20.0)
