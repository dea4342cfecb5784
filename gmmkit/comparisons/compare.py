"""``gmmkit.compare``: do several fits of one data set agree, and which one to believe?

:func:`compare` aligns the labels of every fit to a reference (NUTS by default), then
builds one table with the ELBO, the evidence and the gap between them, the PSIS k-hat of
every variational fit, the agreement of every fit with the reference and, when the truth
is known, the error against it.  The returned :class:`Comparison` is plain data (the
table, the evidence estimates, PSIS diagnostics, ArviZ summaries and the plain-language
reading); its figures, markdown report and files are in :mod:`gmmkit.report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from gmmkit import _arviz
from gmmkit._validation import check_choice, check_int
from gmmkit.comparisons.align import (
    align,
    matching_permutation,
    reference_means,
)
from gmmkit.comparisons.diagnostics import (
    KHAT_THRESHOLD,
    REFERENCE_REMEDY,
    PsisResult,
    has_importance_weights,
    psis_diagnostics,
    reference_diagnostics,
)
from gmmkit.comparisons.evidence import EvidenceEstimate, choose_evidence, evidence_estimates
from gmmkit.inference.methods import METHODS
from gmmkit.result import Fit

__all__ = [
    "AGREEMENT_COLUMNS",
    "REFERENCE_NOT_CONVERGED",
    "TABLE_COLUMNS",
    "TRUTH_COLUMNS",
    "Comparison",
    "agreement",
    "compare",
    "parameter_draws",
    "truth_errors",
    "wasserstein_gaussian",
]

#: The agreement of every fit with the reference: numbers only when the reference can be
#: trusted (NaN otherwise, with ``agreement_note`` saying why).
AGREEMENT_COLUMNS = (
    "mean_shift_max", "mean_shift_mean", "sd_ratio_max", "sd_ratio_mean", "sd_ratio_min",
    "w2_means",
)
#: ``agreement_note`` of every row when the reference's draws failed its checks.
REFERENCE_NOT_CONVERGED = "reference not converged"

#: The columns of ``Comparison.table``, in order (truth columns only with ``truth``); the
#: index is the fit's name (``fit``).  Columns that do not apply to a fit are NaN, never 0:
#: ``elbo`` (and its se and gap) for Bayesian fits only, ``log_likelihood`` (log p(x |
#: theta-hat), maximum likelihood) for point estimates only, ``psis_khat`` for variational
#: fits, ``rhat_max`` and ``ess_bulk_min`` (after relabelling) for sampler fits.
TABLE_COLUMNS = (
    "method", "elbo", "elbo_se", "log_likelihood", "log_evidence", "log_evidence_se",
    "log_evidence_source", "elbo_gap", "wall_s", "n_iter", "converged", "psis_khat",
    "trust_q", "rhat_max", "ess_bulk_min", *AGREEMENT_COLUMNS, "agreement_note", "ari",
)
TRUTH_COLUMNS = ("truth_mean_error", "truth_weight_error", "truth_cov_error", "truth_ari")


# ----------------------------------------------------------------------------- metrics
def parameter_draws(fit: Fit, n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """Draws of every compared parameter, flattened to shape (S, P).

    ``means`` always (the model's component means); ``weights`` and the distinct entries
    of ``covariances`` when the model has them as parameters.
    """
    draws = fit.posterior.draw(n_draws, np.random.default_rng(seed))
    means = fit.model.component_means(draws)
    out = {"means": means.reshape(-1, fit.n_components * fit.means.shape[1])}
    free = fit.model.parameter_dims
    if "weights" in free:
        out["weights"] = np.asarray(draws["weights"]).reshape(out["means"].shape[0], -1)
    if "covariances" in free:
        cov = np.asarray(draws["covariances"])
        upper = np.triu_indices(cov.shape[-1])
        out["covariances"] = cov[..., upper[0], upper[1]].reshape(out["means"].shape[0], -1)
    return out


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (singular allowed: a point
    estimate has covariance 0), from its eigendecomposition with rounding clipped."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def wasserstein_gaussian(a: np.ndarray, b: np.ndarray) -> float:
    """2-Wasserstein distance between Gaussian moment fits of two sets of draws.

    ``a`` (S1, P) and ``b`` (S2, P); with means m and covariances C,
    W2^2 = |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_b^1/2 C_a C_b^1/2)^1/2)  (Givens & Shortt
    1984).  A single draw (a point estimate) has C = 0.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.cov(a, rowvar=False, ddof=0).reshape(a.shape[1], a.shape[1])
    cov_b = np.cov(b, rowvar=False, ddof=0).reshape(b.shape[1], b.shape[1])
    root_b = _psd_sqrt(cov_b)
    cross = _psd_sqrt(root_b @ cov_a @ root_b)
    w2_sq = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * cross)
    return float(np.sqrt(max(w2_sq, 0.0)))


