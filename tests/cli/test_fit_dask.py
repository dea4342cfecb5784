"""``gmmkit fit`` on Dask: Zarr and Parquet input, ``--workers`` (a local cluster for the
run), ``--scheduler`` (an existing cluster), ``--chunk-rows``; the same fit as in memory;
bad flag combinations refused; a worker that dies leaves no output directory behind, and
one that dies once is survived."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr
from click.testing import CliRunner
from distributed import LocalCluster

import gmmkit
from gmmkit.cli import cli
from gmmkit.models.factory import build_model

# The worker-killing functions below are defined here; a worker process cannot import
# this test module, so they travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: Exact algebra on the same chunks in the same order: equal to rounding (issue 15).
RTOL = 1e-10


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker cluster for the module's --scheduler runs."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(15)
    return np.concatenate([rng.normal(-3.0, 1.0, size=(230, 2)),
                           rng.normal(2.5, 0.7, size=(170, 2))])


@pytest.fixture
def zarr_store(tmp_path, data):
    # Uneven chunks: 4 of 90 rows and one of 40.
    path = tmp_path / "points.zarr"
    zarr.create_array(path, shape=data.shape, chunks=(90, 2), dtype="f8")[:] = data
    return path


def in_memory_fit(X: np.ndarray, method: str, model_name: str = "bayesian") -> gmmkit.Fit:
    """The fit ``gmmkit fit`` makes with its defaults, on the data in memory."""
    model = build_model(model_name, 2, X)
    return gmmkit.fit(model, X, method, seed=0)


def read_responsibilities(out: Path) -> np.ndarray:
    """Written chunk by chunk to Zarr by a Dask fit, never as one (N, K) ``.npy``."""
    assert not (out / "responsibilities.npy").exists()
    return np.asarray(zarr.open_array(out / "responsibilities.zarr", mode="r")[:])


def assert_same_fit(out: Path, expected: gmmkit.Fit) -> None:
    params = json.loads((out / "params.json").read_text())
    trace = np.loadtxt(out / "elbo_trace.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1]
    np.testing.assert_allclose(trace, expected.elbo_trace, rtol=RTOL)
    np.testing.assert_allclose(params["means"], expected.means, rtol=RTOL)
    np.testing.assert_allclose(params["weights"], expected.weights, rtol=RTOL)
    np.testing.assert_allclose(read_responsibilities(out),
                               np.asarray(expected.responsibilities), rtol=RTOL, atol=1e-300)


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    """What a run left in ``parent`` besides ``keep`` (temporary directories included)."""
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


# ---------------------------------------------------------------------- the same fit
def test_workers_fit_of_a_zarr_store_equals_the_in_memory_fit(zarr_store, data, tmp_path):
    out = tmp_path / "vb"
    result = CliRunner().invoke(
        cli, ["fit", str(zarr_store), "-k", "2", "--workers", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "starting a local Dask cluster of 2 worker process(es)" in result.output
    assert "(2 worker(s))" in result.output
    assert "read lazily with Dask: 400 rows x 2 columns in 5 chunk(s)" in result.output
    assert_same_fit(out, in_memory_fit(data, "cavi"))


def test_scheduler_fit_of_parquet_files_equals_the_in_memory_fit(cluster, data, tmp_path):
    source = tmp_path / "frames"
    source.mkdir()
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(data))],
                          "u": data[:, 0], "v": data[:, 1]})
    for i, rows in enumerate(np.array_split(np.arange(len(data)), 3)):
        frame.iloc[rows].to_parquet(source / f"part-{i}.parquet")
    out = tmp_path / "em"
    result = CliRunner().invoke(cli, [
        "fit", str(source), "--columns", "u,v", "--model", "gmm", "--method", "em", "-k",
        "2", "--scheduler", cluster.scheduler_address, "--chunk-rows", "70", "--out",
        str(out)])
    assert result.exit_code == 0, result.output
    assert f"running on the Dask scheduler at {cluster.scheduler_address}" in result.output
    assert "in 6 chunk(s) of up to 70 rows" in result.output
    assert_same_fit(out, in_memory_fit(data, "em", "gmm"))


def test_zarr_without_dask_options_runs_on_the_threaded_scheduler(zarr_store, data, tmp_path):
    out = tmp_path / "km"
    result = CliRunner().invoke(cli, ["fit", str(zarr_store), "--model", "gmm", "--method",
                                      "kmeans", "-k", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Dask cluster" not in result.output and "Dask scheduler" not in result.output
    assert_same_fit(out, in_memory_fit(data, "kmeans", "gmm"))


def test_csv_with_chunk_rows_is_fitted_lazily(data, tmp_path):
    source = tmp_path / "points.csv"
    np.savetxt(source, data, delimiter=",", header="a,b", comments="")
    out = tmp_path / "csv"
    result = CliRunner().invoke(cli, ["fit", str(source), "-k", "2", "--chunk-rows", "150",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "in 3 chunk(s) of up to 150 rows" in result.output
    assert_same_fit(out, in_memory_fit(np.loadtxt(source, delimiter=",", skiprows=1),
                                       "cavi"))


# ------------------------------------------------------------------------- bad flags
@pytest.mark.parametrize(("args", "message"), [
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
     "--scheduler and --workers exclude each other"),
    (["--workers", "0"], "Invalid value for '--workers'"),
    (["--chunk-rows", "0"], "Invalid value for '--chunk-rows'"),
    (["--scheduler", " "], "--scheduler must be a scheduler address"),
])
def test_bad_dask_flags_are_refused_before_anything_runs(zarr_store, tmp_path, args,
                                                          message):
    out = tmp_path / "never"
    result = CliRunner().invoke(cli, ["fit", str(zarr_store), *args, "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.output
    assert "starting a local Dask cluster" not in result.output
    assert not out.exists()


def test_a_method_that_needs_memory_refuses_dask_options(cluster, zarr_store, tmp_path):
    out = tmp_path / "nuts"
    result = CliRunner().invoke(cli, ["fit", str(zarr_store), "--method", "nuts",
                                      "--scheduler", cluster.scheduler_address,
                                      "--out", str(out)])
    assert result.exit_code == 2
    assert ("apply to the methods that take Dask data (cavi, svi, advi, fullrank_advi) for "
            "--model bayesian; "
            "method 'nuts' needs its data in memory") in result.output
    assert not out.exists()


def test_no_scheduler_at_the_address_is_a_clear_error(zarr_store, tmp_path, monkeypatch):
    from gmmkit.cli import common

    monkeypatch.setattr(common, "CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "nowhere"
    # Port 9 (discard) has no scheduler.
    result = CliRunner().invoke(cli, ["fit", str(zarr_store), "--scheduler",
                                      "tcp://127.0.0.1:9", "--out", str(out)])
    assert result.exit_code == 2
    assert "--scheduler: no Dask scheduler answered at 'tcp://127.0.0.1:9' within 1 s" in (
        result.output)
    assert not out.exists()


# --------------------------------------------------------------------- dying workers
def die_in_a_worker(block: np.ndarray, marker: str | None = None) -> np.ndarray:
    """Kill the worker process computing ``block`` (never the test's own process); with
    ``marker``, only the first time (the marker file says it has happened)."""
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return block
    if marker is not None:
        try:
            with open(marker, "x"):
                pass
        except FileExistsError:
            return block
    os._exit(1)


def poisoned_read_table(marker: str | None = None):
    """``read_table`` whose data kill the worker that reads them."""
    from gmmkit.cli import common

    def read_table(*args, **kwargs):
        table = common.read_table(*args, **kwargs)
        X = table.X.map_blocks(die_in_a_worker, marker=marker, dtype=np.float64)
        return type(table)(X, table.names, table.labels, table.notes)

    return read_table


def test_a_worker_dying_in_the_fit_is_reported_and_nothing_is_written(
        zarr_store, tmp_path, monkeypatch):
    fit_command = importlib.import_module("gmmkit.cli.fit")  # the module, not the command
    monkeypatch.setattr(fit_command, "read_table", poisoned_read_table())
    out = tmp_path / "killed"
    # The scheduler (in this process) gives up on the first death, not after three.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        result = CliRunner().invoke(cli, ["fit", str(zarr_store), "--workers", "1",
                                          "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "gmmkit: error: a Dask worker died while computing" in result.output
    assert "nothing was saved" in result.output and "Traceback" not in result.output
    assert leftovers(tmp_path, {"points.zarr"}) == []


def test_a_worker_dying_while_the_output_is_written_leaves_no_directory(
        zarr_store, tmp_path, monkeypatch):
    import gmmkit.report as report

    written = []

    def write_then_lose_a_worker(result, directory, **kwargs):
        fit_command_write(result, directory, **kwargs)
        written.append(sorted(p.name for p in directory.iterdir()))
        # The next chunk written (here: a stand-in computation) kills its worker.
        da.ones(4, chunks=2).map_blocks(die_in_a_worker, dtype=float).compute()

    fit_command_write = report.write_fit_report
    monkeypatch.setattr(report, "write_fit_report", write_then_lose_a_worker)
    out = tmp_path / "half"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        result = CliRunner().invoke(cli, ["fit", str(zarr_store), "--workers", "1",
                                          "--out", str(out)])
    assert written and "params.json" in written[0]  # files were in the temporary directory
    assert result.exit_code == 1, result.output
    assert "a Dask worker died while computing" in result.output
    assert leftovers(tmp_path, {"points.zarr"}) == []


def test_a_worker_dying_once_is_survived_with_the_same_fit(
        cluster, zarr_store, data, tmp_path, monkeypatch):
    fit_command = importlib.import_module("gmmkit.cli.fit")  # the module, not the command
    marker = tmp_path / "died-once"
    monkeypatch.setattr(fit_command, "read_table", poisoned_read_table(str(marker)))
    out = tmp_path / "survived"
    result = CliRunner().invoke(cli, ["fit", str(zarr_store), "--scheduler",
                                      cluster.scheduler_address, "--out", str(out)])
    assert marker.exists()  # a worker did die
    assert result.exit_code == 0, result.output
    assert_same_fit(out, in_memory_fit(data, "cavi"))


def test_a_missing_value_found_on_a_worker_is_a_clear_error(cluster, data, tmp_path):
    """The reader's check runs where the chunk is read, on a worker; its ValueError still
    reaches the user as one line and exit status 2."""
    with_gap = data.copy()
    with_gap[311, 1] = np.nan
    store = tmp_path / "gap.zarr"
    zarr.create_array(store, shape=data.shape, chunks=(90, 2), dtype="f8")[:] = with_gap
    out = tmp_path / "gap-fit"
    result = CliRunner().invoke(cli, ["fit", str(store), "--scheduler",
                                      cluster.scheduler_address, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert ("1 missing or non-finite value(s) in rows 271 to 360; the first is in row 312, "
            "column '1'. Remove or impute them first, or pass --dropna") in result.output
    assert leftovers(tmp_path, {"gap.zarr"}) == []
