"""The family kernels of ``gmmkit.models.gaussian`` in blocks of rows: the same values as
one block, and memory that does not grow with N * K * D."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import gmmkit
from gmmkit import GaussianMixture
from gmmkit.models import gaussian
from gmmkit.models.gaussian import family_log_gaussian_prob, family_precision_factor

FAMILIES = ["full", "diag", "spherical", "tied"]


def _parameters(covariance, k, d, rng):
    means = rng.normal(size=(k, d))
    if covariance == "full":
        a = rng.normal(size=(k, d, d))
        covariances = a @ np.swapaxes(a, 1, 2) + d * np.eye(d)
    elif covariance == "tied":
        a = rng.normal(size=(d, d))
        covariances = a @ a.T + d * np.eye(d)
    elif covariance == "diag":
        covariances = rng.uniform(0.5, 2.0, size=(k, d))
    else:
        covariances = rng.uniform(0.5, 2.0, size=k)
    return means, family_precision_factor(covariances, covariance)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_blocked_kernels_equal_one_block(monkeypatch, covariance):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1001, 5))
    means, factor = _parameters(covariance, 4, 5, rng)
    whole = family_log_gaussian_prob(X, means, factor, covariance)
    monkeypatch.setattr(gaussian, "_KERNEL_BLOCK_FLOATS", 7 * 4 * 5)  # blocks of 7 rows
    blocked = family_log_gaussian_prob(X, means, factor, covariance)
    # Rows are independent: the same numbers, up to the BLAS's tile edges (full, tied).
    np.testing.assert_allclose(blocked, whole, rtol=1e-14, atol=0)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_em_memory_does_not_grow_with_n_k_d(covariance):
    """An (N, K, D) temporary at N = 20,000, D = 32, K = 16 is 82 MB; the fit's arrays are
    a few (N, D) and (N, K) ones (5 MB and 2.6 MB)."""
    rng = np.random.default_rng(1)
    n, d, k = 20_000, 32, 16
    X = 4.0 * rng.normal(size=(k, d))[rng.integers(k, size=n)] + rng.normal(size=(n, d))

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gmmkit.ConvergenceWarning)
            gmmkit.fit(GaussianMixture(k, covariance=covariance), X, "em", seed=0, max_iter=3)

    fit()  # first-call allocations (caches of the libraries) are not the fit's
    tracemalloc.start()
    try:
        fit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Measured 26-33 MiB (96-171 MiB when the kernels built (N, K, D) arrays).
    n_k_d_bytes = 8 * n * k * d
    assert peak < 0.5 * n_k_d_bytes, f"peak {peak / 2**20:.1f} MiB"
