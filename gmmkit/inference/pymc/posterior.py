"""What a PyMC fit returns: draws (:class:`DrawsPosterior`) and, for ADVI, the fitted
Gaussian q in the unconstrained space (:class:`VariationalQ`).

Both hold NumPy arrays only, plus (q) a reference to a *pure* compiled function of
(flat draws, data): nothing a returned fit references is changed by a later fit, and
both pickle (q drops the compiled function and recompiles it on first use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import logsumexp

from gmmkit.inference.pymc.cache import CACHE
from gmmkit.inference.pymc.graphs import OWN_AXIS_VARIABLES, GraphKey, cached_graph
from gmmkit.models.gaussian import LOG_2PI
from gmmkit.posterior import PosteriorKind

__all__ = ["DrawsPosterior", "VariationalQ", "batched_log_density"]



class DrawsPosterior:
    """A posterior represented by draws (chain, draw, ...) under canonical names.

    Implements :class:`gmmkit.posterior.Posterior`.  Predictions average over the draws:
    responsibilities are the posterior mean of p(z_i = k | x_i, theta), and the
    predictive density is log mean_s p(x | theta_s).
    """

    _BLOCK = 256  # draws per vectorised block: bounds memory at BLOCK * N * K floats

    def __init__(self, model, draws: Mapping[str, np.ndarray], *,
                 approx: VariationalQ | None = None, log_k_factorial: float = 0.0,
                 sample_stats: Mapping[str, np.ndarray] | None = None) -> None:
        self.model = model
        self.n_components = model.n_components
        self._draws = {k: np.array(v, dtype=float) for k, v in draws.items()}
        #: Per-draw sampler statistics (chain, draw) under ArviZ's names (NUTS: diverging,
        #: energy, tree_depth, step_size, lp, acceptance_rate); empty for other methods.
        self._sample_stats = {k: np.array(v) for k, v in (sample_stats or {}).items()}
        self._freeze()
        self._approx = approx  # (VariationalQ) for ADVI's importance weights
        # Draws from a fitted q (ADVI) are not posterior draws: say so.
        self.kind = PosteriorKind.SAMPLER_DRAWS if approx is None else PosteriorKind.Q_DRAWS
        #: log K! when q lives on the ordered region (ordered transform), else 0: the
        #: importance-sampling estimate ``logsumexp(w) - log S`` is of log Z_ordered,
        #: which is *exactly* log Z - log K! (the mixture is label-symmetric), so adding
        #: this gives the exchangeable model's log Z.
        self.log_k_factorial = float(log_k_factorial)

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of the draws, and of their ``params()`` summaries, that have no component
        axis (the sticks of stick-breaking weights, a tied covariance): read by
        ``Fit.fit_variables``, which otherwise puts a component axis first."""
        own = {}
        for name in self._draws:
            dims = self.model.parameter_dims.get(name, OWN_AXIS_VARIABLES.get(name))
            if dims is not None and "component" not in dims:
                for key in (name, f"{name}_mean", f"{name}_sd"):
                    own[key] = tuple(dims)
        return own

    @property
    def shared_params(self) -> tuple[str, ...]:
        """The ``params()``/``point_estimates`` entries shared by every component (no
        component axis, e.g. a tied covariance), which label permutations leave alone."""
        return tuple(name for name, dims in self.param_dims.items()
                     if "feature" in dims)

    def _freeze(self) -> None:
        for value in (*self._draws.values(), *self.__dict__.get("_sample_stats", {}).values()):
            value.setflags(write=False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._freeze()

    @property
    def draws(self) -> dict[str, np.ndarray]:
        """The stored draws (read-only), each with leading (chain, draw) axes."""
        return dict(self._draws)

    @property
    def sample_stats(self) -> dict[str, np.ndarray]:
        """Per-draw sampler statistics (read-only), each of shape (chain, draw); empty
        when the method records none (SMC, ADVI, fits pickled before they were kept)."""
        return dict(self.__dict__.get("_sample_stats", {}))

    def _flat(self) -> dict[str, np.ndarray]:
        return {k: v.reshape((-1, *v.shape[2:])) for k, v in self._draws.items()}

    def _log_components_blocks(self, x: np.ndarray):
        flat = self._flat()
        n_draws = next(iter(flat.values())).shape[0]
        for start in range(0, n_draws, self._BLOCK):
            yield self.model.log_components(
                x, {k: v[start : start + self._BLOCK] for k, v in flat.items()})

    def _n_draws(self) -> int:
        return int(np.prod(next(iter(self._draws.values())).shape[:2]))

    def log_responsibilities(self, x: np.ndarray) -> np.ndarray:
        total = None
        for comp in self._log_components_blocks(x):
            resp = np.exp(comp - logsumexp(comp, axis=2, keepdims=True)).sum(axis=0)
            total = resp if total is None else total + resp
        mean = total / self._n_draws()
        with np.errstate(divide="ignore"):
            return np.log(mean)

    def log_predictive(self, x: np.ndarray) -> np.ndarray:
        blocks = [logsumexp(comp, axis=2) for comp in self._log_components_blocks(x)]
        return logsumexp(np.concatenate(blocks, axis=0), axis=0) - np.log(self._n_draws())

    def draw(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The stored draws (``n_draws`` and ``rng`` are ignored: sampler output is fixed)."""
        return {k: v.copy() for k, v in self._draws.items()}

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for name, value in self._flat().items():
            out[f"{name}_mean"] = value.mean(axis=0)
            out[f"{name}_sd"] = value.std(axis=0, ddof=1) if value.shape[0] > 1 else 0 * value[0]
        return out

    def point_estimates(self) -> dict[str, np.ndarray]:
        return self.model.summarise_draws(self._flat())

    def log_importance_weights(
        self, x: np.ndarray, n_draws: int, rng: np.random.Generator
    ) -> np.ndarray:
        """log p(x, theta_s) + log|J| - log q(theta_s) for theta_s ~ q (ADVI only).

        Computed in the unconstrained space (z summed out of p) on ``x``, which must have
        the training data's shape, so ``logsumexp(w) - log S`` estimates log Z_ordered =
        log Z - ``log_k_factorial`` under the ordered transform, log Z otherwise.
        """
        if self._approx is None:
            raise ValueError("log_importance_weights needs a variational fit (draws from "
                             "a fitted q), got sampler draws")
        return self._approx.log_weights(n_draws, rng, x)


class VariationalQ:
    """PyMC's fitted Gaussian q in the unconstrained space, drawn from with NumPy.

    Parameters
    ----------
    mean : ndarray (d,)
        q's mean, a flat vector laid out as ``ordering``.
    chol : ndarray (d, d)
        A lower-triangular factor of q's covariance (diagonal for mean-field q).
    ordering : tuple of (value-variable name, slice, shape)
        The layout of the flat vector.
    data : ndarray
        The training data: the default ``x`` of the importance weights.
    graph_key : GraphKey
        The graph q was fitted on (model with concrete priors, data shape, ordered); the
        batched log density is compiled from it.
    """

    def __init__(self, mean: np.ndarray, chol: np.ndarray, ordering, data: np.ndarray,
                 graph_key: GraphKey) -> None:
        self.mean = _frozen(mean)
        self.chol = _frozen(chol)
        self.ordering = tuple((str(name), slice(s.start, s.stop), tuple(shape))
                              for name, s, shape in ordering)
        self.data = _frozen(data)
        self.graph_key = graph_key
        self._logp = None  # compiled on first use (and after unpickling)

    @classmethod
    def from_approximation(cls, approx, data: np.ndarray, graph_key: GraphKey
                           ) -> VariationalQ:
        """q's parameters copied out of a fitted PyMC approximation (single group)."""
        (group,) = approx.groups
        mean = np.asarray(approx.mean.eval(), dtype=float)
        if hasattr(approx, "L"):
            chol = np.asarray(approx.L.eval(), dtype=float)
        else:
            chol = np.diag(np.asarray(approx.std.eval(), dtype=float))
        ordering = [(name, s, shape) for name, s, shape, _ in group.ordering.values()]
        return cls(mean, chol, ordering, data, graph_key)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_logp"] = None  # compiled code does not pickle; recompiled on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in ("mean", "chol", "data"):
            setattr(self, name, _frozen(getattr(self, name)))

    @property
    def log_density(self):
        """The compiled f(flat (S, d), x) -> (S,) of log p(x, theta) + log|J|."""
        if self._logp is None:
            self._logp = batched_log_density(self.graph_key, self.data)
        return self._logp

    def sample_flat(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draws (n, d) from q and log q at them."""
        d = self.mean.size
        eps = rng.standard_normal((n, d))
        flat = self.mean + eps @ self.chol.T
        log_q = (-0.5 * np.sum(eps**2, axis=1) - np.sum(np.log(np.abs(np.diag(self.chol))))
                 - 0.5 * d * LOG_2PI)
        return flat, log_q

    def log_weights(self, n: int, rng: np.random.Generator, x=None) -> np.ndarray:
        """log p(x, theta) + log|J| - log q(theta) for ``n`` draws of q; ``x`` defaults to
        the training data and must have its shape."""
        x = self.data if x is None else np.asarray(x, dtype=float)
        if x.shape != self.data.shape:
            raise ValueError(f"x must have the training data's shape {self.data.shape}, "
                             f"got {x.shape}")
        flat, log_q = self.sample_flat(n, rng)
        return self.log_density(flat, x) - log_q

    def precise_elbo(self, rng, target_se: float, max_draws: int) -> tuple[float, float, int]:
        """ELBO = mean of the log weights, drawn in batches until its SE <= ``target_se``."""
        weights: list[np.ndarray] = []
        batch = 500
        while True:
            weights.append(self.log_weights(batch, rng))
            w = np.concatenate(weights)
            se = float(w.std(ddof=1) / np.sqrt(w.size))
            if se <= target_se or w.size >= max_draws:
                return float(w.mean()), se, int(w.size)
            # n needed for the target: (sd / target)^2; draw what is missing (capped).
            need = int((w.std(ddof=1) / target_se) ** 2 * 1.1) - w.size
            batch = int(min(max(need, 500), max_draws - w.size))


def _frozen(value) -> np.ndarray:
    out = np.array(value, dtype=float)
    out.setflags(write=False)
    return out


def batched_log_density(key: GraphKey, x: np.ndarray):
    """The compiled f(flat (S, d), x) -> (S,) of log p(x, theta) + log|J| for the graph of
    ``key``, vectorised over S flat unconstrained draws (laid out as the graph's value
    variables, which is q's ordering).

    The data are an explicit input, not the graph's shared ``pm.Data``: the function is
    pure, so every fit (and every later call) can share it.  Cached by value under
    ``("log density", key)``; ``x`` (of shape ``key.shape``) only builds the graph on a
    cache miss.
    """
    def compile_():
        import pytensor
        from pytensor.compile.sharedvalue import SharedVariable
        from pytensor.graph.replace import vectorize_graph

        graph, _ = cached_graph(key, x)
        point = graph.initial_point()
        flat = pytensor.tensor.matrix("flat")
        replace, start = {}, 0
        for var in graph.value_vars:
            shape = point[var.name].shape
            size = int(np.prod(shape))
            replace[var] = flat[:, start : start + size].reshape((flat.shape[0], *shape))
            start += size
        shared = graph["x"]  # every graph's data: pm.Data("x")
        data = shared.type(name="x")
        replace[shared] = data
        # The dims' lengths are shared variables too; the key fixes them: constants.
        for length in graph.dim_lengths.values():
            if isinstance(length, SharedVariable):
                replace[length] = pytensor.tensor.constant(length.get_value(), dtype=length.dtype)
        out = vectorize_graph(graph.logp(jacobian=True), replace=replace)
        return pytensor.function([flat, data], out)

    fn, _ = CACHE.get_or_build(("log density", key), compile_)
    return fn
