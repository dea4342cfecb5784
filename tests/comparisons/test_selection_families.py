"""gmmkit.select across every covariance family and weight prior the models implement.

The families are not listed here: they are whatever ``BayesianGMM`` accepts when it is
constructed (:func:`accepted_families`), so that these tests exercise every family and
weight prior as soon as the model implements it.
"""

import warnings
from itertools import product

import numpy as np
import pytest
from scipy.special import logsumexp

import gmmkit
from gmmkit.comparisons.selection import (
    Candidate,
    label_symmetry_correction,
    select,
    symmetry_correction,
)
from gmmkit.models.bayesian import WEIGHT_PRIORS as BAYESIAN_WEIGHT_PRIORS
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.mixture import COVARIANCE_TYPES
from gmmkit.models.weights import DirichletWeights


def accepted_families() -> list[tuple[str, str]]:
    """(covariance, weight prior) pairs that BayesianGMM constructs without refusing."""
    out = []
    for covariance, prior in product(COVARIANCE_TYPES, BAYESIAN_WEIGHT_PRIORS):
        try:
            BayesianGMM(2, covariance=covariance, weight_prior=prior)
        except ValueError:
            continue
        out.append((covariance, prior))
    return out


def accepted_weight_priors(covariance: str = "full") -> list[str]:
    return [prior for cov, prior in accepted_families() if cov == covariance]


FAMILIES = accepted_families()
PRIORS = accepted_weight_priors()


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


def test_the_accepted_families_include_bishops_model():
    assert ("full", "dirichlet_distribution") in FAMILIES
    assert set(PRIORS) <= set(BAYESIAN_WEIGHT_PRIORS)


# --------------------------------------------------------------------- every criterion
@pytest.mark.parametrize(("covariance", "weight_prior"), FAMILIES,
                         ids=[f"{c}-{p}" for c, p in FAMILIES])
def test_bound_and_cv_pick_three_for_every_bayesian_family(three_blobs, covariance,
                                                           weight_prior):
    """The bound picks K = 3.  Beyond K = 3 the fits switch the extra components off, or
    (tied covariance with stick-breaking weights) keep a fourth live component that
    splits a cluster without changing the predictive: either way their held-out density
    is the K = 3 one to within ~0.1 nats (against a cv_se of ~20), a tie.  So CV must
    pick a fit with at least 3 live components, K = 3 must be within 1 nat of its
    choice, and K = 2 must be hundreds of nats below."""
    sel = quiet_select(three_blobs, range(1, 6), models="bayesian", covariance=covariance,
                       weight_prior=weight_prior, criteria=("bound", "cv"), seed=0)
    t = sel.table.set_index("n_components")
    assert len(t) == 5 and (t["weight_prior"] == weight_prior).all()
    assert sel.best["bound"] == Candidate("bayesian", 3, covariance, weight_prior)
    cv_choice = sel.best["cv"].n_components
    assert t.loc[cv_choice, "k_live"] >= 3
    assert t.loc[3, "cv"] >= t.loc[cv_choice, "cv"] - 1.0
    assert t.loc[2, "cv"] < t.loc[3, "cv"] - 100
    assert (t["cv_se"] > 0).all()


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_information_criteria_and_cv_pick_three_for_every_ml_family(three_blobs, covariance):
    """BIC, ICL and CV pick 3.  AIC is not consistent (its penalty, 2 per parameter, is
    beaten by the chance gain of an extra component often enough: on these data it
    picks K = 4 for diag, spherical and tied, by 1.5 to 5 units), so it only has to
    reject K < 3 and stay within 6 units of its value at K = 3."""
    sel = quiet_select(three_blobs, range(1, 6), models="gmm", covariance=covariance,
                       criteria=("bic", "aic", "icl", "cv"), seed=0)
    for criterion in ("bic", "icl", "cv"):
        assert sel.best[criterion] == Candidate("gmm", 3, covariance, "none"), criterion
    aic = sel.table.set_index("n_components")["aic"]
    assert sel.best["aic"].n_components >= 3
    assert aic.loc[3] - aic.min() < 6.0
    assert aic.loc[2] - aic.loc[3] > 100.0


