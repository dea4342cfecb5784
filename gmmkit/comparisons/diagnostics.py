"""Can I trust q?  PSIS k-hat and importance-sampling evidence for variational fits.

Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational
inference": draw theta_s ~ q, form the importance ratios

    log w_s = log p(x, theta_s) - log q(theta_s)        (assignments z summed out of p)

and fit a generalised Pareto distribution to their upper tail (Pareto-smoothed importance
sampling, Vehtari et al. 2024).  The shape estimate k-hat says how heavy the tail is:
k-hat < 0.5 good, 0.5-0.7 usable, k-hat > 0.7 "do not trust this q" (the importance
weights then have infinite variance in practice, and q misses posterior mass).

The same weights give an importance-sampling estimate of the evidence,

    log p(x) ~= logsumexp_s(log w_s) - log S,

with a delta-method standard error sd(w) / (sqrt(S) mean(w)); the k-hat says whether that
estimate can be believed.

Label symmetry.  A mixture posterior has K! label-permuted copies of every mode, while q
sits on one of them, so raw weights estimate p(x) / K! when the modes are separated (and
something between p(x) / K! and p(x) when they overlap).  Where the variational family is
known (the univariate mean-field Gaussian of CAVI and the Dirichlet-Normal-Wishart of
Bishop's VB), the weights are taken against the label-symmetrised proposal
q_sym(theta) = (1/K!) sum_pi q(pi theta), which is exact whatever the overlap:

    log w_sym = log w + log q(theta) - log q_sym(theta).

For other families the estimate is reported without that correction and says so.
"""

from __future__ import annotations

import itertools
from math import lgamma
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from gmmkit import _arviz
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = ["KHAT_THRESHOLD", "PsisResult", "has_importance_weights", "psis_diagnostics"]

#: Above this k-hat the importance weights (and q) should not be trusted (Yao et al. 2018).
KHAT_THRESHOLD = 0.7
#: Symmetrise over all K! relabellings only up to this K (K! terms per draw).
_MAX_SYMMETRISED_K = 7


class PsisResult(NamedTuple):
    """PSIS diagnostics of one variational fit.

    Attributes
    ----------
    khat : float
        Pareto shape estimate of the importance-ratio tail.
    log_evidence : float
        Importance-sampling estimate of log p(x) from the raw weights.
    log_evidence_se : float
        Its delta-method Monte Carlo standard error.
    n_draws : int
        Number of draws from q.
    log_evidence_psis : float
        The same estimate from the Pareto-smoothed (truncated) weights: lower variance,
        slightly biased downwards.
    symmetrised : bool
        Whether the weights were taken against the label-symmetrised q.
    """

    khat: float
    log_evidence: float
    log_evidence_se: float
    n_draws: int
    log_evidence_psis: float = float("nan")
    symmetrised: bool = False

    @property
    def trustworthy(self) -> bool:
        return bool(np.isfinite(self.khat) and self.khat <= KHAT_THRESHOLD)


def has_importance_weights(fit: Fit) -> bool:
    """True for fits whose posterior is a variational q (closed form or ADVI's), which
    can weigh its draws against the model: p/q importance weights exist."""
    return fit.posterior.kind.is_variational


# ----------------------------------------------------------------------------- PSIS
def _symmetrisation_correction(component_log_q: np.ndarray) -> np.ndarray:
    """log q(theta) - log q_sym(theta) per draw, shape (S,)."""
    k = component_log_q.shape[1]
    identity = np.trace(component_log_q, axis1=1, axis2=2)
    perms = np.array(list(itertools.permutations(range(k))), dtype=np.intp)  # (P, K)
    totals = np.zeros((component_log_q.shape[0], perms.shape[0]))
    for slot in range(k):  # sum_k M[s, pi(k), k], accumulated slot by slot
        totals += component_log_q[:, perms[:, slot], slot]
    return identity - (logsumexp(totals, axis=1) - lgamma(k + 1))


def psis_diagnostics(
    fit: Fit, *, n_draws: int = 2000, seed: int | np.random.Generator | None = 0,
    symmetrise: bool = True,
) -> PsisResult:
    """PSIS k-hat and the importance-sampling evidence of a variational fit.

    Parameters
    ----------
    fit : Fit
        A variational fit (its posterior has ``log_importance_weights``).
    n_draws : int
        Number S of draws from q.
    seed : int or Generator
        Seed of the draws.
    symmetrise : bool
        Weigh against the label-symmetrised q where the family is known (see module
        docstring); the draws are replayed from the same seed to evaluate q on them.

    Returns
    -------
    PsisResult
    """
    if not isinstance(fit, Fit):
        raise ValueError(f"fit must be a gmmkit Fit, got {type(fit).__name__}")
    if not has_importance_weights(fit):
        raise ValueError(
            f"PSIS needs a variational fit with log_importance_weights; the {fit.method!r} "
            "fit is a point estimate or a set of sampler draws"
        )
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 10:
        raise ValueError(f"n_draws must be an integer >= 10, got {n_draws!r}")
    n_draws = int(n_draws)
    seed_int = seed if isinstance(seed, int | np.integer) else int(
        np.random.default_rng(seed).integers(2**32)
    )
    posterior, data = fit.posterior, np.asarray(fit.data)
    log_w = np.asarray(
        posterior.log_importance_weights(data, n_draws, np.random.default_rng(seed_int)),
        dtype=float,
    ).reshape(-1)
    symmetrised = False
    if symmetrise and fit.n_components > 1 and fit.n_components <= _MAX_SYMMETRISED_K:
        # Replay the draws: log_importance_weights draws theta with posterior.draw first.
        draws = posterior.draw(n_draws, np.random.default_rng(seed_int))
        component_log_q = (posterior.component_log_q(draws)
                           if posterior.kind is PosteriorKind.CLOSED_FORM_Q else None)
        if component_log_q is not None and component_log_q.shape[0] == log_w.shape[0]:
            log_w = log_w + _symmetrisation_correction(component_log_q)
            symmetrised = True
    finite = np.isfinite(log_w)
    if not finite.all():
        # A draw with zero target density has weight 0: it cannot enter the Pareto tail.
        log_w = np.where(finite, log_w, -np.inf)
    log_evidence = float(logsumexp(log_w) - np.log(n_draws))
    w = np.exp(log_w - np.max(log_w))
    se = float(w.std(ddof=1) / (np.sqrt(n_draws) * w.mean()))
    smoothed, khat = _arviz.psislw(np.where(np.isfinite(log_w), log_w, np.min(log_w[finite])))
    return PsisResult(
        khat=float(khat),
        log_evidence=log_evidence,
        log_evidence_se=se,
        n_draws=n_draws,
        log_evidence_psis=float(logsumexp(smoothed) - np.log(n_draws)),
        symmetrised=symmetrised,
    )
