"""Closed-form CAVI for the univariate GMM (Blei, Kucukelbir & McAuliffe 2017, §3).

Variational family: q(mu_k) = N(m_k, s2_k), q(c_i) = Cat(phi_i).  Updates (their
Algorithm 2, generalised from tau = 1 to a known tau):

    phi_ik ∝ exp(E[mu_k] x_i / tau^2 - E[mu_k^2] / (2 tau^2))          (assignment update)
    s2_k   = 1 / (1/sigma^2 + sum_i phi_ik / tau^2)                     (variance update)
    m_k    = s2_k * sum_i phi_ik x_i / tau^2                            (mean update)

Speed: one iteration is one pass over the data.  The phi-update, its sufficient
statistics (N_k = sum_i phi_ik, S_k = sum_i phi_ik x_i) and the ELBO's data term
L = sum_i logsumexp_k(logits_ik) are fused in blocks of points laid out as (K, block),
so that the max/exp/sum run over contiguous memory and stay in cache; the (N, K)
responsibilities are only formed once, at the end.  No loop visits single points.

The fused pass is :func:`assignment_statistics`, a pure function of a chunk of points
and the small state: :mod:`gmmkit.inference.chunked` runs it on every chunk of a Dask
array and adds the results, with the same updates and bound as here.

Frequency weights (``sample_weight`` w_i): every per-point term of the ELBO is multiplied
by w_i, so N_k = sum_i w_i phi_ik, S_k = sum_i w_i phi_ik x_i, L = sum_i w_i lse_i and
N becomes sum_i w_i; the phi-update of each point is unchanged.  Integer weights give
exactly the fit of the data with rows repeated (the weight is folded into the per-point
scale 1/sum_k exp(...) of the statistics, one extra product per point).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from gmmkit.inference._blocks import map_chunks, normalise_columns, pass_threads, resolve_threads
from gmmkit.inference.loop import coordinate_ascent, fit_from_run, initial_means
from gmmkit.models.gaussian import LOG_2PI, normal_logpdf
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = [
    "CAVIState",
    "GaussianMeansPosterior",
    "assignment_statistics",
    "elbo",
    "fit_cavi",
    "init_state",
    "initial_variances",
    "step",
    "update_means",
]



class CAVIState(NamedTuple):
    """q(mu) = N(m, s2) and the statistics of q(c) = softmax(logits(m, s2)).

    ``n_k``, ``s_k`` and ``lse_sum`` are computed from the phi that these very ``m`` and
    ``s2`` imply, so the ELBO of a state is exact without storing the (N, K) phi.
    """

    m: np.ndarray  # (K,)
    s2: np.ndarray  # (K,)
    n_k: np.ndarray  # (K,)  sum_i phi_ik
    s_k: np.ndarray  # (K,)  sum_i phi_ik x_i
    lse_sum: float  # sum_i logsumexp_k [logits_ik - x_i^2 / (2 tau^2)]


def _block_size(n_components: int) -> int:
    # About 160k doubles (1.3 MB) per block: big enough to amortise Python overhead,
    # small enough to stay in L2/L3 cache (measured in benchmarks/bench_cavi.py).
    return max(1024, 160_000 // n_components)


def _centred_logits(model: UnivariateGMM, x, m, s2, out=None):
    """logits_ik - x_i^2/(2 tau^2) = -((x_i - m_k)^2 + s2_k) / (2 tau^2), shape (K, N).

    The assignment update is phi_ik ∝ exp(m_k x_i/tau^2 - (m_k^2 + s2_k)/(2 tau^2)); adding
    -x_i^2/(2 tau^2), which is constant in k, changes nothing in phi but keeps the terms
    small: the linear form carries two O(x^2) pieces that cancel, losing the digits the
    ELBO-monotonicity check relies on.
    """
    # Three passes over (K, N): subtract, square, subtract from -s2_k/(2 tau^2), with
    # x and m pre-scaled by 1/(sqrt(2) tau), which costs O(N + K) instead of O(NK).
    scale = 1.0 / (np.sqrt(2.0) * model.obs_sd)
    out = np.subtract((x * scale)[None, :], (m * scale)[:, None], out=out)
    np.square(out, out=out)
    np.subtract((-s2 * scale**2)[:, None], out, out=out)
    return out


def assignment_statistics(model: UnivariateGMM, x: np.ndarray, m: np.ndarray, s2: np.ndarray,
                          sample_weight: np.ndarray | None = None):
    """The phi-update fused with its sufficient statistics.

    Returns ``(n_k, s_k, lse_sum)`` for phi_i = softmax_k(centred logits), in one blocked
    pass over ``x`` with O(K * block) extra memory, where
    ``lse_sum = sum_i logsumexp_k(-((x_i - m_k)^2 + s2_k) / (2 tau^2))``.  With
    ``sample_weight`` every point's contribution to the three is multiplied by its weight.
    """
    n_points, n_components = x.shape[0], m.shape[0]
    block = min(_block_size(n_components), n_points)
    logits = np.empty((n_components, block))
    row_max = np.empty(block)
    row_sum = np.empty(block)
    weights = np.empty((block, 2))
    stats = np.zeros((n_components, 2))
    lse_sum = 0.0
    for start in range(0, n_points, block):
        xb = x[start : start + block]
        n = xb.shape[0]
        lb, mx, tot, w = logits[:, :n], row_max[:n], row_sum[:n], weights[:n]
        _centred_logits(model, xb, m, s2, out=lb)
        normalise_columns(lb, mx, tot)  # lb <- exp(logits - max): phi before normalising
        if sample_weight is None:
            np.divide(1.0, tot, out=w[:, 0])
            lse_sum += float(mx.sum() + np.log(tot).sum())
        else:
            wb = sample_weight[start : start + block]
            np.divide(wb, tot, out=w[:, 0])  # the weight folded into phi's normaliser
            lse_sum += float(wb @ mx + wb @ np.log(tot))
        np.multiply(xb, w[:, 0], out=w[:, 1])
        stats += lb @ w  # [sum_i phi_ik, sum_i phi_ik x_i] for this block
    return stats[:, 0], stats[:, 1], lse_sum


def log_responsibilities(model: UnivariateGMM, x: np.ndarray, m: np.ndarray, s2: np.ndarray):
    """log phi, shape (N, K), normalised in log space."""
    logits = _centred_logits(model, x, m, s2).T
    return logits - logsumexp(logits, axis=1, keepdims=True)


def _state_from_means(model, x, m, s2, sample_weight=None, n_threads: int = 1
                      ) -> CAVIState:
    def chunk(start: int, stop: int):
        return assignment_statistics(
            model, x[start:stop], m, s2,
            None if sample_weight is None else sample_weight[start:stop])

    # In chunks on n_threads threads, summed in chunk order: the same bits for any count.
    k = m.shape[0]
    n_k, s_k, lse_sum = map_chunks(x.shape[0], _block_size(k), chunk,
                                   pass_threads(n_threads, k, 2))
    return CAVIState(m=m, s2=s2, n_k=n_k, s_k=s_k, lse_sum=lse_sum)


def init_state(
    model: UnivariateGMM, x: np.ndarray, init: str, rng: np.random.Generator,
    sample_weight: np.ndarray | None = None, n_threads: int = 1,
) -> CAVIState:
    """Start from kmeans++ (or random data points) means; s2 as if each component had
    N/K points (N the total weight when weighted), then take one phi-update so the
    state is self-consistent."""
    k = model.n_components
    m = initial_means(x[:, None], k, init, rng, sample_weight)[:, 0]
    n = x.shape[0] if sample_weight is None else float(sample_weight.sum())
    s2 = initial_variances(model, n)
    return _state_from_means(model, x, m, s2, sample_weight, n_threads)


def step(model: UnivariateGMM, x: np.ndarray, state: CAVIState,
         sample_weight: np.ndarray | None = None, n_threads: int = 1) -> CAVIState:
    """One CAVI sweep: update q(mu) from phi's statistics, then phi from the new q(mu)
    (the pass on ``n_threads`` threads; the result does not depend on it)."""
    m, s2 = update_means(model, state)
    return _state_from_means(model, x, m, s2, sample_weight, n_threads)  # assignment update


def update_means(model: UnivariateGMM, state: CAVIState) -> tuple[np.ndarray, np.ndarray]:
    """q(mu) = N(m, s2) from phi's statistics in ``state``: the variance and mean updates."""
    sigma2, tau2 = model.prior_sd**2, model.obs_sd**2
    s2 = 1.0 / (1.0 / sigma2 + state.n_k / tau2)  # variance update
    m = s2 * state.s_k / tau2  # mean update
    return m, s2


