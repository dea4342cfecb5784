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

__all__ = [
    "KHAT_THRESHOLD",
    "MAX_CHAIN_SEPARATION",
    "MIN_ESS_PER_CHAIN",
    "REFERENCE_REMEDY",
    "RHAT_THRESHOLD",
    "PsisResult",
    "has_importance_weights",
    "loo",
    "psis_diagnostics",
    "reference_diagnostics",
]

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


# ----------------------------------------------------------------------------- reference
#: A reference whose worst r-hat (after relabelling) exceeds this has not converged.
RHAT_THRESHOLD = 1.01
#: ... nor one with fewer effective draws (bulk or tail) than this per chain.
MIN_ESS_PER_CHAIN = 100
#: ... nor one whose chains' means of a parameter differ by more than this many
#: within-chain posterior sd after relabelling: the chains sit in different modes.
MAX_CHAIN_SEPARATION = 3.0
#: What to do about a reference that has not converged.
REFERENCE_REMEDY = (
    "tune longer (--tune), run more chains (--chains), start NUTS from the CAVI/VB "
    "solution (gmmkit.fit(..., 'nuts', init=<cavi fit>)), or choose a different reference"
)


def _reference_parameters(fit: Fit, live: np.ndarray | None) -> dict[str, np.ndarray]:
    """Component means (chain, draw, K', D) and, when the model has them as parameters,
    weights (chain, draw, K') of the (relabelled) stored draws, live components only."""
    draws = fit.posterior.draws
    out = {"means": np.asarray(fit.model.component_means(draws), dtype=float)}
    if "weights" in fit.model.parameter_dims and "weights" in draws:
        out["weights"] = np.asarray(draws["weights"], dtype=float)
    if live is not None:
        out = {name: value[:, :, live] for name, value in out.items()}
    return out


