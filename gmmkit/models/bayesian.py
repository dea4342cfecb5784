"""Bishop's Bayesian Gaussian mixture (PRML §10.2): Dirichlet weights, Gaussian-Wishart
components.

    pi                ~ Dir(alpha0 1_K)                                   (PRML 10.39)
    Lambda_k          ~ Wishart(W0, nu0)                                  (PRML 10.40)
    mu_k | Lambda_k   ~ N(m0, (beta0 Lambda_k)^-1)                        (PRML 10.40)
    z_n | pi          ~ Cat(pi)                                           (PRML 10.37)
    x_n | z_n = k     ~ N(mu_k, Lambda_k^-1)                              (PRML 10.38)

The Wishart is parametrised as in Bishop (B.78): E[Lambda] = nu W.

With ``weight_prior="dirichlet_process"`` the weights are truncated stick-breaking instead,
v_k ~ Beta(1, alpha0) (k < K), v_K = 1, pi_k = v_k prod_{j<k} (1 - v_j) (Blei & Jordan
2006; :mod:`gmmkit.models.weights`).

Data-dependent defaults (used when a prior is left as ``None``; :meth:`BayesianGMM.resolve`
fills them in from the data, and every fit records the resolved model):

* ``alpha0 = 1 / K`` (scikit-learn's default ``weight_concentration_prior``);
* ``m0`` = the data mean;
* ``W0 = (S + eps I)^-1`` with S the sample covariance (ddof = 1) and the relative ridge
  ``eps = 1e-6 tr(S) / D`` always added, so that E[Lambda_k] ~ nu0 S^-1 (scikit-learn's
  ``covariance_prior`` convention, up to a relative 1e-6).  The ridge keeps the prior
  proper and well conditioned when S is singular or nearly so (a constant or collinear
  column, N <= D); data whose points are all identical (tr(S) = 0) are refused;
* ``nu0 = D``.

Because m0 and W0 follow the data, translating the data translates the fit and leaves the
ELBO unchanged exactly; with an explicit ``m0`` it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import linalg
from scipy.special import multigammaln

from gmmkit._validation import (
    check_choice,
    check_finite_array,
    check_int,
    check_multivariate_data,
    check_positive,
)
from gmmkit.models.base import MixtureData, check_enumerable, enumerate_assignments
from gmmkit.models.mixture import COVARIANCE_TYPES, GaussianMixture
from gmmkit.models.weights import DirichletWeights, StickBreakingWeights, WeightPrior

__all__ = ["WEIGHT_PRIORS", "BayesianGMM", "normal_wishart_log_marginal", "normal_wishart_logpdf"]

_LOG_PI = np.log(np.pi)
_PLANNED_COVARIANCE_TYPES = ("diag", "spherical", "tied")
#: Priors on the mixing weights (scikit-learn's ``weight_concentration_prior_type``).
WEIGHT_PRIORS = ("dirichlet_distribution", "dirichlet_process")
#: Relative ridge added to the data covariance for the default W0 (see module doc).
_DEFAULT_RIDGE = 1e-6


def _weighted_mean(X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """The mean of X (N, D), each row counted ``sample_weight`` times (frequency weights)."""
    if sample_weight is None:
        return X.mean(axis=0)
    return (sample_weight @ X) / sample_weight.sum()


def _default_W0(X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """W0 = (S + eps I)^-1 with S the sample covariance (ddof = 1) of X (N, D) and
    eps = _DEFAULT_RIDGE * tr(S) / D, always added (module docstring).  With frequency
    weights w, S = sum_n w_n (x_n - xbar)(x_n - xbar)^T / (sum_n w_n - 1), that of the
    rows repeated.

    The ridge is always there, not only when S is singular, so that nearly singular S
    (collinear columns, N <= D) gets a W0 with condition number at most ~D / 1e-6
    instead of one whose Cholesky factor is dominated by rounding, and so the default is
    a continuous function of the data.  Returns shape (D, D).
    """
    d = X.shape[1]
    if sample_weight is None:
        cov = np.atleast_2d(np.cov(X, rowvar=False))
    else:
        diff = X - _weighted_mean(X, sample_weight)
        cov = (sample_weight * diff.T) @ diff / (sample_weight.sum() - 1.0)
    trace = float(np.trace(cov))
    if not trace > 0:
        raise ValueError(
            f"X must not be {X.shape[0]} copies of one point for the default W0: its "
            "sample covariance is zero, so W0 = S^-1 does not exist; pass W0 explicitly"
        )
    cov = cov + (_DEFAULT_RIDGE * trace / d) * np.eye(d)
    chol = np.linalg.cholesky(cov)
    inv_chol = linalg.solve_triangular(chol, np.eye(d), lower=True)
    W0 = inv_chol.T @ inv_chol
    W0 = 0.5 * (W0 + W0.T)
    if not np.all(np.isfinite(W0)):
        raise ValueError(
            f"X has a spread too small for the default W0 = S^-1 (tr(S) = {trace:.3g}); "
            "pass W0 explicitly or rescale the data"
        )
    return W0


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def _check_scale_matrix(W0: Any) -> np.ndarray:
    W0 = check_finite_array("W0", W0)
    if W0.ndim == 0:
        W0 = W0.reshape(1, 1)
    if W0.ndim != 2 or W0.shape[0] != W0.shape[1]:
        raise ValueError(f"W0 must be a square (D, D) matrix, got an array of shape {W0.shape}")
    if not np.allclose(W0, W0.T, rtol=1e-10, atol=0.0):
        raise ValueError("W0 must be symmetric positive definite, got a non-symmetric matrix")
    try:
        np.linalg.cholesky(W0)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(W0).min()
        raise ValueError(
            "W0 must be symmetric positive definite, got a matrix with smallest eigenvalue "
            f"{eig:.3g} (singular or indefinite)"
        ) from None
    return 0.5 * (W0 + W0.T)


@dataclass(frozen=True, eq=False)
class BayesianGMM:
    """Bishop's Bayesian GMM (PRML §10.2), fitted by ``gmmkit.fit(model, X, "cavi")``.

    Parameters
    ----------
    n_components : int
        K >= 1.  Superfluous components are switched off by the fit when ``alpha0`` is
        small (their E[pi_k] goes to ~0).
    alpha0 : float, optional
        Weight concentration, > 0.  Default 1 / K.  The symmetric Dirichlet's alpha0, or
        with ``weight_prior="dirichlet_process"`` the stick-breaking concentration gamma
        (v_k ~ Beta(1, gamma); :class:`~gmmkit.models.weights.StickBreakingWeights`).
    beta0 : float
        Scale of the mean's prior precision, > 0.  Default 1.
    m0 : array_like, shape (D,), optional
        Prior mean of every component mean.  Default: the data mean.
    W0 : array_like, shape (D, D), optional
        Wishart scale matrix, symmetric positive definite.  Default: the inverse sample
        covariance of the data (see the module docstring).
    nu0 : float, optional
        Wishart degrees of freedom, > D - 1.  Default D.
    covariance : {"full"}
        Covariance structure; "diag", "spherical" and "tied" are planned.
    weight_prior : {"dirichlet_distribution", "dirichlet_process"}
        pi ~ Dir(alpha0 1_K), or truncated stick-breaking weights with concentration
        alpha0 (Blei & Jordan 2006), K being then an upper bound on the components used.

    Notes
    -----
    A model with ``None`` priors is resolved against the data at fit time
    (:meth:`resolve`); ``Fit.model`` is the resolved model.
    """

    n_components: int
    alpha0: float | None = None
    beta0: float = 1.0
    m0: Any = None
    W0: Any = None
    nu0: float | None = None
    covariance: str = "full"
    weight_prior: str = "dirichlet_distribution"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "n_components", check_int("n_components", self.n_components, 1))
        if self.covariance in _PLANNED_COVARIANCE_TYPES:
            raise ValueError(
                f"covariance {self.covariance!r} is not implemented yet; expected 'full'"
            )
        check_choice("covariance", self.covariance, COVARIANCE_TYPES)
        check_choice("weight_prior", self.weight_prior, WEIGHT_PRIORS)
        if self.alpha0 is not None:
            set_(self, "alpha0", check_positive("alpha0", self.alpha0))
        set_(self, "beta0", check_positive("beta0", self.beta0))
        if self.m0 is not None:
            m0 = check_finite_array("m0", self.m0)
            if m0.ndim == 0:
                m0 = m0.reshape(1)
            if m0.ndim != 1:
                raise ValueError(f"m0 must have shape (D,), got an array of shape {m0.shape}")
            set_(self, "m0", _readonly(m0))
        if self.W0 is not None:
            set_(self, "W0", _readonly(_check_scale_matrix(self.W0)))
        if self.m0 is not None and self.W0 is not None and self.W0.shape[0] != self.m0.shape[0]:
            raise ValueError(
                f"W0 must be ({self.m0.shape[0]}, {self.m0.shape[0]}) to match m0 of shape "
                f"{self.m0.shape}, got shape {self.W0.shape}"
            )
        if self.nu0 is not None:
            nu0 = check_positive("nu0", self.nu0)
            d = self._known_dim()
            if d is not None and nu0 <= d - 1:
                raise ValueError(f"nu0 must be > D - 1 = {d - 1} for D = {d}, got {nu0!r}")
            set_(self, "nu0", nu0)

    # ------------------------------------------------------------------ identity
    def _known_dim(self) -> int | None:
        for value in (self.m0, self.W0):
            if value is not None:
                return int(np.shape(value)[0])
        return None

    def _key(self) -> tuple:
        def arr(a):
            return None if a is None else (a.shape, a.tobytes())

        return (self.n_components, self.alpha0, self.beta0, arr(self.m0), arr(self.W0),
                self.nu0, self.covariance, self.weight_prior)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BayesianGMM) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        def fmt(v):
            if v is None:
                return "None"
            if isinstance(v, np.ndarray):
                return np.array2string(v, precision=4, separator=", ").replace("\n", "")
            return f"{v:g}"

        return (
            f"BayesianGMM(n_components={self.n_components}, alpha0={fmt(self.alpha0)}, "
            f"beta0={fmt(self.beta0)}, m0={fmt(self.m0)}, W0={fmt(self.W0)}, "
            f"nu0={fmt(self.nu0)}{self._repr_weight_prior()})"
        )

    def _repr_weight_prior(self) -> str:
        # Shown only when not the default, so Dirichlet models print as they always did.
        if self.weight_prior == WEIGHT_PRIORS[0]:
            return ""
        return f", weight_prior={self.weight_prior!r}"

    #: Canonical posterior variables and their dims after (chain, draw).
    parameter_dims = GaussianMixture.parameter_dims
    means_variable = GaussianMixture.means_variable
    #: Fewest points a fit needs: the default W0 needs a sample covariance.
    min_points = 2

    @property
    def is_resolved(self) -> bool:
        """True when every prior is concrete (no data-dependent default left)."""
        return None not in (self.alpha0, self.m0, self.W0, self.nu0)

    def to_dict(self) -> dict[str, Any]:
        def lst(v):
            return None if v is None else np.asarray(v).tolist()

        return {
            "model": "bayesian", "n_components": self.n_components, "alpha0": self.alpha0,
            "beta0": self.beta0, "m0": lst(self.m0), "W0": lst(self.W0), "nu0": self.nu0,
            "covariance": self.covariance, "weight_prior": self.weight_prior,
        }

    @property
    def weight_distribution(self) -> WeightPrior:
        """The prior on the weights as an object (:mod:`gmmkit.models.weights`); needs a
        concrete ``alpha0``."""
        if self.alpha0 is None:
            raise ValueError("weight_distribution needs a concrete alpha0: pass alpha0 or "
                             "call model.resolve(X) first")
        if self.weight_prior == "dirichlet_process":
            return StickBreakingWeights(self.n_components, float(self.alpha0))
        return DirichletWeights(self.n_components, float(self.alpha0))

    def check_data(
        self, x: Any, *, n_features: int | None = None, min_points: int = 1, name: str = "X"
    ) -> np.ndarray:
        """Validate data: finite, shape (N, D) (an (N,) array is read as D = 1)."""
        if n_features is None:
            n_features = self._known_dim()
        return check_multivariate_data(x, name=name, min_points=min_points,
                                       n_features=n_features)

    def resolve(self, X: Any, sample_weight: np.ndarray | None = None) -> BayesianGMM:
        """The same model with every ``None`` prior replaced by its data-dependent default.

        Parameters
        ----------
        X : array_like, shape (N, D)
        sample_weight : ndarray, shape (N,), optional
            Validated frequency weights: the defaults are then those of the rows repeated
            (weighted mean and weighted sample covariance).

        Returns
        -------
        BayesianGMM
            With concrete ``alpha0``, ``m0`` (D,), ``W0`` (D, D) and ``nu0``.
        """
        X = self.check_data(X, min_points=1 if self.W0 is not None else 2)
        d = X.shape[1]
        changes: dict[str, Any] = {}
        if self.alpha0 is None:
            changes["alpha0"] = 1.0 / self.n_components
        if self.m0 is None:
            changes["m0"] = _weighted_mean(X, sample_weight)
        if self.W0 is None:
            changes["W0"] = _default_W0(X, sample_weight)
        if self.nu0 is None:
            changes["nu0"] = float(d)
        elif self.nu0 <= d - 1:
            raise ValueError(f"nu0 must be > D - 1 = {d - 1} for D = {d}, got {self.nu0!r}")
        if not changes:
            return self
        try:
            return replace(self, **changes)
        except ValueError as err:
            # Only a data-dependent default can fail here (the user's values were checked
            # at construction): say so, rather than blame a W0 the user never passed.
            raise ValueError(
                f"the data-dependent priors computed from X are unusable ({err}); pass "
                "explicit m0 and W0, or rescale the data"
            ) from None

    # ------------------------------------------------------------------ densities
    def pointwise_log_likelihood(self, x: Any, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log p(x_i | theta) for every draw, shape (..., N); see
        :meth:`GaussianMixture.pointwise_log_likelihood`."""
        return GaussianMixture(self.n_components).pointwise_log_likelihood(
            self.check_data(x), draws
        )

    def log_components(self, x: np.ndarray, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log pi_k N(x_i | mu_k, Sigma_k) for S draws: see
        :meth:`GaussianMixture.log_components`."""
        return GaussianMixture(self.n_components).log_components(x, draws)

    def component_means(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ``means`` of draws, shape (..., K, D)."""
        return GaussianMixture(self.n_components).component_means(draws)

    def summarise_draws(self, flat_draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Posterior means of ``weights``, ``means`` and ``covariances`` over flat draws."""
        return GaussianMixture(self.n_components).summarise_draws(flat_draws)

    def log_prior(self, params: dict[str, Any]) -> np.ndarray:
        """log p(pi, mu, Lambda) with every constant, for parameters with leading batch
        axes: ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` (..., K, D, D),
        optionally ``log_weights`` (..., K).  The model must be resolved."""
        self._require_resolved("log_prior")
        weights = np.asarray(params["weights"], dtype=float)
        means = np.asarray(params["means"], dtype=float)
        covs = np.asarray(params["covariances"], dtype=float)
        beta0, nu0 = self.beta0, self.nu0
        # The weight prior's density in log space; ``log_weights``, when given, avoids
        # log(0) for a weight that underflowed (a pruned component's draws).
        if "log_weights" in params:
            log_w = np.asarray(params["log_weights"], dtype=float)
        else:
            with np.errstate(divide="ignore"):
                log_w = np.log(weights)
        log_p_weights = self.weight_distribution.log_prior(log_w)
        log_nw = normal_wishart_logpdf(means, covs, self.m0, beta0, self.W0, nu0)
        return log_p_weights + np.sum(log_nw, axis=-1)

    def log_joint(self, X: Any, params: dict[str, Any]) -> np.ndarray:
        """log p(X, pi, mu, Lambda) with z summed out and every constant included.

        Parameters
        ----------
        X : array_like, shape (N, D)
        params : dict
            ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` (..., K, D, D),
            with any leading batch axes.  Data-dependent priors are resolved against X.

        Returns
        -------
        ndarray, shape (...)
        """
        X = self.check_data(X)
        model = self.resolve(X)
        loglik = model.pointwise_log_likelihood(X, params).sum(axis=-1)
        return model.log_prior(params) + loglik

    def exact_log_evidence(self, X: Any) -> float:
        """log p(X) by enumerating all K**N assignments (an oracle for tiny data).

        For each assignment, p(X | z) is a product over clusters of closed-form
        Normal-Wishart marginal likelihoods (:func:`normal_wishart_log_marginal`), and
        p(z) is the probability of the sequence z with the weights integrated out
        (Dirichlet-multinomial, or the truncated stick-breaking product of Beta functions:
        ``weight_distribution.log_marginal_counts``).  Data-dependent
        priors are resolved against X first.

        The evidence is invariant to translating the data and m0 together, so both are
        shifted by the data mean first: W_n^-1 = W0^-1 + sum x x^T + beta0 m0 m0^T -
        beta_n m_n m_n^T subtracts numbers of size n |x|^2, which for points near 1e2
        already costs ~4 digits and near 1e6 all of them.

        Parameters
        ----------
        X : array_like, shape (N, D)

        Returns
        -------
        float
        """
        X = self.check_data(X, min_points=1)
        n = X.shape[0]
        k = self.n_components
        check_enumerable(n, k)
        model = self.resolve(X)
        weight_distribution = model.weight_distribution
        centre = X.mean(axis=0)
        X = X - centre
        m0 = model.m0 - centre
        d = X.shape[1]
        # Blocks of assignments small enough that the (B, N, K, D) deviations from the
        # cluster means stay around 2e6 floats.
        chunk = max(1, 2_000_000 // (n * k * d))
        blocks = []
        for z in enumerate_assignments(n, k, chunk=chunk):
            onehot = (z[:, :, None] == np.arange(k)).astype(float)  # (B, N, K)
            counts = onehot.sum(axis=1)  # (B, K)
            s1 = np.einsum("bnk,nd->bkd", onehot, X)
            xbar = np.divide(s1, counts[..., None], out=np.zeros_like(s1),
                             where=counts[..., None] > 0)
            # The within-cluster scatter from deviations, not sum x x^T - n xbar xbar^T:
            # positive semi-definite by construction, however far W0^-1 is below it.
            dev = onehot[..., None] * (X[None, :, None, :] - xbar[:, None, :, :])
            scatter = np.einsum("bnkd,bnke->bkde", dev, dev)
            log_lik = normal_wishart_log_marginal(
                counts, s1, None, model.beta0, m0, model.W0, model.nu0, scatter=scatter
            ).sum(axis=1)
            log_prior_z = weight_distribution.log_marginal_counts(counts.astype(int))
            blocks.append(log_lik + log_prior_z)
        values = np.concatenate(blocks)
        top = values.max()
        return float(top + np.log(np.exp(values - top).sum()))

    def sample(self, n: int, seed: int | np.random.Generator | None = None, *,
               n_features: int | None = None) -> MixtureData:
        """Draw pi, mu, Lambda from the prior, then ``n`` points.

        The priors must be concrete (m0 and W0 given, or a resolved model); returns data,
        labels and the true ``means``, ``weights`` and ``covariances``.
        """
        self._require_resolved("sample")
        n = check_int("n", n, 1)
        rng = np.random.default_rng(seed)
        k, d = self.n_components, self.m0.shape[0]
        weights = self.weight_distribution.sample(rng)
        from scipy import stats

        precisions = np.atleast_3d(
            stats.wishart(df=self.nu0, scale=self.W0).rvs(size=k, random_state=rng)
        ).reshape(k, d, d)
        covariances = np.linalg.inv(precisions)
        means = np.stack([
            rng.multivariate_normal(self.m0, covariances[j] / self.beta0) for j in range(k)
        ])
        labels = rng.choice(k, size=n, p=weights / weights.sum())
        chol = np.linalg.cholesky(covariances)
        X = means[labels] + np.einsum("nde,ne->nd", chol[labels], rng.standard_normal((n, d)))
        return MixtureData(x=X, labels=labels, means=means, weights=weights,
                           covariances=covariances)

    def _require_resolved(self, what: str) -> None:
        if self.m0 is None or self.W0 is None or self.alpha0 is None or self.nu0 is None:
            raise ValueError(
                f"{what} needs concrete priors: pass m0, W0 (and alpha0, nu0) or call "
                "model.resolve(X) first"
            )


def log_wishart_normaliser(log_det_W: Any, nu: Any, d: int) -> Any:
    """ln B(W, nu) of the Wishart density (Bishop B.79), from ln|W|."""
    return -0.5 * nu * log_det_W - 0.5 * nu * d * np.log(2.0) - multigammaln(0.5 * nu, d)


def normal_wishart_logpdf(means: Any, covariances: Any, m: Any, beta: Any, W: Any,
                          nu: Any) -> np.ndarray:
    """log N(mu | m, (beta Lambda)^-1) + log Wishart(Lambda | W, nu) with Lambda = Sigma^-1.

    The prior of one component (PRML 10.40) and Bishop's q(mu_k, Lambda_k) (10.59).  The
    point arguments ``means`` (..., D) and ``covariances`` (..., D, D) broadcast against
    the parameters ``m`` (..., D), ``beta`` (...), ``W`` (..., D, D) and ``nu`` (...),
    so one call evaluates every draw under every component.  Only Cholesky factors and
    their (D, D) triangular inverses are formed.
    """
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    W = np.asarray(W, dtype=float)
    beta, nu = np.asarray(beta, dtype=float), np.asarray(nu, dtype=float)
    d = means.shape[-1]
    eye = np.eye(d)
    chol = np.linalg.cholesky(covariances)  # Sigma = L L^T, Lambda = L^-T L^-1
    log_det_lambda = -2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    inv_chol = np.linalg.solve(chol, np.broadcast_to(eye, chol.shape))
    precision = np.swapaxes(inv_chol, -1, -2) @ inv_chol
    w_chol = np.linalg.cholesky(W)
    log_det_w = 2.0 * np.log(np.diagonal(w_chol, axis1=-2, axis2=-1)).sum(-1)
    w_inv_chol = np.linalg.solve(w_chol, np.broadcast_to(eye, w_chol.shape))
    w_inv = np.swapaxes(w_inv_chol, -1, -2) @ w_inv_chol
    trace = np.einsum("...ab,...ba->...", w_inv, precision)
    diff = means - np.asarray(m, dtype=float)
    maha = np.einsum("...a,...ab,...b->...", diff, precision, diff)
    log_wishart = (log_wishart_normaliser(log_det_w, nu, d)
                   + 0.5 * (nu - d - 1.0) * log_det_lambda - 0.5 * trace)  # B.78
    log_normal = (0.5 * d * np.log(beta / (2 * np.pi)) + 0.5 * log_det_lambda
                  - 0.5 * beta * maha)
    return log_wishart + log_normal


def normal_wishart_log_marginal(
    counts: np.ndarray, s1: np.ndarray, s2: np.ndarray | None,
    beta0: float, m0: np.ndarray, W0: np.ndarray, nu0: float,
    *, scatter: np.ndarray | None = None,
) -> np.ndarray:
    """log p(X_k) for points sharing one Normal-Wishart(m0, beta0, W0, nu0) component.

    With n points, sum s1 = sum x and scatter s2 = sum x x^T (Murphy 2007, eq. 266, in
    Bishop's Wishart parametrisation):

        p(X_k) = pi^(-nD/2) Gamma_D(nu_n/2) / Gamma_D(nu0/2) |W_n|^(nu_n/2) / |W0|^(nu0/2)
                 (beta0 / beta_n)^(D/2),
        beta_n = beta0 + n, nu_n = nu0 + n, m_n = (beta0 m0 + s1) / beta_n,
        W_n^-1 = W0^-1 + s2 + beta0 m0 m0^T - beta_n m_n m_n^T.

    Shapes: ``counts`` (...,), ``s1`` (..., D), ``s2`` (..., D, D); returns (...).

    ``scatter`` (..., D, D), the within-cluster scatter sum (x - xbar)(x - xbar)^T, may
    be given instead of ``s2``; then the equivalent, cancellation-free form

        W_n^-1 = W0^-1 + scatter + (beta0 n / beta_n) (xbar - m0)(xbar - m0)^T

    is used (a sum of positive semi-definite terms), which stays accurate when W0^-1 is
    far below the data's scatter (a large W0) or the points are far from m0.
    """
    counts = np.asarray(counts, dtype=float)
    d = m0.shape[0]
    beta_n = beta0 + counts
    nu_n = nu0 + counts
    w0_chol = np.linalg.cholesky(W0)
    logdet_w0 = 2.0 * np.log(np.diag(w0_chol)).sum()
    # W_n^-1 = W0^-1 + M with M the data's (positive semi-definite) contribution.  By the
    # determinant lemma ln|W_n^-1| = -ln|W0| + ln|I + L0^T M L0| (W0 = L0 L0^T): the
    # second matrix is >= I, so its log-determinant is accurate even when W0^-1 is far
    # below the rounding level of M (a large W0, or n <= D points making M singular),
    # where forming W0^-1 + M would lose W0^-1 entirely.
    if scatter is not None:
        xbar = np.divide(s1, counts[..., None], out=np.zeros_like(s1, dtype=float),
                         where=counts[..., None] > 0)
        diff = xbar - m0
        data_term = scatter + ((beta0 * counts / beta_n)[..., None, None]
                               * np.einsum("...a,...b->...ab", diff, diff))
    else:
        m_n = (beta0 * m0 + s1) / beta_n[..., None]
        data_term = (s2 + beta0 * np.outer(m0, m0)
                     - beta_n[..., None, None] * np.einsum("...a,...b->...ab", m_n, m_n))
    inner = np.eye(d) + w0_chol.T @ data_term @ w0_chol
    # The identity must survive the addition for the lemma to help: eps * |inner| above
    # 1e-4 leaves fewer than four digits in a direction the data do not span.
    largest = float(np.max(np.abs(inner))) if inner.size else 0.0
    if not largest * np.finfo(float).eps <= 1e-4:
        raise ValueError(
            f"W0 is too large for the data: W0 times the data's scatter reaches "
            f"{largest:.3g}, beyond {1e-4 / np.finfo(float).eps:.2g}, where ln|W_n^-1| "
            "cannot be computed in float64; use a smaller W0 or rescale the data"
        )
    logdet_inner = np.linalg.slogdet(0.5 * (inner + np.swapaxes(inner, -1, -2)))[1]
    # -nu_n/2 ln|W_n^-1| - nu0/2 ln|W0| with ln|W_n^-1| = -ln|W0| + ln|inner|.
    return (
        -0.5 * counts * d * _LOG_PI
        + multigammaln(0.5 * nu_n, d) - multigammaln(0.5 * nu0, d)
        + 0.5 * counts * logdet_w0 - 0.5 * nu_n * logdet_inner
        + 0.5 * d * (np.log(beta0) - np.log(beta_n))
    )
