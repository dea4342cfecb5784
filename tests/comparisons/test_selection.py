"""gmmkit.select: criteria, conventions, reproducibility and the textbook choices."""

import warnings
from math import lgamma

import numpy as np
import pytest

import gmmkit
from gmmkit.comparisons.selection import (
    CRITERIA,
    Candidate,
    live_components,
    select,
    symmetry_correction,
)
from gmmkit.inference.methods import CAVI, EM
from gmmkit.models.bayesian import WEIGHT_PRIORS as BAYESIAN_WEIGHT_PRIORS
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.mixture import COVARIANCE_TYPES, NATIVE_COVARIANCE_NAMES


def quiet_select(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return select(*args, **kwargs)


@pytest.fixture(scope="module")
def faithful():
    return gmmkit.datasets.old_faithful(standardize=True)


@pytest.fixture(scope="module")
def three_blobs():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]])
    labels = rng.integers(3, size=500)
    return centres[labels] + rng.standard_normal((500, 2))


# --------------------------------------------------------------------- the bound
def test_corrected_bound_peaks_at_two_on_old_faithful(faithful):
    """Bishop PRML Fig. 10.7: alpha0 = 1, the bound + ln K! peaks at K = 2."""
    sel = quiet_select(faithful, range(1, 10), models="bayesian", alpha0=1.0,
                       covariance="full", weight_prior="dirichlet_distribution",
                       criteria="bound", seed=0)
    bound = sel.table.set_index("n_components")["bound"]
    assert bound.idxmax() == 2
    assert sel.best["bound"] == Candidate("bayesian", 2, "full", "dirichlet_distribution")
    assert sel.higher_is_better["bound"] is True
    # Every K beyond 2 is clearly below the peak (not a near tie).
    assert (bound.loc[3:] < bound.loc[2] - 1.0).all()


def test_pruned_components_do_not_make_the_bound_rise(faithful):
    """alpha0 = 1e-3 switches the extra components off (K_live = 2 for every K >= 2).

    With a fixed symmetric Dir(alpha0), the evidence of a two-cluster explanation grows
    like ln(K - 1) as alpha0 -> 0 (K(K-1) ordered label pairs, each with prior mass
    ~alpha0 / K): that growth is the prior's, and the corrected bound follows it.  The
    tolerance is that term plus 0.1 nats for the optimisation; without the correction
    (the raw ELBO) the curve falls, and with every label counted (ln K!) it would rise
    by ln(K!/2) ~ 12 nats at K = 9.
    """
    sel = quiet_select(faithful, range(1, 10), models="bayesian", alpha0=1e-3,
                       covariance="full", weight_prior="dirichlet_distribution",
                       criteria="bound", seed=0)
    t = sel.table.set_index("n_components")
    assert (t.loc[2:, "k_live"] == 2).all()
    for k in range(3, 10):
        assert t.loc[k, "bound"] - t.loc[2, "bound"] <= np.log(k - 1) + 0.1
        assert t.loc[k, "elbo"] < t.loc[2, "elbo"]
    assert t.loc[1, "bound"] < t.loc[2, "bound"] - 50


def test_symmetry_correction_counts_relabellings():
    assert symmetry_correction(4, 4) == pytest.approx(lgamma(5))
    assert symmetry_correction(4, 2) == pytest.approx(np.log(12))  # 4!/2!
    assert symmetry_correction(3, 1) == pytest.approx(np.log(3))
    assert symmetry_correction(1, 1) == 0.0


def test_live_components_uses_the_expected_share_of_the_data(faithful):
    fit = gmmkit.fit(gmmkit.BayesianGMM(5, alpha0=1e-3), faithful, CAVI.name, seed=0)
    assert live_components(fit) == 2
    assert live_components(fit, threshold=0.5) == 1


@pytest.mark.parametrize("alpha0", [1.0, 1e-3])
def test_bound_choice_agrees_with_exact_evidence_on_tiny_data(alpha0):
    """N = 6, D = 1, two tight groups; a prior expecting clusters of sd ~1 (the default
    W0, from the data's spread, would make one wide cluster as likely)."""
    x = np.array([-5.1, -4.9, -5.0, 5.0, 5.2, 4.8])[:, None]
    prior = {"bayesian": {"m0": [0.0], "W0": [[1.0]], "nu0": 2.0, "beta0": 0.04}}
    sel = quiet_select(x, range(1, 5), models="bayesian", alpha0=alpha0,
                       covariance="full", weight_prior="dirichlet_distribution",
                       criteria=("bound", "exact"), n_init=5, seed=0, model_options=prior)
    t = sel.table.set_index("n_components")
    assert np.isfinite(t["exact"]).all()
    assert sel.best["bound"] == sel.best["exact"]
    # Separated clusters: where every component is live, or the extra ones are switched
    # off (alpha0 small), ELBO + ln K!/(K - K_live)! is within 0.05 nats of log p(X).
    exact_rows = t[(t["k_live"] == t.index) | (alpha0 < 0.01)]
    np.testing.assert_allclose(exact_rows["bound"], exact_rows["exact"], atol=0.05)
    assert (t["bound"] <= t["exact"] + 1e-6).all()
    if alpha0 < 0.01:
        # Counting only ln K_live! (ignoring which labels are live) would prefer K = 2
        # while the evidence rises with K (the fixed-alpha0 Dirichlet's ln(K - 1)).
        live_only = t["elbo"] + [lgamma(k + 1) for k in t["k_live"]]
        assert live_only.idxmax() == 2 and t["exact"].idxmax() == 4


