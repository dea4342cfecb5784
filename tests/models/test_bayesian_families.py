"""The Bayesian covariance families (issue 13): priors, log_prior/log_joint, exact evidence
and sampling, checked against oracles written independently here (scipy densities,
sequential Student-t predictives, prior Monte Carlo)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from gmmkit.models.bayesian import BayesianGMM

FAMILIES = ["full", "diag", "spherical", "tied"]


def _scale(covariance: str, d: int, rng) -> np.ndarray:
    """A random valid W0 for the family."""
    if covariance == "diag":
        return rng.uniform(0.3, 2.0, size=d)
    if covariance == "spherical":
        return np.float64(rng.uniform(0.3, 2.0))
    a = rng.normal(size=(d, d))
    return (a @ a.T + d * np.eye(d)) / d


def _model(covariance, d, rng, k=2, **kw):
    nu0 = d + 0.5 if covariance in ("full", "tied") else 1.5
    return BayesianGMM(k, alpha0=kw.pop("alpha0", 1.3), beta0=0.7, m0=rng.normal(size=d),
                       W0=_scale(covariance, d, rng), nu0=nu0, covariance=covariance, **kw)


def _draw_prior(model, n_draws, rng):
    """(weights (S, K), means (S, K, D), precisions (S, K, D, D)) drawn independently of
    gmmkit's sampler, from the priors as the issue states them."""
    k, d = model.n_components, model.m0.shape[0]
    weights = rng.dirichlet(np.full(k, model.alpha0), size=n_draws)
    if model.covariance in ("diag", "spherical"):
        shape = (n_draws, k, d) if model.covariance == "diag" else (n_draws, k, 1)
        lam = rng.gamma(model.nu0 / 2, 2 * np.broadcast_to(model.W0, shape[-1:]), size=shape)
        lam = np.broadcast_to(lam, (n_draws, k, d))
        prec = lam[..., None] * np.eye(d)
    else:
        count = n_draws * k if model.covariance == "full" else n_draws
        lam = stats.wishart(df=model.nu0, scale=model.W0).rvs(size=count, random_state=rng)
        lam = np.asarray(lam).reshape(n_draws, -1, d, d)
        prec = np.broadcast_to(lam, (n_draws, k, d, d))
    cov = np.linalg.inv(prec)
    chol = np.linalg.cholesky(cov / model.beta0)
    means = model.m0 + np.einsum("skab,skb->ska", chol, rng.normal(size=(n_draws, k, d)))
    return weights, means, prec


def _prior_mc_log_evidence(model, X, n_draws, rng):
    weights, means, prec = _draw_prior(model, n_draws, rng)
    d = X.shape[1]
    diff = X[None, :, None, :] - means[:, None, :, :]
    maha = np.einsum("snka,skab,snkb->snk", diff, prec, diff)
    log_det = np.linalg.slogdet(prec)[1]
    log_comp = (np.log(weights)[:, None, :] - 0.5 * d * np.log(2 * np.pi)
                + 0.5 * log_det[:, None, :] - 0.5 * maha)
    log_lik = logsumexp(log_comp, axis=2).sum(axis=1)
    w = np.exp(log_lik - log_lik.max())
    return log_lik.max() + np.log(w.mean()), w.std(ddof=1) / (np.sqrt(n_draws) * w.mean())


@pytest.mark.parametrize("covariance", FAMILIES)
@pytest.mark.parametrize("d", [1, 2])
def test_enumerated_evidence_matches_prior_monte_carlo(covariance, d):
    rng = np.random.default_rng(7 + d)
    model = _model(covariance, d, rng)
    X = rng.normal(size=(5, d)) + 2.0 * (np.arange(5) % 2)[:, None] + model.m0
    exact = model.exact_log_evidence(X)
    estimate, se = _prior_mc_log_evidence(model, X, 200_000, np.random.default_rng(d))
    # Monte Carlo: within 4 delta-method standard errors (plus 1e-3 for the delta method).
    assert abs(estimate - exact) <= 4 * se + 1e-3, (estimate, exact, se)


