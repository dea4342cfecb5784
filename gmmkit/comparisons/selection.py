"""Choosing the number of components K (and the family): ``gmmkit.select``.

A **candidate** is (model kind, K, covariance, weight prior): the model factory that
builds it, the number of components, the covariance family ("full", "diag", "spherical",
"tied") and the prior on the mixing weights ("dirichlet_distribution" or
"dirichlet_process" for :class:`~gmmkit.models.BayesianGMM`, scikit-learn's names; "none"
for the maximum-likelihood :class:`~gmmkit.models.GaussianMixture`).  Covariance and
weight prior are passed to the model as they are: whatever the model accepts is a
candidate, and what it refuses is skipped with a note.  Every candidate is fitted by its
family's closed-form method (Bishop's VB for the Bayesian model, EM for the mixture; both
from the method table), and scored by each requested criterion that applies to it; a
criterion that does not apply is NaN in the table.

Criteria, their assumptions and sign conventions
------------------------------------------------

``"bound"`` (higher is better; Bayesian families).  The VB lower bound (ELBO) of the fit
plus a label-symmetry correction.  The posterior of a K-component mixture has one copy
of every mode per relabelling of the components, but q sits on one copy, so the ELBO
bounds the mass of one mode rather than p(X) (Bishop PRML §10.2.4 and Fig. 10.7, which
adds ln K!).  The correction counts what is really symmetric:

* *Dead components are not distinguishable.*  When the fit switches components off
  (small ``alpha0``), the dead components' factors are all equal (they are the prior), so
  relabelling dead components among themselves gives back the same q.  The distinct
  copies are the K! / (K - K_live)! ways to place the K_live live components on K labels.
  K_live counts the components whose expected share of the data, E_q[N_k] / N =
  sum_n r_nk / N, exceeds :data:`LIVE_THRESHOLD` (1e-3).  With every component live this
  is Bishop's ln K!.  (Counting only ln K_live!, i.e. ignoring which labels are live, is
  too small by ln C(K, K_live): on data small enough to enumerate, the corrected bound
  matches ``exact_log_evidence`` to ~0.01 nats and ELBO + ln K_live! does not.)
* *The copies need not be equally probable.*  The likelihood and the component prior are
  exchangeable, but a weight prior need not be: the stick-breaking (Dirichlet-process)
  prior favours large clusters at small indices, so the copy with labelling sigma has
  posterior mass proportional to p(z_sigma), the weight prior's probability of the
  relabelled assignments (pi integrated out).  With z* the fit's hard assignments
  (the expected counts E_q[N_k] rounded to integers, dead components empty), the
  correction is

      ln sum_sigma p(z*_sigma) / p(z*)       (sum over the K!/(K - K_live)! placements)

  computed by the weight prior's ``log_marginal_counts`` (vectorised over placements).
  For the exchangeable Dirichlet distribution every term is 1 and this is exactly
  ln K! - ln (K - K_live)!; for the truncated stick-breaking prior it is smaller (the
  fit's own, size-ordered labelling is the most probable copy, the reversed orders are
  less probable), and it is what makes "bound + correction" approximate ln p(X) for
  either prior.  It is the log of the mixture-of-copies bound ln sum_sigma exp(ELBO_sigma)
  (each copy's ELBO with its weight factor re-optimised) in the limit of hard
  assignments.

The correction assumes the live modes are well separated; where they overlap it
overcorrects (the bound may then exceed the evidence).  Note that with a fixed symmetric
Dir(alpha0) the evidence itself rises slowly with K for alpha0 -> 0 (about ln(K - 1) for
two live components): the prior, not the bound, does that.  The table also carries
``elbo``, ``k_live`` and ``symmetry`` (the correction) so it can be redone.

``"exact"`` (higher is better; Bayesian families).  ``model.exact_log_evidence(X)`` by
enumerating all K**N assignments where that is possible (tiny data), NaN otherwise.

``"bic"``, ``"aic"``, ``"icl"`` (lower is better; maximum-likelihood families).
scikit-learn's convention (``sklearn.mixture.GaussianMixture.bic``/``aic``):

    bic = -2 ln L + p ln N,    aic = -2 ln L + 2 p,
    icl = bic + 2 sum_n H(r_n),   H(r_n) = -sum_k r_nk ln r_nk

with ln L = sum_n ln p(x_n | theta_hat) the maximised log-likelihood, p =
``GaussianMixture.n_parameters(D)`` (per covariance family) and r the responsibilities
at theta_hat (Biernacki, Celeux & Govaert 2000; McLachlan & Peel 2000 §6.10).  mclust
reports -bic (its BIC = 2 ln L - p ln N, higher better); gmmkit does not flip the sign.

``"cv"`` (higher is better; every family).  Held-out log predictive density by
``n_folds``-fold cross-validation (Blei, Kucukelbir & McAuliffe 2017 recommend held-out
likelihood): each fold is scored by the posterior predictive (``Fit.score_samples``) of
the same candidate fitted to the other folds only (never warm-started from the full-data
fit, which has seen the held-out points), and the per-point values are summed over all
N points.  ``cv_se`` = sd(per-point values) x sqrt(N).  The folds are a permutation
drawn from ``seed``: the same seed gives the same folds and values.  Each fold fit makes
``cv_n_init`` restarts (default 1): restarts only guard against a poor local optimum, a
fold fit never sees its held-out points whatever the number of restarts, so fewer
restarts do not bias the estimate towards the training data; they may only make a fold
fit worse, which lowers (never raises) the candidate's held-out density.

``"loo"`` (higher is better).  PSIS-LOO elpd (``gmmkit.comparisons.loo``, through ArviZ)
with its standard error, only for fits with genuine posterior draws
(``PosteriorKind.SAMPLER_DRAWS``, e.g. ``methods={"bayesian": NUTS.name}``).  Draws from a
variational q or a point estimate have no leave-one-out posterior: asking for ``"loo"``
when no candidate has posterior draws raises.  The Pareto k-hat diagnostics are in the
table (``loo_khat_max``, ``loo_n_high_khat``: points above ArviZ's threshold) and in
``Selection.notes``.  It is off by default (sampling is slow).

``"evidence"`` (higher is better; sampler fits).  The log evidence the method itself
estimates, with its standard error over chains: SMC's ``Fit.log_evidence`` (of the
exchangeable model), for ``methods={"bayesian": SMC.name}``; NaN for samplers that give
none (NUTS).  Slow: small data only.

Speed
-----
The candidates' fits and their cross-validation folds are independent jobs; with
``n_jobs`` > 1 they run in a pool of worker processes (``concurrent.futures``), each
limited to one BLAS thread (as are the closed-form jobs run in the calling process:
many small fits gain nothing from BLAS threads, and the results then cannot depend on
``n_jobs``).  Every job's seed is fixed by the candidate and the fold
(the full-data fit uses ``seed``, fold i uses ``seed + 1 + i``), never by the order in
which jobs run, so the table is bit-identical to the serial one.  Fits that store draws
(the PyMC methods, which run their own chains in parallel) run in the calling process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from math import lgamma
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from gmmkit._validation import check_int, check_multivariate_data, check_positive
from gmmkit._warnings import warn
from gmmkit.api import fit as fit_model
from gmmkit.api import resolve_seed
from gmmkit.inference.loop import progress_bar
from gmmkit.inference.methods import Method, get_method, methods_for
from gmmkit.models.base import check_enumerable
from gmmkit.models.bayesian import WEIGHT_PRIORS as BAYESIAN_WEIGHT_PRIORS
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.factory import MODEL_KINDS
from gmmkit.models.mixture import COVARIANCE_TYPES, GaussianMixture
from gmmkit.models.weights import WeightPrior
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = [
    "CRITERIA",
    "DEFAULT_CRITERIA",
    "LIVE_THRESHOLD",
    "SELECTION_MODELS",
    "WEIGHT_PRIORS",
    "Candidate",
    "Criterion",
    "Selection",
    "label_symmetry_correction",
    "live_components",
    "select",
    "symmetry_correction",
]

#: A component is live when its expected share of the data E_q[N_k] / N exceeds this.
LIVE_THRESHOLD = 1e-3
#: Model kinds (``models/factory.py`` names) that selection can build.
SELECTION_MODELS = ("bayesian", "gmm")
#: Weight priors by model kind: the Bayesian model's own names (scikit-learn's
#: ``weight_concentration_prior_type``), "none" for maximum likelihood.  Which of them a
#: model implements is asked of the model (by constructing it), not listed here.
WEIGHT_PRIORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"bayesian": tuple(BAYESIAN_WEIGHT_PRIORS), "gmm": ("none",)})
#: Placements enumerated per block when summing the relabelled copies (memory bound).
_PLACEMENT_BLOCK = 65536


@dataclass(frozen=True)
class Criterion:
    """A selection criterion: its name, direction and which posteriors it scores."""

    name: str
    higher_is_better: bool
    summary: str
    #: Posterior kinds it applies to (others get NaN); None: every kind.
    kinds: tuple[PosteriorKind, ...] | None = None
    has_se: bool = False

    def applies(self, kind: PosteriorKind) -> bool:
        return self.kinds is None or kind in self.kinds


_BAYES = (PosteriorKind.CLOSED_FORM_Q, PosteriorKind.Q_DRAWS, PosteriorKind.SAMPLER_DRAWS)
_POINT = (PosteriorKind.POINT_ESTIMATE,)
#: Every criterion by name (see the module docstring).
CRITERIA: Mapping[str, Criterion] = MappingProxyType({c.name: c for c in (
    Criterion("bound", True, "VB ELBO + ln(distinct relabellings of q, weighted by the "
              "weight prior)", (PosteriorKind.CLOSED_FORM_Q,)),
    Criterion("exact", True, "exact log evidence by enumeration (tiny data)", _BAYES),
    Criterion("bic", False, "-2 ln L + p ln N", _POINT),
    Criterion("aic", False, "-2 ln L + 2 p", _POINT),
    Criterion("icl", False, "BIC + 2 x entropy of the responsibilities", _POINT),
    Criterion("cv", True, "held-out log predictive density, K-fold", None, has_se=True),
    Criterion("loo", True, "PSIS-LOO elpd (posterior draws only)",
              (PosteriorKind.SAMPLER_DRAWS,), has_se=True),
    Criterion("evidence", True, "log evidence estimated by the sampler (SMC)",
              (PosteriorKind.SAMPLER_DRAWS,), has_se=True),
)})
DEFAULT_CRITERIA = ("bound", "bic", "aic", "icl", "cv")


@dataclass(frozen=True, order=True)
class Candidate:
    """One candidate model: (model kind, K, covariance, weight prior)."""

    model: str
    n_components: int
    covariance: str
    weight_prior: str

    def __str__(self) -> str:
        prior = "" if self.weight_prior == "none" else f", {self.weight_prior}"
        return f"{self.model} {self.covariance}{prior}, K={self.n_components}"

    @property
    def family(self) -> tuple[str, str, str]:
        """(model, covariance, weight prior): the candidate without K."""
        return (self.model, self.covariance, self.weight_prior)


@dataclass(frozen=True, eq=False)
class Selection:
    """The result of :func:`select`: plain data.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per candidate: ``model``, ``n_components``, ``covariance``,
        ``weight_prior``, ``method``, one column per criterion (NaN where it does not
        apply) and ``<criterion>_se`` where estimated, plus ``elbo``, ``k_live``,
        ``symmetry``, ``log_likelihood``, ``n_parameters``, ``loo_khat_max`` and
        ``loo_n_high_khat`` where defined.
    best : mapping
        Criterion -> the chosen :class:`Candidate` (None when no candidate has a value).
    higher_is_better : mapping
        Criterion -> True when larger values are better.
    fits : mapping
        Candidate -> the :class:`~gmmkit.result.Fit` on all the data.
    criteria : tuple of str
    seed, n_folds : int
    notes : tuple of str
        Fits that failed, candidates skipped, k-hat warnings, and similar.
    """

    table: pd.DataFrame = field(repr=False)
    best: Mapping[str, Candidate | None]
    higher_is_better: Mapping[str, bool]
    fits: Mapping[Candidate, Fit] = field(repr=False)
    criteria: tuple[str, ...]
    seed: int
    n_folds: int
    notes: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(self.fits)

    def row(self, candidate: Candidate) -> pd.Series:
        """The table's row of ``candidate``."""
        t = self.table
        mask = ((t["model"] == candidate.model)
                & (t["n_components"] == candidate.n_components)
                & (t["covariance"] == candidate.covariance)
                & (t["weight_prior"] == candidate.weight_prior))
        return t[mask].iloc[0]