def test_the_default_grid_is_every_family_and_weight_prior(three_blobs):
    """K = 1..9 by default, every covariance family and weight prior the models accept."""
    x = three_blobs[:60]
    sel = quiet_select(x, criteria="bic", n_init=1, seed=0)
    families = set(zip(sel.table["model"], sel.table["covariance"], sel.table["weight_prior"],
                       strict=True))
    expected = ({("bayesian", c, p) for c, p in FAMILIES}
                | {("gmm", c, "none") for c in COVARIANCE_TYPES})
    assert families == expected
    assert sorted(set(sel.table["n_components"])) == list(range(1, 10))
    assert len(sel.table) == 9 * len(expected)


# --------------------------------------------------------------------- the bound
@pytest.mark.parametrize("weight_prior", PRIORS)
def test_corrected_bound_peaks_at_two_on_old_faithful_for_every_weight_prior(
        faithful, weight_prior):
    """Bishop PRML Fig. 10.7 (alpha0 = 1), whichever prior the weights have."""
    sel = quiet_select(faithful, range(1, 10), models="bayesian", covariance="full",
                       weight_prior=weight_prior, alpha0=1.0, criteria="bound", seed=0)
    bound = sel.table.set_index("n_components")["bound"]
    assert bound.idxmax() == 2
    assert (bound.loc[3:] < bound.loc[2] - 0.5).all()


def _partition_log_prior(model: BayesianGMM, sizes: tuple[int, int]) -> float:
    """ln P(the data split into two blocks of these sizes, on any two labels): the sum of
    p(z) over every labelling, by an explicit double loop (independent of selection's
    vectorised placements)."""
    k = model.n_components
    weights = model.weight_distribution
    terms = []
    for i in range(k):
        for j in range(k):
            if i != j:
                counts = np.zeros((1, k), dtype=int)
                counts[0, i], counts[0, j] = sizes
                terms.append(weights.log_marginal_counts(counts)[0])
    return float(logsumexp(terms))


@pytest.mark.parametrize("weight_prior", PRIORS)
def test_pruned_bound_follows_the_partition_prior_and_does_not_rise(faithful, weight_prior):
    """alpha0 = 1e-3: every K >= 2 keeps the same two live clusters.  The evidence of
    that explanation is ln p(X | partition) + ln P_K(partition): the first term does not
    depend on K, the second is the weight prior's (it grows like ln(K - 1) for the
    symmetric Dirichlet, and stays flat for stick-breaking).  So the corrected bound
    minus ln P_K(partition) must not rise with K; 0.1 nats allows the optimisation and
    the hard-count approximation of the correction.  The uncorrected ELBO falls, and
    counting every label (ln K!) would rise by ~12 nats at K = 9."""
    sel = quiet_select(faithful, range(1, 10), models="bayesian", covariance="full",
                       weight_prior=weight_prior, alpha0=1e-3, criteria="bound", seed=0)
    t = sel.table.set_index("n_components")
    assert (t.loc[2:, "k_live"] == 2).all()
    two = sel.fits[Candidate("bayesian", 2, "full", weight_prior)]
    n1 = round(float(np.asarray(two.responsibilities)[:, 0].sum()))
    sizes = (n1, faithful.shape[0] - n1)
    excess = {}
    for k in range(2, 10):
        model = sel.fits[Candidate("bayesian", k, "full", weight_prior)].model
        excess[k] = t.loc[k, "bound"] - _partition_log_prior(model, sizes)
    for k in range(3, 10):
        assert excess[k] <= excess[2] + 0.1, k
        assert excess[k] >= excess[2] - 0.2, k
    assert t.loc[1, "bound"] < t.loc[2, "bound"] - 50


