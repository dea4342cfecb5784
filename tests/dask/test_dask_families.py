"""Dask input for every Bayesian covariance family: diag, spherical and tied run their own
closed-form VB chunk by chunk (:func:`gmmkit.inference.chunked.fit_vb_family` with
:mod:`gmmkit.inference.vb_diag` / :mod:`gmmkit.inference.vb_tied`) and equal the in-memory
fit, as full does; the Dirichlet-process weight prior too.

With N <= chunked.SAMPLE_ROWS both paths seed k-means++ on all rows in order and start
from the same state; afterwards only the order of floating-point sums differs (per chunk,
then a tree; tied's scatter from the streamed moments), so 1e-10 relative (the issue's
bar, exact algebra) leaves ~10^5 ulps for ~10 iterations of summing ~10^3 terms.
"""

import dask.array as da
import numpy as np
import pytest

import gmmkit
from gmmkit import BayesianGMM
from gmmkit.inference import chunked, vb, vb_diag, vb_tied
from gmmkit.inference.methods import CAVI

FAMILIES = ("diag", "spherical", "tied")
RTOL = 1e-10
ROW_CHUNKS = (700, 1000, 13, 587)  # N = 2300, uneven on purpose
#: Not 0: a fit at a fixed point changes by exactly 0 in one path and by rounding in the
#: other, so tol = 0 could stop them at different iterations (test_dask_equality.py).
TOL = 1e-9


N_ROWS = sum(ROW_CHUNKS)


def _data(n=N_ROWS, d=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    return centres[rng.integers(k, size=n)] + rng.normal(size=(n, d)) + 100.0


def assert_close(actual, expected, what):
    """Elementwise to RTOL of the array's largest magnitude (entries near zero carry the
    absolute rounding of the largest one)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def assert_same_fit(lazy, eager):
    assert isinstance(lazy.responsibilities, da.Array)
    assert isinstance(lazy.data, da.Array)
    assert_close(lazy.elbo_trace, eager.elbo_trace, "elbo_trace")
    assert set(lazy.variational_params) == set(eager.variational_params)
    for name, value in eager.variational_params.items():
        assert_close(lazy.variational_params[name], value, name)
    assert_close(lazy.responsibilities.compute(), eager.responsibilities, "responsibilities")
    assert lazy.n_iter == eager.n_iter
    assert lazy.converged == eager.converged


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
@pytest.mark.parametrize("covariance", FAMILIES)
def test_restricted_bayesian_family_on_dask_equals_in_memory(scheduler, covariance):
    X = _data()  # offset by 100: the centring pass must match the in-memory centring
    model = BayesianGMM(4, covariance=covariance)
    options = {"seed": 4, "max_iter": 8, "tol": TOL}
    eager = gmmkit.fit(model, X, CAVI.name, **options)
    # Uneven row chunks (one of 13 rows) and split columns.
    lazy = gmmkit.fit(model, da.from_array(X, chunks=(ROW_CHUNKS, (1, 2))), CAVI.name,
                      **options)
    assert eager.n_iter >= 3  # several passes compared, not just the initial state
    assert_same_fit(lazy, eager)
    assert_close(lazy.means, eager.means, "means")
    assert_close(lazy.covariances, eager.covariances, "covariances")
    assert lazy.model.covariance == covariance


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_restarts_pick_the_same_restart_for_tied(threaded):
    X = _data(seed=2)
    options = {"seed": 11, "n_init": 3, "max_iter": 6, "tol": TOL}
    model = BayesianGMM(4, covariance="tied")
    eager = gmmkit.fit(model, X, CAVI.name, **options)
    lazy = gmmkit.fit(model, da.from_array(X, chunks=(ROW_CHUNKS, 3)), CAVI.name, **options)
    assert_close(lazy.restart_elbos, eager.restart_elbos, "restart objectives")
    assert_same_fit(lazy, eager)


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
@pytest.mark.parametrize("covariance", ["spherical", "tied"])
def test_dask_sample_weight_equals_in_memory_weights(threaded, covariance):
    """Weights on Dask (chunked unlike the data, so the driver rechunks them) against the
    same weights in memory; zero weights included."""
    X = _data(n=900, seed=7)
    weights = np.random.default_rng(8).integers(0, 4, size=X.shape[0]).astype(float)
    model = BayesianGMM(3, covariance=covariance)
    options = {"seed": 5, "max_iter": 8, "tol": TOL}
    eager = gmmkit.fit(model, X, CAVI.name, sample_weight=weights, **options)
    lazy = gmmkit.fit(model, da.from_array(X, chunks=((400, 17, 483), 3)), CAVI.name,
                      sample_weight=da.from_array(weights, chunks=300), **options)
    assert eager.n_iter >= 3
    assert_same_fit(lazy, eager)
    assert isinstance(lazy.sample_weight, da.Array)


def test_each_family_routes_to_its_own_vb_module():
    expected = {"full": vb, "diag": vb_diag, "spherical": vb_diag, "tied": vb_tied}
    for covariance, module in expected.items():
        prior = BayesianGMM(2, covariance=covariance).covariance_prior
        assert chunked.vb_family_module(prior) is module


def test_dirichlet_process_weights_on_dask_equal_in_memory(threaded):
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = centres[rng.integers(3, size=400)] + rng.normal(size=(400, 2))
    model = BayesianGMM(5, alpha0=0.1, weight_prior="dirichlet_process")
    in_memory = gmmkit.fit(model, X, CAVI.name, seed=3)
    on_dask = gmmkit.fit(model, da.from_array(X, chunks=(37, X.shape[1])), CAVI.name, seed=3)
    # Same arithmetic, sums in another order: exact algebra to 1e-10 relative.
    np.testing.assert_allclose(on_dask.elbo_trace, in_memory.elbo_trace, rtol=1e-10)
    np.testing.assert_allclose(on_dask.means, in_memory.means, rtol=1e-10, atol=1e-10)
    for name in ("stick_a", "stick_b"):
        np.testing.assert_allclose(on_dask.variational_params[name],
                                   in_memory.variational_params[name], rtol=1e-10)