# ----------------------------------------------------------------------------- symmetry
def live_components(fit: Fit, threshold: float = LIVE_THRESHOLD) -> int:
    """K_live: components whose expected share of the data, sum_n r_nk / N, exceeds
    ``threshold``."""
    share = np.asarray(fit.responsibilities, dtype=float).mean(axis=0)
    return int(np.sum(share > threshold))


def symmetry_correction(n_components: int, n_live: int) -> float:
    """ln K! - ln (K - K_live)!: the log number of distinct relabellings of q (the
    correction for an exchangeable weight prior)."""
    return lgamma(n_components + 1) - lgamma(n_components - n_live + 1)


@lru_cache(maxsize=32)
def _placements(n_components: int, n_live: int) -> np.ndarray:
    """Every injective map of ``n_live`` live components to ``n_components`` labels, as
    an array (K!/(K - K_live)!, K_live) of labels; built column by column in NumPy (the
    largest, K = K_live = 9, has 362880 rows)."""
    out = np.zeros((1, 0), dtype=np.int8)
    for _ in range(n_live):
        used = np.zeros((out.shape[0], n_components), dtype=bool)
        np.put_along_axis(used, out.astype(np.intp), True, axis=1)
        rows, labels = np.nonzero(~used)
        out = np.column_stack([out[rows], labels.astype(np.int8)])
    out.setflags(write=False)
    return out


