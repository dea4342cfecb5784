"""A comparison with its presentation: figures, the markdown report and saving to disk.

:func:`gmmkit.comparisons.compare` computes a plain :class:`~gmmkit.comparisons.Comparison`
(tables and verdicts); :func:`compare` here returns the same data as a
:class:`ComparisonReport`, which adds the figures (:mod:`gmmkit.report.figures`), the
markdown report and :meth:`ComparisonReport.save`.  ``gmmkit.compare`` is this function.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gmmkit import _arviz
from gmmkit.comparisons.compare import Comparison, truth_parts
from gmmkit.comparisons.compare import compare as compute_comparison
from gmmkit.comparisons.diagnostics import KHAT_THRESHOLD
from gmmkit.output import atomic_directory
from gmmkit.report.figures import plot_elbo_traces, plot_fit

__all__ = ["ComparisonReport", "compare"]


@dataclasses.dataclass(frozen=True, eq=False)
class ComparisonReport(Comparison):
    """A :class:`~gmmkit.comparisons.Comparison` with its figures, report and ``save``."""

    @classmethod
    def of(cls, comparison: Comparison) -> ComparisonReport:
        """The report of a computed comparison (the same data, shared, not copied)."""
        return cls(**{f.name: getattr(comparison, f.name)
                      for f in dataclasses.fields(comparison)})

    def plot_forest(self) -> Figure:
        """``az.plot_forest`` of the aligned fits' component means, one colour per fit."""
        var = self.aligned[self.reference].model.means_variable
        idatas = {n: d for n, d in self._idatas.items() if var in d.posterior}
        n_rows = sum(int(np.prod(d.posterior[var].shape[2:])) for d in idatas.values())
        fig = Figure(figsize=(7, 1.5 + 0.25 * n_rows), layout="constrained")
        ax = fig.subplots()
        _arviz.plot_forest(idatas, var_names=[var], ax=ax)
        ax.set_title(f"posterior of {var} (aligned to {self.reference})")
        return fig

    def plot_elbo(self) -> Figure:
        """ELBO against iteration and wall time, one line per fit with an ELBO trace, and
        the log evidence as a horizontal line."""
        with_trace = {
            n: f for n, f in self.fits.items()
            if np.asarray(f.elbo_trace).size and np.isfinite(f.elbo_trace).any()
        }
        evidence = self.table["log_evidence"].to_numpy(dtype=float)
        finite = evidence[np.isfinite(evidence)]
        return plot_elbo_traces(with_trace, float(finite[0]) if finite.size else None)

    def plot_trace(self, name: str | None = None) -> Figure:
        """ArviZ trace plot (density and trace) of one aligned fit; the reference by
        default."""
        name = self.reference if name is None else name
        self._check_name(name)
        idata = self._idatas[name]
        n_vars = len(idata.posterior.data_vars)
        fig = Figure(figsize=(10, 2.4 * n_vars), layout="constrained")
        axes = fig.subplots(n_vars, 2, squeeze=False)
        _arviz.plot_trace(idata, axes=axes)
        fig.suptitle(f"{name} (aligned to {self.reference})")
        return fig

    def plot_khat(self) -> Figure:
        """PSIS k-hat of every variational fit, with the 0.5 and 0.7 thresholds."""
        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.subplots()
        names = list(self.psis)
        khats = [self.psis[n].khat for n in names]
        colours = ["C3" if k > KHAT_THRESHOLD else "C0" for k in khats]
        ax.bar(names, khats, color=colours)
        ax.axhline(0.5, color="0.5", ls=":", lw=1, label="0.5 (good below)")
        ax.axhline(KHAT_THRESHOLD, color="C3", ls="--", lw=1, label="0.7 (do not trust above)")
        ax.set_ylabel("PSIS k-hat")
        ax.set_title("Can the variational posterior be trusted?")
        ax.legend(loc="upper right")
        return fig

    def plot_fit(self) -> Figure:
        """The data with every aligned fit drawn on it (1-D: predictive densities; 2-D:
        covariance ellipses; >= 3-D: 3-D scatter and pairs plot)."""
        data = np.asarray(next(iter(self.fits.values())).data)
        truth = self.truth
        if truth is not None and (data.ndim == 1 or data.shape[1] == 1):
            truth = _truth_density_1d(truth_parts(truth))
        elif truth is not None:
            parts = truth_parts(truth)
            truth = types.SimpleNamespace(
                means=parts["means"], covariances=parts.get("covariances")
            )
        return plot_fit(data, dict(self.aligned), truth)

    def figures(self) -> dict[str, Figure]:
        """Every standard figure, by file stem."""
        figs = {"elbo": self.plot_elbo(), "fit": self.plot_fit(), "forest": self.plot_forest()}
        if self.psis:
            figs["khat"] = self.plot_khat()
        for name, fit in self.fits.items():
            if not fit.posterior.kind.is_point_estimate:
                figs[f"trace_{name}"] = self.plot_trace(name)
        return figs

    # ------------------------------------------------------------------ report
    def to_markdown(self, figure_files: Sequence[str] = ()) -> str:
        """The report: the table, the reading and links to the figures."""
        table = self.table.reset_index()
        header = "| " + " | ".join(table.columns) + " |"
        rule = "|" + "---|" * len(table.columns)
        body = [
            "| " + " | ".join(_format_cell(v) for v in row) + " |"
            for row in table.itertuples(index=False)
        ]
        parts = [
            f"# Comparison of {', '.join(self.fits)} (reference: {self.reference})", "",
            header, rule, *body, "", "## Reading", "",
            *[f"- {line}" for line in self.reading()], "",
        ]
        if figure_files:
            parts += ["## Figures", ""]
            parts += [f"![{Path(f).stem}]({f})" for f in figure_files]
            parts.append("")
        return "\n".join(parts)

    def save(
        self, directory: str | Path, *, force: bool = False, dpi: int = 100,
        log_likelihood: bool | None = None,
    ) -> Path:
        """Write ``table.csv``, ``summary.csv``, ``report.md``, every figure as PNG and
        every aligned fit as ``fits/<name>.nc``; returns the directory.

        The directory is written atomically (a temporary directory swapped into place,
        see :mod:`gmmkit.output`); an existing non-empty directory is refused unless
        ``force`` and it is a gmmkit output (it carries gmmkit's manifest).  With
        ``log_likelihood=False`` the netCDF files omit the pointwise log-likelihood
        (draws x N floats per fit), which is most of their size and writing time; None
        (default) includes it where it is small (see ``Fit.to_inference_data``).
        """
        with atomic_directory(directory, force=force, kind="comparison",
                              option="directory", force_name="force=True") as tmp:
            self.table.to_csv(tmp / "table.csv")
            self.summary().to_csv(tmp / "summary.csv")
            files = []
            for stem, fig in self.figures().items():
                fig.savefig(tmp / f"{stem}.png", dpi=dpi)
                files.append(f"{stem}.png")
            (tmp / "fits").mkdir()
            for name, fit in self.aligned.items():
                idata = (
                    self._idatas[name] if log_likelihood is False else
                    fit.to_inference_data(draws=self.n_draws, seed=self.seed,
                                          log_likelihood=log_likelihood)
                )
                _arviz.to_netcdf(idata, tmp / "fits" / f"{name}.nc")
            (tmp / "report.md").write_text(self.to_markdown(files))
        return Path(directory)


def compare(*args: Any, **kwargs: Any) -> ComparisonReport:
    """:func:`gmmkit.comparisons.compare`, returned as a :class:`ComparisonReport`."""
    return ComparisonReport.of(compute_comparison(*args, **kwargs))


compare.__doc__ = (compute_comparison.__doc__ or "").replace(
    "    Comparison\n", "    ComparisonReport\n        The comparison with its figures, "
    "report and ``save``.\n", 1)


def _format_cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)




def _truth_density_1d(parts: Mapping[str, np.ndarray]):
    from scipy.stats import norm

    means = parts["means"].ravel()
    weights = parts.get("weights", np.full(means.size, 1.0 / means.size)).ravel()
    sds = np.sqrt(parts["covariances"].ravel()) if "covariances" in parts else np.ones(means.size)

    def density(grid: np.ndarray) -> np.ndarray:
        return (weights * norm.pdf(np.asarray(grid)[:, None], means, sds)).sum(axis=1)

    return density
