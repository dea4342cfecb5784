"""Priors on the mixing weights of a Bayesian mixture, and their variational factors.

Every Bayesian family (full, diag, spherical, tied covariances) shares the weight part of
the model: the prior p(pi), the prior probability of an assignment sequence p(z) (with pi
integrated out, for the enumeration oracle), and in variational Bayes the factor q(pi)
that the counts N_k = sum_n r_nk determine, with E_q[ln pi_k] and the two bound terms
E_q[ln p(pi)] - E_q[ln q(pi)].  A covariance family never needs to know which weight
prior it has: it calls the :class:`WeightPrior` it is given.

* :class:`DirichletWeights` -- pi ~ Dir(alpha0 1_K) (Bishop PRML 10.39); q(pi) = Dir(alpha)
  with alpha_k = alpha0 + N_k (10.58).
* :class:`StickBreakingWeights` -- the truncated stick-breaking (Dirichlet-process) prior
  of Blei & Jordan (2006); q(v) a product of Betas (:class:`StickBreakingQ`).  Derivations:
  ``docs/derivations/dirichlet_process.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

import numpy as np
from scipy.special import betaln, digamma, gammaln, logsumexp

__all__ = [
    "DirichletQ",
    "DirichletWeights",
    "StickBreakingQ",
    "StickBreakingWeights",
    "WeightPrior",
    "WeightsQ",
]


class WeightsQ(Protocol):
    """The variational factor q(pi) of a weight prior (frozen; arrays (K,))."""

    @property
    def expected_log_weights(self) -> np.ndarray:
        """E_q[ln pi_k], shape (K,)."""
        ...

    @property
    def mean_weights(self) -> np.ndarray:
        """E_q[pi_k], shape (K,)."""
        ...

    @property
    def log_mean_weights(self) -> np.ndarray:
        """ln E_q[pi_k], shape (K,) (the posterior predictive's weights)."""
        ...

    def bound_terms(self) -> float:
        """E_q[ln p(pi)] - E_q[ln q(pi)] in nats, every constant included."""
        ...

    def params(self) -> dict[str, np.ndarray]:
        """The variational parameters, for ``Fit.variational_params``."""
        ...

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        """Dimension names of the :meth:`params` that are not per component (none for the
        Dirichlet; the K - 1 sticks for stick-breaking)."""
        ...

    def draw_log_weights(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """ln pi for ``n_draws`` draws from q, shape (n_draws, K), finite where pi_k
        underflows."""
        ...

    def log_density(self, log_weights: np.ndarray) -> np.ndarray:
        """ln q(pi) for ln pi of shape (..., K), shape (...)."""
        ...

    def component_log_density(self, log_weights: np.ndarray) -> np.ndarray | None:
        """For ln pi (S, K): the term of ln q(pi) that draw s's component j would
        contribute under factor k, shape (S, K, K), up to label-invariant terms; None when
        q(pi) does not factorise over components (then no label symmetrisation)."""
        ...


class WeightPrior(Protocol):
    """A prior on the K mixing weights (see the module docstring)."""

    n_components: int

    def log_prior(self, log_weights: np.ndarray) -> np.ndarray:
        """ln p(pi) (density of pi_1..pi_{K-1}), every constant, for ln pi (..., K)."""
        ...

    def log_marginal_counts(self, counts: np.ndarray) -> np.ndarray:
        """ln p(z) of one assignment sequence with these counts, pi integrated out.

        ``counts`` (B, K) integer -> (B,)."""
        ...

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of pi, shape (K,)."""
        ...

    def posterior(self, counts: np.ndarray) -> WeightsQ:
        """The optimal q(pi) given expected counts N_k = sum_n r_nk, shape (K,)."""
        ...

    def q_from_params(self, params: Mapping[str, np.ndarray]) -> WeightsQ:
        """The q(pi) whose :meth:`WeightsQ.params` are in ``params`` (other keys are
        ignored), e.g. ``Fit.variational_params`` or scikit-learn's fitted attributes."""
        ...


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def _param(params: Mapping[str, np.ndarray], name: str, length: int) -> np.ndarray:
    if name not in params:
        raise ValueError(f"params must contain {name!r} for this weight prior, got keys "
                         f"{sorted(params)}")
    value = np.asarray(params[name], dtype=float)
    if value.shape != (length,) or not np.all(value > 0):
        raise ValueError(f"params[{name!r}] must be {length} positive numbers, got an array "
                         f"of shape {value.shape}")
    return _readonly(value)


def _log_dirichlet_normaliser(alpha: np.ndarray) -> np.ndarray:
    """ln C(alpha) = ln Gamma(sum alpha) - sum ln Gamma(alpha_k) (PRML B.23), over the
    last axis."""
    return gammaln(np.sum(alpha, axis=-1)) - np.sum(gammaln(alpha), axis=-1)


class DirichletQ(NamedTuple):
    """q(pi) = Dir(alpha) (PRML 10.57-10.58) with its prior's alpha0."""

    alpha: np.ndarray  # (K,)
    alpha0: float

    @property
    def expected_log_weights(self) -> np.ndarray:
        return digamma(self.alpha) - digamma(self.alpha.sum())  # 10.66

    @property
    def mean_weights(self) -> np.ndarray:
        return self.alpha / self.alpha.sum()

    @property
    def log_mean_weights(self) -> np.ndarray:
        return np.log(self.alpha) - np.log(self.alpha.sum())

    def bound_terms(self) -> float:
        # E[ln p(pi)] - E[ln q(pi)] (10.73 - 10.76) in one piece, sum_k (alpha0 - alpha_k)
        # E[ln pi_k].  Separately, both terms carry (alpha0 - 1) E[ln pi_k] ~ -1/alpha0 for
        # an emptied component, which with alpha0 = 1e-30 cancels to no digit at all (an
        # "ELBO" above the evidence); alpha0 - alpha_k = -N_k is accurate to eps relative.
        k = self.alpha.shape[0]
        return float(_log_dirichlet_normaliser(np.full(k, self.alpha0))
                     - _log_dirichlet_normaliser(self.alpha)
                     + np.sum((self.alpha0 - self.alpha) * self.expected_log_weights))

    def params(self) -> dict[str, np.ndarray]:
        return {"alpha": self.alpha.copy()}

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {}

    def draw_log_weights(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        # ln Gamma(a) draws as ln U / a + ln Gamma(a + 1) (Marsaglia & Tsang's boost):
        # finite for the tiny alpha of a pruned component, where Gamma(a) underflows.
        k = self.alpha.shape[0]
        log_g = (np.log(rng.standard_gamma(self.alpha + 1.0, size=(n_draws, k)))
                 + np.log(rng.random((n_draws, k))) / self.alpha)
        return log_g - logsumexp(log_g, axis=1, keepdims=True)

    def log_density(self, log_weights: np.ndarray) -> np.ndarray:
        return (_log_dirichlet_normaliser(self.alpha)
                + np.asarray(log_weights, dtype=float) @ (self.alpha - 1.0))

    def component_log_density(self, log_weights: np.ndarray) -> np.ndarray:
        # Dir(pi | alpha) ∝ prod_k pi_k^(alpha_k - 1): draw s's pi_j under factor k.
        return (self.alpha - 1.0) * np.asarray(log_weights, dtype=float)[:, :, None]


class DirichletWeights(NamedTuple):
    """pi ~ Dir(alpha0 1_K) (PRML 10.39): ``alpha0`` is the prior count given to every
    component; small alpha0 (< 1) lets VB empty the components the data do not need."""

    n_components: int
    alpha0: float

    def log_prior(self, log_weights: np.ndarray) -> np.ndarray:
        k, a0 = self.n_components, self.alpha0
        return (gammaln(k * a0) - k * gammaln(a0)
                + np.sum((a0 - 1.0) * np.asarray(log_weights, dtype=float), axis=-1))

    def log_marginal_counts(self, counts: np.ndarray) -> np.ndarray:
        # Dirichlet-multinomial p(z) = Gamma(K a)/Gamma(N + K a) prod_k Gamma(n_k + a)/Gamma(a)
        # with the integer counts as rising factorials, ln Gamma(a + c) - ln Gamma(a) =
        # sum_{j<c} ln(a + j): differences of gammaln lose every digit for a large alpha0.
        counts = np.asarray(counts).astype(int)
        n = int(counts[0].sum()) if counts.size else 0
        k, a0 = self.n_components, self.alpha0
        rising = np.concatenate([[0.0], np.cumsum(np.log(a0 + np.arange(n)))])
        rising_total = float(np.sum(np.log(k * a0 + np.arange(n))))
        return np.sum(rising[counts], axis=-1) - rising_total

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.dirichlet(np.full(self.n_components, self.alpha0))

    def posterior(self, counts: np.ndarray) -> DirichletQ:
        alpha = self.alpha0 + np.asarray(counts, dtype=float)  # 10.58
        alpha.setflags(write=False)
        return DirichletQ(alpha, self.alpha0)

    def q_from_params(self, params: Mapping[str, np.ndarray]) -> DirichletQ:
        return DirichletQ(_param(params, "alpha", self.n_components), self.alpha0)


# ----------------------------------------------------------------------------- stick-breaking
def _log_gamma_variates(shape: np.ndarray, size: tuple[int, ...],
                        rng: np.random.Generator) -> np.ndarray:
    """ln G for G ~ Gamma(shape), as ln Gamma(shape + 1) + ln U / shape (Marsaglia &
    Tsang's boost): finite for a tiny shape, where G itself underflows to 0."""
    return (np.log(rng.standard_gamma(shape + 1.0, size=size))
            + np.log(rng.uniform(size=size)) / shape)


def _draw_log_sticks(a: np.ndarray, b: np.ndarray, n_draws: int,
                     rng: np.random.Generator) -> np.ndarray:
    """ln pi for ``n_draws`` draws of v_k ~ Beta(a_k, b_k) (k < K), v_K = 1, shape
    (n_draws, K) with K = len(a) + 1.

    v = G_a / (G_a + G_b) with both Gammas kept in log space, so ln v and ln(1 - v) are
    both accurate however close v is to 0 or 1 (Beta(1, 1e-3) puts v within 1e-300 of 1).
    """
    k1 = a.shape[0]
    log_ga = _log_gamma_variates(a, (n_draws, k1), rng)
    log_gb = _log_gamma_variates(b, (n_draws, k1), rng)
    log_total = np.logaddexp(log_ga, log_gb)
    return _log_weights_from_sticks(log_ga - log_total, log_gb - log_total)


def _log_weights_from_sticks(log_v: np.ndarray, log_1mv: np.ndarray) -> np.ndarray:
    """ln pi_k = ln v_k + sum_{j<k} ln(1 - v_j) (and ln pi_K = sum_{j<K} ln(1 - v_j)) from
    (..., K - 1) sticks, shape (..., K): sums of logs, never products of small numbers."""
    shape = (*log_v.shape[:-1], 1)
    zero = np.zeros(shape)
    return (np.concatenate([log_v, zero], axis=-1)
            + np.concatenate([zero, np.cumsum(log_1mv, axis=-1)], axis=-1))


def _log_sticks_from_weights(log_weights: np.ndarray):
    """(ln v, ln(1 - v), ln R) for ln pi (..., K): R_k = sum_{j>=k} pi_j (..., K - 1) is
    the stick left before break k (R_1 = 1 for weights summing to one), v_k = pi_k / R_k,
    1 - v_k = R_{k+1} / R_k.  R is a log-sum-exp of the tail, a sum of positive terms:
    1 - sum_{j<k} pi_j would lose every digit of a tail below eps."""
    log_weights = np.asarray(log_weights, dtype=float)
    log_tail = np.logaddexp.accumulate(log_weights[..., ::-1], axis=-1)[..., ::-1]
    log_r = log_tail[..., :-1]
    return log_weights[..., :-1] - log_r, log_tail[..., 1:] - log_r, log_r


def _times_log(coef: np.ndarray, log_x: np.ndarray) -> np.ndarray:
    """coef * ln x with 0 * ln 0 = 0 (a Beta(1, b) density has no ln v term at all)."""
    with np.errstate(invalid="ignore"):
        return np.where(coef == 0.0, 0.0, coef * log_x)


def _stick_log_density(log_weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ln of the density of pi_1..pi_{K-1} when v_k ~ Beta(a_k, b_k) (k < K), v_K = 1,
    for ln pi (..., K) -> (...).

    pi_k = v_k R_k with R_k = prod_{j<k} (1 - v_j) is triangular in v, with Jacobian
    d pi_k / d v_k = R_k, so ln p(pi) = ln p(v) - sum_{k<K} ln R_k.
    """
    log_v, log_1mv, log_r = _log_sticks_from_weights(log_weights)
    log_p_v = np.sum(-betaln(a, b) + _times_log(a - 1.0, log_v) + _times_log(b - 1.0, log_1mv),
                     axis=-1)
    return log_p_v - np.sum(log_r, axis=-1)


class StickBreakingQ(NamedTuple):
    """q(v) = prod_{k<K} Beta(v_k | a_k, b_k), v_K = 1 (Blei & Jordan 2006, sec. 5), with
    the prior's concentration ``gamma``; ``a``, ``b`` have shape (K - 1,)."""

    a: np.ndarray  # (K - 1,)  1 + N_k
    b: np.ndarray  # (K - 1,)  gamma + sum_{j>k} N_j
    gamma: float

    @property
    def _expected_log_sticks(self) -> tuple[np.ndarray, np.ndarray]:
        """E[ln v_k] = psi(a_k) - psi(a_k + b_k), E[ln(1 - v_k)] = psi(b_k) - psi(a_k + b_k)."""
        psi_total = digamma(self.a + self.b)
        return digamma(self.a) - psi_total, digamma(self.b) - psi_total

    @property
    def expected_log_weights(self) -> np.ndarray:
        # E[ln pi_k] = E[ln v_k] + sum_{j<k} E[ln(1 - v_j)] (Blei & Jordan eq. 18), as a
        # cumulative sum of logs.  A stick with b_k ~ gamma tiny has E[ln(1 - v_k)] ~
        # -1/gamma: every later component gets a huge negative E[ln pi] (weight 0 in the
        # E-step), finite, never NaN.
        e_log_v, e_log_1mv = self._expected_log_sticks
        return _log_weights_from_sticks(e_log_v, e_log_1mv)

    @property
    def mean_weights(self) -> np.ndarray:
        return np.exp(self.log_mean_weights)

    @property
    def log_mean_weights(self) -> np.ndarray:
        # E[pi_k] = E[v_k] prod_{j<k} E[1 - v_j] (the sticks are independent under q), in
        # log space; the K weights sum to one exactly in exact arithmetic.
        log_total = np.log(self.a + self.b)
        return _log_weights_from_sticks(np.log(self.a) - log_total, np.log(self.b) - log_total)

    def bound_terms(self) -> float:
        # sum_{k<K} E[ln Beta(v_k | 1, gamma)] - E[ln Beta(v_k | a_k, b_k)]
        #   = sum_k ln gamma + ln B(a_k, b_k) - (a_k - 1) E[ln v_k] - (b_k - gamma) E[ln(1 - v_k)]
        # (ln B(1, gamma) = -ln gamma).  As for the Dirichlet, the two (gamma - 1) E[ln(1 - v)]
        # terms, each ~ -1/gamma for an empty tail, are cancelled algebraically: b_k - gamma
        # = N_{>k} is exactly 0 there.
        e_log_v, e_log_1mv = self._expected_log_sticks
        return float(np.sum(np.log(self.gamma) + betaln(self.a, self.b)
                            - _times_log(self.a - 1.0, e_log_v)
                            - _times_log(self.b - self.gamma, e_log_1mv)))

    def params(self) -> dict[str, np.ndarray]:
        return {"stick_a": self.a.copy(), "stick_b": self.b.copy()}

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {"stick_a": ("stick",), "stick_b": ("stick",)}

    def draw_log_weights(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        return _draw_log_sticks(self.a, self.b, n_draws, rng)

    def log_density(self, log_weights: np.ndarray) -> np.ndarray:
        return _stick_log_density(log_weights, self.a, self.b)

    def component_log_density(self, log_weights: np.ndarray) -> None:
        # ln q(pi) couples the components through the sticks left, R_k = sum_{j>=k} pi_j:
        # no per-component term exists.  (The stick-breaking prior is not exchangeable
        # either, so the posterior is not label-symmetric to begin with.)
        return None


class StickBreakingWeights(NamedTuple):
    """Truncated stick-breaking ("Dirichlet-process") weights (Blei & Jordan 2006):

        v_k ~ Beta(1, gamma) for k < K,   v_K = 1,   pi_k = v_k prod_{j<k} (1 - v_j).

    ``gamma`` (the model's ``alpha0``; scikit-learn's ``weight_concentration_prior``) is
    the concentration of the Dirichlet process that the K sticks truncate.  What it means
    (scikit-learn #7623): under the untruncated process the expected number of distinct
    components among N points is sum_{n<N} gamma / (gamma + n) ~ gamma ln(1 + N / gamma),
    so a small gamma (say 1e-2 to 1) expects few components and a large gamma many; each
    stick takes on average 1 / (1 + gamma) of what is left, so the prior weights decay
    geometrically with the component's index (the order matters, unlike the symmetric
    Dirichlet).  K is a truncation, an upper bound on the components the fit may use,
    not a choice of their number: VB empties the components the data do not need, and a
    K larger than needed changes the fit only through the (tiny) truncated mass.
    """

    n_components: int
    gamma: float

    def log_prior(self, log_weights: np.ndarray) -> np.ndarray:
        k1 = self.n_components - 1
        return _stick_log_density(log_weights, np.ones(k1), np.full(k1, self.gamma))

    def log_marginal_counts(self, counts: np.ndarray) -> np.ndarray:
        # p(z) = E[prod_k pi_k^{n_k}] = E[prod_{k<K} v_k^{n_k} (1 - v_k)^{m_k}] with
        # m_k = n_{>k} = sum_{j>k} n_j, so each stick contributes
        #   B(1 + n, gamma + m) / B(1, gamma)
        #     = n! gamma / ((gamma + m) prod_{j=1..n} (gamma + m + j)),
        # in logs -log1p(m / gamma) + ln n! - sum_{j=1..n} ln(gamma + m + j): exactly 0
        # for an empty tail (n = m = 0) whatever gamma, and the rising factorial is a
        # difference of one cumulative sum (accurate to eps relative per term for any
        # gamma, where differences of gammaln lose every digit for a large gamma).
        counts = np.asarray(counts).astype(int)
        n = int(counts[0].sum()) if counts.size else 0
        gamma = self.gamma
        cum = np.concatenate([[0.0], np.cumsum(np.log(gamma + np.arange(1, n + 1)))])
        log_factorial = gammaln(np.arange(n + 1) + 1.0)
        tail = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
        n_k, m_k = counts[:, :-1], tail[:, 1:]
        per_stick = (-np.log1p(m_k / gamma) + log_factorial[n_k]
                     - cum[m_k + n_k] + cum[m_k])
        return per_stick.sum(axis=1)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        k1 = self.n_components - 1
        log_w = _draw_log_sticks(np.ones(k1), np.full(k1, self.gamma), 1, rng)[0]
        return np.exp(log_w)

    def posterior(self, counts: np.ndarray) -> StickBreakingQ:
        # Blei & Jordan eq. 16-17: a_k = 1 + N_k, b_k = gamma + sum_{j>k} N_j (k < K).
        counts = np.asarray(counts, dtype=float)
        tail = np.cumsum(counts[::-1])[::-1]
        a, b = 1.0 + counts[:-1], self.gamma + tail[1:]
        a.setflags(write=False)
        b.setflags(write=False)
        return StickBreakingQ(a, b, self.gamma)

    def q_from_params(self, params: Mapping[str, np.ndarray]) -> StickBreakingQ:
        k1 = self.n_components - 1
        return StickBreakingQ(_param(params, "stick_a", k1), _param(params, "stick_b", k1),
                              self.gamma)
