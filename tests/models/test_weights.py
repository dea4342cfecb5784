"""Weight priors (issue 13): truncated stick-breaking against exact and Monte Carlo oracles."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import digamma, gammaln, xlogy

from gmmkit.models.weights import DirichletWeights, StickBreakingQ, StickBreakingWeights


def _prior_sticks(k, gamma, n_draws, rng):
    """pi from v_k ~ Beta(1, gamma) (k < K), v_K = 1, written independently of gmmkit:
    shape (n_draws, K)."""
    v = np.concatenate([rng.beta(1.0, gamma, size=(n_draws, k - 1)), np.ones((n_draws, 1))],
                       axis=1)
    left = np.concatenate([np.ones((n_draws, 1)), np.cumprod(1.0 - v[:, :-1], axis=1)], axis=1)
    return v * left


def _exact_log_marginal(counts, gamma):
    """ln prod_{k<K} B(1 + n_k, gamma + n_{>k}) / B(1, gamma) in exact rational arithmetic
    (B(1 + n, c) / B(1, gamma) = n! gamma / prod_{j=0..n} (c + j) for integer n), then a
    60-digit logarithm: an oracle for any gamma, tiny or huge."""
    g = Fraction(gamma)
    value = Fraction(1)
    for k in range(len(counts) - 1):
        n, m = int(counts[k]), int(sum(counts[k + 1:]))
        term = Fraction(math.factorial(n)) * g
        for j in range(n + 1):
            term /= g + m + j
        value *= term
    getcontext().prec = 60
    return float((Decimal(value.numerator) / Decimal(value.denominator)).ln())


# ----------------------------------------------------------------------------- K = 2
@pytest.mark.parametrize("gamma", [0.05, 1.0, 20.0], ids=["g0.05", "g1", "g20"])
def test_two_sticks_are_the_dirichlet_one_gamma(gamma, rng):
    """K = 2: v_1 ~ Beta(1, gamma) and pi = (v_1, 1 - v_1) is Dir(1, gamma): an exact oracle
    for the density (scipy) and for p(z) (the Dirichlet-multinomial), 1e-10 relative."""
    sb = StickBreakingWeights(2, gamma)
    pi = rng.dirichlet([1.0, gamma], size=20)
    pi = pi[np.all(pi > 1e-200, axis=1)]
    expected = stats.dirichlet([1.0, gamma]).logpdf(pi.T)
    # atol: with gamma = 1 the density is 1, its log 0 up to rounding of ln R_1 = ln 1.
    np.testing.assert_allclose(sb.log_prior(np.log(pi)), expected, rtol=1e-10, atol=1e-14)
    counts = np.array([[0, 0], [4, 0], [0, 4], [3, 5], [17, 2]])
    n = counts.sum(axis=1)
    dirmult = (gammaln(1.0 + gamma) - gammaln(n + 1.0 + gamma) + gammaln(1.0 + counts[:, 0])
               + gammaln(gamma + counts[:, 1]) - gammaln(gamma))
    for row, want in zip(counts, dirmult, strict=True):
        got = sb.log_marginal_counts(row[None])[0]
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


# ----------------------------------------------------------------------------- p(z)
@pytest.mark.parametrize(
    "k,gamma,counts",
    [(3, 0.5, [2, 1, 1]), (3, 3.0, [0, 2, 3]), (4, 1.0, [1, 0, 2, 1]), (4, 0.2, [4, 1, 0, 0])],
    ids=["K3-g0.5", "K3-g3", "K4-g1", "K4-g0.2"],
)
def test_log_marginal_counts_is_the_prior_expectation_of_the_likelihood(k, gamma, counts):
    """p(z) = E_prior[prod_k pi_k^{n_k}]: Monte Carlo over sticks drawn with numpy's Beta,
    within 4 standard errors of the mean (delta method for the log)."""
    counts = np.array(counts)
    pi = _prior_sticks(k, gamma, 400_000, np.random.default_rng(7))
    values = np.exp(np.sum(xlogy(counts, pi), axis=1))  # 0 ln 0 = 0: an empty count
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(values.size)
    got = np.exp(StickBreakingWeights(k, gamma).log_marginal_counts(counts[None])[0])
    assert abs(got - mean) <= 4 * se, (got, mean, se)


@pytest.mark.parametrize("gamma", [1e-30, 1e-3, 2.5, 1e12], ids=["g1e-30", "g1e-3", "g2.5",
                                                                 "g1e12"])
def test_log_marginal_counts_is_exact_for_tiny_and_huge_concentrations(gamma):
    """Against exact rational arithmetic: 1e-12 relative, or 1e-12 absolute for a
    probability near one (everything in the first component as gamma -> 0)."""
    counts = np.array([[6, 0, 0], [0, 0, 6], [2, 3, 1], [0, 5, 1], [1, 1, 4]])
    got = StickBreakingWeights(3, gamma).log_marginal_counts(counts)
    want = np.array([_exact_log_marginal(row, gamma) for row in counts])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_log_marginal_counts_sums_to_one_over_every_sequence():
    """sum over all K**N sequences of p(z) = 1 (exact algebra)."""
    k, n, gamma = 3, 5, 0.7
    z = np.array(np.meshgrid(*[np.arange(k)] * n, indexing="ij")).reshape(n, -1).T
    counts = (z[:, :, None] == np.arange(k)).sum(axis=1)
    total = np.exp(StickBreakingWeights(k, gamma).log_marginal_counts(counts)).sum()
    assert total == pytest.approx(1.0, rel=1e-12)


# ----------------------------------------------------------------------------- densities
@pytest.mark.parametrize("gamma", [1.0, 2.5], ids=["g1", "g2.5"])
def test_log_prior_integrates_to_one_on_the_three_simplex(gamma):
    """K = 3: the density of (pi_1, pi_2) over the simplex integrates to 1 (quadrature,
    1e-7: dblquad's own error estimate is far below)."""
    sb = StickBreakingWeights(3, gamma)

    def density(p2, p1):
        p3 = max(1.0 - p1 - p2, 1e-300)
        return float(np.exp(sb.log_prior(np.log([p1, p2, p3]))))

    total, _ = integrate.dblquad(density, 0.0, 1.0, 0.0, lambda p1: 1.0 - p1,
                                   epsabs=1e-10, epsrel=1e-10)
    assert total == pytest.approx(1.0, abs=1e-7)


def test_q_density_is_the_beta_density_of_the_sticks(rng):
    """ln q(pi) = sum_k ln Beta(v_k | a_k, b_k) - sum_k ln R_k, from scipy's Beta."""
    q = StickBreakingWeights(4, 0.8).posterior(np.array([3.2, 0.4, 5.1, 1.3]))
    pi = rng.dirichlet(np.ones(4), size=10)
    left = 1.0 - np.concatenate([np.zeros((10, 1)), np.cumsum(pi, axis=1)[:, :2]], axis=1)
    v = pi[:, :3] / left
    expected = stats.beta(q.a, q.b).logpdf(v).sum(axis=1) - np.log(left).sum(axis=1)
    np.testing.assert_allclose(q.log_density(np.log(pi)), expected, rtol=1e-10)


# ----------------------------------------------------------------------------- q(v)
def test_posterior_is_blei_and_jordan():
    q = StickBreakingWeights(4, 0.3).posterior(np.array([2.0, 5.0, 0.5, 1.5]))
    np.testing.assert_array_equal(q.a, [3.0, 6.0, 1.5])
    np.testing.assert_allclose(q.b, [0.3 + 7.0, 0.3 + 2.0, 0.3 + 1.5], rtol=1e-15)


def _q(k=4, gamma=0.6, counts=(4.0, 0.7, 2.5, 3.1)):
    return StickBreakingWeights(k, gamma).posterior(np.array(counts))


def test_bound_terms_are_minus_the_kl_from_scipy():
    """E_q[ln p(v)] - E_q[ln q(v)] = sum_k ln gamma + (gamma - 1) E[ln(1 - v_k)] + H[q_k],
    with scipy's Beta entropies; exact algebra, 1e-10 relative."""
    q = _q()
    e_log_1mv = digamma(q.b) - digamma(q.a + q.b)
    expected = np.sum(np.log(q.gamma) + (q.gamma - 1.0) * e_log_1mv
                      + stats.beta(q.a, q.b).entropy())
    assert q.bound_terms() == pytest.approx(expected, rel=1e-10)


def test_bound_terms_match_monte_carlo(rng):
    """Within 4 standard errors of mean_s ln p(v_s) - ln q(v_s), v_s ~ q (scipy Betas)."""
    q = _q()
    v = rng.beta(q.a, q.b, size=(200_000, q.a.size))
    values = (stats.beta(1.0, q.gamma).logpdf(v) - stats.beta(q.a, q.b).logpdf(v)).sum(axis=1)
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(q.bound_terms() - values.mean()) <= 4 * se


def test_expected_log_and_mean_weights_match_draws(rng):
    """draw_log_weights draws from q: E[pi] and E[ln pi] within 4 standard errors."""
    q = _q()
    log_w = q.draw_log_weights(200_000, rng)
    w = np.exp(log_w)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    for values, expected in ((w, q.mean_weights), (log_w, q.expected_log_weights)):
        se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
        assert np.all(np.abs(values.mean(axis=0) - expected) <= 4 * se)
    assert q.mean_weights.sum() == pytest.approx(1.0, rel=1e-14)


def test_prior_samples_have_the_geometric_mean_weights():
    """E[pi_k] = (1 / (1 + gamma)) (gamma / (1 + gamma))^(k-1) for k < K and
    E[pi_K] = (gamma / (1 + gamma))^(K-1), within 4 standard errors."""
    k, gamma = 4, 1.5
    sb = StickBreakingWeights(k, gamma)
    rng = np.random.default_rng(3)
    draws = np.array([sb.sample(rng) for _ in range(20_000)])
    ratio = gamma / (1.0 + gamma)
    expected = np.append(ratio ** np.arange(k - 1) / (1.0 + gamma), ratio ** (k - 1))
    se = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - expected) <= 4 * se)


