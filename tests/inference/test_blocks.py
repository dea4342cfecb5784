"""The shared blocked pass (``gmmkit.inference._blocks``): the floored exp is exact where
it matters, and a pass split over threads gives the same bits on any number of them."""

from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from threadpoolctl import threadpool_limits

import gmmkit
from gmmkit import BayesianGMM, GaussianMixture, UnivariateGMM
from gmmkit.inference import _blocks
from gmmkit.inference._blocks import (
    EXP_FLOOR,
    exp_floored,
    log_normaliser_rows,
    map_chunks,
    normalise_columns,
    pass_threads,
    resolve_threads,
)

FAMILIES = ["full", "diag", "spherical", "tied"]


def _fit(model, X, method="cavi", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
        return gmmkit.fit(model, X, method, seed=3, **kw)


def _far_apart(n=3000, d=3, k=4, gap=80.0, seed=0):
    """k clusters ``gap`` sd apart: most (point, component) log-density gaps are far below
    -745, where exp underflows and NumPy's exp leaves its fast path."""
    rng = np.random.default_rng(seed)
    centres = gap * np.eye(k, d) if k <= d else gap * rng.normal(size=(k, d))
    return centres[rng.integers(k, size=n)] + rng.normal(size=(n, d))


# ----------------------------------------------------------------------------- the exp
def test_exp_floored_is_numpys_exp_above_the_floor_and_exp_of_the_floor_below():
    a = np.concatenate([np.linspace(EXP_FLOOR, 0.0, 10_001), [-1e-300, 0.0]])
    np.testing.assert_array_equal(exp_floored(a), np.exp(a))  # bit for bit
    below = np.array([-700.5, -708.4, -745.2, -1e4, -np.inf])
    np.testing.assert_array_equal(exp_floored(below), np.full(5, np.exp(EXP_FLOOR)))
    out = below.copy()
    assert exp_floored(out, out=out) is out


def test_normalise_columns_equals_scipy_to_rounding_and_below_the_floor():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2000.0, size=(7, 500))  # gaps of thousands of nats
    logits[:, :3] = 5.0  # ties
    lb = logits.copy()
    col_max, col_sum = np.empty(500), np.empty(500)
    normalise_columns(lb, col_max, col_sum)
    np.testing.assert_allclose(col_max + np.log(col_sum), logsumexp(logits, axis=0),
                               rtol=1e-15, atol=0)
    # A responsibility changes only where it is below exp(EXP_FLOOR) ~ 1e-304.
    exact = softmax(logits, axis=0)
    assert np.abs(lb / col_sum - exact).max() <= np.exp(EXP_FLOOR)
    assert np.mean(exact < np.exp(EXP_FLOOR)) > 0.5  # the data do exercise the floor


def test_log_normaliser_rows_equals_scipy_including_infinite_rows():
    rng = np.random.default_rng(1)
    log_prob = rng.normal(scale=1000.0, size=(400, 5))
    np.testing.assert_allclose(log_normaliser_rows(log_prob), logsumexp(log_prob, axis=1),
                               rtol=1e-14)
    log_prob[0] = -np.inf
    log_prob[1, :4] = -np.inf
    with np.errstate(invalid="ignore"):
        expected = logsumexp(log_prob, axis=1)
    np.testing.assert_allclose(log_normaliser_rows(log_prob), expected, rtol=1e-14)
    assert log_normaliser_rows(log_prob)[0] == -np.inf


@pytest.mark.parametrize("covariance", FAMILIES)
def test_the_floor_changes_no_fit_of_far_apart_clusters(monkeypatch, covariance):
    """The floor is a speed fix, not an approximation: with EXP_FLOOR = -inf (NumPy's exp
    of every argument, the slow path included) the fit is the same to 1e-12."""
    X = _far_apart()
    model = BayesianGMM(4, covariance=covariance)
    floored = _fit(model, X, max_iter=30)
    monkeypatch.setattr(_blocks, "EXP_FLOOR", -np.inf)
    exact = _fit(model, X, max_iter=30)
    np.testing.assert_allclose(floored.elbo_trace, exact.elbo_trace, rtol=1e-12)
    for name, value in exact.variational_params.items():
        np.testing.assert_allclose(floored.variational_params[name], value, rtol=1e-12,
                                   atol=1e-300, err_msg=name)
    np.testing.assert_allclose(floored.responsibilities, exact.responsibilities, rtol=0,
                               atol=np.exp(-700.0))
    # ... and the data are ones where the floor acts: most responsibilities underflow.
    assert np.mean(exact.responsibilities < np.exp(-700.0)) > 0.5


@pytest.mark.parametrize("method", ["em", "kmeans"])
def test_the_floor_changes_no_em_fit(monkeypatch, method):
    X = _far_apart()
    model = GaussianMixture(4, covariance="diag")
    floored = _fit(model, X, method, max_iter=30)
    monkeypatch.setattr(_blocks, "EXP_FLOOR", -np.inf)
    exact = _fit(model, X, method, max_iter=30)
    np.testing.assert_allclose(floored.elbo_trace, exact.elbo_trace, rtol=1e-12)
    np.testing.assert_allclose(floored.means, exact.means, rtol=1e-12)
    np.testing.assert_allclose(floored.covariances, exact.covariances, rtol=1e-12)


