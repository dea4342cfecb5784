"""Maximum-likelihood Gaussian mixtures: EM and the hard-assignment ("k-means") GMM.

Both are pure ``init``/``step`` functions over :class:`EMState`, run through the shared
loop :func:`gmmkit.inference.loop.coordinate_ascent`, so restarts, the stopping rule,
timing, the progress bar and failed restarts behave as for every other method.

EM (Bishop PRML §9.2.2, and §9.4 for the bound).  For any q(z) = r,

    log p(X | theta) = ELBO(r, theta) + KL(r || p(z | X, theta)),
    ELBO(r, theta)   = sum_n sum_k r_nk [log pi_k + log N(x_n | mu_k, Sigma_k) - log r_nk].

The E-step sets r to the posterior responsibilities, which makes KL = 0 and ELBO =
log-likelihood (PRML 9.23); the M-step maximises the ELBO over theta for that r
(PRML 9.24-9.27):

    N_k = sum_n r_nk,  mu_k = sum_n r_nk x_n / N_k,  pi_k = N_k / N,
    Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar I.

**Covariance families** (``GaussianMixture(covariance=...)``, scikit-learn's
``covariance_type``): "diag" keeps the weighted variance of each feature, "spherical" their
mean over features, "tied" sum_k N_k Sigma_k / N, each plus ``reg_covar`` (see
:func:`m_step_family`).  The state holds them in their native shapes with the matching
precision factor, and the E-step uses the family's kernel in ``gmmkit.models.gaussian``
(elementwise for diag and spherical, one shared Cholesky factor for tied); only the fit's
posterior expands them to (K, D, D) matrices.  "full" runs exactly the code it always did.

As in scikit-learn, ``N_k + 10 eps`` is used so that an empty component gives no NaN, and
``reg_covar`` is added to the diagonal so a component collapsing onto a few points does
not become singular.  Per iteration t the fit records

* ``log_likelihood_trace[t]`` = log p(X | theta_t) (total, nats), the objective;
* ``elbo_trace[t]`` = ELBO(r_{t-1}, theta_t): evaluated after the M-step, with the
  responsibilities that M-step used (r_{-1} is the initial hard assignment);
* ``kl_trace[t]`` = log_likelihood_trace[t] - elbo_trace[t] = KL(r_{t-1} || p(z | X,
  theta_t)) >= 0, the gap the next E-step closes.

Hence log p(X | theta_{t-1}) = ELBO(r_{t-1}, theta_{t-1}) <= ELBO(r_{t-1}, theta_t)
<= log p(X | theta_t): the log-likelihood never decreases (with ``reg_covar = 0``; a
positive ``reg_covar`` perturbs the M-step by O(reg_covar)).

Hard-assignment GMM (classification EM, Celeux & Govaert 1992): the responsibilities are
one-hot at the highest weighted density, argmax_k [log pi_k + log N(x_n | mu_k,
Sigma_k)], followed by the same M-step.  With a one-hot q the entropy vanishes, and the
ELBO is the *classification log-likelihood* sum_n log pi_{z_n} N(x_n | theta_{z_n}), a
lower bound on the log-likelihood that each step increases: it is the objective of
``method="kmeans"`` (convergence and the choice among restarts), reported as
``elbo_trace``, while ``log_likelihood_trace`` and ``kl_trace`` are recorded alongside.

**Emptied clusters** (k-means, and the initial hard assignment of both methods): a
component that receives no point is re-seeded with the single point farthest (Euclidean)
from the mean of the cluster it is assigned to, taken only from clusters that keep at
least one point, as scikit-learn's ``KMeans`` does.  The component then restarts as that
point with covariance ``reg_covar * I``; the number of re-seeds is reported in
``Fit.diagnostics["reseeded_clusters"]``.

**Centred coordinates**: ``fit_em`` and ``fit_kmeans`` subtract the data mean once and
run the initialisation and every update on the centred data; the reported means (and the
posterior's predictions) are in the original coordinates.  The log-likelihood is
translation invariant, but its float64 evaluation is not: with data near 1e9 the squared
distances of the E-step and M-step are differences of numbers of size 1e18 and keep only
a few digits (at 1e15 none, and the log-likelihood trace decreased).  Centred, a fit of
X + c gives the log-likelihood of X up to the rounding of the data themselves.

**Feature scales**: ``reg_covar`` is absolute, in the data's units (as scikit-learn's),
which keeps parity with scikit-learn on ordinary data.  A full covariance whose features
differ in variance by more than :data:`MAX_FEATURE_VARIANCE_RATIO` (1e12) cannot be
factored reliably in float64 (its Cholesky pivots reach the rounding level of its largest
variance), so such data are refused up front with a message that tells the user to
standardise the columns, instead of failing every restart with "singular covariance".
A feature whose variance is below ``reg_covar`` is, in effect, smoothed away by it:
standardise such data too.

**Frequency weights** (``sample_weight`` w_n): every per-point term is multiplied by its
weight: the M-step uses the responsibilities w_n r_nk (so N_k = sum_n w_n r_nk and pi_k =
N_k / sum_n w_n), the log-likelihood is sum_n w_n log p(x_n | theta), the ELBO
sum_n w_n sum_k r_nk (log_prob_nk - log r_nk), the centre is the weighted mean, the
kmeans++ seeding is weighted, and a hard-assignment cluster is empty when its points
carry no weight.  Integer weights give the fit of the repeated rows (from the same initial
means) and zero weights that of the dropped rows; the M-step is invariant to a common
scale of the weights, the objective scales with it.  One difference remains: re-seeding
an emptied cluster moves a whole weighted point (a point alone in its cluster is never
moved), where repeated rows could move one copy.

**Chunked data** (Dask arrays, :mod:`gmmkit.inference.chunked`): one pass per iteration
over the chunks with :func:`chunk_statistics` (sufficient statistics shifted by the current
means), :func:`m_step_from_statistics` and :func:`elbo_from_statistics`, which give the
same estimators and bounds as the in-memory M-step and ELBO to rounding (see the comment
above :class:`ChunkStatistics`); emptied clusters are re-seeded as here, with one pass
per cluster to find the farthest point (:func:`reseed_candidate`).  The in-memory path
keeps its (N, K) arrays and two-pass M-step unchanged.

**Singular covariances**: when a covariance is not positive definite, or its Cholesky
pivots fall below the rounding level of its diagonal (a component on a line, or a single
point with ``reg_covar = 0``), the restart stops with :class:`RestartFailed` naming the
component and advising to "increase reg_covar or decrease n_components"; the loop adds the
restart index, warns, records it in ``Fit.restart_failures`` and, if every restart
fails, raises a ``RuntimeError`` listing them all.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy.special import entr, logsumexp

from gmmkit.inference._blocks import exp_floored, log_normaliser_rows
from gmmkit.inference.loop import RestartFailed, coordinate_ascent, fit_from_run, initial_means
from gmmkit.models.gaussian import (
    NotPositiveDefinite,
    covariance_matrices,
    family_precision_factor,
    precision_cholesky,
    weighted_log_prob,
)
from gmmkit.models.mixture import NATIVE_COVARIANCE_NAMES, GaussianMixture
from gmmkit.posterior import PosteriorKind
from gmmkit.result import Fit

__all__ = [
    "MAX_FEATURE_VARIANCE_RATIO",
    "ChunkStatistics",
    "EMState",
    "PointEstimatePosterior",
    "check_feature_scales",
    "check_feature_variances",
    "chunk_labels",
    "chunk_statistics",
    "elbo",
    "elbo_from_statistics",
    "factor_family",
    "fit_em",
    "fit_kmeans",
    "hard_assignment",
    "init_state",
    "m_step",
    "m_step_family",
    "m_step_from_statistics",
    "make_fit",
    "reseed_candidate",
    "step",
    "step_kmeans",
]

#: Data whose feature variances (plus reg_covar) differ by more than this ratio are refused:
#: a covariance with that spread has condition number >= 1e12, so its Cholesky factor
#: keeps only ~4 digits (1e12 * eps ~ 2e-4) and is 1e2-1e3 times from being flagged
#: singular by the pivot test below (10 * D * eps ~ 4e-15 relative).
MAX_FEATURE_VARIANCE_RATIO = 1e12

#: Cholesky pivots (conditional variances) at most this multiple of D * eps times the
#: largest variance of the component are indistinguishable from zero: singular.
_SINGULAR_PIVOT_ULPS = 10.0


class EMState(NamedTuple):
    """Parameters theta_t, the E-step at theta_t, and the bound of the step that made them.

    ``log_prob`` and ``log_resp`` are evaluated at these very parameters, so the
    log-likelihood of a state is exact and the next M-step needs no extra pass.
    """

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    # Native shapes of the model's family: full (K, D, D), diag (K, D), spherical (K,),
    # tied (D, D); ``prec_chol`` is the matching precision factor (upper-triangular
    # Cholesky factors of the precisions for full and tied, 1 / sd for diag, spherical).
    covariances: np.ndarray
    prec_chol: np.ndarray
    log_prob: np.ndarray  # (N, K) log pi_k + log N(x_n | mu_k, Sigma_k)
    log_resp: np.ndarray  # (N, K) log p(z_n = k | x_n, theta), normalised
    log_likelihood: float  # sum_n logsumexp_k log_prob  (PRML 9.14)
    elbo: float  # ELBO(q, theta) for the q the M-step used (one-hot q for k-means)
    labels: np.ndarray | None  # (N,) hard assignment the M-step used (k-means/init)
    n_reseeded: int  # emptied clusters re-seeded so far in this restart


# ----------------------------------------------------------------------------- pieces
def _singular(component: int, reg_covar: float, why: str) -> RestartFailed:
    return RestartFailed(
        f"the covariance of component {component} is singular ({why}) with "
        f"reg_covar={reg_covar:g}; increase reg_covar or decrease n_components"
    )


def factor_covariances(covariances: np.ndarray, reg_covar: float) -> np.ndarray:
    """Precision Cholesky factors (K, D, D); :class:`RestartFailed` on a singular one."""
    try:
        prec_chol = precision_cholesky(covariances)
    except NotPositiveDefinite as err:
        raise _singular(err.component, reg_covar, "not positive definite") from None
    # P = inv(L)^T, so 1 / P_dd^2 = L_dd^2, the variance of feature d given the previous
    # ones.  A pivot at the rounding level of the diagonal means the factorisation
    # "succeeded" on a matrix that is singular up to rounding (a 1e-30 variance left by
    # two identical coordinates), and the log-likelihood would run off to +inf.
    d = covariances.shape[1]
    pivots = 1.0 / np.diagonal(prec_chol, axis1=1, axis2=2) ** 2
    scale = np.max(np.diagonal(covariances, axis1=1, axis2=2), axis=1)
    bad = np.flatnonzero(
        np.any(pivots <= _SINGULAR_PIVOT_ULPS * d * np.finfo(float).eps * scale[:, None],
               axis=1)
    )
    if bad.size:
        raise _singular(int(bad[0]), reg_covar, "its Cholesky pivots vanish to rounding")
    return prec_chol


#: A diag/spherical variance at most this many ulps (squared) of the largest squared
#: coordinate is rounding noise: a component collapsed onto one point, or onto points
#: equal in a feature, with ``reg_covar = 0``.  The mean of a collapsed component is off
#: by ~10 eps |x| (the N_k + 10 eps of the M-step), so its "variance" is ~(10 eps x)^2.
_SINGULAR_VARIANCE_ULPS = 1e3


def factor_family(
    covariances: np.ndarray, covariance: str, reg_covar: float, data_scale: float
) -> np.ndarray:
    """The native precision factor of a family's native covariances (see
    :func:`gmmkit.models.gaussian.family_precision_factor`); :class:`RestartFailed` on a
    singular one.  ``data_scale`` is the largest squared coordinate of the (centred) data.
    """
    if covariance == "full":
        return factor_covariances(covariances, reg_covar)
    if covariance == "tied":
        try:
            return factor_covariances(covariances[None], reg_covar)[0]
        except RestartFailed as err:
            raise RestartFailed(str(err).replace(
                "the covariance of component 0", "the tied covariance (shared by every "
                "component)")) from None
    floor = (_SINGULAR_VARIANCE_ULPS * np.finfo(float).eps) ** 2 * data_scale
    low = np.flatnonzero(np.any(
        (covariances <= floor).reshape(covariances.shape[0], -1), axis=1))
    if low.size:
        raise _singular(int(low[0]), reg_covar, "a variance vanishes to rounding")
    return family_precision_factor(covariances, covariance)


def m_step_family(
    X: np.ndarray, resp: np.ndarray, reg_covar: float, covariance: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`m_step` for every family; the covariances are returned in native shape.

    The same estimators as scikit-learn's ``_estimate_gaussian_covariances_<family>``
    (diag: the weighted variance of each feature plus ``reg_covar``; spherical: the mean
    of the diag variances; tied: sum_k N_k Sigma_k / N plus ``reg_covar`` I), written in
    the two-pass form (deviations from each component mean, not E[x^2] - mu^2) so they
    do not cancel when a component sits far from the origin.
    """
    if covariance == "full":
        return m_step(X, resp, reg_covar)
    n_k = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
    means = (resp.T @ X) / n_k[:, None]
    if covariance == "tied":
        d = X.shape[1]
        scatter = np.zeros((d, d))
        for comp in range(means.shape[0]):  # K (D, D) products over all points at once
            diff = X - means[comp]
            scatter += (resp[:, comp] * diff.T) @ diff
        covariances = scatter / n_k.sum()
        covariances.flat[:: d + 1] += reg_covar
    else:
        variances = np.empty_like(means)
        for comp in range(means.shape[0]):  # K (N, D) passes, never an (N, K, D) array
            diff = X - means[comp]
            variances[comp] = resp[:, comp] @ (diff * diff)
        variances = variances / n_k[:, None] + reg_covar
        covariances = variances if covariance == "diag" else variances.mean(axis=1)
    return n_k / n_k.sum(), means, covariances


