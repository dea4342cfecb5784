"""PyMC graphs and the PyMC methods (issue 5): same model, same Fit, same scales; the
backend's one bounded cache; fits that never change after they are returned."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import gmmkit
from gmmkit import UnivariateGMM

pm = pytest.importorskip("pymc")

from gmmkit.inference.pymc import CACHE, model_graph  # noqa: E402 - after the PyMC check


def _ordered_forward(mu: np.ndarray) -> np.ndarray:
    return np.concatenate([mu[..., :1], np.log(np.diff(mu, axis=-1))], axis=-1)


# ----------------------------------------------------------------------------- graphs


@pytest.mark.parametrize("ordered", [True, False])
def test_univariate_graph_is_the_closed_form_model(ordered, rng):
    model = UnivariateGMM(3, 2.5, obs_sd=0.7)
    x = model.sample(15, seed=4).x
    graph = model_graph(model, x, ordered=ordered)
    logp = graph.compile_logp(jacobian=False)  # the density of mu itself, no Jacobian
    for _ in range(5):
        mu = np.sort(rng.normal(0.0, 2.5, size=3))
        name = "mu_ordered__" if ordered else "mu"
        value = _ordered_forward(mu) if ordered else mu
        # Map back through the ordered transform exactly as PyMC does, so that rounding
        # in log/exp does not enter the comparison.
        mu_exact = np.concatenate([value[:1], value[0] + np.cumsum(np.exp(value[1:]))]) if (
            ordered) else mu
        # Exact algebra up to float rounding over N = 15 terms: 1e-8 absolute.
        assert float(logp({name: value})) == pytest.approx(
            float(model.log_joint(x, mu_exact)), abs=1e-8
        )


def test_univariate_graph_jacobian_is_the_ordered_log_jacobian(rng):
    model = UnivariateGMM(3, 2.0)
    x = model.sample(10, seed=5).x
    graph = model_graph(model, x)
    with_jac = graph.compile_logp(jacobian=True)
    without = graph.compile_logp(jacobian=False)
    value = rng.normal(size=3)
    # d mu / d y is triangular with diagonal (1, exp(y_1), exp(y_2)): log|J| = y_1 + y_2.
    assert float(with_jac({"mu_ordered__": value}) - without({"mu_ordered__": value})) == (
        pytest.approx(value[1] + value[2], abs=1e-10)
    )


def test_same_shape_graph_is_reused_with_new_data():
    model = UnivariateGMM(2, 2.0)
    a = model_graph(model, np.arange(6.0))
    b = model_graph(model, np.arange(6.0) + 10)
    assert a is b
    np.testing.assert_array_equal(b["x"].get_value(), np.arange(6.0) + 10)


# ----------------------------------------------------------------------------- options


def test_unknown_option_is_refused():
    model = UnivariateGMM(2, 2.0)
    with pytest.raises(ValueError, match=r"unexpected option\(s\) bogus for method 'advi'"):
        gmmkit.fit(model, np.arange(6.0), "advi", bogus=1)
    with pytest.raises(ValueError, match="draws must be an integer >= 1, got 0"):
        gmmkit.fit(model, np.arange(6.0), "nuts", draws=0)


# ----------------------------------------------------------------------------- ADVI


def _conjugate_k1():
    model = UnivariateGMM(1, 3.0, obs_sd=1.0)
    x = np.random.default_rng(11).normal(2.0, 1.0, size=12)
    s2 = 1.0 / (1.0 / model.prior_sd**2 + x.size / model.obs_sd**2)
    return model, x, s2 * x.sum() / model.obs_sd**2, np.sqrt(s2)


@pytest.mark.slow
def test_advi_k1_matches_the_exact_posterior_and_evidence():
    model, x, mean, sd = _conjugate_k1()
    fit = gmmkit.fit(model, x, "advi", seed=3)
    exact = model.exact_log_evidence(x)
    # The exact posterior is Gaussian and in the family: ELBO = log Z up to the MC error
    # of the estimate (3 SE) and the optimiser's residual (0.05 nats, issue 5).
    assert abs(fit.elbo - exact) <= 3 * fit.elbo_se + 0.05, (fit.elbo, fit.elbo_se, exact)
    assert fit.elbo_se <= 0.05
    q = fit.posterior._approx
    # mu has no transform for K = 1, so q's Gaussian is q(mu): 5% (issue 5).
    assert q.mean[0] == pytest.approx(mean, rel=0.05)
    assert abs(q.chol[0, 0]) == pytest.approx(sd, rel=0.05)
    assert fit.elbo_trace.size == fit.n_iter


@pytest.mark.slow
def test_advi_is_reproducible_and_accepts_a_fit_as_init():
    model, x, _, _ = _conjugate_k1()
    CACHE.clear()
    a = gmmkit.fit(model, x, "advi", seed=8, n_iter=2000)
    other = gmmkit.fit(model, x[::-1] + 1.0, "advi", seed=9, n_iter=2000)  # same shapes
    b = gmmkit.fit(model, x, "advi", seed=8, n_iter=2000)
    # a compiled the step function; b reuses it after other moved q and Adam's state, and
    # the reset makes b draw-for-draw a.
    assert not a.diagnostics["compiled_step_reused"]
    assert other.diagnostics["compiled_step_reused"] and b.diagnostics["compiled_step_reused"]
    assert other.elbo != a.elbo
    # a's importance weights use a's data although the shared graph now holds other's:
    # their mean is a's ELBO (within 5 Monte Carlo se).
    w = a.posterior.log_importance_weights(x, 4000, np.random.default_rng(0))
    assert abs(w.mean() - a.elbo) < 5 * w.std(ddof=1) / np.sqrt(w.size) + 5 * a.elbo_se
    assert a.posterior.log_k_factorial == 0.0  # K = 1: no ordered transform
    assert a.elbo == b.elbo
    np.testing.assert_array_equal(a.elbo_trace, b.elbo_trace)
    np.testing.assert_array_equal(a.idata.posterior["mu"].values, b.idata.posterior["mu"].values)
    cavi = gmmkit.fit(UnivariateGMM(1, 3.0), x, "cavi", seed=1)
    c = gmmkit.fit(model, x, "advi", seed=8, n_iter=2000, init=cavi)
    # Started at CAVI's (exact, K = 1) mean, the first ELBO estimate is already near the top.
    assert c.elbo_trace[0] > a.elbo_trace[0]


# ----------------------------------------------------------------------------- SMC


@pytest.mark.slow
def test_smc_evidence_matches_enumeration():
    model = UnivariateGMM(2, 2.0)
    x = model.sample(7, seed=21).x
    exact = model.exact_log_evidence(x)
    fit = gmmkit.fit(model, x, "smc", seed=2, draws=1000, chains=2)
    # Issue 5 tolerance: 0.3 nats for SMC's evidence on tiny data.
    assert abs(fit.log_evidence - exact) < 0.3, (fit.log_evidence, exact)
    assert "log K!" in fit.log_evidence_source
    assert fit.idata.posterior["mu"].shape == (2, 1000, 2)


def test_smc_log_marginal_likelihood_layouts():
    from types import SimpleNamespace

    from gmmkit.inference.pymc.samplers import _final_log_marginal_likelihoods

    def idata(values):
        return SimpleNamespace(sample_stats={"log_marginal_likelihood": SimpleNamespace(
            values=values)})

    # Same number of stages in every chain: (chain, stage) scalars.
    square = np.array([[np.nan, -3.0, -2.0], [np.nan, -4.0, -1.0]], dtype=object)
    np.testing.assert_array_equal(_final_log_marginal_likelihoods(idata(square)), [-2.0, -1.0])
    # Different numbers of stages: PyMC stores (1, chain) lists; both chains count.
    ragged = np.empty((1, 2), dtype=object)
    ragged[0, 0] = [np.nan, -3.0, -2.0]
    ragged[0, 1] = [np.nan, -4.0, -5.0, -1.5]
    np.testing.assert_array_equal(_final_log_marginal_likelihoods(idata(ragged)), [-2.0, -1.5])


# ----------------------------------------------------------------------------- CAVI agreement


@pytest.mark.slow
def test_nuts_agrees_with_cavi_on_separated_data(three_clusters_4sd):
    model, x, cavi = three_clusters_4sd
    fit = gmmkit.fit(model, x, "nuts", seed=4, draws=500, tune=500)
    draws = fit.idata.posterior["mu"].values.reshape(-1, 3)
    order = np.argsort(cavi.variational_params["m"])
    # 0.1 posterior sd (issue 5); the posterior sd from NUTS itself.
    np.testing.assert_array_less(
        np.abs(draws.mean(axis=0) - cavi.variational_params["m"][order]),
        0.1 * draws.std(axis=0),
    )
    assert fit.responsibilities.shape == (300, 3)
    np.testing.assert_allclose(fit.responsibilities.sum(axis=1), 1.0, rtol=1e-12)
    assert {"rhat_max", "ess_bulk_min", "ess_tail_min", "divergences"} <= set(fit.diagnostics)
    idata = fit.idata
    assert idata.log_likelihood["x"].shape == (2, 500, 300)


@pytest.mark.slow
def test_advi_elbo_agrees_with_cavi_on_separated_data(three_clusters_4sd):
    model, x, cavi = three_clusters_4sd
    fit = gmmkit.fit(model, x, "advi", seed=4)
    # Issue 5: within 1 nat (one q covers one of the K! modes in both, no correction).
    assert abs(fit.elbo - cavi.elbo) < 1.0, (fit.elbo, cavi.elbo)
    # q lives on the ordered region: importance sampling from it estimates log Z - log 3!.
    assert fit.posterior.log_k_factorial == pytest.approx(math.log(6))
    assert fit.elbo_se <= 0.05


# ----------------------------------------------------------------------------- diagnostics


@pytest.mark.slow
def test_nuts_flags_overlapping_components():
    model = UnivariateGMM(3, 3.0)
    x = np.random.default_rng(0).normal(0.0, 1.0, size=60)  # one blob, three components
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gmmkit.fit(model, x, "nuts", seed=1, draws=60, tune=60, chains=2)
    assert fit.converged is False
    messages = " ".join(str(w.message) for w in caught)
    assert "NUTS did not converge" in messages
    assert any(p.split()[0] in messages for p in fit.diagnostics["problems"])
    assert math.isfinite(fit.diagnostics["rhat_max"])


# ----------------------------------------------------------------------------- Bishop graph


@dataclasses.dataclass(frozen=True, eq=False)
class _ResolvedPriors:
    """Stand-in with the interface of a resolved ``BayesianGMM`` (concrete priors)."""

    n_components: int = 2
    alpha0: float = 0.7
    beta0: float = 0.5
    m0: np.ndarray = dataclasses.field(default_factory=lambda: np.array([0.5, -0.2]))
    W0: np.ndarray = dataclasses.field(
        default_factory=lambda: np.array([[1.0, 0.3], [0.3, 0.5]])
    )
    nu0: float = 4.5


def test_bishop_graph_bartlett_prior_is_wishart():
    from gmmkit.inference.pymc.graphs import bayesian_gmm_graph

    priors = _ResolvedPriors()
    graph = bayesian_gmm_graph(priors, np.zeros((5, 2)))
    n = 4000
    precisions = pm.draw(graph["precisions"], draws=n, random_seed=3).reshape(-1, 2, 2)
    expected_mean = priors.nu0 * priors.W0
    # Mean within 4 Monte Carlo standard errors, entry by entry.
    se = precisions.std(axis=0, ddof=1) / np.sqrt(precisions.shape[0])
    np.testing.assert_array_less(np.abs(precisions.mean(axis=0) - expected_mean), 4 * se)
    reference = stats.wishart(df=priors.nu0, scale=priors.W0)
    logdet = np.linalg.slogdet(precisions)[1]
    # KS test of log det against scipy's Wishart: fails at level 0.001 only by chance.
    ks = stats.kstest(logdet, lambda v: _cdf_of_logdet(reference, v))
    assert ks.pvalue > 1e-3, ks


def _cdf_of_logdet(reference, values, n_ref=200_000):
    samples = reference.rvs(size=n_ref, random_state=np.random.default_rng(99))
    ref = np.sort(np.linalg.slogdet(samples)[1])
    return np.searchsorted(ref, values, side="right") / ref.size


def test_bishop_graph_is_the_closed_form_model(rng):
    from gmmkit.inference.pymc.graphs import bayesian_gmm_graph

    priors = _ResolvedPriors()
    X = rng.normal(size=(12, 2))
    graph = bayesian_gmm_graph(priors, X)
    logp = graph.compile_logp(jacobian=False)
    transforms = graph.rvs_to_transforms
    w = rng.dirichlet(np.ones(2))
    c = rng.chisquare(priors.nu0 - np.arange(2), size=(2, 2))
    z = rng.normal(size=(2, 1))
    means = rng.normal(size=(2, 2))
    point = {
        "weights_simplex__": transforms[graph["weights"]].forward(w).eval(),
        "precision_bartlett_c_log__": np.log(c),
        "precision_bartlett_z": z,
        "means": means,
    }
    # Back through PyMC's own simplex transform so that rounding does not enter.
    w = transforms[graph["weights"]].backward(point["weights_simplex__"]).eval()
    chol = np.linalg.cholesky(priors.W0)
    a = np.zeros((2, 2, 2))
    a[:, [0, 1], [0, 1]] = np.sqrt(c)
    a[:, 1, 0] = z[:, 0]
    prec = np.stack([chol @ ak @ ak.T @ chol.T for ak in a])  # Bartlett: L A A^T L^T
    cov = np.linalg.inv(prec)
    expected = (
        stats.dirichlet(np.full(2, priors.alpha0)).logpdf(w)
        + stats.chi2(priors.nu0 - np.arange(2)).logpdf(c).sum()
        + stats.norm.logpdf(z).sum()
        + sum(stats.multivariate_normal(priors.m0, cov[k] / priors.beta0).logpdf(means[k])
              for k in range(2))
        + logsumexp(
            np.log(w) + np.stack([stats.multivariate_normal(means[k], cov[k]).logpdf(X)
                                  for k in range(2)], axis=1),
            axis=1,
        ).sum()
    )
    # Exact algebra, but through inverses and Cholesky factors of K precision matrices on
    # both sides (PyMC and scipy): agreement to 1e-9 relative, tighter than the 1e-8 the
    # issue asks for.  Measured: 2e-10 relative.
    assert float(logp(point)) == pytest.approx(expected, rel=1e-9)


def test_bishop_graph_matches_bayesian_gmm_log_joint(rng):
    """The graph is BayesianGMM itself: its logp (no Jacobian) at Bartlett variables (c, z)
    is log_joint(X, theta) with the Wishart density of Lambda swapped for the chi^2 x
    normal density of (c, z) that builds it (a change of variables, nothing else)."""
    from gmmkit.models.bayesian import BayesianGMM

    d, k = 2, 3
    model = BayesianGMM(k, alpha0=0.6, beta0=0.4, m0=np.array([0.2, -0.3]),
                        W0=np.array([[0.8, 0.1], [0.1, 0.5]]), nu0=3.2)
    X = rng.normal(size=(10, d))
    graph = model_graph(model, X)
    logp = graph.compile_logp(jacobian=False)
    transforms = graph.rvs_to_transforms
    c = rng.chisquare(model.nu0 - np.arange(d), size=(k, d))
    z = rng.normal(size=(k, 1))
    point = {
        "weights_simplex__": transforms[graph["weights"]].forward(rng.dirichlet(np.ones(k))
                                                                  ).eval(),
        "precision_bartlett_c_log__": np.log(c),
        "precision_bartlett_z": z,
        "means": rng.normal(size=(k, d)),
    }
    w = transforms[graph["weights"]].backward(point["weights_simplex__"]).eval()
    a = np.zeros((k, d, d))
    a[:, [0, 1], [0, 1]] = np.sqrt(c)
    a[:, 1, 0] = z[:, 0]
    chol = np.linalg.cholesky(model.W0)
    prec = np.einsum("ij,kjl,kml,nm->kin", chol, a, a, chol)  # L A A^T L^T
    params = {"weights": w, "means": point["means"], "covariances": np.linalg.inv(prec)}
    wishart = stats.wishart(df=model.nu0, scale=model.W0)
    expected = (
        model.log_joint(X, params)
        - sum(wishart.logpdf(prec[j]) for j in range(k))
        + stats.chi2(model.nu0 - np.arange(d)).logpdf(c).sum()
        + stats.norm.logpdf(z).sum()
    )
    # Exact algebra through K small inverses on each side: 1e-9 relative.
    assert float(logp(point)) == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- Bishop fits


@pytest.mark.slow
def test_bishop_advi_and_nuts_agree_with_closed_form_vb():
    from gmmkit.models.bayesian import BayesianGMM

    rng = np.random.default_rng(0)
    centres = np.array([[-3.0, 0.0], [3.0, 1.0]])  # ~4 sd apart: one mode per labelling
    X = centres[rng.integers(2, size=150)] + rng.normal(size=(150, 2)) @ np.array(
        [[1.0, 0.0], [0.3, 0.7]])
    model = BayesianGMM(2, alpha0=1.0)
    vb = gmmkit.fit(model, X, "cavi", seed=0, n_init=3)
    ref = vb.posterior.point_estimates()
    nuts = gmmkit.align(gmmkit.fit(model, X, "nuts", seed=1, draws=500, tune=500), vb)
    draws = {name: nuts.posterior.draw(0, None)[name].reshape(-1, *ref[name].shape)
             for name in ("means", "weights")}
    sd = {name: value.std(axis=0) for name, value in draws.items()}  # posterior sd (NUTS)
    advi = gmmkit.align(gmmkit.fit(model, X, "advi", seed=1, n_iter=10_000), vb)
    # Both chains start from one data-seeded point, so they share a labelling: r-hat is
    # near 1 (chains in different labellings give ~1.8; 500 draws can just miss 1.01).
    assert nuts.diagnostics["rhat_max"] < 1.05, nuts.diagnostics["problems"]
    # Mean-field VB and the exact posterior agree closely on well-separated data.  The
    # multiples of the posterior sd cover Monte Carlo error (NUTS, ESS ~ 500: measured
    # 0.03 sd) and ADVI's stochastic optimum (constant-step Adam, one draw per gradient:
    # measured 0.10-0.36 sd over seeds 1-3).
    for fit, multiple in ((nuts, 0.25), (advi, 0.6)):
        est = fit.posterior.point_estimates()
        for name in ("means", "weights"):
            z = np.abs(est[name] - ref[name]) / sd[name]
            assert np.all(z < multiple), (fit.method, name, z)
    # Both ELBOs are on the exchangeable model's scale, no log K! (measured gap 0.6-0.8).
    assert abs(advi.elbo - vb.elbo) < 2.0, (advi.elbo, vb.elbo)


# ----------------------------------------------------------------------------- the cache


def test_lru_cache_is_bounded_and_evicts_the_least_recently_used():
    from gmmkit.inference.pymc.cache import LRUCache

    cache = LRUCache(3)
    for i in range(10):
        cache.put(("entry", i), i)
        assert len(cache) <= 3
    assert cache.keys() == [("entry", 7), ("entry", 8), ("entry", 9)]
    assert cache.get(("entry", 7)) == 7  # now the most recently used
    cache.put(("entry", 10), 10)
    assert ("entry", 8) not in cache and ("entry", 7) in cache
    value, built = cache.get_or_build(("entry", 7), lambda: pytest.fail("rebuilt"))
    assert (value, built) == (7, False)
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(0)


def test_backend_cache_stays_within_its_bound():
    from gmmkit.inference.pymc.cache import CACHE_SIZE

    assert CACHE.maxsize == CACHE_SIZE
    x = np.arange(4.0)
    for i in range(CACHE_SIZE + 5):  # more distinct graphs than the bound
        model_graph(UnivariateGMM(2, 1.0 + i), x)
        assert len(CACHE) <= CACHE.maxsize
    assert len(CACHE) == CACHE.maxsize
    newest = model_graph(UnivariateGMM(2, 1.0 + CACHE_SIZE + 4), x)
    assert newest is model_graph(UnivariateGMM(2, 1.0 + CACHE_SIZE + 4), x)


def test_cache_is_keyed_by_value_not_identity():
    from gmmkit.models.bayesian import BayesianGMM

    x = np.arange(5.0)
    # Two equal, distinct models on data of the same shape share one graph.
    first, second = UnivariateGMM(2, 2.0, obs_sd=0.5), UnivariateGMM(2, 2.0, obs_sd=0.5)
    assert first is not second
    assert model_graph(first, x) is model_graph(second, x + 1.0)
    assert model_graph(first, x) is not model_graph(UnivariateGMM(2, 2.5, obs_sd=0.5), x)
    assert model_graph(first, x) is not model_graph(first, x, ordered=False)
    assert model_graph(first, x) is not model_graph(first, np.arange(6.0))
    # BayesianGMM with equal (distinct) prior arrays: one graph.
    X = np.random.default_rng(0).normal(size=(8, 2))
    priors = {"alpha0": 1.0, "m0": np.zeros(2), "W0": np.eye(2), "nu0": 3.0}
    a = BayesianGMM(2, **{k: np.array(v, copy=True) for k, v in priors.items()})
    b = BayesianGMM(2, **{k: np.array(v, copy=True) for k, v in priors.items()})
    assert model_graph(a, X) is model_graph(b, X[::-1])
    # Graphs are found by value after a clear too: a new graph, not a stale one.
    graph = model_graph(first, x)
    CACHE.clear()
    assert model_graph(second, x) is not graph
    assert not any(isinstance(part, int) and part > 2**32 for key in CACHE.keys()
                   for part in (key if isinstance(key, tuple) else (key,)))


def test_model_graph_dispatches_on_the_model_type():
    from gmmkit import GaussianMixture

    with pytest.raises(TypeError, match="no PyMC graph for GaussianMixture"):
        model_graph(GaussianMixture(2), np.random.default_rng(0).normal(size=(6, 2)))


# ----------------------------------------------------------------------------- fits stay put


def test_advi_fit_does_not_change_after_another_fit():
    """A returned fit's importance weights are a pure function of its own arrays: another
    fit on different data of the same shape (which swaps the shared graph's data) changes
    nothing, and computing the weights leaves the shared graph's data alone."""
    from gmmkit.inference.pymc.graphs import GraphKey

    model = UnivariateGMM(2, 3.0)
    x = np.random.default_rng(1).normal(size=10) * 3
    other_x = x[::-1] + 2.0
    fit = gmmkit.fit(model, x, "advi", seed=5, n_iter=300, draws=50)
    before = fit.posterior.log_importance_weights(x, 200, np.random.default_rng(0))
    default_before = fit.posterior._approx.log_weights(200, np.random.default_rng(0))
    np.testing.assert_array_equal(before, default_before)  # x is the training data
    other = gmmkit.fit(model, other_x, "advi", seed=6, n_iter=300, draws=50)
    assert other.elbo != fit.elbo
    graph = CACHE.get(GraphKey(model, x.shape, True))
    np.testing.assert_array_equal(graph["x"].get_value(), other_x)
    after = fit.posterior.log_importance_weights(x, 200, np.random.default_rng(0))
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(fit.posterior._approx.log_weights(
        200, np.random.default_rng(0)), before)
    # ... and the shared graph still holds the other fit's data.
    np.testing.assert_array_equal(graph["x"].get_value(), other_x)
    # The weights on other data are other numbers, from the same pure function.
    assert not np.array_equal(
        fit.posterior.log_importance_weights(other_x, 200, np.random.default_rng(0)), before)
    # q holds read-only arrays; the compiled log density has no shared (mutable) inputs.
    q = fit.posterior._approx
    assert not (q.mean.flags.writeable or q.chol.flags.writeable or q.data.flags.writeable)
    assert not [i for i in q.log_density.maker.inputs if i.shared]


def test_advi_posterior_pickles_and_recompiles_its_log_density():
    import pickle

    model = UnivariateGMM(2, 3.0)
    x = np.random.default_rng(2).normal(size=9) * 3
    fit = gmmkit.fit(model, x, "fullrank_advi", seed=1, n_iter=200, draws=40)
    assert fit.method == "fullrank_advi"  # the name the table passed to the backend
    before = fit.posterior.log_importance_weights(x, 100, np.random.default_rng(3))
    restored = pickle.loads(pickle.dumps(fit.posterior))
    assert restored._approx._logp is None  # compiled code is not pickled
    CACHE.clear()  # recompiled from the model and data shape alone
    np.testing.assert_array_equal(
        restored.log_importance_weights(x, 100, np.random.default_rng(3)), before)
    np.testing.assert_array_equal(restored.draws["mu"], fit.posterior.draws["mu"])
    assert not restored.draws["mu"].flags.writeable


# ----------------------------------------------------------------------------- source rules


def _package_sources(*parts):
    import pathlib

    root = pathlib.Path(gmmkit.__file__).parent.joinpath(*parts)
    return sorted(root.rglob("*.py"))


def test_no_private_pymc_api():
    # PyMC's private start handling (``Group._prepare_start``) was used to reset q's mean.
    for path in _package_sources():
        assert "_prepare_start" not in path.read_text(), path


def test_pymc_backend_spells_no_method_name():
    """Outside the method table no module spells a method name (docstrings excepted)."""
    import ast

    from gmmkit.inference.methods import METHODS

    for path in _package_sources("inference", "pymc"):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in docstrings:
                assert node.value not in METHODS, (path, node.lineno, node.value)


def test_models_do_not_import_inference():
    for path in _package_sources("models"):
        text = path.read_text()
        assert "gmmkit.inference" not in text and "to_pymc" not in text, path
