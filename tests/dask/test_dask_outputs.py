"""What a fit on Dask data gives back: lazy responsibilities, Zarr output, pickling,
small InferenceData, and the checks that run without computing the data."""

import pickle

import dask.array as da
import numpy as np
import pytest

import gmmkit
from gmmkit import BayesianGMM, GaussianMixture, UnivariateGMM
from gmmkit import result as result_module
from gmmkit.inference.methods import CAVI, EM, NUTS


def _X(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    return centres[rng.integers(3, size=n)] + rng.normal(size=(n, 2))


@pytest.fixture(scope="module")
def lazy_fit():
    import dask

    X = _X()
    with dask.config.set(scheduler="threads"):
        fit = gmmkit.fit(BayesianGMM(3), da.from_array(X, chunks=(400, 2)), CAVI.name, seed=1)
    return X, fit


def test_responsibilities_are_lazy_and_equal_the_posterior(lazy_fit):
    X, fit = lazy_fit
    resp = fit.responsibilities
    assert isinstance(resp, da.Array)
    assert resp.chunks == ((400, 400, 400, 300), (3,))  # the data's row chunks
    # Computed on request, chunk by chunk, from the final posterior (exact algebra).
    np.testing.assert_allclose(resp.compute(), fit.predict_proba(X), rtol=1e-12, atol=1e-15)
    assert fit.is_lazy and isinstance(fit.data, da.Array)


def test_save_writes_zarr_and_load_reads_it_lazily(lazy_fit, tmp_path):
    _, fit = lazy_fit
    out = fit.save(tmp_path / "fit")
    assert (out / result_module.RESPONSIBILITIES_ZARR).is_dir()
    assert not (out / "responsibilities.npy").exists()
    loaded = gmmkit.load(out)
    assert isinstance(loaded.responsibilities, da.Array)
    np.testing.assert_array_equal(loaded.responsibilities.compute(),
                                  fit.responsibilities.compute())
    np.testing.assert_array_equal(loaded.data, fit.data.compute())  # small: written
    np.testing.assert_array_equal(loaded.elbo_trace, fit.elbo_trace)
    manifest = gmmkit.output.read_manifest(out)  # the Zarr files are gmmkit's too
    assert any(f.startswith(result_module.RESPONSIBILITIES_ZARR + "/")
               for f in manifest["files"])


def test_large_lazy_data_are_not_copied_into_the_output(lazy_fit, tmp_path, monkeypatch):
    X, fit = lazy_fit
    monkeypatch.setattr(result_module, "LAZY_DATA_MAX_BYTES", 0)
    out = fit.save(tmp_path / "fit")
    assert not (out / "data.npy").exists()
    loaded = gmmkit.load(out)
    assert loaded.data.shape == (0, 2)  # a stand-in of the data's width
    np.testing.assert_array_equal(loaded.predict(X[:5]), fit.predict(X[:5]))


def test_lazy_fit_pickles(lazy_fit):
    _, fit = lazy_fit
    again = pickle.loads(pickle.dumps(fit))
    assert isinstance(again.responsibilities, da.Array)
    np.testing.assert_array_equal(again.responsibilities.compute(),
                                  fit.responsibilities.compute())
    np.testing.assert_array_equal(again.means, fit.means)


def test_inference_data_hold_no_pointwise_log_likelihood_unless_subsampled(lazy_fit):
    X, fit = lazy_fit
    idata = fit.to_inference_data(draws=20)
    assert "log_likelihood" not in idata.groups()
    assert idata.observed_data["x"].shape == (0, 2)
    assert "subsample" in idata.posterior.attrs["log_likelihood_omitted"]
    sub = fit.to_inference_data(draws=20, subsample=40)
    assert sub.log_likelihood["x"].shape == (1, 20, 40)
    rows = sub.observed_data["x"].values
    # The sample is of the data's own rows.
    assert all((X == row).all(axis=1).any() for row in rows)


def test_subsample_is_refused_for_in_memory_fits():
    fit = gmmkit.fit(GaussianMixture(2), _X(200), EM.name, seed=0)
    with pytest.raises(ValueError, match="subsample applies to fits on Dask data only"):
        fit.to_inference_data(draws=5, subsample=10)


def test_non_finite_values_name_the_chunk_and_row(scheduler):
    X = _X()
    X[1234, 1] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite, but the chunk of rows "
                                         r"1200\.\.1499 holds 1 NaN/inf value\(s\); the "
                                         r"first is in row 1234"):
        gmmkit.fit(GaussianMixture(3), da.from_array(X, chunks=(300, 2)), EM.name)


def _never_computed(X, chunks):
    """A Dask array whose blocks raise when computed: checks on it must not compute."""
    def boom(block):
        raise AssertionError("the data were computed")
    return da.from_array(X, chunks=chunks).map_blocks(boom, dtype=X.dtype)


def test_shape_and_dtype_are_checked_without_computing(threaded):
    X = _X()
    with pytest.raises(ValueError, match=r"x must be 1-D data .* got a Dask array of shape"):
        gmmkit.fit(UnivariateGMM(3, prior_sd=5.0), _never_computed(X, (500, 2)))
    with pytest.raises(ValueError, match=r"must be numeric .* dtype bool"):
        gmmkit.fit(GaussianMixture(3), da.from_array(X > 0, chunks=500), EM.name)
    with pytest.raises(ValueError, match="must hold at least 3 points, got 2"):
        gmmkit.fit(GaussianMixture(3), _never_computed(X[:2], (1, 2)), EM.name)


def test_methods_without_a_chunked_backend_refuse_dask_input(threaded):
    with pytest.raises(ValueError, match=r"method 'nuts' does not take a Dask array"):
        gmmkit.fit(BayesianGMM(3), _never_computed(_X(), (500, 2)), NUTS.name)


def test_a_failed_save_leaves_no_output_directory(threaded, tmp_path):
    """The responsibilities are computed while the directory is written; if the data
    become unreadable then, the save fails and leaves nothing (output.atomic_directory)."""
    X = _X()
    broken = {"now": False}

    def read(block):
        if broken["now"]:
            raise OSError("storage went away")
        return block

    fit = gmmkit.fit(GaussianMixture(3), da.from_array(X, chunks=(300, 2)).map_blocks(read),
                     EM.name, seed=0)
    broken["now"] = True
    with pytest.raises(OSError, match="storage went away"):
        fit.save(tmp_path / "fit")
    assert list(tmp_path.iterdir()) == []


def test_unknown_chunk_sizes_are_refused_with_the_remedy(threaded):
    X = da.from_array(_X(), chunks=(500, 2))
    filtered = X[X[:, 0] > 0]  # a boolean mask: row counts unknown until computed
    with pytest.raises(ValueError, match=r"known chunk sizes.*compute_chunk_sizes"):
        gmmkit.fit(GaussianMixture(3), filtered, EM.name)