def agreement(
    fit_draws: Mapping[str, np.ndarray], reference_draws: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """Agreement of one fit's (aligned) draws with the reference's.

    Per parameter p: shift_p = |mean_p - mean_ref_p| / sd_ref_p and ratio_p = sd_p /
    sd_ref_p; reported as their max and mean over all parameters (NaN where the reference
    has sd 0, i.e. is a point estimate), plus the 2-Wasserstein distance between Gaussian
    moment fits of the component means (data units).
    """
    shifts, ratios = [], []
    for name in ("means", "weights", "covariances"):
        if name not in fit_draws or name not in reference_draws:
            continue
        ref = reference_draws[name]
        sd_ref = ref.std(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            shifts.append(np.abs(fit_draws[name].mean(axis=0) - ref.mean(axis=0)) / sd_ref)
            ratios.append(fit_draws[name].std(axis=0) / sd_ref)
    shift, ratio = np.concatenate(shifts), np.concatenate(ratios)
    usable = np.isfinite(shift) & np.isfinite(ratio)
    nan = float("nan")
    return {
        "mean_shift_max": float(shift[usable].max()) if usable.any() else nan,
        "mean_shift_mean": float(shift[usable].mean()) if usable.any() else nan,
        "sd_ratio_max": float(ratio[usable].max()) if usable.any() else nan,
        "sd_ratio_mean": float(ratio[usable].mean()) if usable.any() else nan,
        "sd_ratio_min": float(ratio[usable].min()) if usable.any() else nan,
        "w2_means": wasserstein_gaussian(fit_draws["means"], reference_draws["means"]),
    }


def _components(draws: Mapping[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The draws of the components ``keep`` (a (K,) mask) from flattened (S, K * m)
    draws, whose columns run component by component (see :func:`parameter_draws`)."""
    if keep.all():
        return dict(draws)  # no copies: identical fits keep bit-identical draws
    return {name: np.asarray(value)[:, np.repeat(keep, np.shape(value)[1] // keep.size)]
            for name, value in draws.items()}


def truth_parts(truth: Any) -> dict[str, np.ndarray]:
    """means (K, D) and, when known, weights, covariances and labels of ``truth``."""
    get = truth.get if isinstance(truth, Mapping) else (lambda k: getattr(truth, k, None))
    out = {"means": reference_means(truth, name="truth")}
    for name in ("weights", "covariances", "labels"):
        value = get(name)
        if value is not None:
            out[name] = np.asarray(value)
    return out


def truth_errors(fit: Fit, truth: Any) -> dict[str, float]:
    """Mean absolute errors of the point estimates against ``truth`` after matching.

    ``truth`` is a MixtureData or a dict with ``means`` and optional ``weights``,
    ``covariances`` and ``labels``.  Returns ``truth_mean_error`` (over all K*D
    entries), ``truth_weight_error``, ``truth_cov_error`` (over all entries) and
    ``truth_ari`` (hard assignments against the true labels), NaN where unknown or where
    the model fixes the parameter instead of estimating it.
    """
    parts = truth_parts(truth)
    means = reference_means(fit.means, name="fit")
    nan = float("nan")
    out = dict.fromkeys(TRUTH_COLUMNS, nan)
    if parts["means"].shape != means.shape:
        # Different K: compare the matched components only.
        from scipy.optimize import linear_sum_assignment

        cost = ((parts["means"][:, None, :] - means[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        out["truth_mean_error"] = float(np.abs(parts["means"][rows] - means[cols]).mean())
    else:
        perm = matching_permutation(means, parts["means"])
        out["truth_mean_error"] = float(np.abs(means[perm] - parts["means"]).mean())
        # Weights or covariances the model fixes (the univariate model's 1/K and tau^2)
        # are not estimated: no error is reported for them (NaN, not a perfect 0).
        free = fit.model.parameter_dims
        if "weights" in parts and "weights" in free:
            out["truth_weight_error"] = float(np.abs(fit.weights[perm] - parts["weights"]).mean())
        if "covariances" in parts and "covariances" in free:
            true_cov = parts["covariances"].reshape(fit.covariances.shape)
            out["truth_cov_error"] = float(np.abs(fit.covariances[perm] - true_cov).mean())
    labels = parts.get("labels")
    if labels is not None and labels.shape[0] == fit.responsibilities.shape[0]:
        out["truth_ari"] = float(
            adjusted_rand_score(labels, np.argmax(fit.responsibilities, axis=1))
        )
    return out


# ----------------------------------------------------------------------------- input checks
def _named_fits(fits: Any) -> dict[str, Fit]:
    if isinstance(fits, Fit):
        fits = [fits]
    if isinstance(fits, Mapping):
        items = [(str(name), fit) for name, fit in fits.items()]
    elif isinstance(fits, Sequence) and not isinstance(fits, str):
        items, seen = [], {}
        for fit in fits:
            base = getattr(fit, "method", type(fit).__name__)
            seen[base] = seen.get(base, 0) + 1
            items.append((base if seen[base] == 1 else f"{base}-{seen[base]}", fit))
    else:
        raise ValueError(
            f"fits must be a list of Fit or a dict of name to Fit, got {type(fits).__name__}"
        )
    if not items:
        raise ValueError("fits must hold at least one Fit, got an empty collection")
    for name, fit in items:
        if not isinstance(fit, Fit):
            raise ValueError(f"fits[{name!r}] must be a gmmkit Fit, got {type(fit).__name__}")
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"fit names must be unique, got {names}")
    return dict(items)


def _check_same_data(fits: Mapping[str, Fit]) -> None:
    (first_name, first), *rest = fits.items()
    for name, fit in rest:
        a, b = np.asarray(first.data), np.asarray(fit.data)
        if a.shape != b.shape or not np.array_equal(a, b):
            raise ValueError(
                f"all fits must be fitted to the same data, but fits[{name!r}] saw data of "
                f"shape {b.shape} that differs from fits[{first_name!r}] (shape {a.shape})"
            )


def _default_reference(fits: Mapping[str, Fit]) -> str:
    """The first fit with genuine posterior draws, in the method table's order (NUTS
    before SMC), else the first fit."""
    for method in METHODS.values():
        for name, fit in fits.items():
            if fit.method == method.name and fit.posterior.kind.is_posterior_sample:
                return name
    return next(iter(fits))


def _model_key(model: Any) -> str:
    to_dict = getattr(model, "to_dict", None)
    return repr(to_dict()) if callable(to_dict) else repr(model)


# ----------------------------------------------------------------------------- compare
def compare(
    fits: Sequence[Fit] | Mapping[str, Fit],
    reference: str | None = None,
    truth: Any = None,
    *,
    align: str = "relabel",
    n_draws: int = 1000,
    psis_draws: int = 2000,
    seed: int = 0,
    exact_evidence: bool = True,
    min_weight: float = 0.0,
) -> Comparison:
    """Compare fits of one data set in one table, with aligned labels.

    Parameters
    ----------
    fits : list of Fit or dict of str to Fit
        Fits of the same data.  A list is named by ``fit.method`` ("cavi", "nuts", ...),
        with "-2", "-3" appended to repeated methods.
    reference : str, optional
        Name of the fit the others are aligned to and measured against.  Defaults to the
        NUTS fit when there is one, then SMC, then the first fit.
    truth : MixtureData or dict, optional
        True ``means`` (K,) or (K, D), and optionally ``weights``, ``covariances`` and
        ``labels``; adds the ``truth_*`` columns.
    align : {"relabel", "match"}
        "relabel" (default) requires every fit to have the reference's K; "match" allows
        different K and compares matched components only (agreement columns are then
        NaN for fits whose K differs, the ARI is still computed).
    n_draws : int
        Draws from each variational posterior for the agreement metrics and summaries
        (sampler fits use their stored draws).
    psis_draws : int
        Draws from q for PSIS k-hat and the importance-sampling evidence.
    seed : int
        Seed of every Monte Carlo step; the same for every fit, so identical fits give
        identical metrics.
    exact_evidence : bool
        Try ``model.exact_log_evidence`` (enumeration; only tiny data sets).
    min_weight : float
        The agreement columns use only the components whose reference weight is at least
        this.  An over-complete Bayesian fit (Bishop's K = 6 on Old Faithful) switches its
        extra components off; their q is essentially the prior, the data do not identify
        them, and differences there would swamp the agreement on the live components.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Empty input, a non-Fit, fits on different data, different K without
        ``align="match"``, or a ``reference`` that is not among the fits.
    """
    named = _named_fits(fits)
    check_choice("align", align, ("relabel", "match"))
    n_draws = check_int("n_draws", n_draws, 1)
    psis_draws = check_int("psis_draws", psis_draws, 10)
    seed = check_int("seed", seed, 0)
    _check_same_data(named)
    if reference is None:
        reference = _default_reference(named)
    elif reference not in named:
        raise ValueError(
            f"reference must be the name of one of the fits ({', '.join(map(repr, named))}), "
            f"got {reference!r}"
        )
    ref_fit = named[reference]
    k_ref = ref_fit.n_components
    different = {name: f.n_components for name, f in named.items() if f.n_components != k_ref}
    if different and align != "match":
        raise ValueError(
            f"all fits must have the reference's K = {k_ref} components to be aligned, but "
            f"{', '.join(f'{n!r} has K = {k}' for n, k in different.items())}; pass "
            "align='match' to compare matched components only"
        )

    aligned_ref = _align(ref_fit, None)
    live = np.asarray(aligned_ref.weights) >= min_weight  # components the agreement uses
    if not live.any():
        raise ValueError(
            f"min_weight must leave at least one component of the reference "
            f"{reference!r}, whose largest weight is {float(np.max(aligned_ref.weights)):.3g}; "
            f"got {min_weight!r}"
        )
    aligned_ref = _with_reference_checks(aligned_ref, live)
    aligned = {
        name: aligned_ref if name == reference
        else (fit if fit.n_components != k_ref
              else _with_reference_checks(_align(fit, aligned_ref), live))
        for name, fit in named.items()
    }
    reference_problems = tuple(aligned_ref.diagnostics.get("reference_problems", ()))
    reference_converged = not reference_problems
    psis = {}
    for name, fit in named.items():
        if has_importance_weights(fit):
            try:
                psis[name] = psis_diagnostics(fit, n_draws=psis_draws, seed=seed)
            except ValueError:
                continue  # a posterior that refuses importance weights: no k-hat
    evidence = _evidence_by_model(named, psis, exact_evidence)
    draws = {name: parameter_draws(fit, n_draws, seed) for name, fit in aligned.items()}
    ref_labels = np.argmax(aligned_ref.responsibilities, axis=1)

    rows = []
    for name, fit in named.items():
        _, chosen, reason = evidence[_model_key(fit.model)]
        value, se, source = ((chosen.value, chosen.se, chosen.source) if chosen is not None
                             else (np.nan, np.nan, reason))
        khat = psis[name].khat if name in psis else np.nan
        kind = fit.posterior.kind
        # A point estimate's objective bounds the likelihood at that point, not the
        # evidence: it goes in its own column, never ranked against Bayesian ELBOs.
        elbo = np.nan if kind.is_point_estimate else float(fit.elbo)
        checks = aligned[name].diagnostics if kind.is_posterior_sample else {}
        row = {
            "fit": name,
            "method": fit.method,
            "elbo": elbo,
            "elbo_se": float(fit.elbo_se) if np.isfinite(elbo) else np.nan,
            "log_likelihood": _point_log_likelihood(fit),
            "log_evidence": value,
            "log_evidence_se": se,
            "log_evidence_source": source,
            "elbo_gap": value - elbo,
            "wall_s": float(fit.elapsed_s),
            "n_iter": int(fit.n_iter),
            "converged": bool(fit.converged),
            "psis_khat": khat,
            "trust_q": "n/a" if not np.isfinite(khat)
            else ("do not trust this q" if khat > KHAT_THRESHOLD else "ok"),
            "rhat_max": float(checks.get("rhat_max", np.nan)),
            "ess_bulk_min": float(checks.get("ess_bulk_min", np.nan)),
        }
        if fit.n_components != k_ref:
            row.update(dict.fromkeys(AGREEMENT_COLUMNS, np.nan))
            row["agreement_note"] = f"different K ({fit.n_components})"
        elif not reference_converged:
            # Agreement with draws that have not converged is not a number to believe.
            row.update(dict.fromkeys(AGREEMENT_COLUMNS, np.nan))
            row["agreement_note"] = REFERENCE_NOT_CONVERGED
        else:
            row.update(agreement(_components(draws[name], live),
                                 _components(draws[reference], live)))
            row["agreement_note"] = ""
        row["ari"] = float(
            adjusted_rand_score(ref_labels, np.argmax(aligned[name].responsibilities, axis=1))
        )
        if truth is not None:
            row.update(truth_errors(aligned[name], truth))
        rows.append(row)
    columns = list(TABLE_COLUMNS) + (list(TRUTH_COLUMNS) if truth is not None else [])
    table = pd.DataFrame(rows).set_index("fit")[columns]
    return Comparison(
        fits=named, aligned=aligned, reference=reference, truth=truth, table=table,
        psis=psis, n_draws=n_draws, seed=seed,
        evidence={key: tuple(estimates) for key, (estimates, _, _) in evidence.items()},
        reference_converged=reference_converged, reference_problems=reference_problems,
    )


def _align(fit: Fit, to: Any) -> Fit:
    return align(fit, to)


#: The sampler's own convergence numbers, computed before relabelling.
_SAMPLER_SUMMARY = ("rhat_max", "ess_bulk_min", "ess_tail_min")


def _with_reference_checks(fit: Fit, live: np.ndarray) -> Fit:
    """An aligned sampler fit with r-hat, ESS, divergences and the chain-mode check
    computed on its relabelled draws (:func:`reference_diagnostics`) in its diagnostics;
    the sampler's own numbers (before relabelling) move to ``"before_relabelling"``."""
    if not fit.posterior.kind.is_posterior_sample:
        return fit
    checks = reference_diagnostics(fit, live)
    before = {k: fit.diagnostics[k] for k in _SAMPLER_SUMMARY if k in fit.diagnostics}
    diagnostics = {**fit.diagnostics, **checks}
    for stale in ("rhat", "ess_bulk", "ess_tail"):  # per-variable, on unrelabelled draws
        diagnostics.pop(stale, None)
    if before:
        diagnostics["before_relabelling"] = before
    return dataclasses.replace(fit, diagnostics=diagnostics)


def _point_log_likelihood(fit: Fit) -> float:
    """log p(x | theta-hat) of a point estimate (its predictive is the likelihood at the
    point), NaN for every other kind of fit."""
    if not fit.posterior.kind.is_point_estimate:
        return float("nan")
    return float(np.sum(fit.posterior.log_predictive(np.asarray(fit.data))))


def _evidence_by_model(
    fits: Mapping[str, Fit], psis: Mapping[str, PsisResult], exact: bool
) -> dict[str, tuple[list[EvidenceEstimate], EvidenceEstimate | None, str]]:
    """Every evidence estimate of every distinct model, and the one the policy chooses
    (:mod:`gmmkit.comparisons.evidence`), with the reason."""
    by_model: dict[str, dict[str, Fit]] = {}
    for name, fit in fits.items():
        by_model.setdefault(_model_key(fit.model), {})[name] = fit
    out = {}
    for key, group in by_model.items():
        estimates = evidence_estimates(group, {n: psis[n] for n in group if n in psis},
                                       exact=exact)
        chosen, reason = choose_evidence(estimates)
        out[key] = (estimates, chosen, reason)
    return out


# ----------------------------------------------------------------------------- Comparison
@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    fits : dict of str to Fit
        The fits as given.
    aligned : dict of str to Fit
        The same fits with labels aligned to the reference.
    reference : str
        Name of the reference fit.
    truth : object or None
    table : pandas.DataFrame
        One row per fit (index: the fit's name); see ``TABLE_COLUMNS``.
    psis : dict of str to PsisResult
        PSIS diagnostics of every variational fit.
    evidence : dict of str to tuple of EvidenceEstimate
        Every evidence estimate of each distinct model (by the model's description),
        flagged ones included (:mod:`gmmkit.comparisons.evidence`).
    reference_converged : bool
        Whether the reference passed its checks (sampler draws: r-hat <= 1.01, bulk and
        tail ESS >= 100 per chain, no divergences, chains in one mode, all after
        relabelling; other kinds of reference have nothing to check).  When False the
        agreement columns are NaN and ``agreement_note`` says "reference not converged".
    reference_problems : tuple of str
        The checks the reference failed, one plain sentence each.
    """

    fits: Mapping[str, Fit]
    aligned: Mapping[str, Fit]
    reference: str
    truth: Any
    table: pd.DataFrame
    psis: Mapping[str, PsisResult]
    n_draws: int = 1000
    seed: int = 0
    evidence: Mapping[str, tuple[EvidenceEstimate, ...]] = dataclasses.field(
        default_factory=dict)
    reference_converged: bool = True
    reference_problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Comparison(fits={list(self.fits)}, reference={self.reference!r})"

    # ------------------------------------------------------------------ ArviZ
    @cached_property
    def _idatas(self) -> dict[str, Any]:
        return {name: self._aligned_idata(name, False) for name in self.aligned}

    @cached_property
    def _idata_cache(self) -> dict[tuple[str, Any], Any]:
        return {}

    def _aligned_idata(self, name: str, log_likelihood: bool | None):
        idata = self.aligned[name].to_inference_data(
            draws=self.n_draws, seed=self.seed, log_likelihood=log_likelihood)
        for group in idata.groups():
            idata[group].attrs["gmmkit_aligned_to"] = self.reference
        return idata

    def inference_data(self, name: str, *, log_likelihood: bool | None = None):
        """The fit ``name`` with labels aligned to the reference, as an
        ``arviz.InferenceData`` ready for ``az.plot_forest`` / ``az.plot_trace`` (component
        k is the same cluster in every fit's data; attrs ``gmmkit_aligned_to``).

        ``log_likelihood`` as in :meth:`Fit.to_inference_data`: None (default) includes
        the pointwise log-likelihood when draws x N is small, True always, False never.
        """
        self._check_name(name)
        if log_likelihood is False:
            return self._idatas[name]
        key = (name, log_likelihood)
        if key not in self._idata_cache:
            self._idata_cache[key] = self._aligned_idata(name, log_likelihood)
        return self._idata_cache[key]

    def summary(self, **kwargs: Any) -> pd.DataFrame:
        """``az.summary`` of every aligned fit, stacked with a ``fit`` index level."""
        kwargs.setdefault("kind", "stats")
        return _arviz.summaries_side_by_side(self._idatas, **kwargs)

    def _check_name(self, name: str) -> None:
        if name not in self.fits:
            raise ValueError(
                f"name must be one of the compared fits ({', '.join(map(repr, self.fits))}), "
                f"got {name!r}"
            )

    # ------------------------------------------------------------------ report
    def reading(self) -> list[str]:
        """A short plain-language reading of the table, one sentence per finding."""
        t, ref = self.table, self.reference
        lines = []
        if not self.reference_converged:
            lines.append(
                f"The reference {ref} has not converged ({'; '.join(self.reference_problems)}), "
                f"so its agreement with the other fits is not reported; to fix it, "
                f"{REFERENCE_REMEDY}."
            )
        for name, row in t.iterrows():
            if name == ref or not np.isfinite(row["mean_shift_max"]):
                continue
            shift = row["mean_shift_max"]
            verb = "agree within" if shift < 0.1 else "differ by up to"
            lines.append(
                f"{name} and {ref} {verb} {shift:.2g} reference sd on all parameter means "
                f"(average {row['mean_shift_mean']:.2g} sd); {name}'s posterior sd is "
                f"{row['sd_ratio_mean']:.2g} times {ref}'s on average; hard assignments "
                f"agree with ARI = {row['ari']:.3f}."
            )
        # Only Bayesian bounds are comparable: an EM/k-means "elbo" is a bound on the
        # likelihood at a point estimate, not on the evidence.
        bayesian = [name for name, fit in self.aligned.items()
                    if not fit.posterior.kind.is_point_estimate]
        elbos = t["elbo"].reindex(bayesian).dropna()
        if len(elbos) > 1:
            best = elbos.idxmax()
            for name, value in elbos.items():
                if name != best:
                    lines.append(
                        f"{name}'s bound is {elbos[best] - value:.1f} nats looser than {best}'s."
                    )
        for name, row in t.iterrows():
            if not self.fits[name].posterior.kind.is_variational:
                continue
            gap = row["elbo_gap"]
            se = float(np.hypot(np.nan_to_num(row["log_evidence_se"]),
                                np.nan_to_num(row["elbo_se"])))
            if not np.isfinite(gap):
                if not np.isfinite(row["log_evidence"]) and row["log_evidence_source"]:
                    lines.append(f"{name}: no ELBO gap is reported, because "
                                 f"{row['log_evidence_source']}.")
                continue
            if gap < 0:
                # The policy never chooses an estimate more than 3 se below an ELBO, so a
                # negative gap is Monte Carlo noise, never a finding.
                lines.append(
                    f"{name}'s ELBO is within Monte Carlo error of the log evidence "
                    f"{row['log_evidence']:.2f} (gap {gap:.2f} ± {se:.2f} nats; "
                    f"{row['log_evidence_source']})."
                )
            else:
                lines.append(
                    f"{name}'s ELBO is {gap:.2f} nats below the log evidence "
                    f"{row['log_evidence']:.2f} ({row['log_evidence_source']})."
                )
        for estimates in self.evidence.values():
            for estimate in estimates:
                if estimate.problems:
                    lines.append(f"Evidence estimate not used: {estimate.source} = "
                                 f"{estimate.value:.2f} ± {estimate.se:.2f} "
                                 f"({'; '.join(estimate.problems)}).")
        for name, result in self.psis.items():
            if result.khat > KHAT_THRESHOLD:
                lines.append(
                    f"{name}: k-hat = {result.khat:.2f} > {KHAT_THRESHOLD} (do not trust this "
                    "q): the importance weights p/q are heavy-tailed, so q misses posterior "
                    "mass (too narrow, as a mean-field q typically is, or placed where the "
                    "posterior is not); its posterior sd understates the uncertainty and an "
                    "evidence estimate from it carries a caution."
                )
            else:
                lines.append(f"{name}: k-hat = {result.khat:.2f} (q is usable).")
        for name, fit in self.aligned.items():
            switched = fit.diagnostics.get("label_switching")
            if switched and any(v > 0 for v in switched.values()):
                worst = max(switched.values())
                lines.append(
                    f"{name}: labels switched within chain(s) "
                    f"{', '.join(str(c) for c, v in switched.items() if v > 0)} (up to "
                    f"{worst:.0%} of draws); its draws were relabelled before summarising."
                )
        if "truth_mean_error" in t:
            for name, row in t.iterrows():
                lines.append(
                    f"{name} recovers the true means with mean absolute error "
                    f"{row['truth_mean_error']:.3g}."
                )
        return lines
