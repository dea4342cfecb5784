"""The ``gmmkit`` command line: real subprocess runs, every bad-input case, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import gmmkit
from gmmkit import datasets
from gmmkit.cli import cli

FAITHFUL = str(datasets.old_faithful_path())


def run_gmmkit(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The installed program, in a fresh interpreter, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "gmmkit", *args], cwd=cwd, capture_output=True, text=True,
        input=stdin, timeout=300,
    )


def read_csv_matrix(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def assert_fit_directory(out: Path, n_points: int, n_components: int) -> dict:
    """The files of ``Fit.save`` plus the two figures exist and parse."""
    for name in ("responsibilities.csv", "params.json", "elbo_trace.csv", "idata.nc",
                 "trace.png", "fit.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    resp = read_csv_matrix(out / "responsibilities.csv")
    assert resp.shape == (n_points, n_components)
    # Rows are probabilities: written with 10 significant digits, so they sum to 1 within
    # K rounding errors of 5e-11 each.
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=n_components * 5e-10)
    trace = read_csv_matrix(out / "elbo_trace.csv")
    assert trace.shape[0] >= 2 and np.isfinite(trace[:, 1]).all()
    from gmmkit._arviz import from_netcdf

    idata = from_netcdf(out / "idata.nc")
    assert "posterior" in idata.groups() and "log_likelihood" in idata.groups()
    return json.loads((out / "params.json").read_text())


# ---------------------------------------------------------------- real subprocess runs
def test_fit_old_faithful_subprocess(tmp_path):
    out = tmp_path / "faithful"
    proc = run_gmmkit(
        "fit", FAITHFUL, "--standardize", "-k", "6", "--alpha0", "1e-3", "--seed", "1",
        "--out", str(out), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    params = assert_fit_directory(out, 272, 6)
    q = params["variational_params"]
    assert set(q) == {"alpha", "beta", "m", "W", "nu"}
    assert np.asarray(q["m"]).shape == (6, 2)
    assert np.asarray(q["W"]).shape == (6, 2, 2)
    # Bishop's Fig. 10.6: two components survive with alpha0 = 1e-3.
    weights = np.asarray(params["weights"])
    assert np.sum(weights > 0.01) == 2
    assert "ELBO" in proc.stdout


def test_fit_whitespace_3d_subprocess(tmp_path):
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 6.0]])
    X = centres[rng.integers(3, size=150)] + rng.normal(size=(150, 3))
    np.savetxt(tmp_path / "x.txt", X)  # whitespace-delimited, no header, like the seed's x.csv
    out = tmp_path / "x-vb"
    proc = run_gmmkit("fit", "x.txt", "-k", "3", "--out", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    params = assert_fit_directory(out, 150, 3)
    assert np.asarray(params["variational_params"]["m"]).shape == (3, 3)
    assert sorted(np.round(np.asarray(params["weights"]) * 150).astype(int).tolist()) == sorted(
        np.bincount(np.argmin(((X[:, None] - centres) ** 2).sum(-1), axis=1)).tolist()
    )


def test_fit_from_stdin_subprocess(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-4, 1, 60), rng.normal(4, 1, 60)])
    text = "x\n" + "\n".join(f"{v:.6f}" for v in x)
    out = tmp_path / "stdin-fit"
    proc = run_gmmkit(
        "fit", "-", "--model", "univariate", "-k", "2", "--out", str(out), "--quiet",
        cwd=tmp_path, stdin=text,
    )
    assert proc.returncode == 0, proc.stderr
    params = assert_fit_directory(out, 120, 2)
    np.testing.assert_allclose(np.sort(np.ravel(params["means"])), [-4, 4], atol=0.5)


def test_fit_gmm_em_npy(tmp_path):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-3, 1, (80, 2)), rng.normal(3, 1, (80, 2))])
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "em"
    result = CliRunner().invoke(
        cli, ["fit", str(tmp_path / "x.npy"), "--model", "gmm", "-k", "2", "--n-init", "2",
              "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    params = assert_fit_directory(out, 160, 2)
    assert params["method"] == "em"
    trace = np.loadtxt(out / "elbo_trace.csv", delimiter=",", skiprows=1, ndmin=2)
    header = (out / "elbo_trace.csv").read_text().splitlines()[0].split(",")
    assert "log_likelihood" in header and "kl" in header
    # EM never lowers the log-likelihood (slack: a few ulps of its magnitude).
    loglik = trace[:, header.index("log_likelihood")]
    assert np.all(np.diff(loglik) >= -1e-9 * np.abs(loglik[1:]))


# ---------------------------------------------------------------- bad input: exit 2
@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "text.csv").write_text("a,b\n1,2\n3,oops\n5,6\n")
    (tmp_path / "missing.csv").write_text("a,b\n1,2\n3,\nNA,6\n7,8\n")
    (tmp_path / "good.csv").write_text("a,b\n1,2\n3,4\n5,7\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("user data")
    return tmp_path


BAD_INPUT = [
    pytest.param(["fit", "{d}/nope.csv"], "does not exist", id="missing-file"),
    pytest.param(["fit", "{d}/empty.csv"], "is empty", id="empty-file"),
    pytest.param(["fit", "{d}/text.csv"], r"non-numeric value 'oops' in row 2.*column 'b'",
                 id="non-numeric-cell"),
    pytest.param(["fit", "{d}/missing.csv"], r"2 missing value\(s\); the first is in row 2.*'b'",
                 id="missing-values"),
    pytest.param(["fit", "{d}/good.csv", "--columns", "a,zz"], "column 'zz' is not in",
                 id="absent-column"),
    pytest.param(["fit", "{d}/good.csv", "-k", "5"], "at least 5 points, got 3", id="k-above-n"),
    pytest.param(["fit", "{d}/good.csv", "--method", "gibbs"], "'gibbs' is not one of",
                 id="unknown-method"),
    pytest.param(["fit", "{d}/good.csv", "--model", "dpgmm"], "'dpgmm' is not one of",
                 id="unknown-model"),
    pytest.param(["fit", "{d}/good.csv", "--model", "gmm", "--method", "nuts"],
                 "method 'nuts' does not apply to GaussianMixture", id="method-not-for-model"),
    pytest.param(["fit", "{d}/good.csv", "--out", "{d}/busy"], "exists and is not empty",
                 id="busy-output"),
    pytest.param(["fit", "{d}/good.csv", "--alpha0", "-1"], "alpha0", id="bad-prior"),
    pytest.param(["fit", "{d}/good.csv", "--model", "gmm", "--n-threads", "2"],
                 "--n-threads does not apply to --method em; it applies to cavi",
                 id="threads-not-for-em"),
    pytest.param(["fit", "{d}/good.csv", "--n-threads", "0"], "--n-threads", id="zero-threads"),
    pytest.param(["compare", "{d}/good.csv", "--methods", "cavi,gibbs"],
                 r"unknown method\(s\) 'gibbs'", id="compare-unknown-method"),
    pytest.param(["compare", "{d}/good.csv", "--methods", "cavi,cavi"], "given twice",
                 id="compare-repeated-method"),
    pytest.param(["compare", "{d}/good.csv", "--methods", ","], "at least one method",
                 id="compare-no-method"),
    pytest.param(["compare", "{d}/good.csv", "--model", "gmm", "--methods", "em,kmeans",
                  "--reference", "nuts"], r"--reference 'nuts' is not among --methods",
                 id="compare-reference-not-in-methods"),
    pytest.param(["compare", "{d}/good.csv", "--model", "gmm", "--methods", "em,nuts"],
                 r"'nuts' does not apply to --model gmm \(GaussianMixture\)",
                 id="compare-method-not-for-model"),
    pytest.param(["compare", "{d}/good.csv", "--model", "univariate", "--methods", "cavi"],
                 "needs one column", id="compare-univariate-two-columns"),
    pytest.param(["compare", "{d}/text.csv", "--model", "gmm", "--methods", "em"],
                 "non-numeric value 'oops'", id="compare-bad-data"),
    pytest.param(["compare", "{d}/good.csv", "--model", "gmm", "--methods", "em",
                  "--out", "{d}/busy"], "exists and is not empty", id="compare-busy-output"),
    pytest.param(["sweep", "--methods", "cavi,em"], r"'em' does not apply to --model "
                 "univariate", id="sweep-method-not-for-model"),
    pytest.param(["sweep", "--n", "10,ten"], "--n: 'ten' is not an integer", id="sweep-bad-n"),
    pytest.param(["sweep", "--separation", "2,wide"], "--separation: 'wide' is not a number",
                 id="sweep-bad-separation"),
    pytest.param(["sweep", "--n", "2", "-k", "3"], "n must be at least k", id="sweep-n-below-k"),
    pytest.param(["sweep", "--out", "{d}/busy"], "exists and is not empty",
                 id="sweep-busy-output"),
    pytest.param(["demo", "--out", "{d}/busy"], "exists and is not empty",
                 id="demo-busy-output"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_exit_2_and_nothing_written(files, args, message):
    out = files / "out"
    args = [a.format(d=files) for a in args]
    if "--out" not in args:
        args += ["--out", str(out)]
    before = sorted(p.name for p in files.iterdir())
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(message, result.output), result.output
    # Nothing written: no output directory, no temporary directory left behind, and the
    # busy directory untouched.
    assert sorted(p.name for p in files.iterdir()) == before
    assert (files / "busy" / "keep.txt").read_text() == "user data"


def test_bad_input_subprocess_one_line(tmp_path):
    proc = run_gmmkit("fit", "nope.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_directory(files):
    """--force replaces a directory gmmkit wrote, never one of the user's."""
    busy = files / "busy"
    args = ["fit", str(files / "good.csv"), "--model", "gmm", "-k", "1", "--force", "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--out", str(busy)])
    assert result.exit_code == 2 and "not written by gmmkit" in result.output
    assert (busy / "keep.txt").read_text() == "user data"
    out = files / "fitted"
    for _ in range(2):
        result = CliRunner().invoke(cli, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert (out / "params.json").is_file() and (out / ".gmmkit-output.json").is_file()


@pytest.mark.parametrize("command", [[], ["fit"], ["demo"], ["compare"], ["sweep"]],
                         ids=lambda c: " ".join(c) or "gmmkit")
def test_help_runs_for_every_command(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command:
        assert "Examples:" in result.output


# ---------------------------------------------------------------- compare and sweep
def test_compare_gmm_em_kmeans(tmp_path):
    out = tmp_path / "ml"
    result = CliRunner().invoke(
        cli, ["compare", FAITHFUL, "--standardize", "--model", "gmm", "-k", "2",
              "--methods", "em,kmeans", "--reference", "em", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    for name in ("table.csv", "summary.csv", "report.md", "elbo.png", "fit.png",
                 "forest.png", "fits/em.nc", "fits/kmeans.nc"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    import pandas as pd

    table = pd.read_csv(out / "table.csv", index_col="fit")
    assert list(table.index) == ["em", "kmeans"]
    # Old Faithful's two clusters are so well separated that both methods agree exactly
    # on the hard assignments, and EM's log-likelihood is at least k-means' (the same
    # objective at the EM optimum versus at hard assignments).  Maximum-likelihood fits
    # report log p(x | theta-hat) in their own column, never as an ELBO.
    assert table.loc["kmeans", "ari"] == pytest.approx(1.0)
    assert table.loc["em", "log_likelihood"] >= table.loc["kmeans", "log_likelihood"]
    assert table["elbo"].isna().all()
    assert "Examples" not in result.output and "kmeans" in result.output
    assert "(ref)" in result.output
    assert "# Comparison of em, kmeans (reference: em)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_compare_univariate_cavi_advi_subprocess(tmp_path):
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-3, 1, 100), rng.normal(3, 1, 100)])
    np.savetxt(tmp_path / "x.txt", x)
    out = tmp_path / "cmp"
    proc = run_gmmkit(
        "compare", "x.txt", "--model", "univariate", "-k", "2", "--methods", "cavi,advi",
        "--draws", "200", "--psis-draws", "500", "--no-log-likelihood", "--out", str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    table = pd.read_csv(out / "table.csv", index_col="fit")
    assert list(table.index) == ["cavi", "advi"]
    # Without NUTS or SMC the first method is the reference; both q's give a k-hat and an
    # importance-sampling evidence that lies above both ELBOs (up to Monte Carlo error).
    assert table.loc["cavi", "ari"] == pytest.approx(1.0)
    assert table.loc["advi", "ari"] > 0.95
    assert np.isfinite(table["psis_khat"]).all()
    assert (table["elbo"] < table["log_evidence"] + 0.5).all()
    assert (out / "khat.png").is_file() and (out / "fits" / "advi.nc").is_file()
    from gmmkit._arviz import from_netcdf

    # --no-log-likelihood: the stored InferenceData has no pointwise log-likelihood (the
    # group, if present, is zero-filled).
    idata = from_netcdf(out / "fits" / "advi.nc")
    assert "posterior" in idata.groups()
    if "log_likelihood" in idata.groups():
        assert not any(np.any(v.values) for v in idata.log_likelihood.data_vars.values())
    assert "cavi (ref)" in proc.stdout


def test_sweep_tiny(tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        cli, ["sweep", "--methods", "cavi", "--n", "30,60", "-k", "2", "--separation",
              "3,prior", "--seeds", "0", "--psis-draws", "100", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    import pandas as pd

    from gmmkit.experiments.sweep import SWEEP_COLUMNS

    table = pd.read_csv(out / "sweep.csv")
    assert list(table.columns) == list(SWEEP_COLUMNS)
    assert len(table) == 4 and set(table["method"]) == {"cavi"}
    assert sorted(table["n"].unique()) == [30, 60]
    # "prior" is stored as a missing separation.
    assert table["separation"].isna().sum() == 2
    assert np.isfinite(table["elbo"]).all() and (table["ari"] <= 1).all()
    assert (out / "sweep.png").stat().st_size > 0
    assert "wrote" in result.output


def test_sweep_routes_sampler_options(tmp_path, monkeypatch):
    """--draws/--tune/--chains reach only the methods that take them."""
    import importlib

    # The module, not the function the package exports under the same name.
    sweep_module = importlib.import_module("gmmkit.experiments.sweep")
    real_sweep = sweep_module.sweep
    seen = {}

    def fake_sweep(methods, **kwargs):
        seen.update(kwargs, methods=methods)
        return real_sweep(["cavi"], n=20, k=2, separation=3.0, evidence=False)

    monkeypatch.setattr(sweep_module, "sweep", fake_sweep)
    result = CliRunner().invoke(
        cli, ["sweep", "--methods", "cavi,advi,nuts,smc", "--draws", "50", "--tune", "40",
              "--chains", "1", "--out", str(tmp_path / "s"), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert seen["methods"] == ["cavi", "advi", "nuts", "smc"]
    assert seen["fit_options"] == {
        "advi": {"draws": 50},
        "nuts": {"draws": 50, "tune": 40, "chains": 1},
        "smc": {"draws": 50, "chains": 1},
    }


@pytest.mark.parametrize(
    "args, expected",
    [(["--model", "gmm", "--method", "em"], "log-likelihood = "),
     (["--method", "cavi"], "ELBO = ")],
    ids=["em-reports-log-likelihood", "vb-reports-elbo"],
)
def test_fit_summary_names_the_objective(tmp_path, args, expected):
    path = tmp_path / "x.npy"
    np.save(path, datasets.old_faithful(standardize=True))
    result = CliRunner().invoke(
        cli, ["fit", str(path), "-k", "2", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    line = next(s for s in result.output.splitlines() if " nats;" in s)
    assert line.startswith(expected)
    value = float(line[len(expected):].split()[0])
    saved = json.loads((tmp_path / "out" / "params.json").read_text())
    # The printed number is the saved one, to the 6 significant digits printed.
    assert value == pytest.approx(saved["elbo"], rel=1e-5)


def test_fit_gmm_covariance_family(tmp_path):
    rng = np.random.default_rng(2)
    data = tmp_path / "x.csv"
    np.savetxt(data, rng.normal(size=(120, 2)), delimiter=",", header="a,b", comments="")
    out = tmp_path / "diag"
    result = CliRunner().invoke(cli, ["fit", str(data), "--model", "gmm", "--covariance",
                                      "diag", "-k", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    fit = gmmkit.load(out)
    assert fit.model.covariance == "diag"
    # diagonal covariances: the off-diagonal entries are exactly zero
    assert np.all(fit.covariances[:, 0, 1] == 0.0)
    bayesian = CliRunner().invoke(cli, ["fit", str(data), "--covariance", "diag",
                                        "--out", str(tmp_path / "b"), "--quiet"])
    assert bayesian.exit_code == 0, bayesian.output
    assert gmmkit.load(tmp_path / "b").model.covariance == "diag"


def test_fit_threads_give_the_same_fit(tmp_path):
    from gmmkit.inference._blocks import CHUNK_BLOCKS, block_size, pass_threads

    n, d, k = 36_000, 16, 8
    p = 1 + 2 * d  # diag's features [1, x, x^2]
    # The pass is heavy enough to be split, and the data span several chunks.
    assert pass_threads(2, k, p) == 2 and n > 2 * CHUNK_BLOCKS * block_size(k, p)
    rng = np.random.default_rng(4)
    data = tmp_path / "x.csv"
    centres = 5.0 * rng.normal(size=(k, d))
    np.savetxt(data, centres[rng.integers(k, size=n)] + rng.normal(size=(n, d)),
               delimiter=",", header=",".join(f"c{i}" for i in range(d)), comments="")
    fits = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        result = CliRunner().invoke(cli, ["fit", str(data), "-k", str(k), "--covariance",
                                          "diag", "--n-threads", threads, "--out", str(out),
                                          "--quiet"])
        assert result.exit_code == 0, result.output
        fits.append(gmmkit.load(out))
    np.testing.assert_array_equal(fits[0].elbo_trace, fits[1].elbo_trace)
    np.testing.assert_array_equal(fits[0].means, fits[1].means)


def test_fit_says_what_it_writes_and_quiet_silences_it(tmp_path):
    data = tmp_path / "x.csv"
    np.savetxt(data, np.random.default_rng(3).normal(size=(60, 2)), delimiter=",",
               header="a,b", comments="")
    args = ["fit", str(data), "--model", "gmm", "-k", "2", "--out"]
    shown = CliRunner().invoke(cli, [*args, str(tmp_path / "a")])
    assert shown.exit_code == 0, shown.output
    assert "writing the fit (60 x 2 responsibilities" in shown.output
    quiet = CliRunner().invoke(cli, [*args, str(tmp_path / "b"), "--quiet"])
    assert quiet.exit_code == 0 and "writing the fit" not in quiet.output
