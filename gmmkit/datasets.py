"""Reference data sets: the two univariate experiments and Old Faithful (Bishop §10.2)."""

from __future__ import annotations

from importlib import resources

import numpy as np

from gmmkit._validation import check_int
from gmmkit.models.base import MixtureData
from gmmkit.models.univariate import UnivariateGMM

__all__ = ["MixtureData", "blei_example", "fixed_means", "old_faithful"]

FIXED_MEANS = (1.0, 5.0, 7.0, 9.0, 15.0)


def blei_example(
    n: int = 1000, seed: int | np.random.Generator | None = 0, *, n_components: int = 5,
    prior_sd: float = 3.0,
) -> MixtureData:
    """Blei et al. (2017) §3 example: K=5 means drawn from N(0, 3^2), N=1000, tau=1."""
    return UnivariateGMM(n_components, prior_sd).sample(n, seed)


def fixed_means(
    n_per_component: int = 1000, seed: int | np.random.Generator | None = 0,
    means: tuple[float, ...] = FIXED_MEANS, obs_sd: float = 1.0,
) -> MixtureData:
    """Unit-variance components at means [1, 5, 7, 9, 15], ``n_per_component`` points each."""
    n_per_component = check_int("n_per_component", n_per_component, 1)
    rng = np.random.default_rng(seed)
    centres = np.asarray(means, dtype=float)
    labels = np.repeat(np.arange(centres.size), n_per_component)
    x = rng.normal(centres[labels], obs_sd)
    k = centres.size
    return MixtureData(
        x=x, labels=labels, means=centres, weights=np.full(k, 1.0 / k),
        covariances=np.full((k, 1, 1), obs_sd**2),
    )


def old_faithful(standardize: bool = False) -> np.ndarray:
    """Old Faithful eruptions (minutes) and waiting times (minutes), shape (272, 2).

    R's ``datasets::faithful``, used by Bishop (PRML §10.2, Fig. 10.6).  With
    ``standardize=True`` each column is centred and scaled to unit (population) sd.
    """
    text = resources.files("gmmkit").joinpath("data/faithful.csv").read_text()
    X = np.loadtxt(text.splitlines(), delimiter=",", skiprows=1)
    if standardize:
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X


def old_faithful_path():
    """Path of the packaged ``faithful.csv`` (header ``eruptions,waiting``)."""
    return resources.files("gmmkit").joinpath("data/faithful.csv")