def _hard_counts(expected_counts: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Integer counts summing to round(N): dead components 0, live ones their expected
    counts by largest remainder, at least 1 each.  Shape (K,)."""
    n = round(float(expected_counts.sum()))
    scaled = np.where(live, expected_counts, 0.0)
    scaled = scaled * (n / scaled.sum())
    counts = np.floor(scaled).astype(int)
    short = n - int(counts.sum())
    if short > 0:
        # Largest remainders first; ties to the lower label, so the result is deterministic.
        order = np.argsort(-(scaled - counts), kind="stable")[:short]
        counts[order] += 1
    counts[live & (counts == 0)] = 1
    while counts.sum() > n:  # the minimum of 1 overshot: take from the largest
        counts[np.argmax(counts)] -= 1
    return counts


def label_symmetry_correction(weights: WeightPrior, expected_counts: Any,
                              threshold: float = LIVE_THRESHOLD) -> float:
    """ln sum_sigma p(z*_sigma) / p(z*): the label-symmetry correction of the bound.

    Parameters
    ----------
    weights : WeightPrior
        The fit's prior on the weights (``model.weight_distribution``).
    expected_counts : array_like, shape (K,)
        E_q[N_k] = sum_n r_nk.
    threshold : float
        A component is live when E_q[N_k] / N exceeds it.

    Returns
    -------
    float
        The log of the summed prior probability of every distinct relabelling of the
        fit's hard assignments z* (live components placed on any K_live of the K labels,
        dead ones empty), relative to z* itself (module docstring).  For an
        exchangeable prior this is :func:`symmetry_correction`.
    """
    counts = np.asarray(expected_counts, dtype=float)
    n_components = counts.shape[0]
    if n_components == 1:
        return 0.0
    live = counts / counts.sum() > threshold
    hard = _hard_counts(counts, live)
    placements = _placements(n_components, int(live.sum()))
    live_counts = hard[live]
    own = float(weights.log_marginal_counts(hard[None, :])[0])
    parts = []
    for start in range(0, placements.shape[0], _PLACEMENT_BLOCK):
        block = placements[start:start + _PLACEMENT_BLOCK].astype(np.intp)
        relabelled = np.zeros((block.shape[0], n_components), dtype=int)
        np.put_along_axis(relabelled, block, live_counts[None, :], axis=1)
        parts.append(logsumexp(weights.log_marginal_counts(relabelled) - own))
    return float(logsumexp(parts))


# ----------------------------------------------------------------------------- checks
def _build(model: str, n_components: int, covariance: str, weight_prior: str,
           alpha0: float | None, options: Mapping[str, Any]):
    """The model of a candidate (the factory: one line per model kind; covariance and
    weight prior are the model's own arguments, passed through)."""
    if model == "bayesian":
        return BayesianGMM(n_components, alpha0=alpha0, covariance=covariance,
                           weight_prior=weight_prior, **options)
    return GaussianMixture(n_components, covariance=covariance, **options)


def _check_sequence(name: str, value: Any, choices: Iterable[str]) -> tuple[str, ...]:
    choices = tuple(choices)
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be a string or a sequence of strings from "
                         f"{', '.join(choices)}, got {value!r}") from None
    if not items:
        raise ValueError(f"{name} must name at least one of {', '.join(choices)}")
    bad = [v for v in items if not isinstance(v, str) or v not in choices]
    if bad:
        raise ValueError(f"{name}: unknown value(s) {', '.join(map(repr, bad))}; expected "
                         f"some of {', '.join(choices)}")
    repeated = sorted({v for v in items if items.count(v) > 1})
    if repeated:
        raise ValueError(f"{name}: {', '.join(map(repr, repeated))} given twice")
    return items