def test_tiny_concentration_stays_finite():
    """gamma = 1e-30 with empty tails: E[ln pi] ~ -1e30 (weight 0), never NaN; the bound
    terms are those of a point mass, ~0 for the empty sticks."""
    q = StickBreakingWeights(4, 1e-30).posterior(np.array([10.0, 5.0, 0.0, 0.0]))
    e = q.expected_log_weights
    assert np.all(np.isfinite(e)) and e[2] < -1e29 and e[3] < -1e29
    assert np.isfinite(q.bound_terms())
    assert np.all(np.isfinite(q.draw_log_weights(10, np.random.default_rng(0))))
    # The empty third stick contributes ln gamma + ln B(1, gamma) = 0 exactly in theory.
    full = q.bound_terms()
    two = StickBreakingQ(q.a[:2], q.b[:2], q.gamma).bound_terms()
    assert abs(full - two) < 1e-12


def test_one_component_is_a_point_mass():
    sb = StickBreakingWeights(1, 0.5)
    q = sb.posterior(np.array([7.0]))
    assert q.expected_log_weights.tolist() == [0.0]
    assert q.mean_weights.tolist() == [1.0]
    assert q.bound_terms() == 0.0
    assert sb.log_marginal_counts(np.array([[7]])).tolist() == [0.0]
    assert sb.sample(np.random.default_rng(0)).tolist() == [1.0]


def test_dirichlet_and_stick_breaking_share_the_interface():
    """Both priors give (B,) from (B, K) counts and (...,) from (..., K) log weights."""
    counts = np.array([[2, 1, 0], [0, 0, 3]])
    log_w = np.log(np.full((2, 5, 3), 1.0 / 3.0))
    for prior in (DirichletWeights(3, 0.5), StickBreakingWeights(3, 0.5)):
        assert prior.log_marginal_counts(counts).shape == (2,)
        assert prior.log_prior(log_w).shape == (2, 5)
        assert prior.posterior(np.array([1.0, 2.0, 0.0])).expected_log_weights.shape == (3,)
