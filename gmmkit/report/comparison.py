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
from gmmkit.report.figures import feature_labels, plot_elbo_traces, plot_fit
from gmmkit.report.tables import (
    NOT_APPLICABLE,
    display_frame,
    evidence_sources,
    format_value,
    reference_warning,
    show_method,
    shown_columns,
)

__all__ = ["ComparisonReport", "compare"]


@dataclasses.dataclass(frozen=True, eq=False)
class ComparisonReport(Comparison):
    """A :class:`~gmmkit.comparisons.Comparison` with its figures, report and ``save``.

    Attributes (besides the comparison's)
    ----------
    min_weight : float
        Components of the reference whose weight is below this are not drawn (the value
        :func:`compare` was called with: the agreement columns leave them out too).
    feature_names : tuple of str or None
        The data's column names, for axis labels and parameter names.
    """

    min_weight: float = 0.0
    feature_names: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls, comparison: Comparison, *, min_weight: float | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> ComparisonReport:
        """The report of a computed comparison (the same data, shared, not copied).

        ``min_weight`` and ``feature_names`` default to the comparison's own attributes
        of those names when it has them, else 0 and None.
        """
        values = {f.name: getattr(comparison, f.name) for f in dataclasses.fields(comparison)}
        if min_weight is None:
            min_weight = getattr(comparison, "min_weight", 0.0)
        if feature_names is None:
            feature_names = getattr(comparison, "feature_names", None)
        values["min_weight"] = float(min_weight)
        values["feature_names"] = (None if feature_names is None
                                   else tuple(str(n) for n in feature_names))
        mine = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in mine})

    # ------------------------------------------------------------------ components
    def live_components(self, min_weight: float | None = None) -> np.ndarray:
        """Indices of the reference's components with weight at least ``min_weight``
        (default: the report's ``min_weight``); the heaviest one if none is."""
        min_weight = self.min_weight if min_weight is None else float(min_weight)
        weights = np.asarray(self.aligned[self.reference].weights, dtype=float)
        live = np.flatnonzero(weights >= min_weight)
        return live if live.size else np.array([int(np.argmax(weights))])

    def _component_map(self, name: str, live: np.ndarray) -> tuple[list[int], list[int]]:
        """(components of fit ``name``, the reference components they stand for).

        Aligned fits with the reference's K share its labels; a fit with another K
        (``align="match"``) has its components matched to the live reference ones by
        the distance of their means.
        """
        fit, ref = self.aligned[name], self.aligned[self.reference]
        if fit.n_components == ref.n_components:
            return [int(k) for k in live], [int(k) for k in live]
        from scipy.optimize import linear_sum_assignment

        ref_means = np.asarray(ref.means, dtype=float).reshape(ref.n_components, -1)[live]
        fit_means = np.asarray(fit.means, dtype=float).reshape(fit.n_components, -1)
        rows, cols = linear_sum_assignment(
            ((ref_means[:, None, :] - fit_means[None, :, :]) ** 2).sum(-1))
        order = np.argsort(rows)
        return [int(cols[o]) for o in order], [int(live[rows[o]]) for o in order]

    def _feature_names(self) -> list[str]:
        data = np.asarray(next(iter(self.fits.values())).data)
        n_features = 1 if data.ndim == 1 else data.shape[1]
        names = feature_labels(n_features, self.feature_names)
        return names if len(set(names)) == len(names) else feature_labels(n_features)

    def _posterior(self, name: str, live: np.ndarray, var_names: Sequence[str] | None = None):
        """The aligned fit's posterior (an xarray Dataset) with the live components only,
        named "component 1", ... (the reference's numbers) and the features by name."""
        posterior = self._idatas[name].posterior
        if var_names is not None:
            posterior = posterior[[v for v in var_names if v in posterior]]
        if "component" in posterior.dims:
            fit_idx, ref_idx = self._component_map(name, live)
            posterior = posterior.isel(component=fit_idx).assign_coords(
                component=[f"component {k + 1}" for k in ref_idx])
        features = self._feature_names()
        for dim in ("feature", "feature_bis"):
            if dim in posterior.dims and posterior.sizes[dim] == len(features):
                posterior = posterior.assign_coords({dim: features})
        return posterior

    # ------------------------------------------------------------------ figures
    def plot_forest(self, min_weight: float | None = None) -> Figure:
        """``az.plot_forest`` of the aligned fits' component means, one colour per fit,
        for the reference's components with weight at least ``min_weight`` (default: the
        value :func:`compare` was called with), numbered from 1."""
        var = self.aligned[self.reference].model.means_variable
        live = self.live_components(min_weight)
        posteriors = {n: self._posterior(n, live, [var]) for n in self._idatas
                      if var in self._idatas[n].posterior}
        n_rows = sum(int(np.prod(p[var].shape[2:])) for p in posteriors.values())
        fig = Figure(figsize=(9, 2.0 + 0.3 * n_rows), layout="constrained")
        ax = fig.subplots()
        _arviz.plot_forest(posteriors, var_names=[var], ax=ax)
        # ArviZ names the variable on its first row only: name it on every row.
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        ax.set_yticks(ax.get_yticks(), [f"{var}{t}" if t.startswith("[") else t
                                        for t in ticks])
        n_ref = self.aligned[self.reference].n_components
        dropped = n_ref - live.size
        threshold = self.min_weight if min_weight is None else min_weight
        title = f"Posterior of the component means, aligned to {self.reference}"
        if dropped:
            title += (f"\n{live.size} of {n_ref} components shown: {dropped} with "
                      f"{self.reference} weight < {threshold:g} left out")
        ax.set_title(title)
        ax.set_xlabel("component mean (data units): point, 50 % and 94 % HDI")
        ax.set_ylabel("parameter")
        return fig

    def plot_elbo(self) -> Figure:
        """The objective of every fit with a trace, one row per kind of fit (closed-form
        ELBO; ADVI's running mean ± 1 sd; EM's log-likelihood), against iteration and
        wall time, with the log evidence on the Bayesian rows
        (:func:`~gmmkit.report.figures.plot_elbo_traces`)."""
        with_trace = {
            n: f for n, f in self.fits.items()
            if (np.asarray(f.elbo_trace).size and np.isfinite(f.elbo_trace).any())
            or (f.log_likelihood_trace is not None and np.size(f.log_likelihood_trace))
        }
        evidence = self.table["log_evidence"].to_dict() if "log_evidence" in self.table \
            else None
        return plot_elbo_traces(with_trace, evidence)

    def plot_trace(self, name: str | None = None, min_weight: float | None = None) -> Figure:
        """ArviZ trace plot (density and draws) of the weights and component means of one
        aligned fit (the reference by default), live components only (see
        :meth:`plot_forest`)."""
        name = self.reference if name is None else name
        self._check_name(name)
        fit = self.aligned[name]
        var_names = [v for v in ("weights", fit.model.means_variable)
                     if v in self._idatas[name].posterior]
        posterior = self._posterior(name, self.live_components(min_weight), var_names)
        n_rows = sum(int(np.prod(posterior[v].shape[2:])) for v in var_names)
        compact = n_rows > 12
        if compact:
            n_rows = len(var_names)
        fig = Figure(figsize=(10, 0.6 + 2.0 * n_rows), layout="constrained")
        axes = fig.subplots(n_rows, 2, squeeze=False)
        _arviz.plot_trace(posterior, var_names=var_names, axes=axes, compact=compact)
        what = ("draws from q" if fit.posterior.kind.is_variational else "posterior draws")
        for ax_density, ax_draws in axes:
            label = _parameter_label(ax_density.get_title()) or "value"
            ax_density.set_title(label)
            ax_density.set_xlabel(label)
            ax_density.set_ylabel("density")
            ax_draws.set_xlabel("draw")
            ax_draws.set_ylabel(label)
            ax_draws.set_title(f"{label}: {what}")
        fig.suptitle(f"{name}: {what} of the weights and means (aligned to {self.reference})")
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
        ax.set_xlabel("variational fit")
        ax.set_title("Can the variational posterior be trusted?")
        ax.legend(loc="upper right")
        return fig

    def plot_fit(self) -> Figure:
        """The data with every aligned fit drawn on it (1-D: predictive densities; 2-D:
        covariance ellipses; more: a pairs grid), the axes named by ``feature_names``."""
        data = np.asarray(next(iter(self.fits.values())).data)
        truth = self.truth
        if truth is not None and (data.ndim == 1 or data.shape[1] == 1):
            truth = _truth_density_1d(truth_parts(truth))
        elif truth is not None:
            parts = truth_parts(truth)
            truth = types.SimpleNamespace(
                means=parts["means"], covariances=parts.get("covariances")
            )
        return plot_fit(data, dict(self.aligned), truth, feature_names=self._feature_names())

    def figures(self, min_weight: float | None = None) -> dict[str, Figure]:
        """Every standard figure, by file stem; ``min_weight`` as in :meth:`plot_forest`."""
        figs = {"elbo": self.plot_elbo(), "fit": self.plot_fit(),
                "forest": self.plot_forest(min_weight)}
        if self.psis:
            figs["khat"] = self.plot_khat()
        for name, fit in self.fits.items():
            if not fit.posterior.kind.is_point_estimate:
                figs[f"trace_{name}"] = self.plot_trace(name, min_weight)
        return figs

    # ------------------------------------------------------------------ report
    def to_markdown(self, figure_files: Sequence[str] = ()) -> str:
        """The report: the reference's problems (if any), the fit-quality table, the
        agreement table, each with a legend, the reading and links to the figures.

        Every column is in ``table.csv``; the tables here show those that say something
        (known for at least one fit), ``n/a`` where a value does not apply.
        """
        parts = [f"# Comparison of {', '.join(self.fits)} (reference: {self.reference})", ""]
        warning = reference_warning(self)
        if warning:
            parts += [f"**{warning}**", ""]
        frame = display_frame(self)
        sections = (
            ("quality", "Fit quality", evidence_sources(self.table)),
            ("agreement", f"Agreement with the reference ({self.reference})", []),
        )
        for group, heading, notes in sections:
            columns = shown_columns(frame, group)
            if not columns:
                continue
            parts += [f"## {heading}", "", *self._markdown_table(frame, columns), ""]
            legend = [c[3] for c in columns if c[3]] + [
                f"{NOT_APPLICABLE}: does not apply to this fit"]
            if group == "quality" and "psis_khat" in {c[0] for c in columns}:
                legend.append(f"bold k-hat: above {KHAT_THRESHOLD}")
            parts += [f"Columns: {'; '.join(legend)}.", ""]
            parts += [f"{line}." for line in notes]
            if notes:
                parts.append("")
        parts += ["## Reading", "", *[f"- {line}" for line in self.reading()], ""]
        if figure_files:
            parts += ["## Figures", ""]
            parts += [f"![{Path(f).stem}]({f})" for f in figure_files]
            parts.append("")
        return "\n".join(parts)

    def _markdown_table(self, frame: Any, columns: Sequence[tuple]) -> list[str]:
        with_method = show_method(frame)
        headers = ["fit", *(["method"] if with_method else []), *(c[1] for c in columns)]
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join(["---"] * (1 + with_method) + ["--:"] * len(columns)) + "|"]
        for name, row in frame.iterrows():
            cells = [f"{name} (ref)" if name == self.reference else str(name)]
            if with_method:
                cells.append(str(row["method"]))
            for column, _, fmt, _, _ in columns:
                cell = format_value(column, fmt, row[column])
                if (column == "psis_khat" and cell != NOT_APPLICABLE
                        and row[column] > KHAT_THRESHOLD):
                    cell = f"**{cell}**"
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    def _summary_with_diagnostics(self):
        """:meth:`summary`, with r-hat, ESS and MCSE (ArviZ's ``kind="all"``) for the
        sampler fits, whose draws they describe; statistics only for the others."""
        import pandas as pd

        samplers = [n for n, f in self.aligned.items() if f.posterior.kind.is_posterior_sample]
        if not samplers:
            return self.summary()
        frames = [_arviz.summaries_side_by_side(
            {n: self._idatas[n] for n in samplers}, kind="all")]
        others = {n: self._idatas[n] for n in self.aligned if n not in samplers}
        if others:
            frames.append(_arviz.summaries_side_by_side(others, kind="stats"))
        summary = pd.concat(frames)
        order = {name: i for i, name in enumerate(self.aligned)}
        positions = sorted(range(len(summary)),
                           key=lambda i: order[summary.index[i][0]])
        return summary.iloc[positions]

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
            self._summary_with_diagnostics().to_csv(tmp / "summary.csv")
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


