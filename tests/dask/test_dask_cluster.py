"""A fit on a LocalCluster survives a worker killed in the middle of it.

The data are persisted on the workers (they fit in the cluster's memory); the killed
worker's chunks and running tasks are recomputed by Dask from the graph, the nanny
restarts the process, and the fit ends exactly as on the threaded scheduler (the
reduction tree has a fixed shape, so no sum is reordered).
"""

import os
import signal
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client

import gmmkit
from gmmkit import BayesianGMM
from gmmkit.inference.methods import CAVI


def _data():
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=4.0, size=(4, 4))
    return centres[rng.integers(4, size=40_000)] + rng.normal(size=(40_000, 4))


@pytest.mark.filterwarnings("ignore::gmmkit.ConvergenceWarning")
def test_a_worker_killed_during_a_fit_is_survived(distributed_client):
    client = distributed_client
    X = _data()
    options = {"seed": 5, "tol": 0.0, "max_iter": 40}
    with dask.config.set(scheduler="threads"):
        expected = gmmkit.fit(BayesianGMM(4), da.from_array(X, chunks=(5000, 4)), CAVI.name,
                              **options)
    pids_before = set(client.run(os.getpid).values())
    outcome: dict = {}

    def run():
        try:
            outcome["fit"] = gmmkit.fit(BayesianGMM(4), da.from_array(X, chunks=(5000, 4)),
                                        CAVI.name, **options)
        except Exception as err:  # reported (and failed) in the main thread
            outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while not any(client.processing().values()):  # wait for a pass to be under way
        assert time.monotonic() < deadline, "the fit never started a pass"
        assert worker.is_alive(), "the fit ended before a worker could be killed"
        time.sleep(0.01)
    victim = next(iter(pids_before))
    os.kill(victim, signal.SIGKILL)
    killed_during_fit = worker.is_alive()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert killed_during_fit
    assert "error" not in outcome, outcome.get("error")
    fit = outcome["fit"]
    scale = np.abs(expected.elbo_trace).max()
    np.testing.assert_allclose(fit.elbo_trace, expected.elbo_trace, rtol=1e-10,
                               atol=1e-10 * scale)
    np.testing.assert_allclose(fit.means, expected.means, rtol=1e-10, atol=1e-10)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the process
    assert victim not in set(client.run(os.getpid).values())


def test_data_that_fit_are_persisted_on_the_workers_others_streamed(distributed_client,
                                                                      monkeypatch):
    from gmmkit.inference import chunked

    X = da.from_array(_data()[:1000], chunks=(300, 4))
    data = chunked.prepare(X, None, name="X", univariate=False, min_points=1)
    stored = {key for keys in distributed_client.has_what().values() for key in keys}
    assert {k for row in data.x.__dask_keys__() for k in row} <= stored
    monkeypatch.setattr(chunked, "PERSIST_FRACTION", 0.0)
    streamed = chunked.prepare(X + 1.0, None, name="X", univariate=False, min_points=1)
    stored = {key for keys in distributed_client.has_what().values() for key in keys}
    assert not set(k for row in streamed.x.__dask_keys__() for k in row) & stored


def test_a_fit_made_on_the_cluster_outlives_it(local_cluster):
    """The Fit keeps the user's graph, not the data persisted on the workers: after the
    client is closed its responsibilities still compute (threaded), and it pickles."""
    import pickle

    X = _data()[:2000]
    with Client(local_cluster, set_as_default=True):
        fit = gmmkit.fit(BayesianGMM(4), da.from_array(X, chunks=(700, 4)), CAVI.name,
                         seed=0, max_iter=20)
    with dask.config.set(scheduler="threads"):
        again = pickle.loads(pickle.dumps(fit))
        np.testing.assert_allclose(again.responsibilities.compute(), fit.predict_proba(X),
                                   rtol=1e-12, atol=1e-15)
