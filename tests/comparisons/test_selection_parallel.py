"""gmmkit.select in worker processes: the same bits as serial, warnings not lost."""

import warnings

import numpy as np
import pandas as pd
import pytest

import gmmkit
from gmmkit.comparisons.selection import select


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(11)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 5.0]])
    return centres[rng.integers(3, size=150)] + rng.standard_normal((150, 2))


def test_parallel_selection_is_bit_identical_to_serial(blobs):
    kwargs = dict(n_components=[1, 2, 3], covariance=("full", "diag"),
                  criteria=("bound", "bic", "icl", "cv"), n_init=2, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = select(blobs, n_jobs=1, **kwargs)
        parallel = select(blobs, n_jobs=2, **kwargs)
    pd.testing.assert_frame_equal(serial.table, parallel.table, check_exact=True)
    assert dict(serial.best) == dict(parallel.best)
    assert serial.notes == parallel.notes
    assert list(serial.fits) == list(parallel.fits)
    for cand, fit in serial.fits.items():
        np.testing.assert_array_equal(fit.responsibilities, parallel.fits[cand].responsibilities)
        # Fits come back from the workers frozen, like every Fit.
        assert not parallel.fits[cand].responsibilities.flags.writeable
    assert np.isfinite(parallel.table["cv"]).all()


def test_warnings_of_worker_fits_reach_the_caller(blobs):
    with pytest.warns(gmmkit.ConvergenceWarning):
        select(blobs, [2, 3], models="gmm", criteria="bic", n_init=1, n_jobs=2,
               fit_options={"max_iter": 2})


def test_cv_restarts_per_fold_are_their_own_option(blobs):
    """cv_n_init changes only the fold fits: the full-data criteria are unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = select(blobs, [2, 4], models="gmm", criteria=("bic", "cv"), n_init=2,
                     cv_n_init=1, n_jobs=1)
        three = select(blobs, [2, 4], models="gmm", criteria=("bic", "cv"), n_init=2,
                       cv_n_init=3, n_jobs=1)
    np.testing.assert_array_equal(one.table["bic"], three.table["bic"])
    assert not np.array_equal(one.table["cv"], three.table["cv"])
    assert (three.table["cv_se"] > 0).all()
