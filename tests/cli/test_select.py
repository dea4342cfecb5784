"""``gmmkit select``: files written, the best per criterion printed, bad input -> exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gmmkit.cli import cli
from gmmkit.cli.select import parse_components


@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]])
    x = centres[rng.integers(3, size=150)] + rng.standard_normal((150, 2))
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    pd.DataFrame(x, columns=["a", "b"]).to_csv(path, index=False)
    return path


def test_select_writes_table_figures_and_prints_the_best(blobs_csv, tmp_path):
    out = tmp_path / "sel"
    result = CliRunner().invoke(cli, [
        "select", str(blobs_csv), "-k", "1..4", "--covariance", "full,diag",
        "--criteria", "bound,bic,cv", "--n-init", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "table.csv")
    # The gmm families and every Bayesian family the model implements, K = 1..4.
    assert len(table) == 4 * len(set(zip(table["model"], table["covariance"],
                                         table["weight_prior"], strict=True)))
    assert {("gmm", "full"), ("gmm", "diag"), ("bayesian", "full")} <= set(
        zip(table["model"], table["covariance"], strict=True))
    for name in ("selection_bound.png", "selection_bic.png", "selection_cv.png",
                 "bic_by_covariance.png"):
        assert (out / name).stat().st_size > 0, name
    best = json.loads((out / "best.json").read_text())
    assert best["bic"]["n_components"] == 3 and best["bic"]["higher_is_better"] is False
    assert "best by bound (max): bayesian " in result.output
    assert best["bound"]["n_components"] == 3
    assert "best by bic (min): gmm" in result.output


def test_select_help_has_examples():
    result = CliRunner().invoke(cli, ["select", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "gmmkit select" in result.output
    assert "lower is better" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["-k", "0..3"], "-k"),
    (["-k", "5..2"], "-k"),
    (["-k", "two"], "-k"),
    (["-k", "1..999"], "-k"),
    (["--criteria", "bic,foo"], "criteria"),
    (["--criteria", "loo"], "loo"),
    (["--model", "gmm,univariate"], "--model"),
    (["--covariance", "banded"], "covariance"),
    (["--alpha0", "-1"], "alpha0"),
    (["--folds", "1"], "--folds"),
    (["--weight-prior", "dirichlet"], "--weight-prior"),
    (["--model", "gmm", "--weight-prior", "dirichlet_process"], "--weight-prior"),
    (["--method", "bayesian"], "--method"),
    (["--method", "gmm=cavi"], "--method"),
    (["--jobs", "0"], "--jobs"),
])
def test_select_bad_input_exits_2_with_one_line(blobs_csv, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["select", str(blobs_csv), *args,
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not (tmp_path / "o").exists()


def test_parse_components():
    assert parse_components("1..4") == [1, 2, 3, 4]
    assert parse_components("2-3") == [2, 3]
    assert parse_components("2,5") == [2, 5]
    with pytest.raises(ValueError, match="-k"):
        parse_components("")


def test_select_weight_priors_jobs_and_cv_restarts(blobs_csv, tmp_path):
    out = tmp_path / "sel"
    result = CliRunner().invoke(cli, [
        "select", str(blobs_csv), "-k", "2..3", "--model", "bayesian", "--covariance",
        "full", "--weight-prior", "dirichlet_distribution", "--criteria", "bound,cv",
        "--n-init", "1", "--cv-n-init", "2", "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "table.csv")
    assert set(table["weight_prior"]) == {"dirichlet_distribution"}
    assert list(table["n_components"]) == [2, 3]
    assert table["cv_se"].gt(0).all() and table["symmetry"].notna().all()


def test_select_loo_without_a_sampler_names_the_option(blobs_csv, tmp_path):
    result = CliRunner().invoke(cli, ["select", str(blobs_csv), "--criteria", "loo",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "--method bayesian=" in result.output and "posterior draws" in result.output