def test_exact_is_nan_where_enumeration_is_impossible(faithful):
    sel = quiet_select(faithful, [2], models="bayesian", criteria=("exact",))
    assert np.isnan(sel.table["exact"]).all()
    assert sel.best["exact"] is None


# --------------------------------------------------------------------- BIC, AIC, ICL
@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_bic_aic_match_scikit_learn(faithful, covariance):
    from sklearn.mixture import GaussianMixture as SkGMM
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    sel = quiet_select(faithful, [3], models="gmm", covariance=covariance,
                       criteria=("bic", "aic", "icl"), seed=1)
    cand = Candidate("gmm", 3, covariance, "none")
    fit = sel.fits[cand]
    params = fit.variational_params
    sk = SkGMM(3, covariance_type=covariance)
    sk.weights_ = np.asarray(params["weights"])
    sk.means_ = np.asarray(params["means"])
    sk.covariances_ = np.asarray(params[NATIVE_COVARIANCE_NAMES[covariance]])
    sk.precisions_cholesky_ = _compute_precision_cholesky(sk.covariances_, covariance)
    row = sel.row(cand)
    assert row["bic"] == pytest.approx(sk.bic(faithful), rel=1e-8)
    assert row["aic"] == pytest.approx(sk.aic(faithful), rel=1e-8)
    resp = sk.predict_proba(faithful)
    entropy = -np.sum(resp * np.log(np.clip(resp, 1e-300, None)))
    assert row["icl"] == pytest.approx(sk.bic(faithful) + 2 * entropy, rel=1e-8)
    assert row["icl"] >= row["bic"]
    assert sel.higher_is_better["bic"] is False


# --------------------------------------------------------------------- every criterion
def test_every_criterion_picks_three_on_three_separated_clusters(three_blobs):
    sel = quiet_select(three_blobs, range(1, 6), criteria=("bound", "bic", "aic", "icl", "cv"),
                       covariance="full", weight_prior="dirichlet_distribution", seed=0)
    for criterion, best in sel.best.items():
        assert best is not None and best.n_components == 3, criterion
    t = sel.table
    assert set(t.columns) >= {"model", "n_components", "covariance", "weight_prior",
                              "bound", "bic", "aic", "icl", "cv", "cv_se"}
    assert len(t) == 10
    bayes = t[t["model"] == "bayesian"]
    gmm = t[t["model"] == "gmm"]
    assert bayes["bic"].isna().all() and gmm["bound"].isna().all()
    assert np.isfinite(t["cv"]).all() and (t["cv_se"] > 0).all()
    assert set(sel.fits) == {
        Candidate(m, k, "full", p) for k in range(1, 6)
        for m, p in (("bayesian", "dirichlet_distribution"), ("gmm", "none"))}


# --------------------------------------------------------------------- cross-validation
def test_cv_is_reproducible_from_the_seed_with_its_standard_error(three_blobs):
    x = three_blobs[:120]
    a = quiet_select(x, [2, 3], models="gmm", criteria="cv", seed=4, n_init=1)
    b = quiet_select(x, [2, 3], models="gmm", criteria="cv", seed=4, n_init=1)
    c = quiet_select(x, [2, 3], models="gmm", criteria="cv", seed=5, n_init=1)
    np.testing.assert_array_equal(a.table["cv"], b.table["cv"])
    np.testing.assert_array_equal(a.table["cv_se"], b.table["cv_se"])
    assert not np.allclose(a.table["cv"], c.table["cv"])
    assert (a.table["cv_se"] > 0).all()


