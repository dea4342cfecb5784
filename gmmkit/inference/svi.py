"""Stochastic variational inference (Hoffman, Blei, Wang & Paisley 2013) for the
univariate GMM (CAVI's family, :mod:`gmmkit.inference.cavi`) and Bishop's Bayesian GMM
(:mod:`gmmkit.inference.vb`), in memory.

The variational family is the closed-form one of CAVI / Bishop's VB; only the way the
global factors are fitted changes.  Every epoch visits the data once, in
ceil(N / ``batch_size``) minibatches of nearly equal size (at most ``batch_size`` points,
sizes differing by at most one) drawn without replacement: a fresh permutation per epoch,
from the fit's seeded Generator.  For each minibatch B, step t = 1, 2, ...:

1. local step: the responsibilities of the minibatch under the current global q, exactly
   the CAVI / VB E-step, and their sufficient statistics S_B;
2. intermediate global parameters: the CAVI / VB update as if the minibatch were the
   whole data replicated N/|B| times, i.e. from the statistics (N/|B|) S_B;
3. natural-gradient step: eta <- (1 - rho_t) eta + rho_t eta_hat with the Robbins-Monro
   step size rho_t = (t + tau)^(-kappa).

Natural parameters.  Bishop's q(pi) q(mu, Lambda) has natural parameters
(alpha; beta, beta m, W^-1 + beta m m^T, nu), and the univariate q(mu_k) = N(m_k, s2_k)
has (m_k / s2_k, -1 / (2 s2_k)).  Both are *affine* in the statistics of the E-step:
alpha = alpha0 + N_k, beta = beta0 + N_k, beta m = beta0 m0 + sum r x, W^-1 + beta m m^T =
W0^-1 + beta0 m0 m0^T + sum r x x^T, nu = nu0 + N_k (PRML 10.58-10.63 in raw-moment form),
and m/s2 = S_k / tau^2, -1/(2 s2) = -(1/sigma^2 + N_k/tau^2) / 2.  So the state stores the
natural parameters in those coordinates, eta = prior + T with T an "effective statistic"
of the same shape as the E-step's, and the step interpolates T.  That is exactly the
interpolation of the natural parameters (never of (m, W) or (m, s2)), and the
moment parameters are recovered with the very functions CAVI / VB use.  With
``batch_size = N``, ``kappa = 0`` (rho_t = 1) every step is one CAVI / VB iteration,
to rounding (the sums run in a permuted order).

Stopping: after ``n_epochs`` epochs, or earlier when the full-data ELBO at the end of an
epoch changes by at most ``tol`` nats from the previous epoch (absolute nats, as the
closed-form loop).  ``Fit.elbo_trace`` holds the exact full-data ELBO (the CAVI / VB bound
with the E-step recomputed on all data) of the initial state and at the end of every
epoch, so ``Fit.elbo`` is the full-data ELBO of the final global parameters.  No loop
visits single points; one Python iteration per minibatch.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from gmmkit._validation import check_int
from gmmkit._warnings import ConvergenceWarning, warn
from gmmkit.inference import cavi, vb
from gmmkit.inference.loop import RunResult, fit_from_run, progress_bar
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.result import Fit

__all__ = ["check_svi_options", "fit_svi", "step_size"]

#: batch_size=None means min(N, DEFAULT_BATCH_SIZE).
DEFAULT_BATCH_SIZE = 256


def step_size(t: int | np.ndarray, tau: float, kappa: float):
    """Robbins-Monro step size rho_t = (t + tau)^(-kappa) for steps t = 1, 2, ...

    Hoffman et al. need tau >= 0 and kappa in (0.5, 1] for convergence; kappa = 0 gives
    rho_t = 1 (every step replaces q by its intermediate value)."""
    return (np.asarray(t, dtype=float) + tau) ** (-kappa)


def check_svi_options(n_points: int, batch_size: Any, n_epochs: Any, tau: Any,
                      kappa: Any) -> tuple[int, int, float, float]:
    """Validate SVI's options against N; returns (batch_size, n_epochs, tau, kappa)."""
    if batch_size is None:
        batch_size = min(n_points, DEFAULT_BATCH_SIZE)
    batch_size = check_int("batch_size", batch_size, 1)
    if batch_size > n_points:
        raise ValueError(
            f"batch_size must be between 1 and the number of points N={n_points}, "
            f"got {batch_size}"
        )
    n_epochs = check_int("n_epochs", n_epochs, 1)
    tau = _number("tau", tau)
    if tau < 0:
        raise ValueError(f"tau must be a non-negative number, got {tau:g}")
    kappa = _number("kappa", kappa)
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"kappa must be in [0, 1], got {kappa:g}")
    return batch_size, n_epochs, tau, kappa


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