def initial_variances(model: UnivariateGMM, n_points: float) -> np.ndarray:
    """s2 as if each component had N/K points (N the total weight when weighted), (K,)."""
    k = model.n_components
    return np.full(k, 1.0 / (1.0 / model.prior_sd**2 + n_points / k / model.obs_sd**2))


def elbo(model: UnivariateGMM, n_points: float, state: CAVIState) -> float:
    """ELBO in nats with every constant; exact for the state's phi, m and s2.

    ELBO = sum_k E[log N(mu_k | 0, sigma^2)] + sum_k H[N(m_k, s2_k)]
           + sum_i E[log p(c_i)] + sum_i E[log p(x_i | c_i, mu)] + sum_i H[phi_i].
    With phi_i = softmax(logits_i), the last three terms collapse to
           -N log K - (N/2) log(2 pi tau^2) + sum_i [lse_i - x_i^2 / (2 tau^2)],
    and the bracket is accumulated per point (``state.lse_sum``).  For a weighted fit
    ``n_points`` is the total weight (and ``lse_sum`` the weighted sum).
    """
    sigma2, tau2 = model.prior_sd**2, model.obs_sd**2
    m, s2 = state.m, state.s2
    prior = np.sum(-0.5 * (LOG_2PI + np.log(sigma2)) - (m * m + s2) / (2 * sigma2))
    entropy_mu = np.sum(0.5 * (LOG_2PI + 1.0 + np.log(s2)))
    data = (
        -n_points * np.log(model.n_components)
        - 0.5 * n_points * (LOG_2PI + np.log(tau2))
        + state.lse_sum
    )
    return float(prior + entropy_mu + data)


