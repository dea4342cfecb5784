"""Bishop's VB with truncated stick-breaking ("Dirichlet-process") weights (issue 13):
monotone bound, exact-evidence oracles, independent recomputation, scikit-learn parity and
the scikit-learn DP tests ported."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import betaln, digamma, logsumexp, multigammaln

import gmmkit
from gmmkit.datasets import old_faithful
from gmmkit.inference.vb import elbo_at
from gmmkit.models.bayesian import BayesianGMM

DP = "dirichlet_process"


def _blobs(seed=0, n=300, d=2, centres=None, scale=1.0):
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])[:, :d]
    labels = rng.integers(len(centres), size=n)
    return centres[labels] + scale * rng.normal(size=(n, centres.shape[1])), labels


# ----------------------------------------------------------------------------- monotone
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(1, 3), k=st.integers(1, 5), n=st.integers(6, 60),
    gamma=st.floats(1e-3, 10.0), beta0=st.floats(1e-2, 10.0), nu_extra=st.floats(0.0, 5.0),
    spread=st.floats(0.1, 10.0), seed=st.integers(0, 2**16),
)
def test_every_dp_vb_step_never_lowers_the_elbo(d, k, n, gamma, beta0, nu_extra, spread, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + spread * rng.integers(0, 3, size=(n, 1))
    model = BayesianGMM(k, alpha0=gamma, beta0=beta0, nu0=d - 1 + 0.5 + nu_extra,
                        weight_prior=DP)
    fit = gmmkit.fit(model, X, "cavi", seed=seed, tol=1e-14, max_iter=60)
    trace = fit.elbo_trace
    assert np.all(np.isfinite(trace))
    # Coordinate ascent is exactly monotone; only float64 rounding of an O(|ELBO|) sum
    # may show: allow 1e-10 relative.
    assert np.diff(trace).min() >= -1e-10 * (abs(trace[-1]) + 1.0)


# ----------------------------------------------------------------------------- evidence
def _stick_weights(k, gamma, n_draws, rng):
    """pi from v_k ~ Beta(1, gamma), v_K = 1, independently of gmmkit: (n_draws, K)."""
    v = np.concatenate([rng.beta(1.0, gamma, size=(n_draws, k - 1)), np.ones((n_draws, 1))],
                       axis=1)
    left = np.concatenate([np.ones((n_draws, 1)), np.cumprod(1.0 - v[:, :-1], axis=1)], axis=1)
    return v * left


def _prior_mc_log_evidence(model, X, n_draws, rng):
    """log mean_s p(X | theta_s) for theta_s from the prior, and its delta-method se."""
    k, d = model.n_components, X.shape[1]
    weights = _stick_weights(k, model.alpha0, n_draws, rng)
    lam = stats.wishart(df=model.nu0, scale=model.W0).rvs(
        size=n_draws * k, random_state=rng).reshape(n_draws, k, d, d)
    cov = np.linalg.inv(lam)
    chol = np.linalg.cholesky(cov / model.beta0)
    means = model.m0 + np.einsum("skab,skb->ska", chol, rng.normal(size=(n_draws, k, d)))
    diff = X[None, :, None, :] - means[:, None, :, :]  # (S, N, K, D)
    maha = np.einsum("snka,skab,snkb->snk", diff, lam, diff)
    log_det = np.linalg.slogdet(lam)[1]
    with np.errstate(divide="ignore"):
        log_comp = (np.log(weights)[:, None, :] - 0.5 * d * np.log(2 * np.pi)
                    + 0.5 * log_det[:, None, :] - 0.5 * maha)
    log_lik = logsumexp(log_comp, axis=2).sum(axis=1)
    w = np.exp(log_lik - log_lik.max())
    estimate = log_lik.max() + np.log(w.mean())
    return estimate, w.std(ddof=1) / (np.sqrt(n_draws) * w.mean())


@pytest.mark.parametrize("d,k,gamma", [(1, 2, 1.0), (2, 3, 0.5), (1, 3, 3.0)],
                         ids=["D1-K2-g1", "D2-K3-g0.5", "D1-K3-g3"])
@pytest.mark.parametrize("seed", [0, 1], ids=["seed0", "seed1"])
def test_elbo_is_below_exact_evidence_which_matches_prior_monte_carlo(d, k, gamma, seed):
    rng = np.random.default_rng(seed)
    n = 5 + seed  # N in 5..6: K**N assignments stay few
    X = rng.normal(size=(n, d)) + 3.0 * (np.arange(n) % 2)[:, None]
    model = BayesianGMM(k, alpha0=gamma, beta0=0.5, m0=np.zeros(d), W0=0.5 * np.eye(d),
                        nu0=d + 1.0, weight_prior=DP)
    exact = model.exact_log_evidence(X)
    fit = gmmkit.fit(model, X, "cavi", seed=seed, n_init=3)
    assert fit.elbo <= exact + 1e-10 * abs(exact)
    estimate, se = _prior_mc_log_evidence(model, X, 100_000, np.random.default_rng(seed))
    # Monte Carlo: within 4 delta-method standard errors (plus 1e-3 for the delta method).
    assert abs(estimate - exact) <= 4 * se + 1e-3, (estimate, exact, se)


# ----------------------------------------------------------------------------- recompute
def _dp_elbo(model, X, params, r):
    """PRML 10.70-10.77 with stick-breaking weights, term by term, written independently
    of gmmkit: E[ln pi_k] = E[ln v_k] + sum_{j<k} E[ln(1 - v_j)] and the weight terms
    sum_k E[ln Beta(v_k | 1, gamma)] + H[Beta(a_k, b_k)] (scipy's entropy)."""
    a, b = np.asarray(params["stick_a"]), np.asarray(params["stick_b"])
    beta, m, W, nu = (np.asarray(params[key]) for key in ("beta", "m", "W", "nu"))
    k, d = m.shape
    gamma, beta0, m0, W0, nu0 = model.alpha0, model.beta0, model.m0, model.W0, model.nu0
    W0_inv = np.linalg.inv(W0)

    def log_B(Wm, v):
        return (-0.5 * v * np.linalg.slogdet(Wm)[1] - 0.5 * v * d * np.log(2)
                - multigammaln(0.5 * v, d))

    e_ln_v = digamma(a) - digamma(a + b)
    e_ln_1mv = digamma(b) - digamma(a + b)
    e_ln_pi = np.zeros(k)
    for j in range(k):
        e_ln_pi[j] = (e_ln_v[j] if j < k - 1 else 0.0) + e_ln_1mv[:j].sum()
    e_ln_lam = np.array([digamma(0.5 * (nu[j] - np.arange(d))).sum() + d * np.log(2)
                         + np.linalg.slogdet(W[j])[1] for j in range(k)])
    Nk = r.sum(0) + 1e-300
    xbar = (r.T @ X) / Nk[:, None]
    S = np.stack([((X - xbar[j]).T * r[:, j]) @ (X - xbar[j]) / Nk[j] for j in range(k)])
    t71 = 0.5 * sum(
        Nk[j] * (e_ln_lam[j] - d / beta[j] - nu[j] * np.trace(S[j] @ W[j])
                 - nu[j] * (xbar[j] - m[j]) @ W[j] @ (xbar[j] - m[j]) - d * np.log(2 * np.pi))
        for j in range(k))
    t72 = np.sum(r * e_ln_pi)
    weight_terms = np.sum(np.log(gamma) + (gamma - 1.0) * e_ln_1mv
                          + stats.beta(a, b).entropy())
    t74 = 0.5 * sum(d * np.log(beta0 / (2 * np.pi)) + e_ln_lam[j] - d * beta0 / beta[j]
                    - beta0 * nu[j] * (m[j] - m0) @ W[j] @ (m[j] - m0) for j in range(k))
    t74 += k * log_B(W0, nu0) + 0.5 * (nu0 - d - 1) * e_ln_lam.sum()
    t74 -= 0.5 * sum(nu[j] * np.trace(W0_inv @ W[j]) for j in range(k))
    with np.errstate(divide="ignore", invalid="ignore"):
        t75 = np.sum(np.where(r > 0, r * np.log(r), 0.0))
    entropy = [-log_B(W[j], nu[j]) - 0.5 * (nu[j] - d - 1) * e_ln_lam[j] + 0.5 * nu[j] * d
               for j in range(k)]
    t77 = sum(0.5 * e_ln_lam[j] + 0.5 * d * np.log(beta[j] / (2 * np.pi)) - 0.5 * d
              - entropy[j] for j in range(k))
    return t71 + t72 + weight_terms + t74 - t75 - t77


@pytest.mark.parametrize("d,k,gamma", [(1, 3, 0.1), (2, 4, 1.0), (3, 5, 5.0)],
                         ids=["D1-K3-g0.1", "D2-K4-g1", "D3-K5-g5"])
def test_reported_elbo_equals_an_independent_recomputation(d, k, gamma):
    X, _ = _blobs(seed=d, n=200, d=d, centres=np.arange(3 * d).reshape(3, d) * 2.0)
    fit = gmmkit.fit(BayesianGMM(k, alpha0=gamma, weight_prior=DP), X, "cavi", seed=0)
    recomputed = _dp_elbo(fit.model, X, fit.variational_params, fit.responsibilities)
    # Same quantity by two routes (sufficient statistics vs per-point sums): exact algebra
    # up to float64 rounding over N terms, 1e-8 relative (the tolerance).
    assert fit.elbo == pytest.approx(recomputed, rel=1e-8)
    # And elbo_at, from the reported parameters alone, is the same bound.
    assert elbo_at(fit.model, X, fit.variational_params) == pytest.approx(fit.elbo, rel=1e-10)


# ----------------------------------------------------------------------------- sklearn
def _sklearn_dp_difference(model, X, skl):
    """gmmkit's ELBO at scikit-learn's DP solution minus its ``lower_bound_``
    (docs/derivations/dirichlet_process.md):

        (K - 1) ln gamma + K ln B(W0, nu0) + (K D / 2) ln beta0 - (N D / 2) ln 2 pi
        + K D (D - 1) / 4 ln pi
        + N_K delta - ln B(a_K, gamma) + sum_n ln(1 - r_nK (1 - exp(-delta)))

    scikit-learn keeps a K-th stick v_K ~ Beta(a_K = 1 + N_K, gamma) where the truncated
    model has v_K = 1; delta = psi(a_K) - psi(a_K + gamma) is its E[ln v_K] and r_nK its
    responsibilities of component K.
    """
    n, d = X.shape
    k, gamma = model.n_components, model.alpha0
    log_b0 = (-0.5 * model.nu0 * np.linalg.slogdet(model.W0)[1]
              - 0.5 * model.nu0 * d * np.log(2) - multigammaln(0.5 * model.nu0, d))
    gauss = (k * log_b0 + 0.5 * k * d * np.log(model.beta0) - 0.5 * n * d * np.log(2 * np.pi)
             + k * d * (d - 1) / 4 * np.log(np.pi))
    a_last = skl.weight_concentration_[0][-1]
    delta = digamma(a_last) - digamma(a_last + gamma)
    r_last = skl.predict_proba(X)[:, -1]
    last_stick = ((a_last - 1.0) * delta - betaln(a_last, gamma)
                  + np.sum(np.log1p(-r_last * (-np.expm1(-delta)))))
    return (k - 1) * np.log(gamma) + gauss + last_stick


@pytest.mark.parametrize("dataset", ["blobs3d", "faithful"])
def test_elbo_differs_from_sklearn_dp_lower_bound_by_the_documented_expression(dataset):
    from sklearn.mixture import BayesianGaussianMixture

    if dataset == "faithful":
        X, k = old_faithful(standardize=True), 2
    else:
        X, k = _blobs(seed=5, n=400, d=3, centres=np.array(
            [[0, 0, 0], [5, 0, 1], [0, 5, -1.0]]))[0], 3
    model = BayesianGMM(k, alpha0=0.3, beta0=0.5, weight_prior=DP).resolve(X)
    skl = BayesianGaussianMixture(
        n_components=k, covariance_type="full", weight_concentration_prior_type=DP,
        weight_concentration_prior=model.alpha0, mean_precision_prior=model.beta0,
        mean_prior=model.m0, degrees_of_freedom_prior=model.nu0,
        covariance_prior=np.linalg.inv(model.W0), reg_covar=0.0, tol=1e-10,
        max_iter=5000, random_state=0,
    ).fit(X)
    assert skl.converged_
    # The last component is in use, so the K-th-stick terms are not negligible.
    assert skl.weights_[-1] > 0.05
    params = {"stick_a": skl.weight_concentration_[0][:-1],
              "stick_b": skl.weight_concentration_[1][:-1],
              "beta": skl.mean_precision_, "m": skl.means_,
              "W": skl.precisions_ / skl.degrees_of_freedom_[:, None, None],
              "nu": skl.degrees_of_freedom_}
    at_sklearn = elbo_at(model, X, params)
    # sklearn's bound uses the responsibilities of the step before its last M-step; at
    # tol=1e-10 that moves the bound by ~1e-10 relative: 1e-8 relative is ample.
    assert at_sklearn - skl.lower_bound_ == pytest.approx(
        _sklearn_dp_difference(model, X, skl), rel=1e-8, abs=1e-8 * abs(at_sklearn))


# ----------------------------------------------------------------------------- ported
def _random_data(seed, n=200, k=2, d=2, scale=50.0):
    """scikit-learn's RandomData (full covariances): means uniform on [0, scale]^D,
    covariances 0.5 x a random SPD matrix, returns (X, labels)."""
    from sklearn.datasets import make_spd_matrix

    rng = np.random.RandomState(seed)
    weights = rng.rand(k)
    weights /= weights.sum()
    means = rng.rand(k, d) * scale
    covs = np.array([make_spd_matrix(d, random_state=rng) * 0.5 for _ in range(k)])
    counts = np.round(weights * n).astype(int)
    X = np.vstack([rng.multivariate_normal(means[j], covs[j], counts[j]) for j in range(k)])
    return X, np.repeat(np.arange(k), counts)


def test_sklearn_weights_prior_initialisation():
    """Ported: the given concentration is kept; the default is 1 / K."""
    X = np.random.RandomState(0).rand(10, 2)
    fit = gmmkit.fit(BayesianGMM(5, alpha0=0.37, weight_prior=DP), X, "cavi", seed=0)
    assert fit.model.alpha0 == 0.37
    fit = gmmkit.fit(BayesianGMM(5, weight_prior=DP), X, "cavi", seed=0)
    assert fit.model.alpha0 == pytest.approx(1.0 / 5, rel=1e-15)


def test_sklearn_dp_weights_are_the_stick_means():
    """Ported (test_bayesian_mixture_weights, DP case): E[pi_k] = a_k / (a_k + b_k)
    prod_{j<k} b_j / (a_j + b_j); here the K-th weight is the stick left,
    prod_{j<K} b_j / (a_j + b_j), and the weights sum to one without renormalising."""
    X = np.random.RandomState(0).rand(10, 2)
    fit = gmmkit.fit(BayesianGMM(3, weight_prior=DP), X, "cavi", seed=0)
    a, b = fit.variational_params["stick_a"], fit.variational_params["stick_b"]
    frac = b / (a + b)
    expected = np.append(a / (a + b) * np.append(1.0, np.cumprod(frac)[:-1]), np.prod(frac))
    np.testing.assert_allclose(fit.weights, expected, rtol=1e-12)
    assert fit.weights.sum() == pytest.approx(1.0, rel=1e-14)


def test_sklearn_monotonic_likelihood_dp():
    """Ported: every iteration raises the bound on scale-20 random data, K = 2 x 2."""
    X, _ = _random_data(0, scale=20.0)
    fit = gmmkit.fit(BayesianGMM(4, weight_prior=DP), X, "cavi", seed=0, tol=1e-3,
                     max_iter=600)
    assert fit.converged
    assert np.diff(fit.elbo_trace).min() >= -1e-10 * abs(fit.elbo)


def test_sklearn_invariant_translation_dp():
    """Ported: translating the data translates the means, keeps weights and covariances
    (the default priors follow the data), here to 1e-8 relative."""
    X, _ = _random_data(0, scale=100.0)
    model = BayesianGMM(4, weight_prior=DP)
    one = gmmkit.fit(model, X, "cavi", seed=0, max_iter=100, tol=1e-3)
    two = gmmkit.fit(model, X + 100.0, "cavi", seed=0, max_iter=100, tol=1e-3)
    np.testing.assert_allclose(one.means, two.means - 100.0, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(one.weights, two.weights, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(one.covariances, two.covariances, rtol=1e-8, atol=1e-10)
    assert one.elbo == pytest.approx(two.elbo, rel=1e-10)


def test_sklearn_predict_predict_proba_dp():
    """Ported: predict is the argmax of predict_proba and recovers the labels (ARI >= 0.95)."""
    from sklearn.metrics import adjusted_rand_score

    X, labels = _random_data(0)
    fit = gmmkit.fit(BayesianGMM(2, weight_prior=DP), X, "cavi", seed=0)
    predicted = fit.predict(X)
    np.testing.assert_array_equal(predicted, fit.predict_proba(X).argmax(axis=1))
    assert adjusted_rand_score(labels, predicted) >= 0.95


# ----------------------------------------------------------------------------- pruning
def test_small_concentration_empties_superfluous_components(three_clusters_10sd):
    """Three clusters 10 sd apart, K = 10, gamma = 1e-2: three components keep the data,
    one per cluster, at the true means; the other seven are empty."""
    _, x, means, labels, _ = three_clusters_10sd
    X = x[:, None]
    fit = gmmkit.fit(BayesianGMM(10, alpha0=1e-2, weight_prior=DP), X, "cavi", seed=0,
                     n_init=3)
    used = fit.weights > 1e-3
    assert used.sum() == 3
    # The seven others hold less than a thousandth of a point between them.
    assert fit.responsibilities[:, ~used].sum() < 1e-3
    # Each cluster's sample mean (sd 1 / sqrt(~100)) lies within 0.5 of the true mean.
    np.testing.assert_allclose(np.sort(fit.means[used, 0]), means, atol=0.5)
    # One component per true cluster: the assignment is a relabelling of the truth.
    predicted = fit.predict(X)
    pairs = {(int(t), int(p)) for t, p in zip(labels, predicted, strict=True)}
    assert len(pairs) == 3 and len({p for _, p in pairs}) == 3


def test_variational_params_and_fit_group_name_the_sticks():
    X, _ = _blobs(seed=1, n=100)
    fit = gmmkit.fit(BayesianGMM(4, weight_prior=DP), X, "cavi", seed=0)
    params = fit.variational_params
    assert params["stick_a"].shape == (3,) and params["stick_b"].shape == (3,)
    assert "alpha" not in params
    dims = fit.fit_variables()
    assert dims["q_stick_a"][0] == ("stick",)
    assert dims["q_beta"][0] == ("component",)


def test_psis_weights_against_q_without_symmetrising():
    """Stick-breaking q does not factorise over components: no symmetrisation, and the
    importance weights are finite."""
    from gmmkit.comparisons.diagnostics import psis_diagnostics

    X, _ = _blobs(seed=2, n=60)
    fit = gmmkit.fit(BayesianGMM(3, weight_prior=DP), X, "cavi", seed=0)
    result = psis_diagnostics(fit, n_draws=200, seed=0)
    assert not result.symmetrised
    assert np.isfinite(result.log_evidence)


def test_one_component_is_conjugate_and_exact(rng):
    """K = 1 (no sticks, pi = 1): the model is conjugate, q from one VB step is the exact
    posterior, so the ELBO and every importance weight equal log p(X) (exact algebra)."""
    x = rng.normal(size=(2, 2))
    model = BayesianGMM(1, alpha0=0.5, beta0=1.0, m0=np.zeros(2), W0=np.eye(2), nu0=2.5,
                        weight_prior=DP)
    fit = gmmkit.fit(model, x, "cavi", seed=0)
    exact = model.exact_log_evidence(x)
    log_w = fit.posterior.log_importance_weights(fit.data, 50, np.random.default_rng(0))
    np.testing.assert_allclose(log_w, exact, rtol=1e-9)
    assert fit.elbo == pytest.approx(exact, rel=1e-10)


# ----------------------------------------------------------------------------- model
def test_log_prior_and_sample_use_the_stick_breaking_prior(rng):
    """The DP model's log_prior differs from the Dirichlet model's by exactly the
    difference of the two weight densities (the Gaussian-Wishart part is shared), and its
    prior draws have the stick-breaking mean weights."""
    from gmmkit.models.weights import StickBreakingWeights

    kw = dict(beta0=0.7, m0=np.zeros(2), W0=np.eye(2), nu0=3.0)
    dp = BayesianGMM(3, alpha0=0.6, weight_prior=DP, **kw)
    dirichlet = BayesianGMM(3, alpha0=0.6, **kw)
    params = {"weights": rng.dirichlet(np.ones(3), size=4), "means": rng.normal(size=(4, 3, 2)),
              "covariances": np.broadcast_to(np.eye(2), (4, 3, 2, 2)).copy()}
    log_w = np.log(params["weights"])
    expected = (StickBreakingWeights(3, 0.6).log_prior(log_w)
                - stats.dirichlet(np.full(3, 0.6)).logpdf(params["weights"].T))
    np.testing.assert_allclose(dp.log_prior(params) - dirichlet.log_prior(params), expected,
                               rtol=1e-10)
    draws = np.array([dp.sample(1, seed=s).weights for s in range(1500)])
    ratio = 0.6 / 1.6
    mean = np.append(ratio ** np.arange(2) / 1.6, ratio**2)
    se = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - mean) <= 4 * se)


def test_weight_prior_is_validated_and_shown():
    with pytest.raises(ValueError, match="weight_prior"):
        BayesianGMM(2, weight_prior="pitman_yor")
    model = BayesianGMM(2, weight_prior=DP)
    assert "weight_prior='dirichlet_process'" in repr(model)
    assert "weight_prior" not in repr(BayesianGMM(2))
    assert model != BayesianGMM(2) and model == BayesianGMM(2, weight_prior=DP)
    assert model.to_dict()["weight_prior"] == DP


def test_elbo_at_names_missing_stick_parameters():
    X, _ = _blobs(seed=3, n=50)
    fit = gmmkit.fit(BayesianGMM(3), X, "cavi", seed=0)  # Dirichlet params: alpha
    with pytest.raises(ValueError, match="'stick_a'"):
        elbo_at(BayesianGMM(3, weight_prior=DP), X, fit.variational_params)