def test_cv_folds_partition_the_data():
    from gmmkit.comparisons.selection import _folds

    folds = _folds(23, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert [len(f) for f in folds] == [5, 5, 5, 4, 4]
    assert all(np.array_equal(f, g) for f, g in zip(folds, _folds(23, 5, seed=0), strict=True))
    assert not all(np.array_equal(f, g) for f, g in
                   zip(folds, _folds(23, 5, seed=1), strict=True))


# --------------------------------------------------------------------- loo and validation
def test_loo_is_refused_on_variational_and_point_candidates(three_blobs):
    with pytest.raises(ValueError, match=r"loo.*posterior draws"):
        select(three_blobs, [2], models="bayesian", criteria=("bound", "loo"))
    with pytest.raises(ValueError, match="loo"):
        select(three_blobs, [2], criteria="loo")
    assert CRITERIA["loo"].kinds == (gmmkit.posterior.PosteriorKind.SAMPLER_DRAWS,)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_components": []}, "n_components"),
    ({"n_components": [0, 1]}, "n_components"),
    ({"n_components": [2, 2]}, "n_components"),
    ({"n_components": "3"}, "n_components"),
    ({"n_components": [500]}, "n_components"),
    ({"criteria": ("bic", "bayes")}, "criteria"),
    ({"criteria": ()}, "criteria"),
    ({"covariance": ("full", "banded")}, "covariance"),
    ({"weight_prior": "dirichlet_process", "models": "gmm"}, "weight_prior"),
    ({"weight_prior": "none", "models": "bayesian"}, "weight_prior"),
    ({"models": ("gmm", "univariate")}, "models"),
    ({"weight_prior": "dirichlet"}, "weight_prior"),
    ({"n_jobs": 0}, "n_jobs"),
    ({"cv_n_init": 0}, "cv_n_init"),
    ({"model_options": {"bayesian": {"weight_prior": "dirichlet_process"}}}, "model_options"),
    ({"n_init": 0}, "n_init"),
    ({"n_folds": 1}, "n_folds"),
    ({"alpha0": -1.0}, "alpha0"),
    ({"seed": -3}, "seed"),
    ({"methods": {"gmm": CAVI.name}}, "methods"),
    ({"methods": {"bayesian": EM.name}, "models": "gmm"}, "methods"),
    ({"fit_options": {"seed": 1}}, "fit_options"),
    ({"model_options": {"bayesian": {"beta0": -1}}}, "model_options.*beta0"),
    ({"model_options": {"bayesian": {"gamma": 1}}}, "model_options"),
    ({"model_options": {"univariate": {}}}, "model_options"),
])
def test_arguments_are_validated_by_name(kwargs, message):
    x = np.random.default_rng(0).standard_normal((40, 2))
    with pytest.raises(ValueError, match=message):
        select(x, **{"n_components": [1, 2], **kwargs})


def test_families_are_what_the_models_accept_and_the_rest_is_noted(three_blobs):
    """Covariance and weight prior are passed to the model: the candidates are exactly
    the families BayesianGMM and GaussianMixture construct, the others are notes."""
    sel = quiet_select(three_blobs[:100], [1, 2], covariance=("full", "diag"),
                       criteria="bic", seed=0)
    families = set(zip(sel.table["model"], sel.table["covariance"],
                       sel.table["weight_prior"], strict=True))
    bayesian = set()
    for covariance in ("full", "diag"):
        for prior in BAYESIAN_WEIGHT_PRIORS:
            try:
                BayesianGMM(2, covariance=covariance, weight_prior=prior)
            except ValueError:
                assert any(covariance in note and prior in note for note in sel.notes)
            else:
                bayesian.add(("bayesian", covariance, prior))
    assert families == bayesian | {("gmm", "full", "none"), ("gmm", "diag", "none")}


def test_selection_is_plain_frozen_data(three_blobs):
    sel = quiet_select(three_blobs[:100], [1, 2], models="gmm", criteria="bic")
    with pytest.raises(AttributeError):
        sel.best = {}
    with pytest.raises(TypeError):
        sel.best["bic"] = None
    assert gmmkit.select is select


# --------------------------------------------------------------------- report figures
def test_selection_figures_have_titles_labels_and_error_bars(three_blobs):
    from gmmkit.report import plot_bic, plot_selection, selection_figures

    sel = quiet_select(three_blobs[:150], [1, 2, 3], covariance=("full", "diag"),
                       criteria=("bound", "bic", "cv"), seed=0, n_init=1)
    figures = selection_figures(sel)
    assert set(figures) == {"selection_bound", "selection_bic", "selection_cv",
                            "bic_by_covariance"}
    for fig in figures.values():
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    cv_ax = plot_selection(sel, "cv").axes[0]
    assert "higher is better" in cv_ax.get_ylabel()
    # One errorbar container per family, with bars.
    n_families = len(sel.table.groupby(["model", "covariance", "weight_prior"]))
    assert n_families >= 3 and len(cv_ax.containers) == n_families
    assert all(c.has_yerr for c in cv_ax.containers)
    bic_ax = plot_bic(sel).axes[0]
    assert "lower is better" in bic_ax.get_ylabel() and "-2 ln L" in bic_ax.get_ylabel()
    assert {t.get_text() for t in bic_ax.get_legend().get_texts()} == {"full", "diag"}
    with pytest.raises(ValueError, match="criterion"):
        plot_selection(sel, "aic")
