"""The one evidence policy: every estimate of log p(x), checked, and the one to report.

``compare``, ``sweep`` and the demo all call :func:`evidence_estimates` and
:func:`choose_evidence`, so ``elbo_gap`` means the same thing in every table.

Estimates, for the fits of one model on one data set:

* **exact enumeration** (``model.exact_log_evidence``; tiny data only), standard error 0;
* **a sampler's own estimate** (SMC's marginal likelihood), with its se over chains;
* **importance sampling from each variational q** (PSIS diagnostics, Yao et al. 2018),
  plus log K! where q lives on the ordered region of the ordered transform
  (log Z = log Z_ordered + log K!, exact by label symmetry).

Checks.  The ELBO of any variational fit is a lower bound, ELBO <= log Z, so an estimate
that lies below a fit's ELBO by more than 3 combined standard errors contradicts the
bound; an estimate whose se exceeds :data:`MAX_EVIDENCE_SE` nats cannot decide anything.
Such an estimate is *flagged* (``problems``) and never chosen.  An importance-sampling
estimate with k-hat > 0.7 (weights of infinite variance in practice, and a se that may
understate the error) carries a *caution*: it is chosen only when no estimate without
one passed, and its source says so.

Choice, among the unflagged estimates: exact enumeration, else a sampler's estimate, else
the largest importance-sampling estimate (each is biased low in log space, by Jensen),
preferring those without a caution.  When nothing passes, no evidence is reported and
the reason says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from gmmkit.comparisons.diagnostics import KHAT_THRESHOLD, PsisResult
from gmmkit.result import Fit

__all__ = [
    "BOUND_SIGMAS",
    "MAX_EVIDENCE_SE",
    "EvidenceEstimate",
    "choose_evidence",
    "evidence_estimates",
]

#: An estimate whose standard error exceeds this many nats is flagged.
MAX_EVIDENCE_SE = 1.0
#: An estimate below an ELBO by more than this many combined standard errors is flagged.
BOUND_SIGMAS = 3.0
#: Exact algebra against a closed-form ELBO: a gap below this (relative) is rounding.
_EXACT_RTOL = 1e-9

#: Kinds of estimate, in the order the policy prefers them.
EXACT, SAMPLER, IMPORTANCE = "exact", "sampler", "importance sampling"
_PREFERENCE = (EXACT, SAMPLER, IMPORTANCE)


class EvidenceEstimate(NamedTuple):
    """One estimate of log p(x) in nats.

    Attributes
    ----------
    value, se : float
        The estimate and its Monte Carlo standard error (0 for exact enumeration).
    kind : str
        "exact", "sampler" or "importance sampling".
    fit : str
        The fit it comes from ("" for exact enumeration).
    source : str
        How it was obtained, with any correction applied (for tables and readings).
    problems : tuple of str
        Why it must not be used; empty when it passed every check.
    cautions : tuple of str
        Why it should be believed less (k-hat > 0.7); it is still usable.
    """

    value: float
    se: float
    kind: str
    fit: str
    source: str
    problems: tuple[str, ...] = ()
    cautions: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.problems and bool(np.isfinite(self.value))


def _ordered_offset(fit: Fit) -> float:
    """log K! for a q on the ordered transform's region, else 0."""
    return float(getattr(fit.posterior, "log_k_factorial", 0.0) or 0.0)


def _raw_estimates(
    fits: Mapping[str, Fit], psis: Mapping[str, PsisResult], exact: bool
) -> list[EvidenceEstimate]:
    out = []
    first = next(iter(fits.values()))
    if exact and callable(getattr(first.model, "exact_log_evidence", None)):
        try:
            value = float(first.model.exact_log_evidence(first.data))
            out.append(EvidenceEstimate(value, 0.0, EXACT, "", "exact enumeration"))
        except ValueError:
            pass  # too many assignments to enumerate
    for name, fit in fits.items():
        if np.isfinite(fit.log_evidence):
            source = fit.log_evidence_source or f"{name}'s own estimate"
            if not source.startswith(name):  # name the fit once, whatever it is called
                source = f"{name}: {source}"
            out.append(EvidenceEstimate(float(fit.log_evidence), float(fit.log_evidence_se),
                                        SAMPLER, name, source))
    for name, result in psis.items():
        if name not in fits or not np.isfinite(result.log_evidence):
            continue
        fit = fits[name]
        offset = _ordered_offset(fit)
        label = "label-symmetrised " if result.symmetrised else ""
        source = f"{label}importance sampling from {name} (k-hat {result.khat:.2f})"
        k = fit.n_components
        if offset:
            source += (f"; ordered transform: + log K! = {offset:.2f} nats "
                       "(log Z = log Z_ordered + log K!)")
        elif not result.symmetrised and k > 1:
            source += (f"; not label-symmetrised, so low by up to log K! = "
                       f"{np.sum(np.log(np.arange(2, k + 1))):.1f} nats")
        cautions = ()
        if not result.khat <= KHAT_THRESHOLD:
            cautions = (f"k-hat {result.khat:.2f} > {KHAT_THRESHOLD}: the importance "
                        "weights' variance is unreliable, so is the se",)
        out.append(EvidenceEstimate(result.log_evidence + offset, result.log_evidence_se,
                                    IMPORTANCE, name, source, cautions=cautions))
    return out


