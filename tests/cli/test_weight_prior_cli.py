"""``--weight-prior`` on the command line and ``build_model(weight_prior=...)`` (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import gmmkit
from gmmkit import datasets
from gmmkit.cli import cli
from gmmkit.models.factory import build_model
from gmmkit.models.weights import DirichletWeights, StickBreakingWeights

FAITHFUL = str(datasets.old_faithful_path())
DP = "dirichlet_process"


@pytest.mark.parametrize("prior,weights_type", [("dirichlet_distribution", DirichletWeights),
                                                (DP, StickBreakingWeights)],
                         ids=["dirichlet", "dp"])
def test_build_model_passes_the_weight_prior(prior, weights_type):
    X = np.random.default_rng(0).normal(size=(20, 2))
    model = build_model("bayesian", 4, X, alpha0=0.2, weight_prior=prior)
    assert model.weight_prior == prior
    assert isinstance(model.weight_distribution, weights_type)
    assert model.weight_distribution.n_components == 4


@pytest.mark.parametrize("kind", ["gmm", "univariate"])
def test_build_model_refuses_a_dp_prior_for_models_without_weight_priors(kind):
    X = np.random.default_rng(0).normal(size=(20, 1))
    with pytest.raises(ValueError, match="weight_prior 'dirichlet_process' applies to the "
                                         "bayesian model only"):
        build_model(kind, 2, X, weight_prior=DP)
    with pytest.raises(ValueError, match="weight_prior"):
        build_model("bayesian", 2, X, weight_prior="pitman_yor")


def test_fit_with_dp_weights_writes_and_loads_the_sticks(tmp_path):
    out = tmp_path / "dp"
    result = CliRunner().invoke(cli, [
        "fit", FAITHFUL, "--standardize", "-k", "6", "--alpha0", "0.01", "--weight-prior",
        DP, "--seed", "0", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    fit = gmmkit.load(out)
    assert fit.model.weight_prior == DP and fit.model.alpha0 == 0.01
    assert fit.variational_params["stick_a"].shape == (5,)
    # Old Faithful keeps two clusters; K = 6 is only an upper bound.
    assert (fit.weights > 0.01).sum() == 2
    from gmmkit._arviz import from_netcdf

    idata = from_netcdf(out / "idata.nc")
    assert idata["fit"]["q_stick_b"].dims == ("stick",)


def test_gmm_with_dp_weights_is_refused_with_exit_code_2(tmp_path):
    result = CliRunner().invoke(cli, [
        "fit", FAITHFUL, "--model", "gmm", "--weight-prior", DP, "--out",
        str(tmp_path / "x"), "--quiet"])
    assert result.exit_code == 2
    assert "applies to the bayesian model only" in result.output


def test_compare_takes_the_weight_prior(tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(cli, [
        "compare", FAITHFUL, "--standardize", "-k", "3", "--alpha0", "0.05",
        "--weight-prior", DP, "--methods", "cavi,svi", "--reference", "cavi",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    from gmmkit._arviz import from_netcdf

    for method in ("cavi", "svi"):  # both fitted the stick-breaking model
        idata = from_netcdf(out / "fits" / f"{method}.nc")
        assert "q_stick_a" in idata["fit"] and "q_alpha" not in idata["fit"]
        assert "weight_prior='dirichlet_process'" in idata.attrs["gmmkit_model"]
