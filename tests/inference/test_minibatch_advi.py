"""Minibatch ADVI (issue 15): the ``batch_size`` option of ADVI and full-rank ADVI.

The graph's minibatch log density is unbiased for the full data's (the ``total_size``
scaling, checked to Monte Carlo error at a fixed point); fits refuse bad batch sizes and
Dask input clearly, stop under minibatch noise, agree with the full-data path and with VB,
and are reproducible bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gmmkit
from gmmkit.inference.methods import ADVI, CAVI, FULLRANK_ADVI
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.univariate import UnivariateGMM


def _two_clusters_1d(n_per=300, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 1.0, n_per) for c in (-4.0, 4.0)])


def _two_clusters_2d(n_per=150, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 1.0, (n_per, 2)) for c in ([-4.0, 0.0], [4.0, 1.0])])


def _fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
        return gmmkit.fit(*args, **kw)


UNIVARIATE = UnivariateGMM(2, prior_sd=10.0)


@pytest.mark.parametrize("method", [ADVI.name, FULLRANK_ADVI.name])
@pytest.mark.parametrize(
    ("batch_size", "message"),
    [
        (0, "batch_size must be between 1 and the number of points N=600, got 0"),
        (-5, "batch_size must be between 1 and the number of points N=600, got -5"),
        (601, "batch_size must be between 1 and the number of points N=600, got 601"),
        (2.5, "batch_size must be None .* or an integer .* got 2.5"),
        (True, "batch_size must be None .* or an integer .* got True"),
        ("64", "batch_size must be None .* or an integer .* got '64'"),
    ],
)
def test_bad_batch_sizes_refused(method, batch_size, message):
    with pytest.raises(ValueError, match=message):
        gmmkit.fit(UNIVARIATE, _two_clusters_1d(), method, batch_size=batch_size)


def test_large_dask_input_refused_with_the_reason(monkeypatch):
    from gmmkit.inference.pymc import advi

    da = pytest.importorskip("dask.array")
    x = da.from_array(_two_clusters_1d(), chunks=200)  # 600 float64: 4800 bytes
    monkeypatch.setattr(advi, "MAX_DASK_BYTES", 4000)
    with pytest.raises(ValueError, match=r"x must fit in memory for 'advi'.*Minibatch.*'svi'"):
        gmmkit.fit(UNIVARIATE, x, ADVI.name, batch_size=50)


def test_small_dask_input_is_validated_like_numpy():
    da = pytest.importorskip("dask.array")
    x = _two_clusters_1d()
    x[7] = np.nan
    with pytest.raises(ValueError, match="finite"):
        gmmkit.fit(UNIVARIATE, da.from_array(x, chunks=200), ADVI.name, batch_size=50)


@pytest.mark.slow
def test_small_dask_input_fits_as_numpy():
    # Computed into memory, it is the NumPy fit, bit for bit.
    da = pytest.importorskip("dask.array")
    x = _two_clusters_1d(n_per=100)
    kw = dict(seed=3, batch_size=20, n_iter=1000, draws=100)
    mem = _fit(UNIVARIATE, x, ADVI.name, **kw)
    lazy = _fit(UNIVARIATE, da.from_array(x, chunks=70), ADVI.name, **kw)
    np.testing.assert_array_equal(lazy.elbo_trace, mem.elbo_trace)
    assert lazy.elbo == mem.elbo


@pytest.mark.slow
@pytest.mark.parametrize(("model", "data"), [
    pytest.param(UNIVARIATE, _two_clusters_1d, id="univariate"),
    pytest.param(BayesianGMM(2), _two_clusters_2d, id="bishop"),
])
@pytest.mark.parametrize("fraction", [1.0, 0.1])
def test_minibatch_log_density_is_unbiased_for_the_full_data(model, data, fraction):
    # At a fixed point theta, log p(theta) + (N/|B|) sum_B log p(x_i | theta) over fresh
    # minibatches averages to the full-data log density: a wrong total_size scaling
    # (e.g. none, a bias of (1 - |B|/N) log p(x | theta), hundreds of nats) fails.
    # Tolerance: 4 standard errors of the mean of R draws.
    from gmmkit.inference.pymc.graphs import graph_for
    from gmmkit.inference.pymc.minibatch import minibatch_graph

    x = data()
    graph, key, _ = graph_for(model, x)
    point = graph.initial_point()
    full = float(graph.compile_logp()(point))
    batch_size = int(fraction * x.shape[0])
    (mb, _), _, _ = minibatch_graph(key, x, batch_size)
    logp = mb.compile_logp()
    draws = np.array([float(logp(point)) for _ in range(400)])
    assert np.unique(draws).size > 300  # a fresh minibatch each evaluation
    se = draws.std(ddof=1) / np.sqrt(draws.size)
    assert abs(draws.mean() - full) <= 4 * se
    assert se < 0.05 * abs(full)  # the check has teeth: the SE is far below the bias


@pytest.mark.slow
def test_fits_agree_with_full_data_and_vb_and_stop_under_noise():
    # N = 600, two clusters 8 sd apart; VB's posterior sd of each mean is 0.058.
    x = _two_clusters_1d()
    vb = gmmkit.fit(UNIVARIATE, x, CAVI.name, seed=0)
    full = _fit(UNIVARIATE, x, ADVI.name, seed=0)
    same = _fit(UNIVARIATE, x, ADVI.name, seed=0, batch_size=x.shape[0])
    small = _fit(UNIVARIATE, x, ADVI.name, seed=0, batch_size=50)
    assert full.diagnostics["batch_size"] is None and small.diagnostics["batch_size"] == 50
    # The windowed stopping rule is met under minibatch noise (it scales with the noise).
    assert small.converged and small.n_iter < ADVI.options["n_iter"]
    # The reported ELBO is the full-data estimate, in nats of all N points: with
    # batch_size = N both runs end within Adam's jitter of q's optimum (measured <= 0.8
    # nats over seeds 0-1; each estimate's MC standard error is <= 0.05 nats).
    for fit in (same, small):
        assert fit.elbo_se <= ADVI.options["elbo_se_target"] or (
            fit.diagnostics["elbo_draws"] == ADVI.options["max_elbo_draws"])
    assert abs(same.elbo - full.elbo) <= 2.0
    # Minibatches of 50 cost at most a few nats more (measured 0.5-0.8).
    assert abs(small.elbo - full.elbo) <= 3.0
    # Means agree with VB's within 0.15 (2.5 posterior sd): Adam's jitter at learning
    # rate 0.01 moves ADVI's q means by up to ~0.08 (measured, full data and minibatch).
    vb_means = np.sort(vb.posterior.point_estimates()["means"].ravel())
    for fit in (full, same, small):
        means = np.sort(fit.posterior.point_estimates()["means"].ravel())
        np.testing.assert_allclose(means, vb_means, atol=0.15)


@pytest.mark.slow
def test_same_seed_same_bits():
    from gmmkit.inference.pymc import CACHE

    x = _two_clusters_1d(n_per=100)
    kw = dict(seed=4, batch_size=20, n_iter=1500, draws=200)
    first = _fit(UNIVARIATE, x, ADVI.name, **kw)
    reused = _fit(UNIVARIATE, x, ADVI.name, **kw)  # the cached graph and step function
    assert reused.diagnostics["compiled_step_reused"]
    CACHE.clear()
    fresh = _fit(UNIVARIATE, x, ADVI.name, **kw)  # built and compiled afresh
    for fit in (reused, fresh):
        np.testing.assert_array_equal(fit.elbo_trace, first.elbo_trace)
        np.testing.assert_array_equal(fit.posterior.draws["mu"], first.posterior.draws["mu"])
        assert fit.elbo == first.elbo
    other = _fit(UNIVARIATE, x, ADVI.name, **{**kw, "seed": 5})
    assert not np.array_equal(other.elbo_trace, first.elbo_trace)
