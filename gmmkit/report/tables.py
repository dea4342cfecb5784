"""Tables for the console (rich) and for reports: what a person reads.

Every table says one thing; numbers that do not apply are left blank rather than shown
as 0, and maximum-likelihood quantities are never ranked against Bayesian ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gmmkit.result import Fit

__all__ = [
    "comparison_table",
    "make_console",
    "print_comparison",
    "print_fit_summary",
    "print_sweep",
    "timings_table",
    "weights_table",
]


def make_console() -> Console:
    """A rich Console; 160 columns wide when writing to a file or pipe (rich's default of
    80 would truncate the tables in a log)."""
    out = Console()
    return out if out.is_terminal else Console(width=160)


def print_fit_summary(result: Any, names: list[str]) -> None:
    """A short rich table: one row per component, heaviest first."""
    console = make_console()
    weights = np.asarray(result.weights)
    means = np.atleast_2d(np.asarray(result.means).reshape(weights.size, -1))
    shown = names[: min(len(names), 4)] if means.shape[1] == len(names) else [
        str(j) for j in range(min(means.shape[1], 4))
    ]
    table = Table(title=f"{result.method} fit of {type(result.model).__name__}")
    table.add_column("component", justify="right")
    table.add_column("weight", justify="right")
    for name in shown:
        table.add_column(f"mean {name}", justify="right")
    for k in np.argsort(-weights):
        table.add_row(
            str(k), f"{weights[k]:.4f}", *(f"{means[k, j]:.4g}" for j in range(len(shown)))
        )
    console.print(table)
    if result.posterior.kind.is_point_estimate and result.log_likelihood_trace is not None:
        objective = f"log-likelihood = {result.log_likelihood_trace[-1]:.6g} nats"
    elif np.isfinite(result.elbo):
        objective = f"ELBO = {result.elbo:.6g} nats"
        if result.elbo_se > 0:
            objective += f" (se {result.elbo_se:.2g})"
    elif np.isfinite(result.log_evidence):
        objective = (f"log evidence = {result.log_evidence:.6g} nats "
                     f"(se {result.log_evidence_se:.2g})")
    else:  # NUTS: draws only, no bound and no evidence
        objective = "no ELBO (sampler)"
    console.print(
        f"{objective}; {result.n_iter} iterations; "
        f"converged = {result.converged}; {result.elapsed_s:.2f} s"
    )
    for message in result.restart_failures:
        console.print(f"[yellow]restart failed:[/yellow] {message}")


#: Columns of the printed comparison table: (table column, header, format, meaning).
_COMPARISON_COLUMNS = (
    ("elbo", "ELBO", "{:.2f}", ""),
    ("log_evidence", "log Z", "{:.2f}", "log Z: log evidence"),
    ("elbo_gap", "gap", "{:.2f}", "gap: log Z - ELBO (nats)"),
    ("psis_khat", "k-hat", "{:.2f}", "k-hat: PSIS (> 0.7: do not trust q)"),
    ("mean_shift_max", "shift", "{:.3g}",
     "shift: largest |mean - reference mean| in reference sd"),
    ("sd_ratio_mean", "sd ratio", "{:.3g}", "sd ratio: average posterior sd / reference's"),
    ("w2_means", "W2", "{:.3g}", "W2: 2-Wasserstein distance of the component means"),
    ("ari", "ARI", "{:.3f}", "ARI: hard assignments against the reference's"),
    ("truth_mean_error", "truth err", "{:.3g}", "truth err: mean |error| of the means"),
    ("wall_s", "time s", "{:.2f}", ""),
    ("converged", "conv", "{}", ""),
)


def _shown_columns(frame: Any) -> list[tuple[str, str, str, str]]:

    return [
        c for c in _COMPARISON_COLUMNS
        if c[0] in frame.columns and not frame[c[0]].isna().all()
    ]


def comparison_table(comparison: Any, title: str | None = None) -> Any:
    """A rich Table of the key columns of ``comparison.table``: blank where unknown,
    columns that are unknown for every fit left out."""

    frame = comparison.table
    columns = _shown_columns(frame)
    table = Table(title=title or f"comparison (reference: {comparison.reference})")
    table.add_column("fit")
    for _, header, _, _ in columns:
        table.add_column(header, justify="right")
    for name, row in frame.iterrows():
        cells = []
        for column, _, fmt, _ in columns:
            value = row[column]
            if isinstance(value, float | np.floating) and not np.isfinite(value):
                cells.append("")
            elif column == "psis_khat" and value > 0.7:
                cells.append(f"[red]{fmt.format(value)}[/red]")
            else:
                cells.append(fmt.format(value))
        label = f"{name} (ref)" if name == comparison.reference else str(name)
        table.add_row(label, *cells)
    return table


def print_comparison(
    comparison: Any, title: str | None = None, console: Any = None, reading: bool = True
) -> None:
    """Print the comparison table, a legend, where the evidence comes from and (with
    ``reading``) the plain-language reading."""
    console = console or make_console()
    heading = f"{title}: " if title else ""
    console.print(comparison_table(
        comparison, f"{heading}comparison (reference: {comparison.reference})"
    ))
    legend = [c[3] for c in _shown_columns(comparison.table) if c[3]]
    if legend:
        console.print("; ".join(legend), style="dim", highlight=False)
    for source in sorted({s for s in comparison.table["log_evidence_source"] if s}):
        console.print(f"log Z from {source}", highlight=False)
    if reading:
        for line in comparison.reading():
            console.print(f"- {line}", highlight=False)


def print_sweep(frame: Any) -> None:
    """One rich row per (data set, method)."""

    columns = (
        ("n", "N", "{}"), ("k", "K", "{}"), ("separation", "sep", "{:g}"),
        ("seed", "seed", "{}"), ("method", "method", "{}"),
        ("mean_error", "|error|", "{:.3g}"), ("ari", "ARI", "{:.3f}"),
        ("elbo", "ELBO", "{:.2f}"), ("elbo_gap", "gap", "{:.2f}"),
        ("psis_khat", "k-hat", "{:.2f}"), ("wall_s", "time (s)", "{:.3f}"),
    )
    table = Table(title="sweep")
    for _, header, _ in columns:
        table.add_column(header, justify="left" if header == "method" else "right")
    for row in frame.itertuples(index=False):
        cells = []
        for column, _, fmt in columns:
            value = getattr(row, column)
            if isinstance(value, float | np.floating) and not np.isfinite(value):
                cells.append("prior" if column == "separation" else "")
            else:
                cells.append(fmt.format(value))
        table.add_row(*cells)
    make_console().print(table)


def sorted_weights(fits: dict[str, Fit]) -> dict[str, np.ndarray]:
    return {name: np.sort(np.asarray(result.weights))[::-1] for name, result in fits.items()}


def weights_table(fits: dict[str, Fit]) -> Table:
    """Which components keep weight (Bishop's Fig. 10.6: VB switches the extra ones off,
    while maximum likelihood with K = 6 uses all six)."""
    table = Table(title="Old Faithful: mixing weights, heaviest first")
    table.add_column("fit")
    table.add_column("K", justify="right")
    table.add_column("weights > 1%", justify="right")
    table.add_column("weights", justify="left")
    for name, w in sorted_weights(fits).items():
        table.add_row(
            name, str(w.size), str(int(np.sum(w > 0.01))),
            " ".join(f"{v:.3f}" if v >= 1e-3 else f"{v:.0e}" for v in w),
        )
    return table


def timings_table(timings: dict[str, float]) -> Table:
    table = Table(title="wall time")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for name, value in timings.items():
        table.add_row(name, f"{value:.1f}")
    return table
