"""Output directories: never delete what gmmkit did not write; save/load; sizes; Ctrl-C."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import gmmkit
from gmmkit import output
from gmmkit.cli import cli

REPO = Path(__file__).resolve().parents[1]


def two_blobs(n: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(-3, 1, (n // 2, 2)), rng.normal(3, 1, (n - n // 2, 2))])


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    np.savetxt(path, two_blobs(), delimiter=",", header="a,b", comments="")
    return path


def fit_args(data, out, *extra):
    return ["fit", str(data), "--model", "gmm", "-k", "2", "--quiet", "--out", str(out),
            *extra]


# ---------------------------------------------------------------- --force safety
def test_force_refuses_current_directory_and_keeps_its_files(csv_file, monkeypatch):
    monkeypatch.chdir(csv_file.parent)
    (csv_file.parent / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, fit_args(csv_file.name, ".", "--force"))
    assert result.exit_code == 2
    assert "current directory" in result.output
    assert sorted(p.name for p in csv_file.parent.iterdir()) == ["data.csv", "notes.txt"]


def test_force_refuses_parent_of_input_and_the_input(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    data = sub / "x.csv"
    np.savetxt(data, two_blobs(), delimiter=",", header="a,b", comments="")
    # Even a gmmkit output that contains the input must not be replaced.
    (sub / output.MANIFEST).write_text(json.dumps({"gmmkit_output": 1, "kind": "fit"}))
    result = CliRunner().invoke(cli, fit_args(data, sub, "--force"))
    assert result.exit_code == 2 and "containing it" in result.output
    result = CliRunner().invoke(cli, fit_args(data, data, "--force"))
    assert result.exit_code == 2
    assert data.is_file() and sorted(p.name for p in sub.iterdir()) == [
        output.MANIFEST, "x.csv"]


def test_force_refuses_non_gmmkit_directory(csv_file, tmp_path):
    user = tmp_path / "results"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(cli, fit_args(csv_file, user, "--force"))
    assert result.exit_code == 2 and "not written by gmmkit" in result.output
    assert (user / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "results"]


def test_force_replaces_gmmkit_output_and_manifest_lists_files(csv_file, tmp_path):
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, fit_args(csv_file, out)).exit_code == 0
    manifest = json.loads((out / output.MANIFEST).read_text())
    assert manifest["kind"] == "fit" and manifest["gmmkit_version"] == gmmkit.__version__
    assert set(manifest["files"]) == {
        p.name for p in out.iterdir() if p.name != output.MANIFEST}
    (out / "stale.txt").write_text("from the old run")
    result = CliRunner().invoke(cli, fit_args(csv_file, out, "--force"))
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists()
    # Nothing hidden left beside it (temporary or backup directories).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "out"]


def test_unwritable_parent_refused_before_fitting(csv_file, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # running as root: permissions are not enforced
        locked.chmod(0o700)
        pytest.skip("permissions are not enforced for this user")
    called = []
    monkeypatch.setattr(gmmkit.api, "fit", lambda *a, **k: called.append(1))
    try:
        result = CliRunner().invoke(cli, fit_args(csv_file, locked / "a" / "out"))
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2 and "not writable" in result.output
    assert called == []


def test_unwritable_check_uses_os_access(csv_file, tmp_path, monkeypatch):
    """Same check with os.access faked, so it also runs as root."""
    called = []
    monkeypatch.setattr(gmmkit.api, "fit", lambda *a, **k: called.append(1))
    real = os.access
    monkeypatch.setattr(output.os, "access",
                        lambda p, mode: False if Path(p) == tmp_path else real(p, mode))
    result = CliRunner().invoke(cli, fit_args(csv_file, tmp_path / "new" / "out"))
    assert result.exit_code == 2 and "not writable" in result.output
    assert called == []


def test_output_directory_honours_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with output.atomic_directory(tmp_path / "out", kind="test") as tmp:
            (tmp / "f.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750


def test_failure_during_swap_restores_old_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with output.atomic_directory(out, kind="test") as tmp:
        (tmp / "old.txt").write_text("old")
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # new -> target
            raise OSError("disk on fire")
        real_rename(src, dst)

    monkeypatch.setattr(output.os, "rename", flaky_rename)
    with pytest.raises(OSError, match="disk on fire"):
        with output.atomic_directory(out, True, kind="test") as tmp:
            (tmp / "new.txt").write_text("new")
    assert (out / "old.txt").read_text() == "old" and not (out / "new.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_removes_created_parents(tmp_path):
    with pytest.raises(RuntimeError):
        with output.atomic_directory(tmp_path / "a" / "b" / "out", kind="test"):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- Fit.save / load
@pytest.fixture(scope="module")
def fits():
    x = two_blobs(80, seed=3)
    return {
        "cavi-univariate": gmmkit.fit(gmmkit.UnivariateGMM(2, prior_sd=10.0), x[:, 0], "cavi",
                                      seed=0),
        "vb": gmmkit.fit(gmmkit.BayesianGMM(2), x, "cavi", seed=0),
        "em": gmmkit.fit(gmmkit.GaussianMixture(2), x, "em", seed=0, n_init=2),
    }


def assert_fits_equal(a: gmmkit.Fit, b: gmmkit.Fit) -> None:
    import dataclasses

    for field in dataclasses.fields(gmmkit.Fit):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if field.name == "posterior":
            assert type(left) is type(right)
            for name, value in left.params().items():
                np.testing.assert_array_equal(right.params()[name], value)
            for name, value in left.point_estimates().items():
                np.testing.assert_array_equal(right.point_estimates()[name], value)
        elif field.name == "diagnostics":
            assert set(left) == set(right)
            for key in left:
                np.testing.assert_equal(right[key], left[key])
        elif isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
            np.testing.assert_array_equal(right, left, err_msg=field.name)
            assert not right.flags.writeable, field.name
        elif isinstance(left, float) and np.isnan(left):
            assert np.isnan(right), field.name
        else:
            assert right == left, field.name
    np.testing.assert_array_equal(b.predict_proba(a.data), a.predict_proba(a.data))


@pytest.mark.parametrize("name", ["cavi-univariate", "vb", "em"])
def test_save_load_round_trip(fits, name, tmp_path):
    fit = fits[name]
    loaded = gmmkit.load(fit.save(tmp_path / "fit"))
    assert_fits_equal(fit, loaded)
    # The human-readable responsibilities are full precision too.
    csv = np.loadtxt(tmp_path / "fit" / "responsibilities.csv", delimiter=",", skiprows=1,
                     ndmin=2)
    np.testing.assert_array_equal(csv, fit.responsibilities)
    assert (tmp_path / "fit" / "diagnostics.json").is_file()


@pytest.mark.parametrize("name", ["vb", "em"])
def test_pickle_round_trip(fits, name):
    assert_fits_equal(fits[name], pickle.loads(pickle.dumps(fits[name])))


def test_comparison_pickles(fits):
    comparison = gmmkit.compare({"vb": fits["vb"], "em": fits["em"]}, psis_draws=50)
    copy = pickle.loads(pickle.dumps(comparison))
    assert list(copy.fits) == ["vb", "em"] and copy.reference == comparison.reference
    assert copy.table.equals(comparison.table)


def test_save_refuses_non_empty_and_replaces_only_gmmkit_output(fits, tmp_path):
    fit = fits["em"]
    user = tmp_path / "user"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not empty; pass replace=True"):
        fit.save(user)
    with pytest.raises(ValueError, match="not written by gmmkit"):
        fit.save(user, replace=True)
    assert sorted(p.name for p in user.iterdir()) == ["keep.txt"]
    out = fit.save(tmp_path / "out")
    with pytest.raises(ValueError, match="not empty"):
        fit.save(out)
    fits["vb"].save(out, replace=True)
    assert gmmkit.load(out).method == "cavi"


def test_save_failure_on_last_file_leaves_directory_as_it_was(fits, tmp_path, monkeypatch):
    out = fits["em"].save(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gmmkit.result._arviz, "to_netcdf", broken)  # idata.nc: written last
    with pytest.raises(OSError, match="disk full"):
        fits["vb"].save(out, replace=True)
    with pytest.raises(OSError, match="disk full"):
        fits["vb"].save(tmp_path / "fresh")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_load_refuses_other_directories(tmp_path):
    with pytest.raises(ValueError, match="not a saved gmmkit fit"):
        gmmkit.load(tmp_path)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:NUTS did not converge")
def test_save_load_pymc_nuts(tmp_path):
    x = two_blobs(40, seed=1)[:, 0]
    fit = gmmkit.fit(gmmkit.UnivariateGMM(2, prior_sd=10.0), x, "nuts", seed=0, draws=50,
                     tune=50, chains=1)
    assert_fits_equal(fit, gmmkit.load(fit.save(tmp_path / "nuts")))
    assert_fits_equal(fit, pickle.loads(pickle.dumps(fit)))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:advi did not meet")
def test_pickled_advi_fit_recompiles_its_log_density():
    # The compiled log density is not pickled; the copy compiles it again on first use
    # and gives the same importance weights as the original, draw for draw.
    x = two_blobs(40, seed=1)[:, 0]
    fit = gmmkit.fit(gmmkit.UnivariateGMM(2, prior_sd=10.0), x, "advi", seed=0, n_iter=200,
                     draws=20)
    copy = pickle.loads(pickle.dumps(fit))
    np.testing.assert_array_equal(copy.responsibilities, fit.responsibilities)
    np.testing.assert_array_equal(
        copy.posterior.log_importance_weights(x, 10, np.random.default_rng(0)),
        fit.posterior.log_importance_weights(x, 10, np.random.default_rng(0)))


# ---------------------------------------------------------------- sizes
def test_inference_data_log_likelihood_sized_for_data(fits):
    fit = fits["vb"]
    with pytest.raises(ValueError, match="draws must be an integer >= 1, got 0"):
        fit.to_inference_data(draws=0)
    assert "log_likelihood" in fit.to_inference_data(draws=10).groups()
    omitted = fit.to_inference_data(draws=10, log_likelihood=False)
    assert "log_likelihood" not in omitted.groups()
    assert "log_likelihood=False" in omitted.posterior.attrs["log_likelihood_omitted"]


def test_inference_data_omits_log_likelihood_above_threshold(fits, monkeypatch):
    monkeypatch.setattr(gmmkit.result, "LOG_LIKELIHOOD_MAX_FLOATS", 100)
    fit = fits["vb"]
    idata = fit.to_inference_data(draws=10)  # 10 x 80 floats > 100
    assert "log_likelihood" not in idata.groups()
    assert "exceeds" in idata.posterior.attrs["log_likelihood_omitted"]
    assert "log_likelihood" in fit.to_inference_data(draws=10, log_likelihood=True).groups()


def test_large_responsibilities_written_as_npy_only(fits, tmp_path, monkeypatch):
    monkeypatch.setattr(gmmkit.result, "CSV_MAX_CELLS", 10)
    out = fits["em"].save(tmp_path / "out")
    assert not (out / "responsibilities.csv").exists()
    np.testing.assert_array_equal(np.load(out / "responsibilities.npy"),
                                  fits["em"].responsibilities)


# ---------------------------------------------------------------- Ctrl-C
@pytest.mark.slow
def test_sigint_during_nuts_exits_130_and_saves_nothing(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 1))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a", comments="")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmmkit", "fit", "x.csv", "--model", "univariate", "-k", "2",
         "--method", "nuts", "--draws", "100000", "--tune", "1000", "--chains", "1",
         "--out", str(out)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "fitting nuts" in line or not line:
                break
        assert "fitting nuts" in line, line
        # Past compilation (~2-5 s) and inside pm.sample, which swallows the first Ctrl-C;
        # the second must not turn into "Not enough samples" (exit 2).
        time.sleep(8)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, stderr = proc.communicate(timeout=10)
        assert time.monotonic() - start < 10
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted; nothing was saved" in stderr
    assert "Not enough samples" not in stderr and "Traceback" not in stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]
