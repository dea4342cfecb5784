"""Errors of fitted parameters against known true values, robust to label switching.

The seed notebooks compare estimates with the truth component by component, which breaks
as soon as the fit labels its components in another order.  :func:`parameter_errors`
first matches components by their means (:func:`gmmkit.comparisons.matching.
match_components`, minimum total squared distance), then tabulates the errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gmmkit._validation import check_finite_array
from gmmkit.comparisons.matching import as_component_means, match_components

__all__ = ["parameter_errors"]

#: Columns of the table returned by :func:`parameter_errors`.
COLUMNS = (
    "parameter", "component", "estimated_component", "norm", "error", "relative_error",
    "estimate", "truth",
)


def _true_covariances(covariances: Any, k: int, d: int) -> np.ndarray:
    cov = check_finite_array("covariances", covariances)
    if cov.ndim == 1 and d == 1:
        cov = cov[:, None, None]  # univariate variances, shape (K,)
    if cov.shape != (k, d, d):
        raise ValueError(
            f"covariances must have shape ({k}, {d}, {d}) to match the fit, got shape "
            f"{cov.shape}"
        )
    return cov


def parameter_errors(
    fit: Any, weights: Any = None, means: Any = None, covariances: Any = None
) -> pd.DataFrame:
    """Tidy table of the errors of a fit's weights, means and covariances.

    Parameters
    ----------
    fit : Fit
        Any fit (or an object with ``weights`` (K,), ``means`` (K, D) or (K,) and
        ``covariances`` (K, D, D) attributes); its point estimates are compared.
    weights : array_like, shape (K,), optional
        True mixing weights.
    means : array_like, shape (K, D) or (K,)
        True component means; required, they define the matching.
    covariances : array_like, shape (K, D, D) or (K,) for D = 1, optional
        True covariances.

    Returns
    -------
    pandas.DataFrame
        One row per parameter and true component, with columns ``parameter``
        ("weights", "means", "covariances"), ``component`` (true component k),
        ``estimated_component`` (the fit's component matched to k), ``norm`` ("abs",
        "euclidean" or "frobenius"), ``error`` (that norm of estimate - truth),
        ``relative_error`` (error / norm of the truth; NaN when the truth is 0),
        ``estimate`` and ``truth`` (a float for weights, an array otherwise).

    Raises
    ------
    ValueError
        If ``means`` is missing, or a true parameter's shape does not match the fit.
    """
    if means is None:
        raise ValueError("means must be given: the true means define the component matching")
    est_means = as_component_means(fit.means, "fit.means")
    true_means = as_component_means(means, "means")
    k, d = est_means.shape
    if true_means.shape != (k, d):
        raise ValueError(
            f"means must have shape ({k}, {d}) to match the fit's {k} components and {d} "
            f"feature(s), got shape {true_means.shape}"
        )
    perm = match_components(est_means, true_means)

    rows: list[dict[str, Any]] = []

    def add(parameter: str, norm: str, estimate: np.ndarray, truth: np.ndarray) -> None:
        for comp in range(k):  # K rows per parameter
            est, tru = estimate[perm[comp]], truth[comp]
            error = float(np.linalg.norm(np.atleast_1d(est - tru).ravel()))
            size = float(np.linalg.norm(np.atleast_1d(tru).ravel()))
            rows.append({
                "parameter": parameter, "component": comp,
                "estimated_component": int(perm[comp]), "norm": norm, "error": error,
                "relative_error": error / size if size > 0 else float("nan"),
                "estimate": float(est) if np.ndim(est) == 0 else np.array(est),
                "truth": float(tru) if np.ndim(tru) == 0 else np.array(tru),
            })

    if weights is not None:
        true_weights = check_finite_array("weights", weights)
        if true_weights.shape != (k,):
            raise ValueError(
                f"weights must have shape ({k},) to match the fit, got shape "
                f"{true_weights.shape}"
            )
        add("weights", "abs", np.asarray(fit.weights, dtype=float), true_weights)
    add("means", "euclidean", est_means, true_means)
    if covariances is not None:
        true_cov = _true_covariances(covariances, k, d)
        est_cov = np.asarray(fit.covariances, dtype=float).reshape(k, d, d)
        add("covariances", "frobenius", est_cov, true_cov)
    return pd.DataFrame(rows, columns=list(COLUMNS))