# ----------------------------------------------------------------------------- models
class _Univariate:
    """CAVI's family: T = (N_k, S_k) stacked as (K, 2)."""

    label = "SVI"

    def __init__(self, model: UnivariateGMM, x: np.ndarray) -> None:
        self.model, self.x, self.n = model, x, x.shape[0]

    def init(self, init: str, rng: np.random.Generator) -> np.ndarray:
        state = cavi.init_state(self.model, self.x, init, rng)
        # Natural parameters of the initial q(mu) in statistic coordinates (module doc).
        tau2, sigma2 = self.model.obs_sd**2, self.model.prior_sd**2
        n_k = tau2 * (1.0 / state.s2 - 1.0 / sigma2)
        s_k = tau2 * state.m / state.s2
        return np.stack([n_k, s_k], axis=1)

    def _means(self, T: np.ndarray):
        # Exactly cavi.step's variance and mean updates.
        s2 = 1.0 / (1.0 / self.model.prior_sd**2 + T[:, 0] / self.model.obs_sd**2)
        m = s2 * T[:, 1] / self.model.obs_sd**2
        return m, s2

    def permuted(self, perm: np.ndarray):
        return self.x[perm]

    def batch(self, data, start: int, stop: int):
        return data[start:stop]

    def statistics(self, batch, T: np.ndarray) -> np.ndarray:
        m, s2 = self._means(T)
        n_k, s_k, _ = cavi.assignment_statistics(self.model, batch, m, s2)
        return np.stack([n_k, s_k], axis=1)

    def full_elbo(self, T: np.ndarray) -> float:
        m, s2 = self._means(T)
        state = cavi._state_from_means(self.model, self.x, m, s2)
        return cavi.elbo(self.model, self.n, state)

    def finish(self, T: np.ndarray):
        m, s2 = self._means(T)
        posterior = cavi.GaussianMeansPosterior(self.model, m, s2)
        resp = np.exp(cavi.log_responsibilities(self.model, self.x, m, s2))
        return self.model, posterior, resp


class _Bishop:
    """Bishop's family: T = (N_k, sum r x, upper triangle of sum r x x^T), (K, p), the
    layout of ``vb._e_step``'s statistics."""

    label = "SVI"

    def __init__(self, model: BayesianGMM, X: np.ndarray) -> None:
        self.model = model.resolve(X)
        self.prob = vb._problem(self.model, X)
        self.X, self.n = X, X.shape[0]
        self.d = X.shape[1]

    def init(self, init: str, rng: np.random.Generator) -> np.ndarray:
        p = self.prob
        s = vb.init_state(p, self.model.n_components, init, rng)
        # Natural parameters of the initial q in statistic coordinates (module doc).
        n_k = s.beta - p.beta0
        s1 = s.beta[:, None] * s.m - p.beta0 * p.m0
        W_inv = np.einsum("kab,kcb->kac", s.W_inv_chol, s.W_inv_chol)
        s2 = (W_inv + s.beta[:, None, None] * np.einsum("ka,kb->kab", s.m, s.m)
              - p.W0_inv - p.beta0 * np.outer(p.m0, p.m0))
        return np.concatenate([n_k[:, None], s1, s2[:, p.iu[0], p.iu[1]]], axis=1)

    def permuted(self, perm: np.ndarray):
        p = self.prob
        if p.phi is not None:
            phi = p.phi[:, perm]
            return phi[1 : 1 + self.d], phi
        return np.ascontiguousarray(p.X_t[:, perm]), None

    def batch(self, data, start: int, stop: int):
        X_t, phi = data
        return self.prob._replace(
            X_t=X_t[:, start:stop], phi=None if phi is None else phi[:, start:stop])

    def _coefficients(self, T: np.ndarray):
        params = vb._m_step(self.prob, T)
        alpha, beta, m, W_inv_chol, nu = params
        ex = vb._expectations(alpha, nu, W_inv_chol)
        return params, vb._log_rho_coefficients(beta, m, nu, ex, self.prob.iu)

    def statistics(self, batch, T: np.ndarray) -> np.ndarray:
        _, coef = self._coefficients(T)
        stats, _ = vb._e_step(batch, coef)
        return stats

    def full_elbo(self, T: np.ndarray) -> float:
        state = vb._state(self.prob, *vb._m_step(self.prob, T))
        return vb.elbo(self.prob, state)

    def finish(self, T: np.ndarray):
        (alpha, beta, m, W_inv_chol, nu), coef = self._coefficients(T)
        resp = np.empty((self.n, self.model.n_components))
        vb._e_step(self.prob, coef, out=resp)
        posterior = vb.BishopPosterior(self.model, self.prob.centre, alpha, beta, m,
                                       W_inv_chol, nu)
        return self.model, posterior, resp


