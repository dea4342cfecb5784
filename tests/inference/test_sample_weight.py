"""``sample_weight`` (issue 15): frequency weights for every closed-form method.

A weighted fit multiplies every per-point term of the objective by its weight, so:

* integer weights give the fit of ``np.repeat(X, w, axis=0)``;
* zero weights give the fit with those rows dropped;
* weights c w give the parameters of w and c times its data terms.

"The same initial state": EM and the k-means GMM are given explicit initial means
(``em.fit_em(..., init=means)``); CAVI is also compared through its pure ``step`` from
one explicit state.  Through ``gmmkit.fit`` (CAVI, VB) the kmeans++ seeding is weighted:
scikit-learn draws each seed through the cumulative sum of weight times squared distance,
so integer weights and repeated rows (``np.repeat``: each point's copies adjacent), and
zero weights and dropped rows, pick the same points for the same random numbers; every
such test checks that the initial states (the first entries of the traces) agree before
comparing the rest.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import gmmkit
from gmmkit import ConvergenceWarning
from gmmkit.inference import cavi, em, vb
from gmmkit.models import BayesianGMM, GaussianMixture, UnivariateGMM

FAMILIES = ["full", "diag", "spherical", "tied"]
RTOL = 1e-10


def close(actual, expected, rtol=RTOL):
    """Equal to ``rtol`` relative to the size of ``expected`` (entries near 0 included)."""
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def blobs(d: int, n: int = 90, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0] * d, [0.0] * d, [4.0] * d])
    centres[1, 0] = 3.0
    labels = rng.integers(0, 3, n)
    return centres[labels] + rng.normal(size=(n, d)) @ np.triu(np.full((d, d), 0.3) +
                                                              np.eye(d))


def integer_weights(n: int, seed: int = 5, high: int = 4) -> np.ndarray:
    w = np.random.default_rng(seed).integers(0, high, n)
    w[:3] = (2, 3, 1)
    return w


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gmmkit.fit(*args, **kwargs)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def same_fit(weighted, reference, *, rtol=RTOL):
    """Traces from the same initial state, and the final parameters, agree."""
    n = min(weighted.elbo_trace.size, reference.elbo_trace.size)
    if weighted.elbo_trace.size != reference.elbo_trace.size:
        # tol=0 stops when the objective no longer changes at all, which rounding may
        # reach one iteration apart: then both are at the fixed point.
        assert weighted.converged and reference.converged
        assert abs(weighted.elbo_trace.size - reference.elbo_trace.size) <= 1
    close(weighted.elbo_trace[0], reference.elbo_trace[0], rtol)  # the same start
    close(weighted.elbo_trace[:n], reference.elbo_trace[:n], rtol)
    if reference.log_likelihood_trace is not None:
        close(weighted.log_likelihood_trace[:n], reference.log_likelihood_trace[:n], rtol)
    for name, value in reference.posterior.params().items():
        close(weighted.posterior.params()[name], value, rtol)


# ----------------------------------------------------------------------------- EM, k-means
def _em(method: str):
    return em.fit_em if method == "em" else em.fit_kmeans


def _run_em(method, model, X, init, sample_weight=None, max_iter=25):
    return quiet(_em(method), model, X, seed=0, n_init=1, init=init, tol=0.0,
                 max_iter=max_iter, progress=False, method=method,
                 sample_weight=sample_weight)


@pytest.mark.parametrize("method", ["em", "kmeans"])
@pytest.mark.parametrize("family", FAMILIES)
def test_em_integer_weights_equal_repetition(method, family):
    X = blobs(3)
    w = integer_weights(X.shape[0])
    init = X[[0, 1, 2]] + 0.1  # the same initial means for both fits
    model = GaussianMixture(3, covariance=family)
    weighted = _run_em(method, model, X, init, w.astype(float))
    repeated = _run_em(method, model, np.repeat(X, w, axis=0), init)
    same_fit(weighted, repeated)
    # Bit-for-bit nothing changes for the unweighted fit: weights 1 agree to rounding.
    ones = _run_em(method, model, X, init, np.ones(X.shape[0]))
    same_fit(ones, _run_em(method, model, X, init))


@pytest.mark.parametrize("method", ["em", "kmeans"])
@pytest.mark.parametrize("family", FAMILIES)
def test_em_zero_weights_equal_dropping(method, family):
    X = blobs(2)
    w = (np.arange(X.shape[0]) % 3 != 1).astype(float)
    X = X.copy()
    X[w == 0] *= 50.0  # dropped rows far away: they must not matter at all
    init = X[[0, 2, 3]] + 0.1
    model = GaussianMixture(3, covariance=family)
    same_fit(_run_em(method, model, X, init, w), _run_em(method, model, X[w > 0], init))


@pytest.mark.parametrize("method", ["em", "kmeans"])
@pytest.mark.parametrize("family", FAMILIES)
def test_em_common_scale_of_weights(method, family):
    """The M-step is invariant to c w; the log-likelihood and the ELBO scale by c."""
    X = blobs(2)
    w = np.random.default_rng(1).uniform(0.2, 2.0, X.shape[0])
    init = X[[0, 1, 2]] + 0.1
    model = GaussianMixture(3, covariance=family)
    base = _run_em(method, model, X, init, w)
    for c in (0.37, 8.0):
        scaled = _run_em(method, model, X, init, c * w)
        close(scaled.elbo_trace, c * base.elbo_trace)
        close(scaled.log_likelihood_trace, c * base.log_likelihood_trace)
        for name, value in base.posterior.params().items():
            close(scaled.posterior.params()[name], value)


@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_em_half_weights_on_duplicated_rows_equal_the_data(method):
    X = blobs(2)
    init = X[[0, 1, 2]] + 0.1
    model = GaussianMixture(3)
    halves = _run_em(method, model, np.concatenate([X, X]), init,
                     np.full(2 * X.shape[0], 0.5))
    same_fit(halves, _run_em(method, model, X, init))


@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_em_log_likelihood_is_the_weighted_sum(method):
    X = blobs(2)
    w = np.random.default_rng(2).uniform(0.0, 3.0, X.shape[0])
    fit = _run_em(method, GaussianMixture(3), X, X[[0, 1, 2]], w)
    pointwise = fit.posterior.log_predictive(X)
    close(fit.log_likelihood_trace[-1], w @ pointwise)
    if method == "em":
        # At the final E-step the ELBO of r_T equals the weighted log-likelihood.
        resp = fit.responsibilities
        log_prob = fit.posterior._log_prob(X)
        close(em.elbo(log_prob, resp, w), w @ pointwise)


def test_kmeans_cluster_with_only_zero_weight_points_is_empty():
    X = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [20.0]])
    w = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    labels = np.array([0, 0, 0, 1, 1, 2])
    means = np.array([[0.1], [10.05], [20.0]])
    new, n = em.hard_assignment(X, labels, means, w)
    assert n == 1
    assert np.bincount(new, weights=w, minlength=3).min() > 0
    assert w[new == 2].sum() > 0


@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_em_through_gmmkit_fit_kmeanspp_seeds_match_repetition(method):
    X = blobs(2)
    w = integer_weights(X.shape[0])
    model = GaussianMixture(3)
    weighted = quiet_fit(model, X, method, seed=7, sample_weight=w, tol=0, max_iter=15)
    repeated = quiet_fit(model, np.repeat(X, w, axis=0), method, seed=7, tol=0,
                         max_iter=15)
    same_fit(weighted, repeated)


# ----------------------------------------------------------------------------- CAVI
def _cavi_run(model, x, m, s2, w=None, n_steps=25):
    n = x.shape[0] if w is None else float(w.sum())
    state = cavi.CAVIState(m, s2, *cavi.assignment_statistics(model, x, m, s2, w))
    trace = [cavi.elbo(model, n, state)]
    for _ in range(n_steps):
        state = cavi.step(model, x, state, w)
        trace.append(cavi.elbo(model, n, state))
    return state, np.array(trace)


def univariate_data(n=200, seed=4):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-3, 1, n // 2), rng.normal(2.5, 1, n - n // 2)])


def test_cavi_integer_weights_equal_repetition_from_one_state():
    x = univariate_data()
    w = integer_weights(x.shape[0])
    model = UnivariateGMM(3, prior_sd=4.0)
    m, s2 = np.array([-1.0, 0.0, 1.0]), np.full(3, 0.5)
    sw, tw = _cavi_run(model, x, m, s2, w.astype(float))
    sr, tr = _cavi_run(model, np.repeat(x, w), m, s2)
    close(tw, tr)
    for a, b in zip(sw, sr, strict=True):
        close(a, b)


def test_cavi_zero_weights_equal_dropping_from_one_state():
    x = univariate_data()
    w = (np.arange(x.shape[0]) % 4 != 0).astype(float)
    model = UnivariateGMM(2, prior_sd=4.0)
    m, s2 = np.array([-1.0, 1.0]), np.full(2, 0.5)
    sw, tw = _cavi_run(model, x, m, s2, w)
    sr, tr = _cavi_run(model, x[w > 0], m, s2)
    close(tw, tr)
    close(sw.m, sr.m)
    close(sw.s2, sr.s2)


def test_cavi_data_terms_scale_with_the_weights():
    """At fixed q(mu): N_k, S_k and the data term of the bound scale by c."""
    x = univariate_data()
    w = np.random.default_rng(0).uniform(0.1, 2.0, x.shape[0])
    model = UnivariateGMM(2, prior_sd=4.0)
    m, s2 = np.array([-2.0, 2.0]), np.full(2, 0.3)
    base = cavi.assignment_statistics(model, x, m, s2, w)
    for c in (0.25, 7.0):
        scaled = cavi.assignment_statistics(model, x, m, s2, c * w)
        for a, b in zip(scaled, base, strict=True):
            close(a, c * np.asarray(b))


@pytest.mark.parametrize(("model", "dim"), [
    (UnivariateGMM(3, prior_sd=4.0), 1),
    (BayesianGMM(3), 2),  # kept features, p <= K: the features are scaled
    (BayesianGMM(8), 2),  # p = 6 < K = 8
    (BayesianGMM(2), 6),  # p = 28: features recomputed per block
])
def test_closed_form_integer_weights_equal_repetition_through_fit(model, dim):
    X = univariate_data() if dim == 1 else blobs(dim, n=120)
    w = integer_weights(X.shape[0])
    # max_iter below the iteration where the objective stops changing at all: the fits
    # run the same number of steps (at a flat optimum the parameters still move slowly).
    weighted = quiet_fit(model, X, "cavi", seed=3, sample_weight=w, tol=0, max_iter=6)
    repeated = quiet_fit(model, np.repeat(X, w, axis=0), "cavi", seed=3, tol=0,
                         max_iter=6)
    same_fit(weighted, repeated)
    # Responsibilities of the weighted fit are those of the (first copy of the) points.
    first_copy = np.concatenate([[0], np.cumsum(w)[:-1]])[w > 0]
    close(weighted.responsibilities[w > 0], repeated.responsibilities[first_copy])
    if isinstance(model, BayesianGMM):
        close(weighted.model.m0, repeated.model.m0)
        close(weighted.model.W0, repeated.model.W0)


@pytest.mark.parametrize(("model", "dim"), [
    (UnivariateGMM(2, prior_sd=4.0), 1), (BayesianGMM(3), 2), (BayesianGMM(2), 6),
])
def test_closed_form_zero_weights_equal_dropping_through_fit(model, dim):
    X = univariate_data() if dim == 1 else blobs(dim, n=120)
    w = (np.arange(X.shape[0]) % 3 != 2).astype(float)
    weighted = quiet_fit(model, X, "cavi", seed=5, sample_weight=w, tol=0, max_iter=20)
    dropped = quiet_fit(model, X[w > 0], "cavi", seed=5, tol=0, max_iter=20)
    same_fit(weighted, dropped)


def test_vb_half_weights_on_duplicated_rows_equal_the_data():
    X = blobs(2, n=120)
    model = BayesianGMM(3)
    # np.repeat keeps each point's copies adjacent, so the weighted seeding's cumulative
    # sums meet the same points (np.concatenate([X, X]) would not).
    halves = quiet_fit(model, np.repeat(X, 2, axis=0), "cavi", seed=2, tol=0, max_iter=15,
                       sample_weight=np.full(2 * X.shape[0], 0.5))
    plain = quiet_fit(model, X, "cavi", seed=2, tol=0, max_iter=15)
    close(halves.model.W0, plain.model.W0)
    close(halves.elbo_trace[1:], plain.elbo_trace[1:])
    close(halves.posterior.params()["m"], plain.posterior.params()["m"])


def test_vb_data_terms_scale_with_the_weights():
    """At fixed q(pi, mu, Lambda): the statistics and sum_n w_n lse_n scale by c."""
    X = blobs(2, n=120)
    w = np.random.default_rng(0).uniform(0.1, 2.0, X.shape[0])
    fit = quiet_fit(BayesianGMM(3), X, "cavi", seed=1, max_iter=5)
    post, model = fit.posterior, fit.model
    ex = vb._expectations(post.weights, post.nu, post._W_inv_chol)

    def e_step(weights):
        prob = vb._problem(model, X, weights)
        m = post.m - prob.centre
        coef = vb._log_rho_coefficients(post.beta, m, post.nu, ex, prob.iu)
        return vb._e_step(prob, coef)

    stats, lse = e_step(w)
    for c in (0.5, 3.0):  # the centre does not move with c
        stats_c, lse_c = e_step(c * w)
        close(stats_c, c * stats)
        close(lse_c, c * lse)


# ----------------------------------------------------------------------------- the API
def test_unweighted_is_unchanged_and_the_fit_records_the_weights():
    X = blobs(2)
    model = GaussianMixture(3)
    plain = gmmkit.fit(model, X, "em", seed=1)
    explicit_none = gmmkit.fit(model, X, "em", seed=1, sample_weight=None)
    assert plain.sample_weight is None and explicit_none.sample_weight is None
    np.testing.assert_array_equal(plain.elbo_trace, explicit_none.elbo_trace)
    w = integer_weights(X.shape[0]).astype(float)
    weighted = gmmkit.fit(model, X, "em", seed=1, sample_weight=list(w))
    np.testing.assert_array_equal(weighted.sample_weight, w)
    assert not weighted.sample_weight.flags.writeable
    again = pickle.loads(pickle.dumps(weighted))
    np.testing.assert_array_equal(again.sample_weight, w)
    assert not again.sample_weight.flags.writeable


@pytest.mark.parametrize(("weights", "match"), [
    (np.ones(5), r"sample_weight must have shape \(90,\)"),
    (np.ones((90, 1)), r"sample_weight must have shape \(90,\)"),
    (np.r_[-1.0, np.ones(89)], "sample_weight must be non-negative"),
    (np.r_[np.nan, np.ones(89)], "sample_weight must be finite"),
    (np.r_[np.inf, np.ones(89)], "sample_weight must be finite"),
    (np.zeros(90), "sample_weight must not be all zero"),
    (np.r_[5.0, 5.0, np.zeros(88)], "sample_weight must be positive for at least"),
    (np.full(90, 0.01), "sample_weight must sum to at least"),
    ("heavy", "sample_weight must be"),
])
def test_bad_sample_weight_is_refused(weights, match):
    X = blobs(2)
    with pytest.raises(ValueError, match=match):
        gmmkit.fit(GaussianMixture(3), X, "em", sample_weight=weights)


@pytest.mark.parametrize("method", ["nuts", "advi", "smc"])
def test_pymc_methods_refuse_sample_weight(method):
    with pytest.raises(ValueError, match=r"unexpected option.*sample_weight"):
        gmmkit.fit(UnivariateGMM(2, prior_sd=4.0), univariate_data(), method,
                   sample_weight=np.ones(200))


def test_weighted_fit_saves_and_loads_its_weights(tmp_path):
    X = blobs(2)
    w = integer_weights(X.shape[0]).astype(float)
    fit = gmmkit.fit(GaussianMixture(3), X, "em", seed=1, sample_weight=w)
    fit.save(tmp_path / "fit")
    again = gmmkit.load(tmp_path / "fit")
    np.testing.assert_array_equal(again.sample_weight, w)
    assert not again.sample_weight.flags.writeable
    np.testing.assert_array_equal(again.elbo_trace, fit.elbo_trace)