def _check_components(value: Any, n_points: int) -> tuple[int, ...]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (value,)
    try:
        items = list(value)
    except TypeError:
        raise ValueError("n_components must be an int or a sequence of ints >= 1, got "
                         f"{value!r}") from None
    if not items:
        raise ValueError("n_components must hold at least one K")
    ks = [check_int("n_components", k, 1) for k in items]
    if len(set(ks)) != len(ks):
        raise ValueError(f"n_components must not repeat a K, got {items!r}")
    if max(ks) > n_points:
        raise ValueError(f"n_components must be at most N = {n_points} (one point per "
                         f"component), got K = {max(ks)}")
    return tuple(sorted(ks))


def _refusal(model: str, covariance: str, weight_prior: str,
             options: Mapping[str, Any]) -> str | None:
    """None when the model kind builds this family, else the model's own reason."""
    try:
        _build(model, 1, covariance, weight_prior, None, options)
    except ValueError as err:
        return str(err)
    return None


def _check_model_options(models: tuple[str, ...], options: Any) -> dict[str, dict]:
    options = dict(options or {})
    unknown = sorted(set(options).difference(models))
    if unknown:
        raise ValueError(f"model_options: model kind(s) {', '.join(map(repr, unknown))} are "
                         f"not among models {', '.join(models)}")
    out = {model: dict(options.get(model) or {}) for model in models}
    own = {"n_components", "covariance", "alpha0", "weight_prior"}
    for model, given in out.items():
        if own & set(given):
            raise ValueError("model_options must not set n_components, covariance, "
                             "weight_prior or alpha0 (select's own arguments), got "
                             f"{', '.join(sorted(own & set(given)))}")
        try:
            _build(model, 1, "full", WEIGHT_PRIORS[model][0], None, given)
        except (TypeError, ValueError) as err:
            raise ValueError(f"model_options for {model!r}: {err}") from None
    return out


