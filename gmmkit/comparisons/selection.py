"""Choosing the number of components K (and the family): ``gmmkit.select``.

A **candidate** is (model kind, K, covariance, weight prior): the model factory that
builds it, the number of components, the covariance family and the prior on the mixing
weights ("dirichlet" for :class:`~gmmkit.models.BayesianGMM`, "none" for the
maximum-likelihood :class:`~gmmkit.models.GaussianMixture`).  Every candidate is fitted
once by its family's closed-form method (Bishop's VB for the Bayesian model, EM for the
mixture; both from the method table), and scored by each requested criterion that
applies to it; a criterion that does not apply is NaN in the table.

Criteria, their assumptions and sign conventions
------------------------------------------------

``"bound"`` (higher is better; Bayesian families).  The VB lower bound (ELBO) of the fit
plus a label-symmetry correction.  The posterior of a K-component mixture has one copy
of every mode per relabelling, but q sits on one copy, so the ELBO bounds p(X) / (number
of distinct copies) rather than p(X) (Bishop PRML §10.2.4 and Fig. 10.7, which adds
ln K!).  When the fit switches components off (small ``alpha0``), the dead components'
factors are all equal (they are the prior), so relabelling dead components among
themselves gives back the same q: the distinct copies are the K! / (K - K_live)! ways to
place the K_live live components on K labels, and the correction is

    ln K! - ln (K - K_live)!

K_live counts the components whose expected share of the data, E_q[N_k] / N =
sum_n r_nk / N, exceeds :data:`LIVE_THRESHOLD` (1e-3).  With every component live this
is Bishop's ln K!.  (Counting only ln K_live!, i.e. ignoring which labels are live, is
too small by ln C(K, K_live): on data small enough to enumerate, ELBO + ln K!/(K-K_live)!
matches ``exact_log_evidence`` to ~0.01 nats and ELBO + ln K_live! does not; see
``tests/comparisons/test_selection.py``.)  The correction assumes the live modes are well
separated; where they overlap it overcorrects (the bound may then exceed the evidence).
Note that with a fixed symmetric Dir(alpha0) the evidence itself rises slowly with K for
alpha0 -> 0 (about ln(K - 1) for two live components): the prior, not the bound, does
that.  The table also carries ``elbo`` and ``k_live`` so the correction can be redone.

``"exact"`` (higher is better; Bayesian families).  ``model.exact_log_evidence(X)`` by
enumerating all K**N assignments where that is possible (tiny data), NaN otherwise.

``"bic"``, ``"aic"``, ``"icl"`` (lower is better; maximum-likelihood families).
scikit-learn's convention (``sklearn.mixture.GaussianMixture.bic``/``aic``):

    bic = -2 ln L + p ln N,    aic = -2 ln L + 2 p,
    icl = bic + 2 sum_n H(r_n),   H(r_n) = -sum_k r_nk ln r_nk

with ln L = sum_n ln p(x_n | theta_hat) the maximised log-likelihood, p =
``GaussianMixture.n_parameters(D)`` and r the responsibilities at theta_hat (Biernacki,
Celeux & Govaert 2000; McLachlan & Peel 2000 §6.10).  mclust plots -bic (higher better);
gmmkit does not flip the sign.

``"cv"`` (higher is better; every family).  Held-out log predictive density by
``n_folds``-fold cross-validation (Blei, Kucukelbir & McAuliffe 2017 recommend held-out
likelihood): each fold is scored by the posterior predictive (``Fit.score_samples``) of
the same candidate fitted to the other folds, and the per-point values are summed over
all N points.  ``cv_se`` = sd(per-point values) x sqrt(N).  The folds are a permutation
drawn from ``seed``: the same seed gives the same folds and values.

``"loo"`` (higher is better).  PSIS-LOO elpd (``gmmkit.comparisons.loo``) with its
standard error, only for fits with genuine posterior draws (``PosteriorKind.SAMPLER_DRAWS``,
e.g. ``methods={"bayesian": NUTS.name}``).  Draws from a variational q or a point
estimate have no leave-one-out posterior: asking for ``"loo"`` on such candidates raises.
It is off by default (sampling is slow).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from math import lgamma
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from gmmkit._validation import check_int, check_multivariate_data, check_positive
from gmmkit.api import fit as fit_model
from gmmkit.api import resolve_seed
from gmmkit.inference.methods import Method, get_method, methods_for
from gmmkit.models.base import check_enumerable
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.factory import MODEL_KINDS
from gmmkit.models.mixture import COVARIANCE_TYPES, GaussianMixture
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
    "live_components",
    "select",
    "symmetry_correction",
]

#: A component is live when its expected share of the data E_q[N_k] / N exceeds this.
LIVE_THRESHOLD = 1e-3
#: Model kinds (``models/factory.py`` names) that selection can build.
SELECTION_MODELS = ("bayesian", "gmm")
#: Weight priors by model kind: what exists today.  ("dirichlet_process" is planned for
#: the Bayesian families.)
WEIGHT_PRIORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"bayesian": ("dirichlet",), "gmm": ("none",)})
_PLANNED_WEIGHT_PRIORS = ("dirichlet_process",)


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
    Criterion("bound", True, "VB ELBO + ln K!/(K - K_live)! (label symmetry)",
              (PosteriorKind.CLOSED_FORM_Q,)),
    Criterion("exact", True, "exact log evidence by enumeration (tiny data)", _BAYES),
    Criterion("bic", False, "-2 ln L + p ln N", _POINT),
    Criterion("aic", False, "-2 ln L + 2 p", _POINT),
    Criterion("icl", False, "BIC + 2 x entropy of the responsibilities", _POINT),
    Criterion("cv", True, "held-out log predictive density, K-fold", None, has_se=True),
    Criterion("loo", True, "PSIS-LOO elpd (posterior draws only)",
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
        ``log_likelihood`` and ``n_parameters`` where defined.
    best : mapping
        Criterion -> the chosen :class:`Candidate` (None when no candidate has a value).
    higher_is_better : mapping
        Criterion -> True when larger values are better.
    fits : mapping
        Candidate -> the :class:`~gmmkit.result.Fit` on all the data.
    criteria : tuple of str
    seed, n_folds : int
    notes : tuple of str
        Fits that failed, candidates skipped, and similar.
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


# ----------------------------------------------------------------------------- helpers
def live_components(fit: Fit, threshold: float = LIVE_THRESHOLD) -> int:
    """K_live: components whose expected share of the data, sum_n r_nk / N, exceeds
    ``threshold``."""
    share = np.asarray(fit.responsibilities, dtype=float).mean(axis=0)
    return int(np.sum(share > threshold))


def symmetry_correction(n_components: int, n_live: int) -> float:
    """ln K! - ln (K - K_live)!: the log number of distinct relabellings of q."""
    return lgamma(n_components + 1) - lgamma(n_components - n_live + 1)


def _build(model: str, n_components: int, covariance: str, weight_prior: str,
           alpha0: float | None, options: Mapping[str, Any]):
    """The model of a candidate (the factory: one line per model kind)."""
    if model == "bayesian":
        if weight_prior in _PLANNED_WEIGHT_PRIORS:
            raise ValueError(f"weight_prior {weight_prior!r} is not implemented yet")
        return BayesianGMM(n_components, alpha0=alpha0, covariance=covariance, **options)
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


def _supported(model: str, covariance: str, weight_prior: str) -> bool:
    try:
        _build(model, 1, covariance, weight_prior, None, {})
    except ValueError:
        return False
    return True


def _check_model_options(models: tuple[str, ...], options: Any) -> dict[str, dict]:
    options = dict(options or {})
    unknown = sorted(set(options).difference(models))
    if unknown:
        raise ValueError(f"model_options: model kind(s) {', '.join(map(repr, unknown))} are "
                         f"not among models {', '.join(models)}")
    out = {model: dict(options.get(model) or {}) for model in models}
    for model, given in out.items():
        if "n_components" in given or "covariance" in given or "alpha0" in given:
            raise ValueError("model_options must not set n_components, covariance or "
                             "alpha0 (select's own arguments)")
        try:
            _build(model, 1, "full", WEIGHT_PRIORS[model][0], None, given)
        except TypeError as err:
            raise ValueError(f"model_options for {model!r}: {err}") from None
        except ValueError as err:
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


def _folds(n: int, n_folds: int, seed: int) -> list[np.ndarray]:
    """Held-out index sets: a permutation of range(n) from ``seed`` cut into folds."""
    order = np.random.default_rng([seed, 0xC5]).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_folds)]


def _fit(model, X, method: Method, seed: int, fit_kwargs: Mapping[str, Any]) -> Fit:
    return fit_model(model, X, method.name, seed=seed, **fit_kwargs)


def _cross_validate(make_model: Callable[[], Any], X: np.ndarray, method: Method,
                    folds: list[np.ndarray], seed: int,
                    fit_kwargs: Mapping[str, Any]) -> np.ndarray:
    """Per-point held-out log predictive density, shape (N,)."""
    values = np.full(X.shape[0], np.nan)
    for i, test in enumerate(folds):
        train = np.setdiff1d(np.arange(X.shape[0]), test)
        fold_fit = _fit(make_model(), X[train], method, seed + 1 + i, fit_kwargs)
        values[test] = fold_fit.score_samples(X[test])
    return values


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


def _loo(fit: Fit) -> tuple[float, float]:
    from gmmkit.comparisons.diagnostics import loo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's k-hat warnings: the table keeps se
        result = loo(fit)
    return float(result["elpd_loo"]), float(result["se"])


# ----------------------------------------------------------------------------- select
def select(
    X: Any,
    n_components: Any = range(1, 10),
    *,
    models: Any = SELECTION_MODELS,
    covariance: Any = ("full",),
    weight_prior: Any = None,
    criteria: Any = DEFAULT_CRITERIA,
    n_init: int = 3,
    seed: int | np.random.Generator | None = 0,
    alpha0: float | None = None,
    n_folds: int = 5,
    methods: Mapping[str, str] | None = None,
    fit_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Selection:
    """Fit every candidate (model kind x covariance x weight prior x K) and score it.

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_components : int or sequence of int
        The K to try (default 1..9).
    models : str or sequence of {"bayesian", "gmm"}
        Model kinds: Bishop's Bayesian GMM and the maximum-likelihood mixture.
    covariance : str or sequence of {"full", "diag", "spherical", "tied"}
        Covariance families.  A family a model kind does not implement yet (Bayesian
        "diag", ...) is skipped with a note; one that no requested model implements is
        refused.
    weight_prior : str or sequence of str, optional
        Weight priors of the Bayesian families: "dirichlet" (the default; the only one
        today).  Maximum-likelihood families have "none".
    criteria : str or sequence of str
        From :data:`CRITERIA`: "bound", "exact", "bic", "aic", "icl", "cv", "loo"
        (module docstring: assumptions and sign conventions).
    n_init : int
        Restarts per fit (the best objective is kept).
    seed : int, Generator or None
        Fixes the fits and the cross-validation folds.
    alpha0 : float, optional
        Dirichlet concentration of the Bayesian families (default 1 / K).
    n_folds : int
        Folds of the "cv" criterion, >= 2.
    methods : mapping, optional
        Model kind -> method name (default: the first the method table lists, the
        closed-form one).  "loo" needs a sampler here, e.g. ``{"bayesian": NUTS.name}``.
    fit_options : mapping, optional
        Further keywords of :func:`gmmkit.fit` for every fit (``tol``, ``max_iter``...).
    model_options : mapping, optional
        Model kind -> keywords of its model, e.g. ``{"bayesian": {"beta0": 0.1, "W0":
        ...}, "gmm": {"reg_covar": 0.0}}`` (``alpha0`` has its own argument).

    Returns
    -------
    Selection
    """
    X = check_multivariate_data(X, name="X", min_points=1)
    ks = _check_components(n_components, X.shape[0])
    models = _check_sequence("models", models, SELECTION_MODELS)
    covariances = _check_sequence("covariance", covariance, COVARIANCE_TYPES)
    all_priors = tuple(p for m in models for p in WEIGHT_PRIORS[m])
    if weight_prior is None:
        priors = all_priors
    else:
        priors = _check_sequence("weight_prior", weight_prior,
                                 (*dict.fromkeys(p for v in WEIGHT_PRIORS.values()
                                                 for p in v), *_PLANNED_WEIGHT_PRIORS))
        planned = [p for p in priors if p in _PLANNED_WEIGHT_PRIORS]
        if planned:
            raise ValueError(f"weight_prior {planned[0]!r} is not implemented yet; expected "
                             f"some of {', '.join(all_priors)}")
    chosen = _check_sequence("criteria", criteria, CRITERIA)
    n_init = check_int("n_init", n_init, 1)
    n_folds = check_int("n_folds", n_folds, 2)
    if n_folds > X.shape[0]:
        raise ValueError(f"n_folds must be at most N = {X.shape[0]}, got {n_folds}")
    if alpha0 is not None:
        alpha0 = check_positive("alpha0", alpha0)
    seed = resolve_seed(seed)
    by_kind = _resolve_methods(models, methods)
    fit_kwargs = dict(fit_options or {})
    reserved = sorted({"seed", "n_init", "progress"} & set(fit_kwargs))
    if reserved:
        raise ValueError(f"fit_options must not set {', '.join(reserved)} (select sets it)")

    per_kind = _check_model_options(models, model_options)
    notes: list[str] = []
    families: list[tuple[str, str, str]] = []
    for model in models:
        for cov in covariances:
            for prior in WEIGHT_PRIORS[model]:
                if weight_prior is not None and prior not in priors and prior != "none":
                    continue
                if _supported(model, cov, prior):
                    families.append((model, cov, prior))
                else:
                    notes.append(f"{model} with covariance {cov!r} is not implemented "
                                 "yet: skipped")
    if not families:
        raise ValueError(f"covariance: no requested model implements "
                         f"{', '.join(map(repr, covariances))}")

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
    rows: list[dict[str, Any]] = []
    fits: dict[Candidate, Fit] = {}
    for model, cov, prior in families:
        method = by_kind[model]
        kw = dict(fit_kwargs)
        if "n_init" in method.common:
            kw["n_init"] = n_init
        for k in ks:
            cand = Candidate(model, k, cov, prior)
            row: dict[str, Any] = {"model": model, "n_components": k, "covariance": cov,
                                   "weight_prior": prior, "method": method.name}
            row.update({name: np.nan for name in chosen})
            row.update({f"{name}_se": np.nan for name in chosen if CRITERIA[name].has_se})

            def make(k=k, model=model, cov=cov, prior=prior):
                return _build(model, k, cov, prior, alpha0, per_kind[model])

            try:
                fitted = _fit(make(), X, method, seed, kw)
            except ValueError as err:
                notes.append(f"{cand}: fit failed ({err})")
                rows.append(row)
                continue
            fits[cand] = fitted
            kind = method.kind
            if kind == PosteriorKind.CLOSED_FORM_Q:
                live = live_components(fitted)
                row.update(elbo=float(fitted.elbo), k_live=live)
                if "bound" in chosen:
                    row["bound"] = float(fitted.elbo) + symmetry_correction(k, live)
            if "exact" in chosen and CRITERIA["exact"].applies(kind):
                row["exact"] = _exact(fitted.model, X)
            if CRITERIA["bic"].applies(kind):
                info = _information(fitted, X)
                row.update(log_likelihood=info["log_likelihood"],
                           n_parameters=info["n_parameters"])
                row.update({c: info[c] for c in ("bic", "aic", "icl") if c in chosen})
            if "loo" in chosen and CRITERIA["loo"].applies(kind):
                row["loo"], row["loo_se"] = _loo(fitted)
            if "cv" in chosen:
                try:
                    values = _cross_validate(make, X, method, folds, seed, kw)
                except ValueError as err:
                    notes.append(f"{cand}: cross-validation failed ({err})")
                else:
                    row["cv"] = float(values.sum())
                    row["cv_se"] = float(np.std(values, ddof=1) * np.sqrt(values.size))
            rows.append(row)

    table = pd.DataFrame(rows)
    best: dict[str, Candidate | None] = {}
    for name in chosen:
        values = pd.to_numeric(table[name], errors="coerce")
        finite = values[np.isfinite(values)]
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
