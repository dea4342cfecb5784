"""The comparison layer (issue 6): alignment, compare/Comparison, PSIS k-hat, sweeps."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import gmmkit
from gmmkit import UnivariateGMM, compare, plot_sweep, sweep
from gmmkit.comparisons import align, psis_diagnostics
from gmmkit.comparisons.align import relabel_permutations
from gmmkit.comparisons.compare import TABLE_COLUMNS, TRUTH_COLUMNS, wasserstein_gaussian
from gmmkit.inference.cavi import GaussianMeansPosterior
from gmmkit.inference.em import PointEstimatePosterior
from gmmkit.inference.pymc import DrawsPosterior
from gmmkit.models import GaussianMixture
from gmmkit.result import Fit

# ----------------------------------------------------------------------------- stand-ins


def draws_fit(model, x, mu, method="nuts") -> Fit:
    posterior = DrawsPosterior(model, {"mu": np.asarray(mu, dtype=float)})
    return Fit(
        method=method, model=model, data=x, posterior=posterior,
        responsibilities=np.exp(posterior.log_responsibilities(x)), elbo=float("nan"),
        elbo_trace=np.empty(0), converged=True, n_iter=0, elapsed_s=1.0,
    )


def point_fit(x, weights, means, covariances) -> Fit:
    """A maximum-likelihood point-estimate fit with the given parameters."""
    posterior = PointEstimatePosterior(weights, means, covariances)
    return Fit(
        method="em", model=GaussianMixture(weights.shape[0]), data=x, posterior=posterior,
        responsibilities=np.exp(posterior.log_responsibilities(x)), elbo=float("nan"),
        elbo_trace=np.empty(0), converged=True, n_iter=1, elapsed_s=0.0,
    )


def permuted_cavi(fit: Fit, perm: np.ndarray) -> Fit:
    """The same CAVI fit with its components listed in the order ``perm``."""
    p = fit.variational_params
    return dataclasses.replace(
        fit, posterior=GaussianMeansPosterior(fit.model, p["m"][perm], p["s2"][perm]),
        responsibilities=fit.responsibilities[:, perm],
    )


# ----------------------------------------------------------------------------- alignment


@pytest.mark.parametrize("seed", range(4))
def test_align_recovers_a_random_permutation_of_a_variational_fit(three_clusters_10sd, seed):
    _, x, _, _, fit = three_clusters_10sd
    perm = np.random.default_rng(seed).permutation(3)
    shuffled = permuted_cavi(fit, perm)
    aligned = align(shuffled, to=fit)
    # A permutation of stored numbers: exact equality.
    np.testing.assert_array_equal(aligned.means, fit.means)
    np.testing.assert_array_equal(aligned.variational_params["s2"], fit.variational_params["s2"])
    np.testing.assert_array_equal(aligned.responsibilities, fit.responsibilities)
    np.testing.assert_array_equal(aligned.predict(x), fit.predict(x))
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    # shuffled component j is original component perm[j]: original k is shuffled inv[k]
    inverse = np.argsort(perm)
    np.testing.assert_array_equal(
        aligned.posterior.draw(5, rng_a)["mu"],
        shuffled.posterior.draw(5, rng_b)["mu"][..., inverse],
    )
    # the input is untouched
    np.testing.assert_array_equal(shuffled.means, fit.means[perm])


def test_align_point_estimates_in_two_dimensions():
    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])
    x = np.concatenate([rng.normal(m, 1.0, size=(40, 2)) for m in means])
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    covs = np.stack([np.eye(2) * (1 + k) for k in range(4)])
    reference = point_fit(x, weights, means, covs)
    perm = np.array([2, 0, 3, 1])
    shuffled = point_fit(x, weights[perm], means[perm], covs[perm])
    aligned = align(shuffled, to=reference)
    np.testing.assert_array_equal(aligned.means, means)
    np.testing.assert_array_equal(aligned.weights, weights)
    np.testing.assert_array_equal(aligned.covariances, covs)
    np.testing.assert_array_equal(aligned.responsibilities, reference.responsibilities)
    draws = aligned.posterior.draw(1, np.random.default_rng(0))
    np.testing.assert_array_equal(draws["covariances"][0, 0], covs)
    # self-alignment is the identity
    same = align(reference, to=reference)
    np.testing.assert_array_equal(same.means, reference.means)
    np.testing.assert_array_equal(same.responsibilities, reference.responsibilities)


def test_self_alignment_is_the_identity(three_clusters_10sd):
    fit = three_clusters_10sd[-1]
    same = align(fit, to=fit)
    assert same is not fit
    np.testing.assert_array_equal(same.means, fit.means)
    np.testing.assert_array_equal(same.responsibilities, fit.responsibilities)
    for name, value in fit.variational_params.items():
        np.testing.assert_array_equal(same.variational_params[name], value)
    np.testing.assert_array_equal(
        same.posterior.draw(7, np.random.default_rng(2))["mu"],
        fit.posterior.draw(7, np.random.default_rng(2))["mu"],
    )


def _switched_draws(rng, true_means, n_chains, n_draws, switched_chain, fraction):
    k = true_means.shape[0]
    clean = true_means + 0.3 * rng.standard_normal((n_chains, n_draws, k))
    shuffled = clean.copy()
    others = [p for p in itertools.permutations(range(k)) if p != tuple(range(k))]
    hit = rng.random(n_draws) < fraction
    for s in np.flatnonzero(hit):  # inject a non-identity relabelling per chosen draw
        relabelling = list(others[rng.integers(len(others))])
        shuffled[switched_chain, s] = clean[switched_chain, s, relabelling]
    return clean, shuffled, hit


@pytest.mark.parametrize("k", [3, 7])  # 3: enumerated permutations; 7: one LSA per draw
def test_align_undoes_injected_label_switches_in_draws(k):
    rng = np.random.default_rng(k)
    model = UnivariateGMM(k, 30.0)
    true_means = 5.0 * np.arange(k) - 10.0
    labels = rng.integers(k, size=200)
    x = rng.normal(true_means[labels], 1.0)
    clean, shuffled, hit = _switched_draws(rng, true_means, 2, 300, 1, 0.4)
    fit = draws_fit(model, x, shuffled)
    aligned = align(fit, to=true_means)
    np.testing.assert_array_equal(aligned.posterior.draws["mu"], clean)
    switching = aligned.diagnostics["label_switching"]
    assert switching[0] == 0.0
    assert switching[1] == pytest.approx(hit.mean(), abs=1e-12)
    assert aligned.diagnostics["switched_chains"] == (1,)
    np.testing.assert_allclose(aligned.means[:, 0], clean.mean(axis=(0, 1)), rtol=1e-12)
    # The responsibilities are those of the clean draws (switching had blurred them);
    # same sums in a different order: 1e-10.
    clean_fit = draws_fit(model, x, clean)
    np.testing.assert_allclose(aligned.responsibilities, clean_fit.responsibilities,
                               rtol=1e-10, atol=1e-12)
    assert fit.responsibilities.max(axis=1).mean() < 0.9
    # a sampler fit without switches, aligned to itself, is unchanged
    same = align(clean_fit, to=clean_fit)
    np.testing.assert_array_equal(same.posterior.draws["mu"], clean)
    assert same.diagnostics["switched_chains"] == ()
    # input untouched
    np.testing.assert_array_equal(fit.posterior.draws["mu"], shuffled)
    # without a reference, the fit is relabelled against its own label-consistent pivot
    self_aligned = align(fit)
    order = np.argsort(self_aligned.means[:, 0])
    np.testing.assert_array_equal(self_aligned.posterior.draws["mu"][..., order], clean)


def test_relabel_permutations_enumeration_matches_linear_sum_assignment():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(5)
    draw_means = rng.normal(size=(200, 4, 2))
    pivot = rng.normal(size=(4, 2))
    perms = relabel_permutations(draw_means, pivot)
    for s in range(200):
        cost = ((draw_means[s][:, None] - pivot[None]) ** 2).sum(-1)
        _, expected = linear_sum_assignment(cost.T)
        best = cost[expected, np.arange(4)].sum()
        # same minimal cost (ties can pick different permutations): exact algebra, 1e-12
        assert cost[perms[s], np.arange(4)].sum() == pytest.approx(best, rel=1e-12)


# ----------------------------------------------------------------------------- agreement


def test_agreement_is_zero_for_identical_fits_and_grows_with_a_shift(three_clusters_10sd):
    model, _, _, _, fit = three_clusters_10sd
    p = fit.variational_params
    shifts = [0.0, 0.05, 0.2, 0.5, 1.5]
    fits = {}
    for delta in shifts:
        m = p["m"].copy()
        m[0] += delta
        fits[f"shift{delta}"] = dataclasses.replace(
            fit, posterior=GaussianMeansPosterior(model, m, p["s2"])
        )
    table = compare(fits, reference="shift0.0", n_draws=2000).table
    first = table.loc["shift0.0"]
    # Identical fits, identical seeded draws: exactly 0 (and ratio exactly 1, ARI 1).
    assert first["mean_shift_max"] == 0.0
    assert first["mean_shift_mean"] == 0.0
    assert first["w2_means"] == 0.0
    assert first["sd_ratio_max"] == 1.0 and first["sd_ratio_min"] == 1.0
    assert first["ari"] == 1.0
    for column in ("mean_shift_max", "mean_shift_mean", "w2_means"):
        values = table[column].to_numpy()
        assert np.all(np.diff(values) > 0), (column, values)
    # The shift in reference-sd units is delta / sd(draws of mu_0): same seeded draws.
    sd0 = np.sqrt(p["s2"][np.argmin(np.abs(fit.means[:, 0] - fit.means[0, 0]))])
    assert table.loc["shift1.5", "mean_shift_max"] == pytest.approx(1.5 / sd0, rel=0.05)  # MC sd


def test_wasserstein_of_gaussian_draws_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(200_000, 1))
    b = rng.normal(1.0, 2.0, size=(200_000, 1))
    # 1-D: W2^2 = (m1 - m2)^2 + (s1 - s2)^2 = 2; Monte Carlo error ~ 1e-2 at this size.
    assert wasserstein_gaussian(a, b) == pytest.approx(np.sqrt(2.0), abs=0.02)
    point = np.array([[0.5, 0.5]])
    assert wasserstein_gaussian(point, point) == 0.0


# ----------------------------------------------------------------------------- PSIS


def test_psis_khat_trusts_a_good_cavi_fit(three_clusters_10sd):
    _, _, _, _, fit = three_clusters_10sd
    result = psis_diagnostics(fit, n_draws=2000, seed=0)
    assert result.khat < 0.7, result
    assert result.trustworthy and result.symmetrised


@pytest.mark.parametrize("poor", ["shrunk", "one_iteration-0", "one_iteration-1",
                                  "one_iteration-2"])
def test_psis_khat_flags_a_poor_q(three_clusters_10sd, poor):
    model, x, _, _, fit = three_clusters_10sd
    if poor == "shrunk":
        p = fit.variational_params
        bad = dataclasses.replace(
            fit, posterior=GaussianMeansPosterior(model, p["m"], p["s2"] / 100.0)
        )
    else:  # CAVI stopped after one iteration from random data points
        bad = gmmkit.fit(model, x, seed=int(poor[-1]), max_iter=1, init="random")
    result = psis_diagnostics(bad, n_draws=2000, seed=0)
    assert result.khat > 0.7, result
    assert not result.trustworthy


def test_the_reading_explains_a_khat_above_0_7(three_clusters_10sd):
    model, _, _, _, fit = three_clusters_10sd
    p = fit.variational_params
    shrunk = dataclasses.replace(
        fit, posterior=GaussianMeansPosterior(model, p["m"], p["s2"] / 100.0))
    reading = compare({"cavi": fit, "shrunk": shrunk}, reference="cavi", psis_draws=500,
                      n_draws=100).reading()
    (line,) = [r for r in reading if r.startswith("shrunk: k-hat")]
    assert "misses posterior mass" in line and "understates the uncertainty" in line
    assert any(r.startswith("cavi: k-hat") and "usable" in r for r in reading)


def test_khat_cannot_see_a_q_stuck_in_the_wrong_basin(three_clusters_10sd):
    # A known limit of PSIS (Yao et al. 2018, section 2.4): with seed 3 one iteration puts
    # two components on the same cluster; p is smooth around that q, so k-hat looks fine,
    # but the importance-sampling evidence is then far below the converged fit's ELBO,
    # itself a lower bound on the true evidence: the comparison table exposes the problem.
    model, x, _, _, fit = three_clusters_10sd
    stuck = gmmkit.fit(model, x, seed=3, max_iter=1, init="random")
    result = psis_diagnostics(stuck, n_draws=2000, seed=0)
    assert result.khat < 0.7
    assert result.log_evidence < fit.elbo - 100.0


@pytest.mark.parametrize("data_seed", range(5))
def test_importance_sampling_evidence_matches_enumeration(data_seed):
    model = UnivariateGMM(2, 2.0)
    x = model.sample(7, seed=data_seed).x
    fit = gmmkit.fit(model, x, seed=0, n_init=3)
    result = psis_diagnostics(fit, n_draws=4000, seed=data_seed)
    exact = model.exact_log_evidence(x)
    # The tolerance; the estimate's own Monte Carlo se is < 0.1 nats here.
    assert abs(result.log_evidence - exact) < 0.3, (result, exact)
    assert abs(result.log_evidence_psis - exact) < 0.3, (result, exact)
    assert result.log_evidence_se < 0.1


def test_symmetrisation_accounts_for_the_label_modes(three_clusters_10sd):
    # With three_clusters_10sd modes, q covers one of the K! = 6 relabelled copies of the posterior,
    # so unsymmetrised weights estimate log p(x) - log 6 (Monte Carlo: 5 standard errors).
    _, _, _, _, fit = three_clusters_10sd
    sym = psis_diagnostics(fit, n_draws=2000, seed=1)
    raw = psis_diagnostics(fit, n_draws=2000, seed=1, symmetrise=False)
    assert not raw.symmetrised
    gap = sym.log_evidence - raw.log_evidence
    assert abs(gap - np.log(6.0)) < 5 * (sym.log_evidence_se + raw.log_evidence_se)


# ----------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def comparison(three_clusters_10sd):
    model, x, means, labels, fit = three_clusters_10sd
    rng = np.random.default_rng(7)
    order = np.argsort(fit.means[:, 0])
    sd = np.sqrt(fit.variational_params["s2"][order])
    # A "sampler" whose draws look like the exact posterior, with label switches.
    # Both chains draw from the same distribution (a converged reference); 20% of chain
    # 0's draws have their labels switched.
    # (1000 draws per chain: with iid draws r-hat's own noise is then well below 0.01.)
    clean = fit.means[order, 0] + sd * rng.standard_normal((2, 1000, 3))
    shuffled = clean.copy()
    others = [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)]
    for s in np.flatnonzero(rng.random(1000) < 0.2):
        shuffled[0, s] = clean[0, s, list(others[rng.integers(len(others))])]
    nuts = draws_fit(model, x, shuffled)
    short = gmmkit.fit(model, x, seed=4, max_iter=2, init="random")
    truth = {"means": means, "labels": labels, "weights": np.full(3, 1 / 3),
             "covariances": np.ones((3, 1, 1))}
    return compare([fit, short, nuts], truth=truth, n_draws=500, psis_draws=1000)


def test_compare_table_has_every_column_and_defaults_to_nuts(comparison):
    table = comparison.table
    assert comparison.reference == "nuts"
    assert list(table.columns) == list(TABLE_COLUMNS) + list(TRUTH_COLUMNS)
    assert list(table.index) == ["cavi", "cavi-2", "nuts"]
    assert table.loc["nuts", "mean_shift_max"] == 0.0
    assert np.isnan(table.loc["nuts", "psis_khat"]) and table.loc["nuts", "trust_q"] == "n/a"
    assert table.loc["cavi", "trust_q"] == "ok"
    # Evidence: no enumeration (3**300), no SMC -> the best variational IS estimate.
    assert "importance sampling from cavi" in table.loc["cavi", "log_evidence_source"]
    gap = table["log_evidence"] - table["elbo"]
    np.testing.assert_allclose(table["elbo_gap"], gap)
    assert table.loc["cavi", "elbo_gap"] > 0  # the ELBO is a lower bound
    assert table.loc["cavi", "elbo_gap"] < table.loc["cavi-2", "elbo_gap"]
    assert table.loc["cavi", "ari"] > 0.99
    assert table.loc["cavi", "truth_mean_error"] < 0.2  # 100 points per cluster, sd 1
    # the NUTS draws' label switches are flagged on the aligned fit
    assert comparison.aligned["nuts"].diagnostics["switched_chains"] == (0,)
    reading = comparison.reading()
    assert any("labels switched within chain(s) 0" in line for line in reading)
    looser = table.loc["cavi", "elbo"] - table.loc["cavi-2", "elbo"]
    assert f"cavi-2's bound is {looser:.1f} nats looser than cavi's." in reading


def test_compare_summary_is_side_by_side(comparison):
    summary = comparison.summary()
    assert list(summary.index.get_level_values("fit").unique()) == ["cavi", "cavi-2", "nuts"]
    # aligned: every fit's mu[0] is the same (leftmost) cluster
    mu0 = summary.xs("mu[0]", level="parameter")["mean"]
    assert mu0.max() - mu0.min() < 1.0


def test_comparison_save_writes_every_file(comparison, tmp_path):
    out = comparison.save(tmp_path / "report")
    expected = {
        "table.csv", "summary.csv", "report.md", "elbo.png", "fit.png", "forest.png",
        "khat.png", "trace_cavi.png", "trace_cavi-2.png", "trace_nuts.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    for name in expected:
        assert (out / name).stat().st_size > 0
    assert {p.name for p in (out / "fits").iterdir()} == {"cavi.nc", "cavi-2.nc", "nuts.nc"}
    report = (out / "report.md").read_text()
    # fit names differ from methods (cavi-2), so both columns, each once
    assert "| fit | method | ELBO | log Z |" in report and "![khat](khat.png)" in report
    assert "## Reading" in report
    idata = gmmkit._arviz.from_netcdf(out / "fits" / "nuts.nc")
    np.testing.assert_array_equal(
        idata.posterior["mu"].values, comparison.aligned["nuts"].posterior.draws["mu"]
    )
    with pytest.raises(ValueError, match="exists and is not empty"):
        comparison.save(out)


def test_comparison_figures_have_the_expected_axes_and_lines(comparison):
    elbo = comparison.plot_elbo()
    assert len(elbo.axes) == 2
    # two CAVI traces + the evidence line on each axis (the NUTS fit has no ELBO)
    assert [len(ax.lines) for ax in elbo.axes] == [3, 3]
    fit_fig = comparison.plot_fit()
    assert len(fit_fig.axes) == 1 and len(fit_fig.axes[0].lines) == 3 + 1  # fits + truth
    khat = comparison.plot_khat()
    assert len(khat.axes) == 1 and len(khat.axes[0].patches) == 2  # one bar per CAVI fit
    trace = comparison.plot_trace("nuts")
    assert len(trace.axes) == 3 * 2  # one row per component of mu: density and trace
    assert [len(ax.lines) for ax in trace.axes[1::2]] == [2, 2, 2]  # one line per chain
    forest = comparison.plot_forest()
    assert len(forest.axes) >= 1




def test_bad_input_is_refused(three_clusters_10sd):
    model, x, _, _, fit = three_clusters_10sd
    with pytest.raises(ValueError, match="at least one Fit, got an empty"):
        compare([])
    with pytest.raises(ValueError, match="at least one Fit"):
        compare({})
    other = gmmkit.fit(model, x + 1.0, seed=0)
    with pytest.raises(ValueError, match="same data"):
        compare([fit, other])
    k4 = gmmkit.fit(UnivariateGMM(4, 20.0), x, seed=0)
    with pytest.raises(ValueError, match=r"K = 3 components.*'cavi-2' has K = 4.*align='match'"):
        compare([fit, k4])
    matched = compare([fit, k4], align="match", psis_draws=200, n_draws=200).table
    assert np.isnan(matched.loc["cavi-2", "mean_shift_max"]) and matched.loc["cavi-2", "ari"] > 0.5
    with pytest.raises(ValueError, match="reference must be the name of one of the fits"):
        compare([fit], reference="nuts")
    with pytest.raises(ValueError, match="must be a gmmkit Fit"):
        compare([fit, "cavi"])
    with pytest.raises(ValueError, match="unknown align 'greedy'"):
        compare([fit], align="greedy")
    with pytest.raises(ValueError, match=r"to must have 3 components .* shape \(2, 1\)"):
        align(fit, to=np.array([0.0, 1.0]))
    point = point_fit(np.zeros((5, 1)) + np.arange(5)[:, None], np.array([0.5, 0.5]),
                      np.array([[0.0], [4.0]]), np.ones((2, 1, 1)))
    with pytest.raises(ValueError, match="PSIS needs a variational fit"):
        psis_diagnostics(point)
    with pytest.raises(ValueError, match="n_draws must be an integer >= 10"):
        psis_diagnostics(fit, n_draws=3)
    with pytest.raises(ValueError, match="unknown model 'bishop'"):
        sweep("cavi", model="bishop")
    with pytest.raises(ValueError, match="n must be at least k"):
        sweep("cavi", n=2, k=3)
    with pytest.raises(ValueError, match="separation must be a positive"):
        sweep("cavi", separation=-1.0)
    with pytest.raises(ValueError, match="lacks the column"):
        plot_sweep(fit.model and __import__("pandas").DataFrame({"n": [1]}))
    comparison = compare([fit], psis_draws=100, n_draws=100)
    with pytest.raises(ValueError, match="name must be one of the compared fits"):
        comparison.plot_trace("nuts")


# ----------------------------------------------------------------------------- any dimension


def test_align_relabels_multivariate_draws_with_every_variable():
    rng = np.random.default_rng(8)
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    x = np.concatenate([rng.normal(m, 1.0, size=(30, 2)) for m in means])
    k = 4
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    clean = {
        "weights": np.broadcast_to(weights, (2, 100, k)).copy(),
        "means": means + 0.2 * rng.standard_normal((2, 100, k, 2)),
        "covariances": np.broadcast_to(
            np.stack([np.eye(2) * (1 + j) for j in range(k)]), (2, 100, k, 2, 2)
        ).copy(),
    }
    perms = np.array([rng.permutation(k) for _ in range(200)]).reshape(2, 100, k)
    shuffled = {
        name: np.take_along_axis(v, perms.reshape(perms.shape + (1,) * (v.ndim - 3)), axis=2)
        for name, v in clean.items()
    }
    fit = Fit(
        method="nuts", model=GaussianMixture(k), data=x,
        posterior=DrawsPosterior(GaussianMixture(k), shuffled),
        responsibilities=np.full((x.shape[0], k), 0.25), elbo=float("nan"),
        elbo_trace=np.empty(0), converged=True, n_iter=0, elapsed_s=0.0,
    )
    aligned = align(fit, to=means)
    for name, value in clean.items():
        np.testing.assert_array_equal(aligned.posterior.draws[name], value)
    np.testing.assert_allclose(aligned.weights, weights, rtol=1e-12)
    # responsibilities recomputed per relabelled draw: the clusters are 8 sd apart
    labels = np.argmax(aligned.responsibilities, axis=1)
    assert np.mean(labels == np.repeat(np.arange(4), 30)) > 0.99
    assert set(aligned.diagnostics["switched_chains"]) == {0, 1}


def test_compare_point_estimates_in_two_and_three_dimensions(tmp_path):
    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    x = np.concatenate([rng.normal(m, 1.0, size=(40, 2)) for m in means])
    w, covs = np.full(3, 1 / 3), np.stack([np.eye(2)] * 3)
    order = [1, 2, 0]
    fits = {"a": point_fit(x, w, means, covs), "b": point_fit(x, w, means[order] + 0.1, covs)}
    truth = {"means": means, "weights": w, "covariances": covs}
    comparison = compare(fits, truth=truth)
    table = comparison.table
    # Point estimates: sd 0, so the sd-scaled agreement is undefined (NaN) ...
    assert np.isnan(table.loc["b", "mean_shift_max"])
    # ... but the Wasserstein distance of two points is their distance: sqrt(6 * 0.1^2).
    assert table.loc["b", "w2_means"] == pytest.approx(np.sqrt(6 * 0.01), rel=1e-10)
    assert table.loc["b", "truth_mean_error"] == pytest.approx(0.1, rel=1e-10)
    assert table.loc["a", "truth_mean_error"] == 0.0
    np.testing.assert_allclose(comparison.aligned["b"].means, means + 0.1, rtol=1e-12)
    fit_fig = comparison.plot_fit()
    # 2-D: per fit and component, a 1-sd and a 2-sd ellipse, and one line of the fit's
    # means; truth: 2-sd ellipses and one line of its means
    assert len(fit_fig.axes) == 1
    assert len(fit_fig.axes[0].lines) == 2 * (3 * 2 + 1) + 3 + 1
    x3 = np.concatenate([rng.normal(np.r_[m, 0.0], 1.0, size=(40, 3)) for m in means])
    m3 = np.c_[means, np.zeros(3)]
    three = compare({"a": point_fit(x3, w, m3, np.stack([np.eye(3)] * 3))})
    fig3 = three.plot_fit()
    assert len(fig3.axes) == 3 * 3  # a 3 x 3 pairs grid (no 3-D scatter)
    assert all(ax.name == "rectilinear" for ax in fig3.axes)


def test_bishop_log_q_matches_scipy_densities():
    from scipy import stats

    from gmmkit.inference.vb import BishopPosterior
    from gmmkit.models import BayesianGMM
    from gmmkit.models.weights import DirichletQ

    rng = np.random.default_rng(4)
    k, d, s = 3, 2, 5
    params = {
        "alpha": np.array([3.0, 5.0, 7.0]), "beta": np.array([10.0, 20.0, 30.0]),
        "m": rng.normal(size=(k, d)), "nu": np.array([5.0, 6.0, 7.0]),
        "W": np.stack([np.array([[0.5, 0.1], [0.1, 0.4]]) * (j + 1) for j in range(k)]),
    }
    weights = rng.dirichlet(params["alpha"], size=s)
    precision = np.stack([
        [stats.wishart(df=params["nu"][j], scale=params["W"][j]).rvs(random_state=rng)
         for j in range(k)] for _ in range(s)
    ])
    covs = np.linalg.inv(precision)
    means = rng.normal(size=(s, k, d))
    draws = {"weights": weights[None], "means": means[None], "covariances": covs[None]}
    # q with these parameters; W is stored as the Cholesky factor of W^-1.
    posterior = BishopPosterior(
        BayesianGMM(k), np.zeros(d), DirichletQ(params["alpha"], 1.0), params["beta"],
        params["m"],
        np.linalg.cholesky(np.linalg.inv(params["W"])), params["nu"])
    matrix = posterior.component_log_q(draws)
    log_norm = stats.dirichlet(params["alpha"]).logpdf(np.full(k, 1 / k)) - np.sum(
        (params["alpha"] - 1) * np.log(1 / k)
    )
    for draw in range(s):
        expected = stats.dirichlet(params["alpha"]).logpdf(weights[draw]) - log_norm
        for j in range(k):
            expected += stats.multivariate_normal(
                params["m"][j], covs[draw, j] / params["beta"][j]
            ).logpdf(means[draw, j])
            expected += stats.wishart(df=params["nu"][j], scale=params["W"][j]).logpdf(
                precision[draw, j]
            )
        # exact algebra, different factorisations: 1e-10 relative
        assert np.trace(matrix[draw]) == pytest.approx(expected, rel=1e-10)


def test_symmetrisation_correction_limits():
    from gmmkit.comparisons.diagnostics import _symmetrisation_correction

    rng = np.random.default_rng(0)
    # Identical factors: every relabelling has the same density, q_sym = q: correction 0.
    same = np.repeat(rng.normal(size=(10, 4, 1)), 4, axis=2)
    np.testing.assert_allclose(_symmetrisation_correction(same), 0.0, atol=1e-12)
    # Far-apart factors: only the identity counts, q_sym = q / K!: correction log K!.
    apart = np.full((10, 4, 4), -1e4)
    apart[:, np.arange(4), np.arange(4)] = 0.0
    np.testing.assert_allclose(_symmetrisation_correction(apart), np.log(24.0), rtol=1e-12)


def test_compare_real_em_and_kmeans_fits_on_old_faithful(tmp_path):
    X = gmmkit.datasets.old_faithful(standardize=True)
    model = GaussianMixture(2)
    em = gmmkit.fit(model, X, "em", seed=0, n_init=2)
    # the same EM fit with its labels swapped is recovered exactly
    swapped = dataclasses.replace(
        em, posterior=PointEstimatePosterior(em.weights[::-1], em.means[::-1],
                                             em.covariances[::-1]),
        responsibilities=em.responsibilities[:, ::-1],
    )
    np.testing.assert_array_equal(align(swapped, to=em).means, em.means)
    kmeans = gmmkit.fit(model, X, "kmeans", seed=1, n_init=2)
    comparison = compare({"em": em, "swapped": swapped, "kmeans": kmeans})
    table = comparison.table
    assert comparison.reference == "em"  # no sampler: the first fit
    assert table.loc["swapped", "w2_means"] == 0.0 and table.loc["swapped", "ari"] == 1.0
    assert table.loc["kmeans", "ari"] > 0.9  # Old Faithful's two clusters are clear
    out = comparison.save(tmp_path / "faithful", log_likelihood=False)
    assert {"table.csv", "report.md", "fit.png", "elbo.png", "forest.png"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "khat.png").exists()  # no variational fit, no k-hat figure


@pytest.mark.slow
def test_compare_cavi_advi_nuts_end_to_end(three_clusters_10sd, tmp_path):
    model, x, means, labels, cavi = three_clusters_10sd
    # The reference must pass its checks (r-hat <= 1.01, ESS >= 100 per chain after
    # relabelling) for agreement numbers: 2 x 200 draws gave bulk ESS ~135 < 200, so
    # take 2 x 500 draws started from the CAVI solution (the remedy the reading names).
    nuts = gmmkit.fit(model, x, "nuts", seed=0, draws=500, tune=300, chains=2, init=cavi)
    advi = gmmkit.fit(model, x, "advi", seed=0)
    comparison = compare([cavi, advi, nuts], truth={"means": means, "labels": labels},
                         psis_draws=1000, n_draws=400)
    table = comparison.table
    assert comparison.reference == "nuts"
    assert comparison.reference_converged, comparison.reference_problems
    assert table.loc["nuts", "rhat_max"] <= 1.01
    assert np.isnan(table.loc["nuts", "psis_khat"])  # a sampler has no q
    assert np.isfinite(table.loc["advi", "psis_khat"])
    # 10-sd three_clusters_10sd clusters: every method finds them; CAVI's means are within a
    # posterior sd of NUTS's (mean-field is nearly exact when assignments are certain)
    assert (table["ari"] == 1.0).all()
    assert table.loc["cavi", "mean_shift_max"] < 1.0
    assert set(comparison.aligned["nuts"].diagnostics["label_switching"]) == {0, 1}
    out = comparison.save(tmp_path / "e2e", log_likelihood=False)
    assert (out / "trace_nuts.png").stat().st_size > 0


@pytest.mark.slow
def test_ordered_advi_importance_sampling_evidence_gets_log_k_factorial():
    # Ordered ADVI's importance weights target the ordered model, whose evidence is
    # exactly Z / K!; compare() must add log K! and say so.
    model = UnivariateGMM(2, prior_sd=3.0)
    x = np.array([-2.1, -1.7, -2.4, 2.2, 1.9, 2.5, 2.0])
    fits = {"advi": gmmkit.fit(model, x, "advi", seed=0),
            "advi2": gmmkit.fit(model, x, "advi", seed=1)}
    table = gmmkit.compare(fits, reference="advi", exact_evidence=False,
                           psis_draws=4000).table
    exact = model.exact_log_evidence(x)
    row = table.loc["advi"]
    assert "log K!" in row["log_evidence_source"]
    # IS estimate: within 5 of its standard errors (measured se 0.07) plus 0.05 nats of
    # Jensen bias, and far from the uncorrected value (log 2 = 0.69 nats lower).
    assert abs(row["log_evidence"] - exact) < 5 * row["log_evidence_se"] + 0.05


def test_min_weight_restricts_agreement_to_live_components():
    # Bishop's K = 6 on Old Faithful keeps two components.  Two fits that differ only in
    # beta0 agree on those two, while their four pruned components follow their different
    # priors; min_weight = 0.01 must measure the live ones only.
    from gmmkit import BayesianGMM

    X = gmmkit.datasets.old_faithful(standardize=True)
    a = gmmkit.fit(BayesianGMM(6, alpha0=1e-3), X, "cavi", seed=0)
    b = gmmkit.fit(BayesianGMM(6, alpha0=1e-3, beta0=0.05), X, "cavi", seed=1)
    every = compare({"a": a, "b": b}, reference="a").table.loc["b"]
    live = compare({"a": a, "b": b}, reference="a", min_weight=0.01).table.loc["b"]
    # Live component means of two fits of the same 272 points: within 0.1 data sd.
    assert live["w2_means"] < 0.1
    assert every["w2_means"] > 100 * live["w2_means"]
    with pytest.raises(ValueError, match="min_weight"):
        compare({"a": a, "b": b}, reference="a", min_weight=0.9)
