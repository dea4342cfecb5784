"""Dask input equals in-memory input: the same fit, from the same seed, to 1e-10.

With N <= chunked.SAMPLE_ROWS the Dask path seeds k-means++ on all rows in order, so
both paths start from the same initial state; afterwards the only differences are the
order of floating-point sums (per chunk, then a tree), so traces and parameters agree to
rounding.  1e-10 relative (the issue's bar) leaves ~10^5 ulps for ~10 iterations of
summing ~10^3 terms.  Chunks are deliberately uneven (including a tiny one).
"""

import dask.array as da
import numpy as np
import pytest

import gmmkit
from gmmkit import BayesianGMM, GaussianMixture, UnivariateGMM
from gmmkit.inference.methods import CAVI, EM, KMEANS

RTOL = 1e-10
FAMILIES = ("full", "diag", "spherical", "tied")
ROW_CHUNKS = (700, 1000, 13, 587)  # N = 2300, uneven on purpose
#: Not 0: a fit that reaches a fixed point changes by exactly 0 in one path and by
#: rounding (~1e-12) in the other, so tol = 0 would stop them at different iterations;
#: 1e-9 nats stops both at the same one (unless a change falls within 1e-12 of 1e-9).
TOL = 1e-9


N_ROWS = sum(ROW_CHUNKS)


