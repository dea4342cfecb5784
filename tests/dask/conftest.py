"""Fixtures of the Dask tests: the threaded scheduler and one 2-worker LocalCluster.

The cluster is started once per test session (per pytest-xdist worker), with one thread
per worker process so that two processes really run in parallel on two cores.
"""

import dask
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="session")
def local_cluster():
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                      dashboard_address=":0", memory_limit="1GiB") as cluster:
        yield cluster


@pytest.fixture
def distributed_client(local_cluster):
    """A client on the session's cluster, set as the default scheduler for the test."""
    with Client(local_cluster, set_as_default=True) as client:
        yield client


@pytest.fixture
def threaded():
    """The local threaded scheduler (Dask's default), made explicit."""
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture(params=["threads", "distributed"])
def scheduler(request):
    """Each test using it runs on the threaded scheduler and on the 2-worker cluster."""
    if request.param == "distributed":
        request.getfixturevalue("distributed_client")
    else:
        request.getfixturevalue("threaded")
    return request.param