def compare(
    *args: Any, feature_names: Sequence[str] | None = None, **kwargs: Any
) -> ComparisonReport:
    """:func:`gmmkit.comparisons.compare`, returned as a :class:`ComparisonReport`.

    ``feature_names`` (the data's column names) label the figures; the ``min_weight``
    given here also decides which components the figures draw.
    """
    return ComparisonReport.of(compute_comparison(*args, **kwargs),
                               min_weight=kwargs.get("min_weight", 0.0),
                               feature_names=feature_names)


compare.__doc__ = (compute_comparison.__doc__ or "").replace(
    "\n    Returns\n    -------\n    Comparison\n",
    "\n    feature_names : list of str, optional\n        The data's column names, to label "
    "the figures (report layer only).\n\n    Returns\n    -------\n    ComparisonReport\n"
    "        The comparison with its figures, report and ``save``.\n", 1)


def _parameter_label(title: str) -> str:
    """ArviZ's "var\ncoords" title as "var[coords]"."""
    var, _, coords = title.partition("\n")
    return f"{var}[{coords}]" if coords else var


def _truth_density_1d(parts: Mapping[str, np.ndarray]):
    from scipy.stats import norm

    means = parts["means"].ravel()
    weights = parts.get("weights", np.full(means.size, 1.0 / means.size)).ravel()
    sds = np.sqrt(parts["covariances"].ravel()) if "covariances" in parts else np.ones(means.size)

    def density(grid: np.ndarray) -> np.ndarray:
        return (weights * norm.pdf(np.asarray(grid)[:, None], means, sds)).sum(axis=1)

    return density