def _sequential_student_t(model, X):
    """log p(X) for K = 1 as a product of one-step-ahead Student-t predictives, updating
    the conjugate posterior point by point (written from the textbook updates)."""
    d = X.shape[1]
    beta, m = model.beta0, np.array(model.m0, dtype=float)
    total = 0.0
    if model.covariance in ("diag", "spherical"):
        # Normal-Gamma: a = nu0/2, b = 1/(2 W0); predictive t with 2a dof, scale^2
        # b (1 + beta) / (a beta) (Murphy 2007, eq. 100).
        g = 1 if model.covariance == "diag" else d
        a = np.full(d // g, model.nu0 / 2)
        b = 1.0 / (2.0 * np.broadcast_to(model.W0, (d // g,)))
        for x in X:
            s2 = b * (1 + beta) / (a * beta)
            if g == 1:
                total += stats.t(df=2 * a, loc=m, scale=np.sqrt(s2)).logpdf(x).sum()
            else:
                total += stats.multivariate_t(loc=m, shape=s2[0] * np.eye(d),
                                              df=2 * a[0]).logpdf(x)
            sq = (x - m) ** 2 if g == 1 else np.array([np.sum((x - m) ** 2)])
            b = b + beta * sq / (2 * (beta + 1))
            a = a + g / 2
            m = (beta * m + x) / (beta + 1)
            beta += 1
        return total
    # Normal-Wishart (full and tied are the same model when K = 1): PRML 10.81-10.82.
    nu, W_inv = model.nu0, np.linalg.inv(model.W0)
    for x in X:
        dof = nu + 1 - d
        shape = W_inv * (1 + beta) / (dof * beta)
        total += stats.multivariate_t(loc=m, shape=shape, df=dof).logpdf(x)
        W_inv = W_inv + beta / (beta + 1) * np.outer(x - m, x - m)
        m = (beta * m + x) / (beta + 1)
        beta += 1
        nu += 1
    return total


@pytest.mark.parametrize("covariance", FAMILIES)
@pytest.mark.parametrize("d", [1, 3])
def test_one_component_evidence_is_the_sequential_student_t_product(covariance, d):
    rng = np.random.default_rng(3 * d)
    model = _model(covariance, d, rng, k=1)
    X = rng.normal(size=(6, d))
    # Exact algebra by two routes: 1e-10 relative.
    assert model.exact_log_evidence(X) == pytest.approx(_sequential_student_t(model, X),
                                                        rel=1e-10)


def _scipy_log_prior(model, weights, means, covariances):
    """ln p(pi, mu, precisions) from scipy's densities, per the issue's priors."""
    k = means.shape[0]
    out = stats.dirichlet(np.full(k, model.alpha0)).logpdf(weights)
    if model.covariance == "tied":
        lam = np.linalg.inv(covariances[0])
        out += stats.wishart(df=model.nu0, scale=model.W0).logpdf(lam)
        for j in range(k):
            out += stats.multivariate_normal(model.m0, covariances[0] / model.beta0).logpdf(
                means[j])
        return out
    if model.covariance == "full":
        for j in range(k):
            out += stats.wishart(df=model.nu0, scale=model.W0).logpdf(
                np.linalg.inv(covariances[j]))
            out += stats.multivariate_normal(model.m0, covariances[j] / model.beta0).logpdf(
                means[j])
        return out
    var = np.diagonal(covariances, axis1=1, axis2=2)
    lam = 1.0 / (var if model.covariance == "diag" else var[:, :1])
    scale = 2.0 * np.broadcast_to(model.W0, lam.shape[1:])
    out += stats.gamma(a=model.nu0 / 2, scale=scale).logpdf(lam).sum()
    out += stats.norm(model.m0, np.sqrt(var / model.beta0)).logpdf(means).sum()
    return out


@pytest.mark.parametrize("covariance", FAMILIES)
def test_log_prior_matches_scipy_and_accepts_the_native_parameter(covariance):
    rng = np.random.default_rng(4)
    model = _model(covariance, 3, rng, k=3)
    truth = model.sample(5, seed=1)
    params = {"weights": truth.weights, "means": truth.means,
              "covariances": truth.covariances}
    expected = _scipy_log_prior(model, truth.weights, truth.means, truth.covariances)
    assert model.log_prior(params) == pytest.approx(expected, rel=1e-10)
    native_name = model.covariance_prior.native_name
    native = model.covariance_prior.native(truth.covariances)
    only_native = {"weights": truth.weights, "means": truth.means, native_name: native}
    assert model.log_prior(only_native) == pytest.approx(expected, rel=1e-12)
    X = truth.x
    assert model.log_joint(X, only_native) == pytest.approx(model.log_joint(X, params),
                                                            rel=1e-12)
    # Batched: two parameter sets at once give the two values.
    batched = {name: np.stack([v, v]) for name, v in params.items()}
    assert np.allclose(model.log_prior(batched), expected, rtol=1e-10)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_sample_is_in_the_family_and_reproducible(covariance):
    rng = np.random.default_rng(2)
    model = _model(covariance, 3, rng, k=4)
    a, b = model.sample(50, seed=9), model.sample(50, seed=9)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.covariances, b.covariances)
    cov = a.covariances
    assert cov.shape == (4, 3, 3)
    off = cov - np.diagonal(cov, axis1=1, axis2=2)[..., None] * np.eye(3)
    if covariance in ("diag", "spherical"):
        assert np.all(off == 0)
    if covariance == "spherical":
        assert np.all(np.diagonal(cov, axis1=1, axis2=2) == cov[:, :1, 0])
    if covariance == "tied":
        assert np.all(cov == cov[:1])
    if covariance == "full":
        assert np.any(off != 0) and np.any(cov != cov[:1])


@pytest.mark.parametrize("covariance", FAMILIES)
def test_evidence_is_translation_and_permutation_invariant(covariance):
    rng = np.random.default_rng(12)
    model = BayesianGMM(2, alpha0=0.8, covariance=covariance)  # data-dependent priors
    X = rng.normal(size=(6, 2)) * np.array([1.0, 3.0])
    base = model.exact_log_evidence(X)
    # Default m0 and W0 follow the data: a translation changes nothing but rounding.
    assert model.exact_log_evidence(X + np.array([1e3, -50.0])) == pytest.approx(base, rel=1e-9)
    assert model.exact_log_evidence(X[::-1]) == pytest.approx(base, rel=1e-12)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_parameter_dims_name_the_native_parameter(covariance):
    dims = BayesianGMM(2, covariance=covariance).parameter_dims
    assert dims["covariances"] == ["component", "feature", "feature_bis"]
    native = {"full": "covariances", "diag": "variances", "spherical": "variance",
              "tied": "covariance"}[covariance]
    assert native in dims
    assert ("component" in dims[native]) == (covariance != "tied")


def test_defaults_per_family():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * np.array([1.0, 2.0, 4.0])
    var = X.var(axis=0, ddof=1)
    eps = 1e-6 * var.sum() / 3
    diag = BayesianGMM(2, covariance="diag").resolve(X)
    assert diag.W0.shape == (3,) and np.allclose(diag.W0, 1 / (var + eps), rtol=1e-12)
    sph = BayesianGMM(2, covariance="spherical").resolve(X)
    assert sph.W0.shape == () and sph.W0 == pytest.approx(1 / (var.mean() + eps), rel=1e-12)
    tied = BayesianGMM(2, covariance="tied").resolve(X)
    full = BayesianGMM(2).resolve(X)
    assert np.array_equal(tied.W0, full.W0)
    assert diag.nu0 == sph.nu0 == tied.nu0 == 3.0
    # diag's default is the diagonal of full's prior: W0_d = 1/(S_dd + eps) vs (S + eps)^-1.
    assert np.allclose(1 / diag.W0, np.diag(np.linalg.inv(full.W0)), rtol=1e-12)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: BayesianGMM(2, covariance="diag", W0=np.eye(2)), "W0 must have shape"),
        (lambda: BayesianGMM(2, covariance="diag", W0=[1.0, -1.0]), "W0 must be positive"),
        (lambda: BayesianGMM(2, covariance="spherical", W0=[1.0, 2.0]), "positive scalar"),
        (lambda: BayesianGMM(2, covariance="spherical", W0=0.0), "W0 must be positive"),
        (lambda: BayesianGMM(2, covariance="tied", W0=np.eye(3), nu0=1.5), "nu0"),
        (lambda: BayesianGMM(2, covariance="diag", W0=np.ones(3), nu0=0.0), "nu0"),
        (lambda: BayesianGMM(2, covariance="diag", m0=np.zeros(2), W0=np.ones(3)), "W0"),
        (lambda: BayesianGMM(2, covariance="cholesky"), "covariance"),
    ],
    ids=["diag-matrix", "diag-negative", "spherical-vector", "spherical-zero",
         "tied-nu0", "diag-nu0", "diag-shape-vs-m0", "unknown"],
)
def test_bad_hyperparameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_diag_accepts_small_nu0_that_full_refuses():
    X = np.random.default_rng(1).normal(size=(10, 3))
    assert BayesianGMM(2, covariance="diag", nu0=0.5).resolve(X).nu0 == 0.5
    with pytest.raises(ValueError, match="nu0"):
        BayesianGMM(2, nu0=0.5).resolve(X)


def test_log_prior_refuses_covariances_outside_the_family():
    rng = np.random.default_rng(3)
    model = _model("diag", 2, rng)
    full = BayesianGMM(2, m0=np.zeros(2), W0=np.eye(2), nu0=3.0, alpha0=1.0).sample(
        3, seed=0)
    with pytest.raises(ValueError, match="diagonal"):
        model.log_prior({"weights": full.weights, "means": full.means,
                         "covariances": full.covariances})