class GaussianMeansPosterior:
    """q(mu_k) = N(m_k, s2_k) for the univariate model (implements ``Posterior``)."""

    kind = PosteriorKind.CLOSED_FORM_Q

    def __init__(self, model: UnivariateGMM, m: np.ndarray, s2: np.ndarray) -> None:
        self.model = model
        self.m = np.array(m, dtype=float)
        self.s2 = np.array(s2, dtype=float)
        self.n_components = model.n_components

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        return log_responsibilities(self.model, x, self.m, self.s2)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        # p(x* | x) = sum_k (1/K) N(x* | m_k, tau^2 + s2_k): mu_k integrated out under q.
        comp = normal_logpdf(x[:, None], self.m, self.model.obs_sd**2 + self.s2)
        return logsumexp(comp, axis=1) - np.log(self.n_components)

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        z = rng.standard_normal((1, n_draws, self.n_components))
        return {"mu": self.m + np.sqrt(self.s2) * z}

    def params(self) -> dict[str, np.ndarray]:
        return {"m": self.m.copy(), "s2": self.s2.copy()}

    def log_importance_weights(
        self, x: np.ndarray, n_draws: int, rng: np.random.Generator
    ) -> np.ndarray:
        """log p(x, mu_s) - log q(mu_s) for mu_s ~ q(mu), shape (n_draws,).

        The assignments are summed out of p, so these are weights for the marginal
        q(mu) against the exact posterior p(mu | x).
        """
        mu = self.draw(n_draws, rng)["mu"][0]  # (S, K)
        log_q = np.sum(normal_logpdf(mu, self.m, self.s2), axis=-1)
        return self.model.log_joint(x, mu) - log_q

    def component_log_q(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """log N(mu_sj | m_k, s2_k) for draw s's component j under factor k, (S, K, K);
        used to weigh against the label-symmetrised q."""
        mu = np.asarray(draws["mu"]).reshape(-1, self.n_components)
        return normal_logpdf(mu[:, :, None], self.m, self.s2)

    def point_estimates(self) -> dict[str, np.ndarray]:
        k = self.n_components
        return {
            "weights": np.full(k, 1.0 / k),
            "means": self.m[:, None].copy(),
            "covariances": np.full((k, 1, 1), self.model.obs_sd**2),
        }


def fit_cavi(
    model: UnivariateGMM,
    x: np.ndarray,
    *,
    seed: int,
    n_init: int,
    init: str,
    tol: float,
    max_iter: int,
    progress: bool,
    method: str,
    sample_weight: np.ndarray | None = None,
    n_threads: int | None = None,
) -> Fit:
    """Run CAVI with restarts through the shared loop; ``x`` is already validated, and so
    is ``sample_weight`` (N,) (None: every point counts once).  Passes run on
    ``n_threads`` threads (None: as many as the BLAS may use); the fit does not depend
    on it."""
    from threadpoolctl import threadpool_limits

    n_threads = resolve_threads(n_threads)
    rng = np.random.default_rng(seed)
    n = x.shape[0] if sample_weight is None else float(sample_weight.sum())
    # One BLAS thread in each of the pass's threads: its (K, B) x (B, 2) products are far
    # too small to split further.
    with threadpool_limits(limits=1, user_api="blas"):
        run = coordinate_ascent(
            init=lambda r: init_state(model, x, init, r, sample_weight, n_threads),
            step=lambda s: step(model, x, s, sample_weight, n_threads),
            objective=lambda s: elbo(model, n, s),
            rng=rng, n_init=n_init, tol=tol, max_iter=max_iter, progress=progress,
            label="CAVI",
        )
    state = run.state
    return fit_from_run(
        run, method=method, model=model, data=x,
        posterior=GaussianMeansPosterior(model, state.m, state.s2),
        responsibilities=np.exp(log_responsibilities(model, x, state.m, state.s2)),
        seed=seed, sample_weight=sample_weight,
    )