def m_step(
    X: np.ndarray, resp: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood weights, means and covariances for responsibilities ``resp``.

    PRML 9.24-9.27 with N_k + 10 eps (no NaN for an empty component) and ``reg_covar``
    on the diagonal, exactly as scikit-learn's ``_estimate_gaussian_parameters``.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    resp : ndarray, shape (N, K)
        Rows sum to 1 (soft or one-hot).
    reg_covar : float

    Returns
    -------
    weights (K,), means (K, D), covariances (K, D, D)
    """
    n_k = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
    means = (resp.T @ X) / n_k[:, None]
    k, d = means.shape
    covariances = np.empty((k, d, d))
    for comp in range(k):  # K small (D, D) products; every point is handled at once
        # Centre on the component mean before the outer products: the two-pass formula
        # does not cancel catastrophically when |mu| >> sd.
        diff = X - means[comp]
        covariances[comp] = (resp[:, comp] * diff.T) @ diff / n_k[comp]
        covariances[comp].flat[:: d + 1] += reg_covar
    return n_k / n_k.sum(), means, covariances


def elbo(log_prob: np.ndarray, resp: np.ndarray,
         sample_weight: np.ndarray | None = None) -> float:
    """ELBO(r, theta) = sum_nk r_nk (log_prob_nk - log r_nk), with 0 log 0 = 0.

    ``log_prob`` (N, K) is log pi_k + log N(x_n | theta_k); ``resp`` (N, K) is q(z);
    with ``sample_weight`` (N,) each point's term is multiplied by its weight.
    """
    # r * log_prob is 0 where r = 0 because log_prob is finite (pi_k >= 10 eps / N).
    if sample_weight is None:
        return float(np.sum(resp * log_prob) + np.sum(entr(resp)))
    per_point = np.sum(resp * log_prob, axis=1) + np.sum(entr(resp), axis=1)
    return float(sample_weight @ per_point)


def _state(
    model: GaussianMixture, X: np.ndarray, resp: np.ndarray, labels: np.ndarray | None,
    n_reseeded: int, hard: bool, sample_weight: np.ndarray | None = None,
) -> EMState:
    """M-step from ``resp`` (times the weights), then the E-step at the new parameters."""
    family = model.covariance
    w = sample_weight
    resp_w = resp if w is None else resp * w[:, None]
    if family == "full":
        weights, means, covariances = m_step(X, resp_w, model.reg_covar)
        prec_chol = factor_covariances(covariances, model.reg_covar)
    else:
        weights, means, covariances = m_step_family(X, resp_w, model.reg_covar, family)
        # Rows without weight are not part of the data: they set no scale.
        counted = X if w is None else X[w > 0]
        prec_chol = factor_family(covariances, family, model.reg_covar,
                                  float(np.max(counted * counted, initial=0.0)))
    log_prob = weighted_log_prob(X, weights, means, prec_chol, family)
    log_norm = log_normaliser_rows(log_prob)
    log_resp = log_prob - log_norm[:, None]
    if hard:
        # One-hot q: no entropy, ELBO = classification log-likelihood.
        assigned = log_prob[np.arange(X.shape[0]), labels]
        bound = float(np.sum(assigned) if w is None else w @ assigned)
    else:
        bound = elbo(log_prob, resp, w)
    log_likelihood = float(log_norm.sum() if w is None else w @ log_norm)
    return EMState(
        weights=weights, means=means, covariances=covariances, prec_chol=prec_chol,
        log_prob=log_prob, log_resp=log_resp, log_likelihood=log_likelihood,
        elbo=bound, labels=labels, n_reseeded=n_reseeded,
    )


def hard_assignment(
    X: np.ndarray, labels: np.ndarray, means: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Re-seed every empty cluster with the point farthest from its assigned mean.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    labels : ndarray of int, shape (N,)
        Current hard assignment, values in 0..K-1 (not modified).
    means : ndarray, shape (K, D)
        The means the points are measured against (those of the assigning parameters).
    sample_weight : ndarray, shape (N,), optional
        Frequency weights: a cluster is empty when its points weigh nothing in total, and
        only a positive-weight point whose cluster keeps some weight may move.

    Returns
    -------
    labels : ndarray of int, shape (N,)
        Every component holds at least one point (N >= K is required).
    n_reseeded : int
        How many components were empty.
    """
    n_components = means.shape[0]
    labels = labels.copy()
    if sample_weight is not None:
        return _hard_assignment_weighted(X, labels, means, sample_weight)
    counts = np.bincount(labels, minlength=n_components)
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return labels, 0
    distance = np.sum((X - means[labels]) ** 2, axis=1)
    for comp in empty:  # loop over the (few) empty components, not the data
        # Only points of clusters that keep a point are candidates, so a re-seed never
        # empties another cluster; N >= K guarantees one exists.
        candidates = np.where(counts[labels] >= 2, distance, -np.inf)
        point = int(np.argmax(candidates))
        counts[labels[point]] -= 1
        labels[point] = comp
        counts[comp] = 1
    return labels, int(empty.size)


def _hard_assignment_weighted(X, labels, means, w):
    n_components = means.shape[0]
    counts = np.bincount(labels, weights=w, minlength=n_components)
    empty = np.flatnonzero(counts <= 0)
    if empty.size == 0:
        return labels, 0
    distance = np.sum((X - means[labels]) ** 2, axis=1)
    positive = w > 0
    for comp in empty:  # loop over the (few) empty components, not the data
        candidates = np.where(positive & (counts[labels] - w > 0), distance, -np.inf)
        point = int(np.argmax(candidates))
        counts[labels[point]] -= w[point]
        labels[point] = comp
        counts[comp] = w[point]
    return labels, int(empty.size)


def _one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def init_state(
    model: GaussianMixture, X: np.ndarray, init: Any, rng: np.random.Generator, *,
    hard: bool = False, sample_weight: np.ndarray | None = None,
) -> EMState:
    """Initial state: means from kmeans++ (or random points, or an array of shape (K, D)),
    every point assigned to its nearest mean (empty clusters re-seeded), then one M-step.

    The initial ELBO is that of the hard assignment, a true lower bound.
    """
    k = model.n_components
    if isinstance(init, str):
        means0 = initial_means(X, k, init, rng, sample_weight)
    else:
        means0 = np.asarray(init, dtype=float)
        if means0.shape != (k, X.shape[1]):
            raise ValueError(
                f"init means must have shape ({k}, {X.shape[1]}), got shape {means0.shape}"
            )
    # Nearest mean in Euclidean distance, via ||x||^2 - 2 x.mu + ||mu||^2 without ||x||^2.
    nearest = np.argmin(-2.0 * X @ means0.T + np.sum(means0**2, axis=1), axis=1)
    labels, n_reseeded = hard_assignment(X, nearest, means0, sample_weight)
    return _state(model, X, _one_hot(labels, k), labels, n_reseeded, hard=True,
                  sample_weight=sample_weight)


def step(model: GaussianMixture, X: np.ndarray, state: EMState,
         sample_weight: np.ndarray | None = None) -> EMState:
    """One EM iteration: M-step from the state's responsibilities, E-step at the result."""
    return _state(model, X, exp_floored(state.log_resp), None, state.n_reseeded, hard=False,
                  sample_weight=sample_weight)


def step_kmeans(model: GaussianMixture, X: np.ndarray, state: EMState,
                sample_weight: np.ndarray | None = None) -> EMState:
    """One hard-assignment iteration: argmax of the weighted densities, re-seed empty
    clusters, then the maximum-likelihood M-step."""
    labels, n_new = hard_assignment(X, np.argmax(state.log_prob, axis=1), state.means,
                                    sample_weight)
    return _state(model, X, _one_hot(labels, model.n_components), labels,
                  state.n_reseeded + n_new, hard=True, sample_weight=sample_weight)


# ----------------------------------------------------------------------------- posterior
class PointEstimatePosterior:
    """A maximum-likelihood fit seen as a posterior: one point (implements ``Posterior``).

    Parameters
    ----------
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, D)
        In the original coordinates of the data.
    covariances : ndarray, shape (K, D, D)
    hard : bool
        True for the hard-assignment fit: responsibilities are one-hot at the highest
        weighted density (log responsibilities 0 and -inf).
    centre : ndarray, shape (D,), optional
        The point the fit was computed around (the data mean).  Densities are evaluated
        on ``x - centre`` against the centred means, so predictions at data far from the
        origin keep the digits the fit had.  Default: the origin.
    centred_means : ndarray, shape (K, D), optional
        ``means - centre`` as the fit computed them (avoids re-rounding); derived from
        ``means`` when omitted.
    covariance : {"full", "diag", "spherical", "tied"}
        The covariance family.  For the restricted ones ``native`` holds the family's own
        parameter (diag (K, D) variances, spherical (K,) variances, tied (D, D)), which
        the densities use (no (D, D) factor per component) and ``native_params`` reports
        under its name (``variances``, ``variance``, ``covariance``).  ``params`` adds it
        next to the (K, D, D) ``covariances`` for diag and spherical; not for tied, whose
        (D, D) array has no component axis and ``Fit.fit_variables`` names array axes by
        position (component, feature, feature_bis).
    native : ndarray, optional
        Required when ``covariance`` is not "full".
    """

    kind = PosteriorKind.POINT_ESTIMATE

    def __init__(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                 *, hard: bool = False, centre: np.ndarray | None = None,
                 centred_means: np.ndarray | None = None, covariance: str = "full",
                 native: np.ndarray | None = None) -> None:
        self.weights = np.array(weights, dtype=float)
        self.means = np.array(means, dtype=float)
        self.covariances = np.array(covariances, dtype=float)
        self.hard = bool(hard)
        self.n_components = self.weights.shape[0]
        d = self.means.shape[-1]
        self._centre = np.zeros(d) if centre is None else np.array(centre, dtype=float)
        self._centred_means = (self.means - self._centre if centred_means is None
                               else np.array(centred_means, dtype=float))
        self.covariance = covariance
        if covariance == "full":
            self._native = None
            self._prec_chol = precision_cholesky(self.covariances)
        else:
            if native is None:
                raise ValueError(f"covariance {covariance!r} needs its native parameter")
            self._native = np.array(native, dtype=float)
            self._prec_chol = family_precision_factor(self._native, covariance)

    def _log_prob(self, x: np.ndarray) -> np.ndarray:
        x = x[:, None] if x.ndim == 1 else x
        return weighted_log_prob(x - self._centre, self.weights, self._centred_means,
                                 self._prec_chol, self.covariance)

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        log_prob = self._log_prob(x)
        if self.hard:
            out = np.full(log_prob.shape, -np.inf)
            out[np.arange(log_prob.shape[0]), np.argmax(log_prob, axis=1)] = 0.0
            return out
        return log_prob - logsumexp(log_prob, axis=1, keepdims=True)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        # A point estimate's predictive is the fitted mixture density itself.
        return logsumexp(self._log_prob(x), axis=1)

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The single point as one chain of one draw, whatever ``n_draws`` asks."""
        return {name: value[None, None].copy()
                for name, value in self.point_estimates().items()}

    def native_params(self) -> dict[str, np.ndarray]:
        """The family's native covariance parameter by its name (empty for full)."""
        if self._native is None:
            return {}
        return {NATIVE_COVARIANCE_NAMES[self.covariance]: self._native.copy()}

    @property
    def shared_params(self) -> tuple[str, ...]:
        """Parameters without a component axis: the tied family's one covariance."""
        return tuple(self.native_params()) if self.covariance == "tied" else ()

    def params(self) -> dict[str, np.ndarray]:
        """The canonical parameters, plus the family's native covariance parameter
        (``variances`` (K, D), ``variance`` (K,) or the tied ``covariance`` (D, D))."""
        return {**self.point_estimates(), **self.native_params()}

    def point_estimates(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights.copy(),
            "means": self.means.copy(),
            "covariances": self.covariances.copy(),
        }


# ----------------------------------------------------------------------------- fitting
def _check_model(model: Any, method: str) -> None:
    if not isinstance(model, GaussianMixture):
        raise ValueError(
            f"method {method!r} fits a gmmkit.models.GaussianMixture, got "
            f"{type(model).__name__}"
        )


def check_feature_scales(X: np.ndarray, reg_covar: float,
                         sample_weight: np.ndarray | None = None) -> None:
    """Refuse data whose feature variances (plus ``reg_covar``) span more than
    :data:`MAX_FEATURE_VARIANCE_RATIO`; see the module docstring ("Feature scales").

    Features with zero variance and ``reg_covar = 0`` are left to the singular-covariance
    handling, which names the component.
    """
    if sample_weight is None:
        var = X.var(axis=0)
    else:
        mean = (sample_weight @ X) / sample_weight.sum()
        var = (sample_weight @ (X - mean) ** 2) / sample_weight.sum()
    check_feature_variances(var, reg_covar)


def check_feature_variances(variances: np.ndarray, reg_covar: float) -> None:
    """:func:`check_feature_scales` from the (weighted, ddof 0) feature variances (D,)."""
    var = np.asarray(variances, dtype=float) + reg_covar
    positive = np.flatnonzero(var > 0)
    if positive.size < 2:
        return
    lo = positive[np.argmin(var[positive])]
    hi = positive[np.argmax(var[positive])]
    ratio = var[hi] / var[lo]
    if ratio > MAX_FEATURE_VARIANCE_RATIO:
        raise ValueError(
            f"X has features on incompatible scales: variances (plus reg_covar="
            f"{reg_covar:g}) range from {var[lo]:.3g} (column {lo}) to {var[hi]:.3g} "
            f"(column {hi}), a ratio of {ratio:.2g} > {MAX_FEATURE_VARIANCE_RATIO:.0e}, "
            "which a full covariance cannot hold in float64; standardise the columns "
            "(divide each by its standard deviation) before fitting"
        )


def _run(model, X, *, hard, seed, n_init, init, tol, max_iter, progress, label,
         sample_weight=None):
    """The restarts on centred data ``X`` (init means, when an array, are centred too)."""
    rng = np.random.default_rng(seed)
    step_fn = step_kmeans if hard else step
    return coordinate_ascent(
        init=lambda r: init_state(model, X, init, r, hard=hard, sample_weight=sample_weight),
        step=lambda s: step_fn(model, X, s, sample_weight),
        # EM climbs the log-likelihood; hard EM climbs the classification likelihood.
        objective=(lambda s: s.elbo) if hard else (lambda s: s.log_likelihood),
        rng=rng, n_init=n_init, tol=tol, max_iter=max_iter, progress=progress, label=label,
        monitor=lambda s: {"elbo": s.elbo, "log_likelihood": s.log_likelihood},
    )


def _centred(model: GaussianMixture, X: np.ndarray, init: Any,
             sample_weight: np.ndarray | None = None):
    """(centre (D,), centred data (N, D), init with array means centred too).

    Subtracting the (weighted) mean once makes the fit translation invariant up to the
    rounding of the data (module docstring, "Centred coordinates").
    """
    check_feature_scales(X, model.reg_covar, sample_weight)
    centre = (X.mean(axis=0) if sample_weight is None
              else (sample_weight @ X) / sample_weight.sum())
    if not isinstance(init, str):
        init = np.asarray(init, dtype=float)
        if init.shape[-1:] == centre.shape:  # a wrong shape is left for init_state to name
            init = init - centre
    return centre, X - centre, init


def fit_em(
    model: GaussianMixture,
    X: np.ndarray,
    *,
    seed: int,
    n_init: int,
    init: Any,
    tol: float,
    max_iter: int,
    progress: bool,
    method: str,
    sample_weight: np.ndarray | None = None,
) -> Fit:
    """Maximum-likelihood EM with restarts; ``X`` (N, D) is already validated, and so is
    ``sample_weight`` (N,) (None: every point counts once; module docstring).

    ``init`` is "kmeans++", "random" or (called directly) an array of initial means of
    shape (K, D).  The restart with the highest final log-likelihood is kept.

    Returns
    -------
    Fit
        ``elbo`` is the final ELBO(r_{T-1}, theta_T) (equal to the log-likelihood at
        convergence), ``elbo_trace``, ``log_likelihood_trace`` and ``kl_trace`` are
        described in the module docstring, ``restart_elbos`` holds each restart's final
        log-likelihood, and the posterior is a :class:`PointEstimatePosterior`.
    """
    _check_model(model, method)
    centre, X_centred, init = _centred(model, X, init, sample_weight)
    run = _run(model, X_centred, hard=False, seed=seed, n_init=n_init, init=init, tol=tol,
               max_iter=max_iter, progress=progress, label="EM", sample_weight=sample_weight)
    return make_fit(method, model, X, centre, run, seed, hard=False,
                     sample_weight=sample_weight)


def fit_kmeans(
    model: GaussianMixture,
    X: np.ndarray,
    *,
    seed: int,
    n_init: int,
    init: Any,
    tol: float,
    max_iter: int,
    progress: bool,
    method: str,
    sample_weight: np.ndarray | None = None,
) -> Fit:
    """Hard-assignment GMM (classification EM) with restarts; ``X`` (N, D) validated,
    and so is ``sample_weight`` (N,) (None: every point counts once).

    Returns
    -------
    Fit
        ``elbo``/``elbo_trace`` are the classification log-likelihood (the ELBO of the
        one-hot q, the objective), ``log_likelihood_trace`` the mixture log-likelihood,
        ``kl_trace`` their difference, ``responsibilities`` one-hot, and
        ``diagnostics["reseeded_clusters"]`` counts re-seeded empty clusters.
    """
    _check_model(model, method)
    centre, X_centred, init = _centred(model, X, init, sample_weight)
    run = _run(model, X_centred, hard=True, seed=seed, n_init=n_init, init=init, tol=tol,
               max_iter=max_iter, progress=progress, label="k-means GMM",
               sample_weight=sample_weight)
    return make_fit(method, model, X, centre, run, seed, hard=True,
                     sample_weight=sample_weight)


def make_fit(method: str, model, X, centre, run, seed, *, hard: bool,
             sample_weight=None, responsibilities=None) -> Fit:
    """The Fit of a run whose state has ``weights``, ``means`` (centred), native
    ``covariances``, ``log_likelihood`` and ``n_reseeded``; ``responsibilities`` default
    to those of ``X`` under the fitted posterior, computed now."""
    state = run.state  # in centred coordinates
    family = model.covariance
    k, d = state.means.shape
    posterior = PointEstimatePosterior(
        state.weights, state.means + centre,
        covariance_matrices(state.covariances, family, k, d), hard=hard, centre=centre,
        centred_means=state.means, covariance=family,
        native=None if family == "full" else state.covariances)
    elbo_trace = run.monitor_traces["elbo"]
    loglik_trace = run.monitor_traces["log_likelihood"]
    return fit_from_run(
        run, method=method, model=model, data=X, posterior=posterior,
        responsibilities=(np.exp(posterior.log_responsibilities(X))
                          if responsibilities is None else responsibilities(posterior)),
        seed=seed,
        elbo_trace=elbo_trace, log_likelihood_trace=loglik_trace,
        kl_trace=loglik_trace - elbo_trace,
        diagnostics={
            "objective": "classification_log_likelihood" if hard else "log_likelihood",
            "log_likelihood": float(state.log_likelihood),
            "reseeded_clusters": int(state.n_reseeded),
        },
        sample_weight=sample_weight,
    )


# ----------------------------------------------------------------------------- chunked
# The per-chunk form of the same iteration, for data streamed in chunks
# (:mod:`gmmkit.inference.chunked`).  The in-memory state above keeps the (N, K)
# log-probabilities, so its M-step can take two passes over the data (deviations from
# the new means); streamed data allow one pass per iteration, so a chunk returns
# sufficient statistics *shifted* by the means of the parameters it was evaluated at:
#
#     n_k = sum_n w_n r_nk,  s_k = sum_n w_n r_nk x_n,  d_k = sum_n w_n r_nk (x_n - c_k),
#     S_k = sum_n w_n r_nk (x_n - c_k)(x_n - c_k)^T,         c_k the current means.
#
# The scatter about any other point mu_k follows exactly (no cancellation beyond that of
# (mu_k - c_k), which is small near convergence and zero for a fixed point):
#
#     sum_n w_n r_nk (x_n - mu_k)(x_n - mu_k)^T
#         = S_k - (mu_k - c_k) d_k^T - d_k (mu_k - c_k)^T + n_k (mu_k - c_k)(mu_k - c_k)^T.
#
# The ELBO of the responsibilities a pass used, at the parameters their M-step gives,
# needs no second pass either: sum_nk w_n r_nk log N(x_n | mu_k, Sigma_k) =
# sum_k [n_k log N(mu_k | mu_k, Sigma_k) - tr(Sigma_k^-1 scatter_k) / 2].


class ChunkStatistics(NamedTuple):
    """Sums over points of one chunk (or of all chunks, added); see the comment above."""

    n_k: np.ndarray  # (K,)
    s_k: np.ndarray  # (K, D)
    d_k: np.ndarray  # (K, D)
    scatter: np.ndarray  # (K, D, D)
    log_likelihood: float  # sum_n w_n logsumexp_k log_prob_nk (0 without parameters)
    entropy: float  # sum_n w_n H[r_n] (0 for one-hot r)


def chunk_labels(
    X: np.ndarray, shift: np.ndarray, log_prob: np.ndarray | None,
    overrides: tuple[np.ndarray, np.ndarray], offset: int,
) -> np.ndarray:
    """Hard labels of a chunk: argmax of ``log_prob`` (k-means step) or, without it, the
    nearest of ``shift`` (K, D) in Euclidean distance (the initial assignment), then the
    re-seeded points ``overrides`` = (global row indices, components) of this chunk
    (``offset`` is the chunk's first global row)."""
    if log_prob is None:
        labels = np.argmin(-2.0 * X @ shift.T + np.sum(shift**2, axis=1), axis=1)
    else:
        labels = np.argmax(log_prob, axis=1)
    rows, comps = overrides
    inside = (rows >= offset) & (rows < offset + X.shape[0])
    labels[rows[inside] - offset] = comps[inside]
    return labels


def chunk_statistics(
    X: np.ndarray, w: np.ndarray | None, means: np.ndarray, theta: tuple | None,
    covariance: str, *, hard: bool,
    overrides: tuple[np.ndarray, np.ndarray] = (np.empty(0, int), np.empty(0, int)),
    offset: int = 0, shift: np.ndarray | None = None,
) -> ChunkStatistics:
    """The E-step of one chunk fused with its shifted sufficient statistics.

    Parameters
    ----------
    X : ndarray, shape (n, D)
        The chunk, centred like the whole fit.
    w : ndarray, shape (n,), or None
        Frequency weights.
    means : ndarray, shape (K, D)
        The means of ``theta``, or the initial means when ``theta`` is None (the hard
        assignment is then to the nearest of them).
    theta : (weights (K,), means (K, D), prec_chol) or None
        Parameters of the E-step; None for the initial nearest-mean assignment.
    covariance : str
        The covariance family of ``prec_chol``.
    hard : bool
        One-hot responsibilities (k-means, and the initial assignment).
    overrides, offset
        Re-seeded points; see :func:`chunk_labels`.
    shift : ndarray, shape (K, D), optional
        The points c_k the statistics are taken around; default ``means``.
    """
    n_components, d = means.shape
    shift = means if shift is None else shift
    log_prob = None
    log_likelihood = entropy = 0.0
    if theta is not None:
        log_prob = weighted_log_prob(X, theta[0], theta[1], theta[2], covariance)
        log_norm = log_normaliser_rows(log_prob)
        log_likelihood = float(log_norm.sum() if w is None else w @ log_norm)
    if hard:
        labels = chunk_labels(X, means, log_prob, overrides, offset)
        resp = _one_hot(labels, n_components)
    else:
        resp = exp_floored(log_prob - log_norm[:, None])
        per_point = np.sum(entr(resp), axis=1)
        entropy = float(per_point.sum() if w is None else w @ per_point)
    if w is not None:
        resp *= w[:, None]
    scatter = np.empty((n_components, d, d))
    d_k = np.empty((n_components, d))
    for comp in range(n_components):  # K (D, D) products over the whole chunk
        diff = X - shift[comp]
        weighted = resp[:, comp] * diff.T
        d_k[comp] = weighted.sum(axis=1)
        scatter[comp] = weighted @ diff
    return ChunkStatistics(resp.sum(axis=0), resp.T @ X, d_k, scatter, log_likelihood,
                           entropy)


def m_step_from_statistics(
    stats: ChunkStatistics, shift: np.ndarray, reg_covar: float, covariance: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`m_step_family` from summed chunk statistics taken around ``shift``.

    Returns weights (K,), means (K, D), native covariances, and the scatter about the
    new means (K, D, D) that :func:`elbo_from_statistics` needs.
    """
    n_k = stats.n_k + 10 * np.finfo(float).eps  # as m_step: no NaN for an empty component
    means = stats.s_k / n_k[:, None]
    delta = means - shift
    outer = np.einsum("ka,kb->kab", delta, stats.d_k)
    scatter = (stats.scatter - outer - np.swapaxes(outer, 1, 2)
               + stats.n_k[:, None, None] * np.einsum("ka,kb->kab", delta, delta))
    d = means.shape[1]
    if covariance == "full":
        covariances = scatter / n_k[:, None, None]
        covariances[:, np.arange(d), np.arange(d)] += reg_covar
    elif covariance == "tied":
        covariances = scatter.sum(axis=0) / n_k.sum()
        covariances.flat[:: d + 1] += reg_covar
    else:
        variances = np.diagonal(scatter, axis1=1, axis2=2) / n_k[:, None] + reg_covar
        covariances = variances if covariance == "diag" else variances.mean(axis=1)
    return n_k / n_k.sum(), means, covariances, scatter


def elbo_from_statistics(
    stats: ChunkStatistics, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray,
    scatter: np.ndarray, covariance: str,
) -> float:
    """ELBO(r, theta) = sum_nk w_n r_nk (log_prob_nk - log r_nk) from the statistics of r
    and ``scatter`` about theta's means (comment above :class:`ChunkStatistics`)."""
    k, d = means.shape
    # log pi_k + log N(mu_k | mu_k, Sigma_k): the family's kernel at its own mean.
    log_norm = np.diagonal(weighted_log_prob(means, weights, means, prec_chol, covariance))
    if covariance in ("full", "tied"):
        factors = prec_chol if covariance == "full" else np.broadcast_to(prec_chol, (k, d, d))
        precisions = factors @ np.swapaxes(factors, 1, 2)  # P = U U^T, scikit-learn's factor
        quad = np.einsum("kab,kab->k", precisions, scatter)
    else:
        prec_sq = prec_chol**2 if covariance == "diag" else (prec_chol**2)[:, None]
        quad = np.sum(prec_sq * np.diagonal(scatter, axis1=1, axis2=2), axis=1)
    return float(stats.n_k @ log_norm - 0.5 * quad.sum() + stats.entropy)


def reseed_candidate(
    X: np.ndarray, w: np.ndarray | None, shift: np.ndarray, theta: tuple | None,
    covariance: str, counts: np.ndarray, overrides: tuple[np.ndarray, np.ndarray],
    offset: int,
) -> tuple[float, int, int, float]:
    """This chunk's candidate to re-seed an empty cluster, as :func:`hard_assignment`
    chooses it: the point farthest from its assigned mean among positive-weight points
    whose cluster keeps some weight without it.  Returns (squared distance, global row,
    its label, its weight, the point (D,)); distance -inf when the chunk has no
    candidate."""
    log_prob = None if theta is None else weighted_log_prob(
        X, theta[0], theta[1], theta[2], covariance)
    labels = chunk_labels(X, shift, log_prob, overrides, offset)
    weight = np.ones(X.shape[0]) if w is None else w
    distance = np.sum((X - shift[labels]) ** 2, axis=1)
    candidates = np.where((weight > 0) & (counts[labels] - weight > 0), distance, -np.inf)
    if candidates.size == 0:
        return -np.inf, -1, -1, 0.0, np.zeros(X.shape[1])
    point = int(np.argmax(candidates))
    return (float(candidates[point]), offset + point, int(labels[point]),
            float(weight[point]), X[point].copy())
