"""Bishop's Bayesian Gaussian mixture (PRML §10.2): Dirichlet weights, Gaussian-Wishart
components, and its restricted covariance families.

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

Covariance families (``covariance=``; one object per family in
:mod:`gmmkit.models.covariance_family`, chosen once from the string):

* ``"full"`` -- the model above;
* ``"diag"`` -- lambda_kd ~ Gamma(nu0/2, rate 1/(2 W0_d)), mu_kd | lambda_kd ~
  N(m0_d, 1/(beta0 lambda_kd)); W0 (D,), default 1/(var_d + eps); nu0 > 0, default D
  (:mod:`gmmkit.models.normal_gamma`);
* ``"spherical"`` -- lambda_k ~ Gamma(nu0/2, rate 1/(2 W0)), mu_k | lambda_k ~
  N(m0, I/(beta0 lambda_k)); W0 scalar, default 1/(mean_d var_d + eps); nu0 > 0,
  default D (:mod:`gmmkit.models.normal_gamma`);
* ``"tied"`` -- one Lambda ~ Wishart(W0, nu0) shared by every component, mu_k | Lambda ~
  N(m0, (beta0 Lambda)^-1) independently; W0 (D, D) and nu0 > D - 1 as for full
  (:mod:`gmmkit.models.tied_wishart`).

The weights' prior is an object too (:attr:`BayesianGMM.weight_distribution`,
:mod:`gmmkit.models.weights`): every family does all weight maths through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gmmkit._validation import (
    check_choice,
    check_finite_array,
    check_int,
    check_multivariate_data,
    check_positive,
)
from gmmkit.models.base import MixtureData, check_enumerable, enumerate_assignments
from gmmkit.models.covariance_family import COVARIANCE_PRIORS, CovariancePrior
from gmmkit.models.mixture import COVARIANCE_TYPES, GaussianMixture
from gmmkit.models.normal_wishart import (
    log_wishart_normaliser,
    normal_wishart_log_marginal,
    normal_wishart_logpdf,
    weighted_mean,
)
from gmmkit.models.weights import DirichletWeights, StickBreakingWeights, WeightPrior

__all__ = [
    "WEIGHT_PRIORS",
    "BayesianGMM",
    "log_wishart_normaliser",
    "normal_wishart_log_marginal",
    "normal_wishart_logpdf",
]

#: Priors on the mixing weights (scikit-learn's ``weight_concentration_prior_type``).
WEIGHT_PRIORS = ("dirichlet_distribution", "dirichlet_process")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a



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
    W0 : array_like, optional
        Scale of the precision prior.  full and tied: the Wishart scale matrix (D, D),
        symmetric positive definite, default the inverse sample covariance of the data
        (see the module docstring); diag: the Gamma scales (D,), positive, default
        1 / (var_d + eps); spherical: one positive scalar, default 1 / (mean var + eps).
    nu0 : float, optional
        Degrees of freedom, > D - 1 (full, tied) or > 0 (diag, spherical).  Default D.
    covariance : {"full", "diag", "spherical", "tied"}
        Covariance family (module docstring): a Normal-Wishart per component, a
        Normal-Gamma per dimension, a Normal-Gamma shared over dimensions, or one Wishart
        precision shared by every component.
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
        check_choice("covariance", self.covariance, COVARIANCE_TYPES)
        family = self.covariance_prior
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
            set_(self, "W0", _readonly(family.check_scale(self.W0)))
        w_dim = None if self.W0 is None else family.scale_dim(self.W0)
        if self.m0 is not None and w_dim is not None and w_dim != self.m0.shape[0]:
            d = self.m0.shape[0]
            expected = f"({d},)" if self.W0.ndim == 1 else f"({d}, {d})"
            raise ValueError(
                f"W0 must be {expected} to match m0 of shape {self.m0.shape}, got shape "
                f"{self.W0.shape}"
            )
        if self.nu0 is not None:
            nu0 = check_positive("nu0", self.nu0)
            d = self._known_dim()
            if d is not None:
                self._check_nu0(nu0, d)
            set_(self, "nu0", nu0)

    def _check_nu0(self, nu0: float, d: int) -> None:
        bound = self.covariance_prior.min_dof(d)
        if nu0 <= bound:
            what = "D - 1" if bound == d - 1 else "0"
            raise ValueError(f"nu0 must be > {what} = {bound:g} for D = {d} and "
                             f"covariance={self.covariance!r}, got {nu0!r}")

    @property
    def covariance_prior(self) -> CovariancePrior:
        """The covariance family's object (:mod:`gmmkit.models.covariance_family`)."""
        return COVARIANCE_PRIORS[self.covariance]

    # ------------------------------------------------------------------ identity
    def _known_dim(self) -> int | None:
        if self.m0 is not None:
            return int(self.m0.shape[0])
        if self.W0 is not None:
            return self.covariance_prior.scale_dim(self.W0)
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
            f"nu0={fmt(self.nu0)}"
            + ("" if self.covariance == "full" else f", covariance={self.covariance!r}")
            + f"{self._repr_weight_prior()})"
        )

    def _repr_weight_prior(self) -> str:
        # Shown only when not the default, so Dirichlet models print as they always did.
        if self.weight_prior == WEIGHT_PRIORS[0]:
            return ""
        return f", weight_prior={self.weight_prior!r}"

    @property
    def parameter_dims(self) -> dict[str, list[str]]:
        """Canonical posterior variables and their dims after (chain, draw): ``weights``,
        ``means``, ``covariances`` (K, D, D) always, plus the family's native covariance
        parameter (``variances``, ``variance`` or the tied ``covariance``)."""
        dims = dict(GaussianMixture.parameter_dims)
        family = self.covariance_prior
        if family.native_name not in dims:
            dims[family.native_name] = list(family.native_dims)
        return dims

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
        if n_features is not None:
            return check_multivariate_data(x, name=name, min_points=min_points,
                                           n_features=n_features)
        x = check_multivariate_data(x, name=name, min_points=min_points)
        known = self._known_dim()
        if known is not None and x.shape[1] != known:
            # D is fixed by the priors, not by earlier data: name the prior.
            source = "m0" if self.m0 is not None else "W0"
            raise ValueError(
                f"{name} must have {known} feature(s) (columns) to match the prior "
                f"{source} of shape {np.shape(getattr(self, source))}, got {x.shape[1]}"
            )
        return x

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
            changes["m0"] = weighted_mean(X, sample_weight)
        if self.W0 is None:
            changes["W0"] = self.covariance_prior.default_scale(X, sample_weight)
        if self.nu0 is None:
            changes["nu0"] = float(d)
        else:
            self._check_nu0(self.nu0, d)
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
    def _canonical(self, draws: Mapping[str, Any]) -> dict[str, Any]:
        """``draws`` with ``covariances`` (..., K, D, D) formed from the family's native
        parameter when only that is given (a draw of a restricted family may carry
        either or both)."""
        if "covariances" in draws:
            return dict(draws)
        family = self.covariance_prior
        means = np.asarray(draws["means"], dtype=float)
        return {**draws, "covariances": family.matrices(
            draws[family.native_name], self.n_components, means.shape[-1])}

    def _native(self, params: Mapping[str, Any]) -> np.ndarray:
        """The family's native covariance parameter of ``params`` (given, or read off the
        (..., K, D, D) ``covariances``, which must then lie in the family)."""
        family = self.covariance_prior
        if family.native_name in params:
            return np.asarray(params[family.native_name], dtype=float)
        return family.native(np.asarray(params["covariances"], dtype=float))

    def pointwise_log_likelihood(self, x: Any, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log p(x_i | theta) for every draw, shape (..., N); see
        :meth:`GaussianMixture.pointwise_log_likelihood`.  Draws may give the family's
        native covariance parameter instead of ``covariances``."""
        return GaussianMixture(self.n_components).pointwise_log_likelihood(
            self.check_data(x), self._canonical(draws)
        )

    def log_components(self, x: np.ndarray, draws: dict[str, np.ndarray]) -> np.ndarray:
        """log pi_k N(x_i | mu_k, Sigma_k) for S draws: see
        :meth:`GaussianMixture.log_components`."""
        return GaussianMixture(self.n_components).log_components(x, self._canonical(draws))

    def component_means(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ``means`` of draws, shape (..., K, D)."""
        return GaussianMixture(self.n_components).component_means(draws)

    def summarise_draws(self, flat_draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Posterior means of ``weights``, ``means`` and ``covariances`` over flat draws,
        plus the mean of the family's native covariance parameter for a restricted
        family."""
        flat_draws = self._canonical(flat_draws)
        out = GaussianMixture(self.n_components).summarise_draws(flat_draws)
        family = self.covariance_prior
        if family.native_name not in out:
            out[family.native_name] = self._native(flat_draws).mean(axis=0)
        return out

    def log_prior(self, params: dict[str, Any]) -> np.ndarray:
        """log p(pi, mu, Sigma) with every constant, for parameters with leading batch
        axes: ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` (..., K, D, D)
        or the family's native parameter (``variances`` (..., K, D), ``variance``
        (..., K), ``covariance`` (..., D, D)), optionally ``log_weights`` (..., K).  The
        density is that of the family's free parameters (precisions lambda_kd, lambda_k
        or one Lambda).  The model must be resolved."""
        self._require_resolved("log_prior")
        means = np.asarray(params["means"], dtype=float)
        # ``log_weights``, when given, avoids log(0) for a weight that underflowed (a
        # pruned component's draws).
        if "log_weights" in params:
            log_w = np.asarray(params["log_weights"], dtype=float)
        else:
            with np.errstate(divide="ignore"):
                log_w = np.log(np.asarray(params["weights"], dtype=float))
        log_weights = self.weight_distribution.log_prior(log_w)
        native = self._native(params)
        return log_weights + self.covariance_prior.log_density(
            means, native, self.m0, self.beta0, self.W0, self.nu0)

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

        For each assignment, p(X | z) is the family's closed-form marginal likelihood:
        a product over clusters of Normal-Wishart (full,
        :func:`normal_wishart_log_marginal`) or Normal-Gamma (diag, spherical) marginals,
        or for tied one Wishart integral over the shared precision with a factor per
        cluster (:mod:`gmmkit.models.tied_wishart`); p(z) is the weight prior's
        probability of the sequence z with the weights integrated out (Dirichlet-multinomial, or the
        truncated stick-breaking product of Beta functions:
        ``weight_distribution.log_marginal_counts``).
        Data-dependent priors are resolved against X first.

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
        family, weights = model.covariance_prior, model.weight_distribution
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
            log_lik = family.log_marginal(onehot, X, m0, model.beta0, model.W0, model.nu0)
            log_prior_z = weights.log_marginal_counts(onehot.sum(axis=1).astype(int))
            blocks.append(log_lik + log_prior_z)
        values = np.concatenate(blocks)
        top = values.max()
        return float(top + np.log(np.exp(values - top).sum()))

    def sample(self, n: int, seed: int | np.random.Generator | None = None, *,
               n_features: int | None = None) -> MixtureData:
        """Draw pi, then the means and covariances from the family's prior, then ``n``
        points.

        The priors must be concrete (m0 and W0 given, or a resolved model); returns data,
        labels and the true ``means``, ``weights`` and ``covariances`` (K, D, D).
        """
        self._require_resolved("sample")
        n = check_int("n", n, 1)
        rng = np.random.default_rng(seed)
        k, d = self.n_components, self.m0.shape[0]
        weights = self.weight_distribution.sample(rng)
        means, covariances = self.covariance_prior.sample(
            rng, k, self.m0, self.beta0, self.W0, self.nu0)
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