@pytest.mark.parametrize("alpha0", [1.0, 0.3, 1e-3])
@pytest.mark.parametrize("weight_prior", PRIORS)
def test_bound_agrees_with_exact_evidence_on_tiny_data_for_every_weight_prior(
        alpha0, weight_prior):
    """N = 6, D = 1, two tight groups (the prior of test_selection.py).  Where the
    extra components are switched off or every component is live the corrected bound is
    within 0.05 nats of log p(X); where an extra component is half-live it may be below
    (q is not the posterior there) but never above by more than rounding; and the bound
    picks a K whose evidence is within 0.05 nats of the best (the evidence is nearly
    flat in K >= 2 here, so "the same argmax" would test the fourth decimal)."""
    x = np.array([-5.1, -4.9, -5.0, 5.0, 5.2, 4.8])[:, None]
    prior = {"bayesian": {"m0": [0.0], "W0": [[1.0]], "nu0": 2.0, "beta0": 0.04}}
    sel = quiet_select(x, range(1, 5), models="bayesian", covariance="full",
                       weight_prior=weight_prior, alpha0=alpha0,
                       criteria=("bound", "exact"), n_init=5, seed=0, model_options=prior)
    t = sel.table.set_index("n_components")
    assert np.isfinite(t["exact"]).all()
    assert (t["bound"] <= t["exact"] + 1e-6).all()
    assert t.loc[2, "bound"] == pytest.approx(t.loc[2, "exact"], abs=0.05)
    assert t.loc[t["bound"].idxmax(), "exact"] >= t["exact"].max() - 0.05
    if alpha0 < 0.01:
        np.testing.assert_allclose(t["bound"], t["exact"], atol=0.05)


# --------------------------------------------------------------------- the correction
@pytest.mark.parametrize(("k", "counts"), [
    (1, [10.0]),
    (4, [3.0, 2.0, 1e-6, 1e-6]),
    (4, [2.0, 1e-6, 3.0, 4.0]),
    (6, [5.0, 4.0, 3.0, 2.0, 1.0, 1.0]),
    (9, [30.0, 20.0] + [1e-9] * 7),
    (9, [float(c) for c in range(1, 10)]),
])
def test_correction_is_ln_k_factorial_over_dead_for_exchangeable_weights(k, counts):
    weights = DirichletWeights(k, 0.7)
    live = int(np.sum(np.asarray(counts) / np.sum(counts) > 1e-3))
    expected = symmetry_correction(k, live)
    assert label_symmetry_correction(weights, counts) == pytest.approx(
        expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("alpha0", [0.05, 1.0, 4.0])
@pytest.mark.parametrize("weight_prior", PRIORS)
def test_correction_sums_the_prior_over_every_labelling_of_the_partition(weight_prior,
                                                                         alpha0):
    """Brute force: over all K**N assignment sequences z, the prior mass of those that
    split the points into the fit's blocks ({0, 1, 2}, {3, 4}), whatever the labels,
    equals p(z*) exp(correction); z* is the fit's own labelling (blocks on labels 2, 0)."""
    k, n = 4, 5
    weights = BayesianGMM(k, alpha0=alpha0, weight_prior=weight_prior).weight_distribution
    expected_counts = np.array([2.0, 1e-7, 3.0, 1e-7])
    z = np.array(list(product(range(k), repeat=n)))  # (K**N, N)
    same_blocks = ((z[:, 0] == z[:, 1]) & (z[:, 1] == z[:, 2]) & (z[:, 3] == z[:, 4])
                   & (z[:, 0] != z[:, 3]))
    counts = np.stack([(z[same_blocks] == j).sum(axis=1) for j in range(k)], axis=1)
    partition = logsumexp(weights.log_marginal_counts(counts))
    own = weights.log_marginal_counts(np.array([[2, 0, 3, 0]]))[0]
    correction = label_symmetry_correction(weights, expected_counts)
    assert own + correction == pytest.approx(partition, rel=1e-10)


@pytest.mark.parametrize("weight_prior", [p for p in PRIORS if p == "dirichlet_process"])
def test_stick_breaking_counts_fewer_equivalent_copies(weight_prior):
    """The stick-breaking prior is not exchangeable: the size-ordered labelling is more
    probable than its relabellings, so the correction is below ln K!/(K - K_live)! and
    larger when the fit sits on a less probable labelling (which its ELBO pays for)."""
    weights = BayesianGMM(5, alpha0=1.0, weight_prior=weight_prior).weight_distribution
    ordered = label_symmetry_correction(weights, [30.0, 20.0, 10.0, 1e-9, 1e-9])
    reversed_ = label_symmetry_correction(weights, [1e-9, 1e-9, 10.0, 20.0, 30.0])
    assert ordered < symmetry_correction(5, 3) - 0.1
    assert reversed_ > ordered + 1.0