def _chain_separation(params: dict[str, np.ndarray]) -> float:
    """Largest spread of the chains' means of one parameter entry, in within-chain sd."""
    worst = 0.0
    for value in params.values():
        flat = value.reshape(value.shape[0], value.shape[1], -1)  # (chain, draw, P)
        if flat.shape[0] < 2 or flat.shape[1] < 2:
            continue
        chain_means = flat.mean(axis=1)
        within = np.sqrt(flat.var(axis=1, ddof=1).mean(axis=0))
        spread = chain_means.max(axis=0) - chain_means.min(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(within > 0, spread / within, np.where(spread > 0, np.inf, 0.0))
        worst = max(worst, float(np.max(ratio)))
    return worst


def reference_diagnostics(fit: Fit, live: np.ndarray | None = None) -> dict[str, object]:
    """Can this (aligned) sampler fit serve as the reference?

    Computed on the relabelled draws of a fit returned by
    :func:`gmmkit.comparisons.align` (chains first brought onto one labelling, then every
    draw), over the component means and, where the model has them, the weights of the
    ``live`` components (a (K,) mask; all by default).

    Returns
    -------
    dict
        ``rhat_max`` (rank-normalised split r-hat), ``ess_bulk_min``, ``ess_tail_min``,
        ``divergences``, ``chain_separation_max`` (largest spread of the chain means of
        one parameter, in within-chain sd), ``reference_problems`` (tuple of plain
        sentences; empty when every check passes) and ``reference_converged``.  For fits
        whose posterior is not a set of sampler draws there is nothing to check: NaN
        numbers, no problems.
    """
    nan = float("nan")
    if not fit.posterior.kind.is_posterior_sample:
        return {"rhat_max": nan, "ess_bulk_min": nan, "ess_tail_min": nan,
                "divergences": 0, "chain_separation_max": nan,
                "reference_problems": (), "reference_converged": True}
    params = _reference_parameters(fit, live)
    n_chains = next(iter(params.values())).shape[0]
    diag = _arviz.draws_diagnostics(params)
    stats = getattr(fit.posterior, "sample_stats", None) or {}
    if "diverging" in stats:
        divergences = int(np.sum(stats["diverging"]))
    else:
        divergences = int(fit.diagnostics.get("divergences", 0) or 0)
    separation = _chain_separation(params)
    problems = []
    if not diag["rhat_max"] <= RHAT_THRESHOLD:
        problems.append(f"r-hat {diag['rhat_max']:.3f} > {RHAT_THRESHOLD} after relabelling")
    need = MIN_ESS_PER_CHAIN * n_chains
    for key, label in (("ess_bulk_min", "bulk"), ("ess_tail_min", "tail")):
        if not diag[key] >= need:
            problems.append(f"{label} ESS {diag[key]:.0f} < {MIN_ESS_PER_CHAIN} per chain "
                            f"({need})")
    if divergences > 0:
        problems.append(f"{divergences} divergent transitions")
    if separation > MAX_CHAIN_SEPARATION:
        problems.append(f"chains sit in different modes (after relabelling, chain means "
                        f"differ by {separation:.1f} posterior sd)")
    return {
        "rhat_max": diag["rhat_max"], "ess_bulk_min": diag["ess_bulk_min"],
        "ess_tail_min": diag["ess_tail_min"], "divergences": divergences,
        "chain_separation_max": separation,
        "reference_problems": tuple(problems), "reference_converged": not problems,
    }


# ----------------------------------------------------------------------------- LOO
def loo(fit_or_idata, *, allow_q_draws: bool = False, draws: int = 1000,
        seed: int | None = None, **kwargs):
    """PSIS-LOO (``az.loo``) of a fit or of an InferenceData written by gmmkit.

    Draws from a fitted variational q (CAVI, Bishop's VB, ADVI) are not posterior draws,
    and PSIS-LOO on them estimates something else; they are refused unless
    ``allow_q_draws=True``, in which case the result's ``attrs`` say so
    (``gmmkit_draws_from_q = 1``, ``gmmkit_note``).  A point estimate (one draw) is
    always refused.

    Parameters
    ----------
    fit_or_idata : Fit or arviz.InferenceData
        A fit (its ``to_inference_data(draws, seed, log_likelihood=True)`` is used) or an
        InferenceData with a ``log_likelihood`` group.
    allow_q_draws : bool
        Accept draws from a fitted q, labelling the result.
    draws, seed
        Passed to :meth:`Fit.to_inference_data` for a fit (ignored for sampler fits).
    **kwargs
        Passed to ``az.loo`` (``pointwise``, ``scale``, ...).

    Returns
    -------
    arviz.ELPDData
        With ``attrs["gmmkit_posterior_kind"]`` and ``attrs["gmmkit_draws_from_q"]``.

    Raises
    ------
    ValueError
        q draws without ``allow_q_draws``, a point estimate, or no ``log_likelihood``.
    """
    if isinstance(fit_or_idata, Fit):
        idata = fit_or_idata.to_inference_data(draws=draws, seed=seed, log_likelihood=True)
    else:
        idata = fit_or_idata
    groups = idata.groups() if hasattr(idata, "groups") else []
    if "posterior" not in groups:
        raise ValueError(f"fit_or_idata must be a gmmkit Fit or an InferenceData with a "
                         f"posterior group, got {type(fit_or_idata).__name__}")
    attrs = dict(idata.posterior.attrs)
    kind = attrs.get("gmmkit_posterior_kind", attrs.get("posterior_kind"))
    if kind is None:  # not written by gmmkit: take it as posterior draws
        kind = PosteriorKind.SAMPLER_DRAWS.name
    from_q = int(attrs.get("gmmkit_draws_from_q",
                           kind in (PosteriorKind.CLOSED_FORM_Q.name,
                                    PosteriorKind.Q_DRAWS.name)))
    if kind == PosteriorKind.POINT_ESTIMATE.name:
        raise ValueError("PSIS-LOO needs posterior draws; this is a point estimate (one "
                         "draw), which has no leave-one-out posterior")
    if from_q and not allow_q_draws:
        raise ValueError(
            f"these are draws from a fitted variational q ({kind}), not posterior draws: "
            "PSIS-LOO on them estimates the q-predictive, not the posterior-predictive, "
            "accuracy; fit a sampler (NUTS) for LOO, or pass allow_q_draws=True to get it "
            "labelled as computed on q draws"
        )
    if "log_likelihood" not in groups:
        raise ValueError(
            "PSIS-LOO needs the pointwise log-likelihood, but the InferenceData has no "
            "log_likelihood group (write it with to_inference_data(log_likelihood=True))"
        )
    result = _arviz.loo(idata, **kwargs)
    result.attrs["gmmkit_posterior_kind"] = kind
    result.attrs["gmmkit_draws_from_q"] = from_q
    if from_q:
        result.attrs["gmmkit_note"] = ("computed on draws from a fitted variational q, "
                                       "not on posterior draws")
    return result