def _data(n=N_ROWS, d=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    return centres[rng.integers(k, size=n)] + rng.normal(size=(n, d)) + 100.0


def assert_close(actual, expected, what):
    """Elementwise to RTOL of the array's largest magnitude: entries near zero (an
    off-diagonal covariance, a tiny responsibility) carry no relative digits of their own,
    but the same absolute rounding as the largest entry."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def assert_same_fit(lazy, eager):
    assert isinstance(lazy.responsibilities, da.Array)
    assert isinstance(lazy.data, da.Array)
    assert_close(lazy.elbo_trace, eager.elbo_trace, "elbo_trace")
    if eager.log_likelihood_trace is not None:
        assert_close(lazy.log_likelihood_trace, eager.log_likelihood_trace, "log-likelihood")
    for name, value in eager.variational_params.items():
        assert_close(lazy.variational_params[name], value, name)
    assert_close(lazy.responsibilities.compute(), eager.responsibilities, "responsibilities")
    assert lazy.n_iter == eager.n_iter
    assert lazy.converged == eager.converged


def _cases():
    yield "cavi-univariate", UnivariateGMM(4, prior_sd=5.0), CAVI.name, True
    yield "vb-full", BayesianGMM(4), CAVI.name, False
    for family in FAMILIES:
        yield f"em-{family}", GaussianMixture(4, covariance=family), EM.name, False
        yield f"kmeans-{family}", GaussianMixture(4, covariance=family), KMEANS.name, False


CASES = list(_cases())


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
@pytest.mark.parametrize(("label", "model", "method", "univariate"), CASES,
                         ids=[c[0] for c in CASES])
def test_dask_fit_equals_in_memory_fit(scheduler, label, model, method, univariate):
    X = _data()
    x = X[:, 0] - 100.0 if univariate else X  # CAVI's prior is not translation invariant
    chunks = (ROW_CHUNKS,) if univariate else (ROW_CHUNKS, (1, 2))  # columns split too
    options = {"seed": 4, "max_iter": 8, "tol": TOL}
    eager = gmmkit.fit(model, x, method, **options)
    lazy = gmmkit.fit(model, da.from_array(x, chunks=chunks), method, **options)
    assert eager.n_iter >= 3  # several passes compared, not just the initial state
    assert_same_fit(lazy, eager)


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_restarts_pick_the_same_restart(threaded):
    X = _data(seed=2)
    options = {"seed": 11, "n_init": 3, "max_iter": 6, "tol": TOL}
    eager = gmmkit.fit(GaussianMixture(4), X, EM.name, **options)
    lazy = gmmkit.fit(GaussianMixture(4), da.from_array(X, chunks=(ROW_CHUNKS, 3)),
                      EM.name, **options)
    assert_close(lazy.restart_elbos, eager.restart_elbos, "restart objectives")
    assert_same_fit(lazy, eager)


def test_emptied_clusters_are_reseeded_as_in_memory(threaded):
    """Two far-away initial means attract no point: both paths re-seed them with the same
    farthest points (one extra pass each on Dask) and continue identically."""
    from gmmkit.inference import chunked, em

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(200, 2)) + 6.0])
    means0 = np.array([[0.0, 0.0], [6.0, 6.0], [50.0, 50.0], [-40.0, 0.0]])
    options = {"seed": 1, "n_init": 1, "init": means0, "tol": TOL, "max_iter": 5,
               "progress": False, "method": KMEANS.name, "sample_weight": None}
    eager = em.fit_kmeans(GaussianMixture(4), X, **options)
    lazy = chunked.fit_em(GaussianMixture(4), da.from_array(X, chunks=((100, 250, 150), 2)),
                          hard=True, **options)
    assert eager.diagnostics["reseeded_clusters"] == 2
    assert lazy.diagnostics["reseeded_clusters"] == 2
    assert_same_fit(lazy, eager)


def test_translation_invariance_on_dask(threaded):
    """The centring pass makes a shifted data set give the same fit (up to the rounding
    of the shifted data themselves, ~1e-16 * 1e6 relative to unit spreads)."""
    X = _data(seed=3) - 100.0
    fits = [gmmkit.fit(GaussianMixture(3), da.from_array(X + shift, chunks=(ROW_CHUNKS, 3)),
                       EM.name, seed=2, max_iter=5, tol=0.0)
            for shift in (0.0, 1e6)]
    # A trace may stop one iteration earlier where a change is exactly 0 in one of them.
    n = min(len(f.log_likelihood_trace) for f in fits)
    assert n >= 2
    np.testing.assert_allclose(fits[1].log_likelihood_trace[:n],
                               fits[0].log_likelihood_trace[:n], rtol=1e-8)
    np.testing.assert_allclose(fits[1].means - 1e6, fits[0].means, atol=1e-6)


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_large_data_seed_on_a_seeded_sample(threaded, monkeypatch):
    """Above SAMPLE_ROWS rows, k-means++ seeds on a uniform sample drawn by the seed: the
    same seed gives the same bits, and the initial state differs from the all-rows one."""
    from gmmkit.inference import chunked

    X = _data(seed=5)
    lazy = da.from_array(X, chunks=(ROW_CHUNKS, 3))
    options = {"seed": 8, "max_iter": 4, "tol": 0.0}
    all_rows = gmmkit.fit(GaussianMixture(4), lazy, EM.name, **options)
    monkeypatch.setattr(chunked, "SAMPLE_ROWS", 500)
    first = gmmkit.fit(GaussianMixture(4), lazy, EM.name, **options)
    again = gmmkit.fit(GaussianMixture(4), lazy, EM.name, **options)
    np.testing.assert_array_equal(first.elbo_trace, again.elbo_trace)
    np.testing.assert_array_equal(first.means, again.means)
    assert first.elbo_trace[0] != all_rows.elbo_trace[0]


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_progress_bar_runs_per_pass(threaded):
    X = _data()
    fit = gmmkit.fit(GaussianMixture(2), da.from_array(X, chunks=(ROW_CHUNKS, 3)), EM.name,
                     seed=0, progress=True, tol=0.0, max_iter=5)
    assert fit.n_iter == len(fit.elbo_trace) - 1 >= 1  # one bar update per pass


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_float32_zarr_on_disk_sliced_equals_in_memory(threaded, tmp_path):
    """A Zarr store read lazily (float32, cast per chunk; a slice that cuts its chunks)."""
    X = _data(seed=6).astype(np.float32)
    da.from_array(X, chunks=(1100, 3)).to_zarr(str(tmp_path / "x.zarr"))
    lazy = da.from_zarr(str(tmp_path / "x.zarr"))[100:2200]
    options = {"seed": 2, "max_iter": 5, "tol": TOL}
    eager = gmmkit.fit(GaussianMixture(3), X[100:2200].astype(float), EM.name, **options)
    assert_same_fit(gmmkit.fit(GaussianMixture(3), lazy, EM.name, **options), eager)


@pytest.mark.parametrize("model", [UnivariateGMM(2, 5.0), BayesianGMM(2, covariance="diag")],
                         ids=["univariate", "bayesian"])
def test_n_threads_is_refused_for_dask_input(threaded, model):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400,) if isinstance(model, UnivariateGMM) else (400, 2))
    with pytest.raises(ValueError, match="n_threads applies to in-memory data"):
        gmmkit.fit(model, da.from_array(x, chunks=100), CAVI.name, n_threads=2)
    # None, the default, is what the chunked driver runs with.
    fit = gmmkit.fit(model, da.from_array(x, chunks=100), CAVI.name, n_threads=None)
    assert np.isfinite(fit.elbo)
