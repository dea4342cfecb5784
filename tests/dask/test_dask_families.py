"""Dask input for the Bayesian covariance families other than full: refused plainly (never
silently fitted with the full family's VB), while the Dirichlet-process weight prior runs
on the full family's chunked VB and equals the in-memory fit."""

import dask.array as da
import numpy as np
import pytest

import gmmkit
from gmmkit import BayesianGMM
from gmmkit.inference.methods import CAVI


@pytest.mark.parametrize("covariance", ["diag", "spherical", "tied"])
def test_restricted_bayesian_families_refuse_dask_input(threaded, covariance):
    X = da.from_array(np.random.default_rng(0).normal(size=(120, 2)), chunks=(50, 2))
    with pytest.raises(ValueError, match=rf"covariance='{covariance}'\) does not take a "
                                         r"Dask array yet"):
        gmmkit.fit(BayesianGMM(2, covariance=covariance), X, CAVI.name, seed=0)


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