def _bound_problems(estimate: EvidenceEstimate, fits: Mapping[str, Fit]) -> list[str]:
    """ELBO <= log Z for every variational fit: an estimate below a bound is wrong."""
    problems = []
    for name, fit in fits.items():
        if not (fit.posterior.kind.is_variational and np.isfinite(fit.elbo)):
            continue
        elbo_se = float(fit.elbo_se) if np.isfinite(fit.elbo_se) else 0.0
        se = float(np.hypot(estimate.se, elbo_se))
        shortfall = float(fit.elbo) - estimate.value
        tolerance = BOUND_SIGMAS * se if se > 0 else _EXACT_RTOL * abs(float(fit.elbo))
        if shortfall > tolerance:
            sigmas = f" ({shortfall / se:.1f} se)" if se > 0 else ""
            problems.append(
                f"{shortfall:.2f} nats below {name}'s ELBO{sigmas}, which contradicts "
                "ELBO <= log Z"
            )
    return problems


def evidence_estimates(
    fits: Mapping[str, Fit], psis: Mapping[str, PsisResult], *, exact: bool = True
) -> list[EvidenceEstimate]:
    """Every available estimate of log p(x) for fits of ONE model on ONE data set, each
    checked against the others' bounds, its own se and (for importance sampling) k-hat.

    Parameters
    ----------
    fits : mapping of name to Fit
        Fits of the same model and data.
    psis : mapping of name to PsisResult
        PSIS diagnostics of the variational fits among them.
    exact : bool
        Try exact enumeration (tiny data only).

    Returns
    -------
    list of EvidenceEstimate
        In the policy's order of preference; flagged ones carry their ``problems``.
    """
    out = []
    for estimate in _raw_estimates(fits, psis, exact):
        problems = list(estimate.problems)
        if estimate.se > MAX_EVIDENCE_SE:
            problems.append(f"standard error {estimate.se:.2f} nats > {MAX_EVIDENCE_SE:g}")
        problems += _bound_problems(estimate, fits)
        out.append(estimate._replace(problems=tuple(problems)))
    return sorted(out, key=lambda e: _PREFERENCE.index(e.kind))


def choose_evidence(estimates: list[EvidenceEstimate]) -> tuple[EvidenceEstimate | None, str]:
    """The estimate to report and why; (None, reason) when none passes the checks."""
    usable = [e for e in estimates if e.usable]
    if not usable:
        if not estimates:
            return None, "no evidence estimate is available"
        flagged = "; ".join(f"{e.source}: {', '.join(e.problems)}" for e in estimates)
        return None, f"every evidence estimate was flagged ({flagged})"
    usable = [e for e in usable if not e.cautions] or usable
    best_kind = min(_PREFERENCE.index(e.kind) for e in usable)
    candidates = [e for e in usable if _PREFERENCE.index(e.kind) == best_kind]
    chosen = max(candidates, key=lambda e: e.value)
    if chosen.cautions:
        chosen = chosen._replace(source=f"{chosen.source}; caution: {chosen.cautions[0]}")
    reasons = {
        EXACT: "exact enumeration is available",
        SAMPLER: "no exact value; a sampler's estimate passed every check",
        IMPORTANCE: ("no exact or sampler estimate passed; the largest importance-sampling "
                     "estimate that passed (each is biased low)"),
    }
    return chosen, reasons[chosen.kind]
