"""``sample_weight`` with Dask input: integer weights equal repeated rows, zero weights
equal dropped rows (to 1e-10 relative, as in memory: the weighted kmeans++ seeding draws
through the cumulative weights, so it picks the same points as the repeated rows)."""

import dask.array as da
import numpy as np
import pytest

import gmmkit
from gmmkit import BayesianGMM, GaussianMixture, UnivariateGMM
from gmmkit.inference.methods import CAVI, EM, KMEANS

RTOL = 1e-10

CASES = [
    ("cavi", UnivariateGMM(3, prior_sd=5.0), CAVI.name),
    ("vb", BayesianGMM(3), CAVI.name),
    ("em-full", GaussianMixture(3), EM.name),
    ("em-diag", GaussianMixture(3, covariance="diag"), EM.name),
    ("kmeans-tied", GaussianMixture(3, covariance="tied"), KMEANS.name),
]


def _data(univariate, n=600, seed=1):
    rng = np.random.default_rng(seed)
    centres = np.array([[-5.0, 0.0], [0.0, 4.0], [5.0, 0.0]])
    X = centres[rng.integers(3, size=n)] + rng.normal(size=(n, 2))
    return X[:, 0] if univariate else X


def _close(actual, expected):
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale)


def _lazy(a, chunks):
    return da.from_array(a, chunks=(chunks, *a.shape[1:]))


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
@pytest.mark.parametrize(("label", "model", "method"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("zero", [False, True], ids=["repeat", "zero-drops"])
def test_dask_weights_equal_repeated_or_dropped_rows(threaded, label, model, method, zero):
    x = _data(isinstance(model, UnivariateGMM))
    rng = np.random.default_rng(7)
    weights = rng.integers(0 if zero else 1, 2 if zero else 4, size=x.shape[0]).astype(float)
    expanded = np.repeat(x, weights.astype(int), axis=0)
    # tol 1e-9, not 0: see TOL in test_dask_equality.py.
    options = {"seed": 3, "max_iter": 6, "tol": 1e-9}
    eager = gmmkit.fit(model, expanded, method, **options)
    lazy = gmmkit.fit(model, _lazy(x, (250, 101, 249)), method, **options,
                      sample_weight=da.from_array(weights, chunks=(300, 300)))
    assert isinstance(lazy.sample_weight, da.Array)
    _close(lazy.elbo_trace, eager.elbo_trace)
    for name, value in eager.variational_params.items():
        _close(lazy.variational_params[name], value)


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_numpy_weights_with_dask_data_equal_dask_weights(threaded):
    X = _data(False)
    weights = np.random.default_rng(2).integers(0, 3, size=X.shape[0]).astype(float)
    fits = [gmmkit.fit(GaussianMixture(3), _lazy(X, 200), EM.name, seed=0, max_iter=4,
                       tol=0.0, sample_weight=w)
            for w in (weights, da.from_array(weights, chunks=77))]
    np.testing.assert_array_equal(fits[0].elbo_trace, fits[1].elbo_trace)


@pytest.mark.parametrize(("bad", "shown"), [(-1.0, "-1.0"), (np.nan, "nan")])
def test_bad_dask_weights_are_named_with_their_index(threaded, bad, shown):
    X = _data(False)
    weights = np.ones(X.shape[0])
    weights[321] = bad
    with pytest.raises(ValueError, match=rf"sample_weight must be finite and non-negative, "
                                         rf"got {shown} at index 321 \(chunk of rows 200\.\.399\)"):
        gmmkit.fit(GaussianMixture(3), _lazy(X, 200), EM.name,
                   sample_weight=da.from_array(weights, chunks=200))


def test_dask_weights_of_the_wrong_length_are_refused_before_any_pass(threaded):
    X = _data(False)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(600,\)"):
        gmmkit.fit(GaussianMixture(3), _lazy(X, 200), EM.name,
                   sample_weight=da.ones(599, chunks=100))


def test_all_zero_dask_weights_are_refused(threaded):
    X = _data(False)
    with pytest.raises(ValueError, match="sample_weight must not be all zero"):
        gmmkit.fit(GaussianMixture(3), _lazy(X, 200), EM.name,
                   sample_weight=da.zeros(600, chunks=100))