# ----------------------------------------------------------------------------- threads
def test_map_chunks_covers_every_point_once_and_adds_in_chunk_order():
    n, block = 10_007, 100
    seen = np.zeros(n, dtype=int)
    lock = threading.Lock()
    rng = np.random.default_rng(2)
    # Magnitudes from 1e-8 to 1e8: the order of the additions shows in the bits.
    values = rng.normal(size=n) * 10.0 ** rng.integers(-8, 9, size=n)

    def chunk(start, stop):
        with lock:
            seen[start:stop] += 1
        part = values[start:stop]
        return np.array([part.sum()]), float(part.sum())

    results = {t: map_chunks(n, block, chunk, t) for t in (1, 2, 3, 8)}
    assert np.all(seen == 4)
    size = _blocks.CHUNK_BLOCKS * block
    expected = 0.0
    for start in range(0, n, size):  # the order the sum promises
        expected = expected + values[start : start + size].sum()
    for stats, total in results.values():
        assert stats[0] == expected and total == expected  # bit for bit


def test_map_chunks_runs_chunks_on_several_threads():
    idents = set()

    def chunk(start, stop):
        idents.add(threading.get_ident())
        time.sleep(0.005)  # long enough that one thread cannot take every chunk
        return 1

    assert map_chunks(10 * 2 * 100, 100, chunk, 2) == 10
    assert len(idents) == 2


def test_map_chunks_passes_an_error_of_a_chunk_on():
    def chunk(start, stop):
        if start > 0:
            raise RuntimeError(f"chunk at {start} failed")
        return 1.0

    with pytest.raises(RuntimeError, match="chunk at"):
        map_chunks(50_000, 1000, chunk, 2)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS caps its threads at the cores")
def test_default_threads_follow_the_blas_limit():
    with threadpool_limits(1):
        assert resolve_threads(None) == 1
    with threadpool_limits(2):
        assert resolve_threads(None) == 2
    assert resolve_threads(3) == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_n_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
        gmmkit.fit(BayesianGMM(2), np.random.default_rng(0).normal(size=(50, 2)), "cavi",
                   n_threads=bad)


def test_n_threads_is_refused_where_it_does_not_apply():
    with pytest.raises(ValueError, match=r"unexpected option.*n_threads"):
        gmmkit.fit(GaussianMixture(2), np.random.default_rng(0).normal(size=(50, 2)), "em",
                   n_threads=2)


def test_light_passes_run_on_one_thread():
    assert pass_threads(4, 16, 9) == 1  # tied, D = 8: K p = 144
    assert pass_threads(4, 16, 65) == 4  # diag, D = 32


def _threaded_fits(model, X, **kw):
    return [_fit(model, X, n_threads=t, max_iter=15, **kw) for t in (1, 2, 3)]


@pytest.mark.parametrize("weight_prior", ["dirichlet_distribution", "dirichlet_process"])
@pytest.mark.parametrize("covariance", FAMILIES)
def test_a_fit_is_the_same_to_the_bit_on_any_number_of_threads(covariance, weight_prior):
    # D = 24, K = 12: every family's pass is heavy enough to run threaded (K p >= 256,
    # tied included), and N = 20,000 makes several chunks.
    d, k, n = 24, 12, 20_000
    rng = np.random.default_rng(4)
    X = 3.0 * rng.normal(size=(k, d))[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    model = BayesianGMM(k, covariance=covariance, weight_prior=weight_prior)
    p = {"full": 1 + d + d * (d + 1) // 2, "diag": 1 + 2 * d, "spherical": 2 + d,
         "tied": 1 + d}[covariance]
    assert pass_threads(2, k, p) == 2
    assert n > _blocks.CHUNK_BLOCKS * _blocks.block_size(k, p)  # several chunks
    fits = _threaded_fits(model, X)
    assert len({f.n_iter for f in fits}) == 1
    for other in fits[1:]:
        np.testing.assert_array_equal(other.elbo_trace, fits[0].elbo_trace)
        np.testing.assert_array_equal(other.responsibilities, fits[0].responsibilities)
        for name, value in fits[0].variational_params.items():
            np.testing.assert_array_equal(other.variational_params[name], value,
                                          err_msg=name)


def test_a_weighted_threaded_fit_is_the_same_to_the_bit():
    rng = np.random.default_rng(5)
    X = 4.0 * rng.normal(size=(8, 16))[rng.integers(8, size=20_000)] + rng.normal(
        size=(20_000, 16))
    weights = rng.integers(0, 4, size=20_000).astype(float)
    fits = _threaded_fits(BayesianGMM(8, covariance="diag"), X, sample_weight=weights)
    for other in fits[1:]:
        np.testing.assert_array_equal(other.elbo_trace, fits[0].elbo_trace)
        np.testing.assert_array_equal(other.responsibilities, fits[0].responsibilities)


def test_univariate_cavi_on_threads_is_the_same_to_the_bit():
    rng = np.random.default_rng(6)
    x = rng.normal(np.array([-30.0, 0.0, 30.0])[rng.integers(3, size=20_000)], 1.0)
    # K = 150 components make the pass heavy enough to be split (K p = 300).
    assert pass_threads(2, 150, 2) == 2
    fits = _threaded_fits(UnivariateGMM(150, 20.0), x)
    for other in fits[1:]:
        np.testing.assert_array_equal(other.elbo_trace, fits[0].elbo_trace)
        np.testing.assert_array_equal(other.variational_params["m"],
                                      fits[0].variational_params["m"])