def _resolve_methods(models: tuple[str, ...], methods: Mapping[str, str] | None
                     ) -> dict[str, Method]:
    methods = dict(methods or {})
    unknown = sorted(set(methods).difference(models))
    if unknown:
        raise ValueError(f"methods: model kind(s) {', '.join(map(repr, unknown))} are not "
                         f"among models {', '.join(models)}")
    out = {}
    for model in models:
        allowed = methods_for(MODEL_KINDS[model])
        name = methods.get(model, allowed[0])
        method = get_method(name)
        if name not in allowed:
            raise ValueError(f"methods: method {name!r} does not apply to model {model!r}; "
                             f"expected one of {', '.join(allowed)}")
        out[model] = method
    return out


def _families(models, covariances, priors, per_kind, notes):
    """The (model, covariance, weight prior) to fit: every requested combination that the
    model accepts.  A covariance or weight prior asked for by name (not None) that no
    requested model accepts is refused (with the model's reason); a combination one
    model refuses is skipped with a note."""
    families: list[tuple[str, str, str]] = []
    reasons: dict[tuple[int, str], str] = {}
    for model in models:
        for cov in covariances or COVARIANCE_TYPES:
            for prior in WEIGHT_PRIORS[model]:
                if priors is not None and prior != "none" and prior not in priors:
                    continue
                reason = _refusal(model, cov, prior, per_kind[model])
                if reason is None:
                    families.append((model, cov, prior))
                    continue
                notes.append(f"{model} with covariance {cov!r} and weight prior "
                             f"{prior!r} skipped: {reason}")
                reasons.setdefault((1, cov), f"{model}: {reason}")
                reasons.setdefault((2, prior), f"{model}: {reason}")
    for argument, values, position in (("covariance", covariances or (), 1),
                                       ("weight_prior", priors or (), 2)):
        for value in values:
            if all(f[position] != value for f in families):
                why = reasons.get((position, value), "no requested model has it")
                raise ValueError(f"{argument}: {value!r} is implemented by none of the "
                                 f"requested models ({', '.join(models)}): {why}")
    if not families:
        raise ValueError(f"covariance: no requested model ({', '.join(models)}) implements "
                         f"any of the families asked for; {'; '.join(notes)}")
    return families


def _resolve_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    return check_int("n_jobs", n_jobs, 1)


def _folds(n: int, n_folds: int, seed: int) -> list[np.ndarray]:
    """Held-out index sets: a permutation of range(n) from ``seed`` cut into folds."""
    order = np.random.default_rng([seed, 0xC5]).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_folds)]


# ----------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class _Job:
    """One independent unit of work, picklable: a candidate's fit on all the data
    (``fold`` None) or on all but one fold."""

    candidate: Candidate
    method: str
    alpha0: float | None
    model_options: Mapping[str, Any]
    fit_kwargs: Mapping[str, Any]
    seed: int
    fold: int | None
    criteria: tuple[str, ...]


@dataclass
class _Outcome:
    fit: Fit | None = None
    row: dict[str, Any] = field(default_factory=dict)
    values: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[tuple[type[Warning], str]] = field(default_factory=list)


