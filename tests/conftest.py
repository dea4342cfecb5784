import numpy as np
import pytest
from threadpoolctl import threadpool_limits

# pytest-xdist already runs one worker per core; a multi-threaded BLAS in every worker
# oversubscribes the cores, and OpenBLAS's spinning threads then slow small linear
# algebra down tenfold or more.  One BLAS thread per worker.
threadpool_limits(1)


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)
