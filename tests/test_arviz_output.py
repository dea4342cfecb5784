"""Honest ArviZ output (issue 11): sampler statistics, q draws marked as such, a LOO that
refuses q draws, and label-aligned InferenceData from a comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import gmmkit
from gmmkit import UnivariateGMM, _arviz
from gmmkit.comparisons import aligned_inference_data, compare, loo
from gmmkit.inference.cavi import GaussianMeansPosterior
from gmmkit.inference.pymc.posterior import DrawsPosterior
from gmmkit.models import GaussianMixture
from gmmkit.result import Fit


def sampler_fit(model, x, mu) -> Fit:
    posterior = DrawsPosterior(model, {"mu": mu})
    return Fit(
        method="nuts", model=model, data=x, posterior=posterior,
        responsibilities=np.exp(posterior.log_responsibilities(x)), elbo=float("nan"),
        elbo_trace=np.empty(0), converged=True, n_iter=0, elapsed_s=1.0,
    )


def permuted_cavi(fit: Fit, perm) -> Fit:
    p = fit.variational_params
    return dataclasses.replace(
        fit, posterior=GaussianMeansPosterior(fit.model, p["m"][perm], p["s2"][perm]),
        responsibilities=fit.responsibilities[:, perm],
    )


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-4, 1, 40), rng.normal(4, 1, 40)])
    model = UnivariateGMM(2, 10.0)
    return model, x, gmmkit.fit(model, x, "cavi", seed=0)


# ----------------------------------------------------------------------------- attrs
def test_posterior_group_says_whether_draws_come_from_q(small, tmp_path):
    model, x, cavi = small
    em = gmmkit.fit(GaussianMixture(2), x, "em", seed=0)
    mu = cavi.means[:, 0] + 0.1 * np.random.default_rng(0).standard_normal((2, 100, 2))
    nuts = sampler_fit(model, x, mu)
    expected = {cavi: ("CLOSED_FORM_Q", 1), em: ("POINT_ESTIMATE", 0),
                nuts: ("SAMPLER_DRAWS", 0)}
    for fit, (kind, from_q) in expected.items():
        idata = fit.to_inference_data(draws=20)
        for group in ("posterior", "fit"):
            assert idata[group].attrs["gmmkit_posterior_kind"] == kind
            assert idata[group].attrs["gmmkit_draws_from_q"] == from_q
    # the marks survive a netCDF round trip
    path = _arviz.to_netcdf(cavi.to_inference_data(draws=20), tmp_path / "cavi.nc")
    assert _arviz.from_netcdf(path).posterior.attrs["gmmkit_draws_from_q"] == 1


# ----------------------------------------------------------------------------- LOO
def test_loo_refuses_q_draws_unless_allowed_and_then_labels_them(small):
    model, x, cavi = small
    with pytest.raises(ValueError, match="draws from a fitted variational q"):
        loo(cavi, draws=200)
    with pytest.raises(ValueError, match="allow_q_draws=True"):
        loo(cavi.to_inference_data(draws=200, log_likelihood=True))
    labelled = loo(cavi, draws=200, allow_q_draws=True)
    assert labelled.attrs["gmmkit_draws_from_q"] == 1
    assert labelled.attrs["gmmkit_posterior_kind"] == "CLOSED_FORM_Q"
    assert "variational q" in labelled.attrs["gmmkit_note"]
    assert np.isfinite(labelled["elpd_loo"])

    # Sampler draws are posterior draws: no flag needed, no note.
    mu = np.sort(cavi.means[:, 0]) + 0.15 * np.random.default_rng(2).standard_normal(
        (2, 200, 2))
    result = loo(sampler_fit(model, x, mu))
    assert result.attrs["gmmkit_draws_from_q"] == 0 and "gmmkit_note" not in result.attrs
    assert np.isfinite(result["elpd_loo"])


def test_loo_refuses_point_estimates_and_missing_log_likelihood(small):
    _, x, cavi = small
    em = gmmkit.fit(GaussianMixture(2), x, "em", seed=0)
    with pytest.raises(ValueError, match="point estimate"):
        loo(em)
    with pytest.raises(ValueError, match="no log_likelihood group"):
        loo(cavi.to_inference_data(draws=50, log_likelihood=False), allow_q_draws=True)
    with pytest.raises(ValueError, match="Fit or an InferenceData"):
        loo(np.zeros(3))


# ----------------------------------------------------------------------------- aligned
def test_comparison_inference_data_is_label_aligned(three_clusters_10sd):
    _, _, _, _, cavi = three_clusters_10sd
    perm = [2, 0, 1]
    other = permuted_cavi(cavi, perm)
    # Unaligned, the two fits' component k are different clusters ...
    raw_a = cavi.to_inference_data(draws=300, seed=0).posterior["mu"].mean(("chain", "draw"))
    raw_b = other.to_inference_data(draws=300, seed=0).posterior["mu"].mean(("chain", "draw"))
    assert np.abs(raw_a.values - raw_b.values).max() > 5
    # ... aligned, their posterior means line up component by component.
    comparison = compare({"a": cavi, "b": other}, n_draws=300, psis_draws=100)
    idata_a, idata_b = comparison.inference_data("a"), comparison.inference_data("b")
    mean_a = idata_a.posterior["mu"].mean(("chain", "draw")).values
    mean_b = idata_b.posterior["mu"].mean(("chain", "draw")).values
    np.testing.assert_allclose(mean_a, mean_b, atol=0.05)
    # ready for LOO when draws x N is small (300 x 300), and marked as aligned
    assert "log_likelihood" in idata_b.groups()
    assert idata_b.log_likelihood["x"].shape == (1, 300, 300)
    assert idata_b.posterior.attrs["gmmkit_aligned_to"] == "a"
    assert "log_likelihood" not in comparison.inference_data(
        "b", log_likelihood=False).groups()
    # the same through the function, without a comparison
    direct = aligned_inference_data(other, to=cavi, draws=300, seed=0)
    np.testing.assert_allclose(
        direct.posterior["mu"].mean(("chain", "draw")).values, mean_a, atol=0.05)


# ----------------------------------------------------------------------------- NUTS
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*alias_mapping.*")  # ArviZ 0.2x vs matplotlib 3.11
def test_nuts_inference_data_carries_sample_stats_for_plot_energy(small):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    model, x, _ = small
    with pytest.warns(gmmkit.ConvergenceWarning):  # 2 x 30 draws: NUTS has not converged
        nuts = gmmkit.fit(model, x, "nuts", seed=0, draws=30, tune=30, chains=2)
    stats = nuts.posterior.sample_stats
    for name in ("diverging", "energy", "tree_depth", "step_size", "lp", "acceptance_rate"):
        assert stats[name].shape == (2, 30), name
    idata = nuts.to_inference_data()
    assert "sample_stats" in idata.groups()
    assert idata.sample_stats["diverging"].dtype == bool
    axes = az.plot_energy(idata, show=False)
    assert axes is not None
    divergences = nuts.diagnostics["divergences"]
    assert isinstance(divergences, int)
    assert divergences == int(stats["diverging"].sum())
    # aligned (relabelled) NUTS output keeps the statistics
    assert "sample_stats" in gmmkit.comparisons.align(nuts).to_inference_data().groups()
    # q draws carry none
    assert "sample_stats" not in small[2].to_inference_data(draws=10).groups()