# ----------------------------------------------------------------------------- loop
def _run(problem, *, init: str, rng: np.random.Generator, batch_size: int, n_epochs: int,
         tau: float, kappa: float, tol: float, progress: bool):
    start_time = time.perf_counter()
    n = problem.n
    T = problem.init(init, rng)
    trace = [problem.full_elbo(T)]
    times = [time.perf_counter() - start_time]
    epoch_step_sizes = []
    # ceil(N / batch_size) minibatches of nearly equal size (never a tiny last one, whose
    # N/|B| scaling would make its step far noisier than the others).
    n_batches = -(-n // batch_size)
    bounds = [(i * n) // n_batches for i in range(n_batches + 1)]
    t = 0
    converged = False
    epochs = 0
    with progress_bar(progress, problem.label, total=n_epochs) as bar:
        for epochs in range(1, n_epochs + 1):  # noqa: B007 - read after the loop
            data = problem.permuted(rng.permutation(n))
            for lo, hi in itertools.pairwise(bounds):
                t += 1
                rho = float(step_size(t, tau, kappa))
                # Intermediate natural parameters: the minibatch replicated N/|B| times.
                T_hat = (n / (hi - lo)) * problem.statistics(problem.batch(data, lo, hi), T)
                T = (1.0 - rho) * T + rho * T_hat  # the natural-gradient step
            epoch_step_sizes.append(rho)
            trace.append(problem.full_elbo(T))
            times.append(time.perf_counter() - start_time)
            bar.update(description=f"{problem.label}: {trace[-1]:.6g}")
            if abs(trace[-1] - trace[-2]) <= tol:
                converged = True
                break
    if not converged:
        last = trace[-1] - trace[-2]
        warn(
            f"{problem.label} did not converge: stopped at n_epochs={epochs} epochs with "
            f"the full-data ELBO still changing by {last:+.3g} nats in the last epoch "
            f"(tol={tol:g} nats); raise n_epochs or tol",
            ConvergenceWarning,
        )
    trace_arr = np.array(trace)
    run = RunResult(
        state=T, trace=trace_arr, time_trace=np.array(times), monitor_traces={},
        converged=converged, n_iter=epochs, restart_objectives=trace_arr[-1:],
        restart_failures=(), elapsed_s=time.perf_counter() - start_time,
    )
    diagnostics = {
        "step_size_schedule": "rho_t = (t + tau)^(-kappa), t = 1, 2, ... (one t per minibatch)",
        "tau": tau, "kappa": kappa, "batch_size": batch_size,
        "steps_per_epoch": n_batches, "n_steps": t, "n_epochs": epochs,
        "final_step_size": float(step_size(t, tau, kappa)),
        "step_size_at_epoch_end": np.array(epoch_step_sizes),
        "elbo_trace_is": "full-data ELBO of the initial state and after every epoch",
    }
    return run, diagnostics


def fit_svi(
    model: UnivariateGMM | BayesianGMM,
    x: np.ndarray,
    *,
    seed: int,
    init: str,
    tol: float,
    progress: bool,
    method: str,
    batch_size: int | None,
    n_epochs: int,
    tau: float,
    kappa: float,
) -> Fit:
    """SVI for ``UnivariateGMM`` (x of shape (N,)) or ``BayesianGMM`` (x (N, D)), already
    validated by :func:`gmmkit.fit`; the options are checked here against N."""
    from threadpoolctl import threadpool_limits

    if isinstance(model, BayesianGMM) and model.covariance != "full":
        # SVI's natural gradients are written for the Normal-Wishart family only.
        raise ValueError(f"method {method!r} fits BayesianGMM with covariance='full' only, "
                         f"got covariance={model.covariance!r}; use the closed-form VB")
    batch_size, n_epochs, tau, kappa = check_svi_options(
        x.shape[0], batch_size, n_epochs, tau, kappa)
    rng = np.random.default_rng(seed)
    problem = _Univariate(model, x) if isinstance(model, UnivariateGMM) else _Bishop(model, x)
    # One BLAS thread, as fit_vb: the minibatch GEMMs are too small for threads to pay.
    with threadpool_limits(limits=1, user_api="blas"):
        run, diagnostics = _run(problem, init=init, rng=rng, batch_size=batch_size,
                                n_epochs=n_epochs, tau=tau, kappa=kappa, tol=tol,
                                progress=progress)
        fitted_model, posterior, resp = problem.finish(run.state)
    return fit_from_run(
        run, method=method, model=fitted_model, data=x, posterior=posterior,
        responsibilities=resp, seed=seed, diagnostics=diagnostics,
    )
