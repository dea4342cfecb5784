import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gmmkit
from gmmkit import UnivariateGMM

# pytest-xdist already runs one worker per core; a multi-threaded BLAS in every worker
# oversubscribes the cores, and OpenBLAS's spinning threads then slow small linear
# algebra down tenfold or more.  One BLAS thread per worker.
threadpool_limits(1)


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


@pytest.fixture(scope="module")
def three_clusters_10sd():
    """Three well-separated clusters (10 sd apart), K = 3, and its CAVI fit:
    (model, x, true means, true labels, fit)."""
    model = UnivariateGMM(3, 20.0)
    rng = np.random.default_rng(11)
    means = np.array([-10.0, 0.0, 10.0])
    labels = rng.integers(3, size=300)
    x = rng.normal(means[labels], 1.0)
    fit = gmmkit.fit(model, x, seed=0, n_init=3)
    return model, x, means, labels, fit


@pytest.fixture(scope="module")
def three_clusters_4sd():
    """Three clusters 4 sd apart (separated, but their tails touch), K = 3, prior sd 5,
    and its CAVI fit: (model, x, fit)."""
    rng = np.random.default_rng(5)
    means = np.array([-4.0, 0.0, 4.0])
    x = rng.normal(means[rng.integers(3, size=300)], 1.0)
    model = UnivariateGMM(3, 5.0)
    return model, x, gmmkit.fit(model, x, "cavi", seed=0, n_init=3)
