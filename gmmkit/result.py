"""The one result type every method returns: :class:`Fit`.

A method builds a ``Fit`` once and never changes it afterwards (NumPyro's ``SVIRunResult``
is the model): arrays are made read-only, and anything derived (predictions, draws,
``InferenceData``) is computed from the stored fields on demand.

What differs between methods lives in the ``posterior`` field, a small object satisfying
the :class:`Posterior` protocol (a variational family, a point estimate, or a set of
draws), so ``Fit`` itself has no per-method branches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from gmmkit import _arviz
from gmmkit.models.protocol import Model
from gmmkit.posterior import Posterior

__all__ = ["Fit", "Posterior"]


def _readonly(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.setflags(write=False)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass(frozen=True, eq=False, repr=False)
class Fit:
    """The result of :func:`gmmkit.fit`, the same for every model and method.

    Attributes
    ----------
    method : str
        "cavi", "em", "kmeans", "advi", "fullrank_advi", "nuts" or "smc".
    model : object
        The model that was fitted (an immutable value object).
    data : ndarray, shape (N,) or (N, D)
        The validated data the fit saw.
    posterior : Posterior
        The fitted approximation (variational family, point estimate or draws).
    responsibilities : ndarray, shape (N, K)
        q(z_i = k) for the training data; rows sum to 1.
    elbo : float
        Final ELBO in nats with every normalising constant (NaN where not applicable).
    elbo_trace : ndarray, shape (n_iter + 1,)
        The ELBO after every iteration, starting with the initial state.
    converged : bool
    n_iter : int
    elapsed_s : float
        Wall time of the whole fit, restarts included.
    seed : int or None
        The seed the fit was run with; reused by :meth:`to_inference_data`.
    restart_elbos : ndarray, shape (n_init,)
        Final objective of every restart (NaN for a restart that failed).
    time_trace : ndarray, shape (n_iter + 1,)
        Seconds since the start of the kept restart at every ``elbo_trace`` entry.
    elbo_se : float
        Monte Carlo standard error of ``elbo`` (0 for closed-form ELBOs).
    log_likelihood_trace, kl_trace : ndarray or None
        For EM: total log-likelihood per iteration, and log-likelihood minus ELBO.
    log_evidence, log_evidence_se : float
        An evidence estimate where the method gives one (SMC), else NaN.
    log_evidence_source : str
        Where ``log_evidence`` comes from, and any correction applied to it.
    restart_failures : tuple of str
        One message per restart that failed (for example a singular covariance).
    diagnostics : mapping
        Method-specific diagnostics (r-hat, ESS, divergences, warnings).
    """

    method: str
    model: Model
    data: np.ndarray
    posterior: Posterior
    responsibilities: np.ndarray
    elbo: float
    elbo_trace: np.ndarray
    converged: bool
    n_iter: int
    elapsed_s: float
    seed: int | None = None
    restart_elbos: np.ndarray = field(default_factory=lambda: np.empty(0))
    time_trace: np.ndarray = field(default_factory=lambda: np.empty(0))
    elbo_se: float = 0.0
    log_likelihood_trace: np.ndarray | None = None
    kl_trace: np.ndarray | None = None
    log_evidence: float = float("nan")
    log_evidence_se: float = float("nan")
    log_evidence_source: str = ""
    restart_failures: tuple[str, ...] = ()
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen dataclass: bypass __setattr__ once, to store read-only copies.
        for name in (
            "data", "responsibilities", "elbo_trace", "restart_elbos", "time_trace",
            "log_likelihood_trace", "kl_trace",
        ):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "diagnostics", MappingProxyType(dict(self.diagnostics)))

    def __repr__(self) -> str:
        return (
            f"Fit(method={self.method!r}, model={self.model!r}, n={self.data.shape[0]}, "
            f"elbo={self.elbo:.6g}, n_iter={self.n_iter}, converged={self.converged})"
        )

    # ------------------------------------------------------------------ parameters
    @property
    def n_components(self) -> int:
        return self.posterior.n_components

    @property
    def variational_params(self) -> Mapping[str, np.ndarray]:
        """The fitted parameters in the method's own notation (read-only arrays)."""
        return MappingProxyType({k: _readonly(v) for k, v in self.posterior.params().items()})

    @property
    def weights(self) -> np.ndarray:
        """Posterior mean (or point estimate) of the mixing weights, shape (K,)."""
        return _readonly(self.posterior.point_estimates()["weights"])

    @property
    def means(self) -> np.ndarray:
        """Posterior mean (or point estimate) of the component means, shape (K, D)."""
        return _readonly(self.posterior.point_estimates()["means"])

    @property
    def covariances(self) -> np.ndarray:
        """Posterior mean (or point estimate) of the covariances, shape (K, D, D)."""
        return _readonly(self.posterior.point_estimates()["covariances"])

    # ------------------------------------------------------------------ prediction
    def _check_new(self, x: Any) -> np.ndarray:
        n_features = None if self.data.ndim == 1 else self.data.shape[1]
        return self.model.check_data(x, n_features=n_features)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Responsibilities q(z = k | x) for new points, shape (N, K)."""
        return np.exp(self.posterior.log_responsibilities(self._check_new(x)))

    def predict(self, x: Any) -> np.ndarray:
        """Most probable component of each new point, shape (N,)."""
        return np.argmax(self.posterior.log_responsibilities(self._check_new(x)), axis=1)

    def score_samples(self, x: Any) -> np.ndarray:
        """log posterior-predictive density of each new point, shape (N,), in nats."""
        return self.posterior.log_predictive(self._check_new(x))

    # ------------------------------------------------------------------ ArviZ / disk
    def fit_variables(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Traces and parameters stored in the ``fit`` group of the InferenceData."""
        out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
            "elbo_trace": (("iteration",), np.asarray(self.elbo_trace, dtype=float)),
            "time_trace": (("iteration",), np.asarray(self.time_trace, dtype=float)),
            "restart_elbos": (("restart",), np.asarray(self.restart_elbos, dtype=float)),
            "elbo": ((), np.float64(self.elbo)),
            "elbo_se": ((), np.float64(self.elbo_se)),
            "log_evidence": ((), np.float64(self.log_evidence)),
        }
        if self.log_likelihood_trace is not None:
            out["log_likelihood_trace"] = (("iteration",), np.asarray(self.log_likelihood_trace))
        if self.kl_trace is not None:
            out["kl_trace"] = (("iteration",), np.asarray(self.kl_trace))
        for name, value in self.posterior.params().items():
            value = np.asarray(value, dtype=float)
            dims = ("component", "feature", "feature_bis")[: value.ndim]
            out[f"q_{name}"] = (dims, value)
        if len(self.time_trace) != len(self.elbo_trace):
            del out["time_trace"]
        return out

    def to_inference_data(
        self, draws: int = 1000, seed: int | None = None, *, log_likelihood: bool = True
    ):
        """Draws from the fitted posterior as an ``arviz.InferenceData``.

        Parameters
        ----------
        draws : int
            Number of draws from q (ignored for point estimates and sampler output).
        seed : int, optional
            Seed for the draws; defaults to the fit's own seed.
        log_likelihood : bool
            Include the pointwise log-likelihood, shape (chain, draw, N); turn off for
            very large N, where it would need draws * N floats.

        Returns
        -------
        arviz.InferenceData
            Groups ``posterior``, ``observed_data``, ``log_likelihood`` and ``fit``
            (ELBO trace and variational parameters).
        """
        rng = np.random.default_rng(self.seed if seed is None else seed)
        posterior = self.posterior.draw(draws, rng)
        if log_likelihood:
            loglik = self.model.pointwise_log_likelihood(self.data, posterior)
        else:
            chain, draw = next(iter(posterior.values())).shape[:2]
            loglik = np.zeros((chain, draw, self.data.shape[0]))
        attrs = {
            "gmmkit_method": self.method,
            "gmmkit_model": repr(self.model),
            "point_estimate": int(self.posterior.kind.is_point_estimate),
            "posterior_kind": self.posterior.kind.name,
        }
        return _arviz.make_inference_data(
            posterior=posterior,
            dims=self.model.parameter_dims,
            observed=self.data,
            log_likelihood=loglik,
            fit_variables=self.fit_variables(),
            attrs=attrs,
        )

    @cached_property
    def idata(self):
        """``to_inference_data()`` with default arguments, computed once."""
        return self.to_inference_data()

    def summary_dict(self) -> dict[str, Any]:
        """JSON-ready description: method, model, ELBO, convergence and parameters."""
        return _jsonable(
            {
                "method": self.method,
                "model": self.model.to_dict(),
                "elbo": float(self.elbo),
                "elbo_se": float(self.elbo_se),
                "log_evidence": float(self.log_evidence),
                "log_evidence_source": self.log_evidence_source,
                "converged": bool(self.converged),
                "n_iter": int(self.n_iter),
                "elapsed_s": float(self.elapsed_s),
                "seed": self.seed,
                "restart_elbos": self.restart_elbos,
                "restart_failures": list(self.restart_failures),
                "variational_params": dict(self.posterior.params()),
                "weights": self.weights,
                "means": self.means,
                "covariances": self.covariances,
            }
        )

    def save(self, directory: str | Path, *, draws: int = 1000) -> Path:
        """Write the fit to ``directory`` (created if needed).

        Files: ``responsibilities.csv`` (N rows, K columns), ``params.json``,
        ``elbo_trace.csv`` (iteration, elbo and, for EM, log-likelihood and KL) and
        ``idata.nc`` (the InferenceData of :meth:`to_inference_data`).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        header = ",".join(f"component_{k}" for k in range(self.n_components))
        np.savetxt(
            directory / "responsibilities.csv", self.responsibilities, delimiter=",",
            header=header, comments="", fmt="%.10g",
        )
        (directory / "params.json").write_text(json.dumps(self.summary_dict(), indent=2))
        columns = {"iteration": np.arange(len(self.elbo_trace)), "elbo": self.elbo_trace}
        if len(self.time_trace) == len(self.elbo_trace):
            columns["time_s"] = self.time_trace
        if self.log_likelihood_trace is not None:
            columns["log_likelihood"] = self.log_likelihood_trace
        if self.kl_trace is not None:
            columns["kl"] = self.kl_trace
        np.savetxt(
            directory / "elbo_trace.csv", np.column_stack(list(columns.values())),
            delimiter=",", header=",".join(columns), comments="", fmt="%.17g",
        )
        _arviz.to_netcdf(self.to_inference_data(draws=draws), directory / "idata.nc")
        return directory