def _information(fit: Fit, X: np.ndarray) -> dict[str, float]:
    """ln L, p, BIC, AIC and ICL of a maximum-likelihood fit (module docstring)."""
    n, d = X.shape
    log_lik = float(np.sum(fit.score_samples(X)))
    p = fit.model.n_parameters(d)
    resp = fit.predict_proba(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -float(np.sum(np.where(resp > 0, resp * np.log(resp), 0.0)))
    bic = -2.0 * log_lik + p * np.log(n)
    return {"log_likelihood": log_lik, "n_parameters": p, "bic": bic,
            "aic": -2.0 * log_lik + 2.0 * p, "icl": bic + 2.0 * entropy}


def _exact(model, X: np.ndarray) -> float:
    try:
        check_enumerable(X.shape[0], model.n_components)
    except ValueError:
        return float("nan")
    return float(model.exact_log_evidence(X))


def _loo(fit: Fit) -> dict[str, float]:
    """PSIS-LOO elpd, its se and the Pareto k-hat summary (points above ArviZ's
    threshold, ``good_k``, 0.7 for enough draws)."""
    from gmmkit.comparisons.diagnostics import loo

    with warnings.catch_warnings():
        # ArviZ's own k-hat warning: the table carries the k-hat values instead.
        warnings.simplefilter("ignore")
        result = loo(fit, pointwise=True)
    khat = np.asarray(result["pareto_k"], dtype=float)
    good_k = float(result.get("good_k", 0.7))
    return {"loo": float(result["elpd_loo"]), "loo_se": float(result["se"]),
            "loo_khat_max": float(np.max(khat)),
            "loo_n_high_khat": int(np.sum(khat > good_k)), "loo_good_k": good_k}


def _score(job: _Job, fitted: Fit, X: np.ndarray, kind: PosteriorKind) -> _Outcome:
    """Every requested criterion of a full-data fit that applies to its kind."""
    out = _Outcome(fit=fitted)
    row, chosen, cand = out.row, job.criteria, job.candidate
    if kind == PosteriorKind.CLOSED_FORM_Q:
        counts = np.asarray(fitted.responsibilities, dtype=float).sum(axis=0)
        correction = label_symmetry_correction(fitted.model.weight_distribution, counts)
        row.update(elbo=float(fitted.elbo), k_live=live_components(fitted),
                   symmetry=correction)
        if "bound" in chosen:
            row["bound"] = float(fitted.elbo) + correction
    if "exact" in chosen and CRITERIA["exact"].applies(kind):
        row["exact"] = _exact(fitted.model, X)
    if CRITERIA["bic"].applies(kind):
        info = _information(fitted, X)
        row.update(log_likelihood=info["log_likelihood"], n_parameters=info["n_parameters"])
        row.update({c: info[c] for c in ("bic", "aic", "icl") if c in chosen})
    if "evidence" in chosen and CRITERIA["evidence"].applies(kind):
        # NaN for a sampler that gives no evidence (NUTS); SMC's is already that of the
        # exchangeable model (the ordered transform's ln K! is put back by the sampler).
        row["evidence"] = float(fitted.log_evidence)
        row["evidence_se"] = float(fitted.log_evidence_se)
    if "loo" in chosen and CRITERIA["loo"].applies(kind):
        loo_row = _loo(fitted)
        good_k = loo_row.pop("loo_good_k")
        row.update(loo_row)
        if loo_row["loo_n_high_khat"]:
            out.notes.append(
                f"{cand}: PSIS-LOO is unreliable, {loo_row['loo_n_high_khat']} point(s) "
                f"with Pareto k-hat > {good_k:.2f} (max {loo_row['loo_khat_max']:.2f})")
    return out


def _run(job: _Job, X: np.ndarray, folds: list[np.ndarray]) -> _Outcome:
    """Run one job; ValueErrors become notes, warnings are recorded (a worker process
    cannot show them) and re-emitted by :func:`select`."""
    cand, method = job.candidate, get_method(job.method)
    model = _build(cand.model, cand.n_components, cand.covariance, cand.weight_prior,
                   job.alpha0, job.model_options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if job.fold is None:
                fitted = fit_model(model, X, method.name, seed=job.seed, **job.fit_kwargs)
                out = _score(job, fitted, X, method.kind)
            else:
                test = folds[job.fold]
                train = np.setdiff1d(np.arange(X.shape[0]), test)
                fold_fit = fit_model(model, X[train], method.name, seed=job.seed,
                                     **job.fit_kwargs)
                out = _Outcome(values=fold_fit.score_samples(X[test]))
        except ValueError as err:
            what = "fit" if job.fold is None else f"cross-validation fold {job.fold + 1}"
            out = _Outcome(notes=[f"{cand}: {what} failed ({err})"])
    out.warnings = [(w.category, str(w.message)) for w in caught]
    return out


#: The data and folds of the current pool, set once per worker by its initializer.
_WORKER_DATA: dict[str, Any] = {}


def _one_blas_thread():
    """A context (and a handle) that limits BLAS to one thread.

    Every closed-form job runs so, in a worker or in this process: the fits are many
    small problems, where a multi-threaded BLAS only adds synchronisation (on a loaded
    two-core machine a 2 x 2 triangular solve took 330 us with two OpenBLAS threads and
    35 us with one), and the results then cannot depend on ``n_jobs``.  Parallelism
    comes from the processes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn's dependency, normally there
        return nullcontext()
    return threadpool_limits(limits=1)


def _init_worker(X: np.ndarray, folds: list[np.ndarray]) -> None:
    _WORKER_DATA.update(X=X, folds=folds, limits=_one_blas_thread())


def _run_in_worker(job: _Job) -> _Outcome:
    return _run(job, _WORKER_DATA["X"], _WORKER_DATA["folds"])


def _cost(job: _Job) -> float:
    """A rough relative cost, to start the long jobs first (better load balance)."""
    return job.candidate.n_components * (1.0 if job.fold is None else 0.8)


def _execute(jobs: list[_Job], X: np.ndarray, folds: list[np.ndarray], n_workers: int,
             in_process: list[bool], bar: progress_bar) -> list[_Outcome]:
    """Every job's outcome, in the order of ``jobs`` whatever order they finish in."""
    outcomes: list[_Outcome | None] = [None] * len(jobs)
    pooled = [i for i, local in enumerate(in_process) if not local]
    if n_workers > 1 and len(pooled) > 1:
        pooled.sort(key=lambda i: -_cost(jobs[i]))
        # The platform's default start method (fork on Linux): workers start in
        # milliseconds and a user's script needs no ``if __name__ == "__main__"`` guard
        # there (spawn/forkserver, macOS and Windows, need it, as any multiprocessing).
        with ProcessPoolExecutor(min(n_workers, len(pooled)), initializer=_init_worker,
                                 initargs=(X, folds)) as pool:
            futures = {pool.submit(_run_in_worker, jobs[i]): i for i in pooled}
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                bar.update(1)
    # What is left (everything when serial): closed-form jobs with one BLAS thread, then
    # the PyMC ones as they are.
    left = [i for i, outcome in enumerate(outcomes) if outcome is None]
    for limit, indices in ((True, [i for i in left if not in_process[i]]),
                           (False, [i for i in left if in_process[i]])):
        with _one_blas_thread() if limit and indices else nullcontext():
            for i in indices:
                outcomes[i] = _run(jobs[i], X, folds)
                bar.update(1)
    return outcomes  # type: ignore[return-value]


# ----------------------------------------------------------------------------- select
def select(
    X: Any,
    n_components: Any = range(1, 10),
    *,
    models: Any = SELECTION_MODELS,
    covariance: Any = None,
    weight_prior: Any = None,
    criteria: Any = DEFAULT_CRITERIA,
    n_init: int = 3,
    seed: int | np.random.Generator | None = 0,
    alpha0: float | None = None,
    n_folds: int = 5,
    cv_n_init: int = 1,
    methods: Mapping[str, str] | None = None,
    fit_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
    n_jobs: int | None = None,
    progress: bool = False,
) -> Selection:
    """Fit every candidate (model kind x covariance x weight prior x K) and score it.

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_components : int or sequence of int
        The K to try (default 1..9).
    models : str or sequence of {"bayesian", "gmm"}
        Model kinds: Bishop's Bayesian GMM and the maximum-likelihood mixture.
    covariance : str or sequence of {"full", "diag", "spherical", "tied"}, optional
        Covariance families (default: all four).  A family one model kind refuses is
        skipped for it with a note; one that no requested model implements is refused
        when asked for by name.
    weight_prior : str or sequence of str, optional
        Weight priors of the Bayesian families: "dirichlet_distribution",
        "dirichlet_process" (default: every one the model implements).
        Maximum-likelihood families always have "none".
    criteria : str or sequence of str
        From :data:`CRITERIA`: "bound", "exact", "bic", "aic", "icl", "cv", "loo",
        "evidence" (module docstring: assumptions and sign conventions).
    n_init : int
        Restarts of each full-data fit (the best objective is kept).
    seed : int, Generator or None
        Fixes the fits and the cross-validation folds.
    alpha0 : float, optional
        Concentration of the Bayesian weight prior (default: the model's, 1 / K).
    n_folds : int
        Folds of the "cv" criterion, >= 2.
    cv_n_init : int
        Restarts of each cross-validation fold fit (default 1; module docstring: why
        fewer restarts do not bias the held-out density upwards).
    methods : mapping, optional
        Model kind -> method name (default: the first the method table lists, the
        closed-form one).  "loo" needs a sampler here, e.g. ``{"bayesian": NUTS.name}``.
    fit_options : mapping, optional
        Further keywords of :func:`gmmkit.fit` for every fit (``tol``, ``max_iter``...).
    model_options : mapping, optional
        Model kind -> keywords of its model, e.g. ``{"bayesian": {"beta0": 0.1, "W0":
        ...}, "gmm": {"reg_covar": 0.0}}`` (``alpha0`` has its own argument).
    n_jobs : int, optional
        Worker processes for the closed-form fits and folds (default: the CPUs this
        process may use; 1 runs everything here).  The result does not depend on it.
    progress : bool
        Show a progress bar (one step per fit, folds included).

    Returns
    -------
    Selection
    """
    X = check_multivariate_data(X, name="X", min_points=1)
    ks = _check_components(n_components, X.shape[0])
    models = _check_sequence("models", models, SELECTION_MODELS)
    covariances = None
    if covariance is not None:
        covariances = _check_sequence("covariance", covariance, COVARIANCE_TYPES)
    priors = None
    if weight_prior is not None:
        priors = _check_sequence(
            "weight_prior", weight_prior,
            dict.fromkeys(p for m in SELECTION_MODELS for p in WEIGHT_PRIORS[m]))
    chosen = _check_sequence("criteria", criteria, CRITERIA)
    n_init = check_int("n_init", n_init, 1)
    cv_n_init = check_int("cv_n_init", cv_n_init, 1)
    n_folds = check_int("n_folds", n_folds, 2)
    if n_folds > X.shape[0]:
        raise ValueError(f"n_folds must be at most N = {X.shape[0]}, got {n_folds}")
    if alpha0 is not None:
        alpha0 = check_positive("alpha0", alpha0)
    n_workers = _resolve_jobs(n_jobs)
    seed = resolve_seed(seed)
    by_kind = _resolve_methods(models, methods)
    fit_kwargs = dict(fit_options or {})
    reserved = sorted({"seed", "n_init", "progress"} & set(fit_kwargs))
    if reserved:
        raise ValueError(f"fit_options must not set {', '.join(reserved)} (select sets it)")

    per_kind = _check_model_options(models, model_options)
    notes: list[str] = []
    families = _families(models, covariances, priors, per_kind, notes)

    # Which criteria can be computed for whom: refuse "loo" without posterior draws.
    kinds = {family: by_kind[family[0]].kind for family in families}
    for name in chosen:
        crit = CRITERIA[name]
        if not any(crit.applies(kind) for kind in kinds.values()):
            used = ", ".join(sorted({by_kind[m].name for m, _, _ in families}))
            if name == "loo":
                raise ValueError(
                    "criteria: 'loo' needs genuine posterior draws (a sampler method), but "
                    f"the candidates are fitted by {used}: draws from a variational q or a "
                    "point estimate have no leave-one-out posterior; use 'cv', or pass "
                    "methods= with a sampler")
            notes.append(f"criterion {name!r} applies to none of the candidates "
                         f"(fitted by {used})")

    folds = _folds(X.shape[0], n_folds, seed) if "cv" in chosen else []
    jobs: list[_Job] = []
    for model, cov, prior in families:
        method = by_kind[model]
        full_kw, fold_kw = dict(fit_kwargs), dict(fit_kwargs)
        if "n_init" in method.common:
            full_kw["n_init"], fold_kw["n_init"] = n_init, cv_n_init
        for k in ks:
            cand = Candidate(model, k, cov, prior)
            common = dict(candidate=cand, method=method.name, alpha0=alpha0,
                          model_options=per_kind[model], criteria=chosen)
            jobs.append(_Job(**common, fit_kwargs=full_kw, seed=seed, fold=None))
            jobs.extend(_Job(**common, fit_kwargs=fold_kw, seed=seed + 1 + i, fold=i)
                        for i in range(len(folds)))
    # PyMC fits run their chains in parallel themselves: keep them in this process.
    in_process = [get_method(job.method).kind.stores_draws for job in jobs]
    with progress_bar(progress, "model selection", len(jobs)) as bar:
        outcomes = _execute(jobs, X, folds, n_workers, in_process, bar)

    rows: dict[Candidate, dict[str, Any]] = {}
    values: dict[Candidate, np.ndarray] = {}
    fits: dict[Candidate, Fit] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        for category, message in outcome.warnings:
            warn(message, category)
        notes.extend(outcome.notes)
        cand = job.candidate
        if job.fold is None:
            row: dict[str, Any] = {"model": cand.model, "n_components": cand.n_components,
                                   "covariance": cand.covariance,
                                   "weight_prior": cand.weight_prior, "method": job.method}
            row.update({name: np.nan for name in chosen})
            row.update({f"{name}_se": np.nan for name in chosen if CRITERIA[name].has_se})
            row.update(outcome.row)
            rows[cand] = row
            if outcome.fit is not None:
                fits[cand] = outcome.fit
            values[cand] = np.full(X.shape[0], np.nan)
        elif outcome.values is not None:
            values[cand][folds[job.fold]] = outcome.values
    if "cv" in chosen:
        for cand, row in rows.items():
            if np.all(np.isfinite(values[cand])):
                row["cv"] = float(values[cand].sum())
                row["cv_se"] = float(np.std(values[cand], ddof=1) * np.sqrt(X.shape[0]))

    table = pd.DataFrame(list(rows.values()))
    best: dict[str, Candidate | None] = {}
    for name in chosen:
        column = pd.to_numeric(table[name], errors="coerce")
        finite = column[np.isfinite(column)]
        if finite.empty:
            best[name] = None
            continue
        # Ties go to the first row: the smallest K of the first family.
        index = finite.idxmax() if CRITERIA[name].higher_is_better else finite.idxmin()
        r = table.loc[index]
        best[name] = Candidate(r["model"], int(r["n_components"]), r["covariance"],
                               r["weight_prior"])
    return Selection(
        table=table, best=MappingProxyType(best),
        higher_is_better=MappingProxyType(
            {name: CRITERIA[name].higher_is_better for name in chosen}),
        fits=MappingProxyType(fits), criteria=tuple(chosen), seed=seed, n_folds=n_folds,
        notes=tuple(notes),
    )
