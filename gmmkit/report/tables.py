"""Tables for the console (rich) and for reports: what a person reads.

Every table says one thing; numbers that do not apply are shown as ``n/a`` rather than
as 0 or a blank, and maximum-likelihood quantities are never ranked against Bayesian ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gmmkit.result import Fit

__all__ = [
    "COMPARISON_COLUMNS",
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


def _nat(value: float) -> str:
    return f"{value:.2f}"


def _yes_no(value: Any) -> str:
    return "yes" if bool(value) else "no"


#: The rendered columns of ``Comparison.table``: (table column, header, format, legend,
#: group).  Group "quality": how good each fit is on its own; "agreement": how it agrees
#: with the reference (and the truth).  Columns a table lacks, or that are unknown for
#: every fit, are left out; columns not listed here are in ``table.csv`` only.
COMPARISON_COLUMNS = (
    ("elbo", "ELBO", _nat, "ELBO: evidence lower bound (nats)", "quality"),
    ("log_likelihood", "log-lik", _nat, "log-lik: log-likelihood at a point estimate "
     "(not comparable with an ELBO)", "quality"),
    ("log_evidence", "log Z", _nat, "log Z: log evidence", "quality"),
    ("elbo_gap", "gap", _nat, "gap: log Z - ELBO (nats)", "quality"),
    ("psis_khat", "k-hat", "{:.2f}".format, "k-hat: PSIS (> 0.7: do not trust q)", "quality"),
    ("wall_s", "time s", "{:.2f}".format, "time s: wall time", "quality"),
    ("n_iter", "iter", lambda v: f"{int(v)}", "", "quality"),
    ("converged", "conv", _yes_no, "", "quality"),
    ("mean_shift_max", "shift", "{:.2f}".format,
     "shift: largest |mean - reference mean| in reference sd", "agreement"),
    ("sd_ratio_mean", "sd ratio", "{:.2f}".format,
     "sd ratio: average posterior sd / reference's", "agreement"),
    ("w2_means", "W2", "{:.3g}".format,
     "W2: 2-Wasserstein distance of the component means (data units)", "agreement"),
    ("ari", "ARI", "{:.3f}".format, "ARI: hard assignments against the reference's",
     "agreement"),
    ("truth_mean_error", "truth err", "{:.3g}".format,
     "truth err: mean |error| of the means", "agreement"),
    ("truth_weight_error", "truth w err", "{:.3g}".format,
     "truth w err: mean |error| of the weights", "agreement"),
    ("truth_cov_error", "truth cov err", "{:.3g}".format,
     "truth cov err: mean |error| of the covariances", "agreement"),
    ("truth_ari", "truth ARI", "{:.3f}".format, "truth ARI: against the true labels",
     "agreement"),
)

#: Shown in place of a value that does not apply (NaN).
NOT_APPLICABLE = "n/a"


def shown_columns(frame: Any, group: str | None = None) -> list[tuple]:
    """The rendered columns ``frame`` has and knows for at least one fit (in ``group``
    when given)."""
    return [
        c for c in COMPARISON_COLUMNS
        if (group is None or c[4] == group) and c[0] in frame.columns
        and not frame[c[0]].isna().all()
    ]


def format_value(column: str, fmt: Any, value: Any) -> str:
    """One cell: ``n/a`` where the value does not apply (NaN, None)."""
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return NOT_APPLICABLE
    try:
        return fmt(value)
    except (TypeError, ValueError):
        return str(value)


def show_method(frame: Any) -> bool:
    """Whether the ``method`` column says anything the fit names do not."""
    return "method" in frame.columns and any(
        str(name) != str(method) for name, method in frame["method"].items())


def reference_warning(comparison: Any) -> str | None:
    """A sentence on the reference's problems, when the comparison records any
    (``reference_problems``, ``reference_converged``); else None."""
    problems = getattr(comparison, "reference_problems", None)
    converged = getattr(comparison, "reference_converged", None)
    if isinstance(problems, str):
        problems = [problems] if problems else []
    parts = [str(p) for p in (problems or ())]
    if converged is not None and not bool(converged) and not parts:
        parts.append("it did not converge")
    if not parts:
        return None
    return (f"The reference {comparison.reference} may not be trustworthy: "
            f"{'; '.join(parts)}. Agreement with it is not evidence of accuracy.")


def evidence_sources(frame: Any) -> list[str]:
    """Where each fit's log Z comes from (or why there is none), one line per source."""
    if "log_evidence_source" not in frame.columns:
        return []
    by_source: dict[str, list[str]] = {}
    for name, source in frame["log_evidence_source"].items():
        if isinstance(source, str) and source:
            by_source.setdefault(source, []).append(str(name))
    known = frame["log_evidence"] if "log_evidence" in frame.columns else None
    lines = []
    for source, names in by_source.items():
        finite = known is not None and np.isfinite(known.reindex(names).to_numpy(float)).any()
        verb = "log Z from" if finite else "no log Z:"
        lines.append(f"{verb} {source} ({', '.join(names)})")
    return lines


def display_frame(comparison: Any) -> Any:
    """``comparison.table`` as rendered: a point estimate's objective is its
    log-likelihood, shown as ``log_likelihood`` (unless the table has that column) and
    never in the ELBO column, where only Bayesian bounds are."""
    frame = comparison.table.copy()
    fits = getattr(comparison, "fits", {})
    points = [n for n in frame.index if n in fits and fits[n].posterior.kind.is_point_estimate]
    if not points or "elbo" not in frame.columns:
        return frame
    if "log_likelihood" not in frame.columns:
        values = {}
        for name in points:
            trace = fits[name].log_likelihood_trace
            values[name] = (float(trace[-1]) if trace is not None and np.size(trace)
                            else float(frame.loc[name, "elbo"]))
        position = list(frame.columns).index("elbo") + 1
        frame.insert(position, "log_likelihood",
                     [values.get(n, np.nan) for n in frame.index])
    frame["elbo"] = frame["elbo"].astype(float)
    frame.loc[points, "elbo"] = np.nan
    return frame


def comparison_table(comparison: Any, title: str | None = None) -> Any:
    """A rich Table of the key columns of ``comparison.table``: ``n/a`` where a value does
    not apply, columns unknown for every fit left out."""

    frame = display_frame(comparison)
    columns = shown_columns(frame)
    table = Table(title=title or f"comparison (reference: {comparison.reference})")
    table.add_column("fit")
    with_method = show_method(frame)
    if with_method:
        table.add_column("method")
    for _, header, _, _, _ in columns:
        table.add_column(header, justify="right")
    for name, row in frame.iterrows():
        cells = []
        for column, _, fmt, _, _ in columns:
            cell = format_value(column, fmt, row[column])
            if column == "psis_khat" and cell != NOT_APPLICABLE and row[column] > 0.7:
                cell = f"[red]{cell}[/red]"
            cells.append(cell)
        label = f"{name} (ref)" if name == comparison.reference else str(name)
        table.add_row(label, *([str(row["method"])] if with_method else []), *cells)
    return table


def print_comparison(
    comparison: Any, title: str | None = None, console: Any = None, reading: bool = True
) -> None:
    """Print the reference's problems (if any), the comparison table, a legend, where the
    evidence comes from and (with ``reading``) the plain-language reading."""
    console = console or make_console()
    warning = reference_warning(comparison)
    if warning:
        console.print(f"[bold red]{warning}[/bold red]", highlight=False)
    heading = f"{title}: " if title else ""
    console.print(comparison_table(
        comparison, f"{heading}comparison (reference: {comparison.reference})"
    ))
    legend = [c[3] for c in shown_columns(display_frame(comparison)) if c[3]]
    legend.append(f"{NOT_APPLICABLE}: does not apply to this fit")
    console.print("; ".join(legend), style="dim", highlight=False)
    for line in evidence_sources(comparison.table):
        console.print(line, highlight=False)
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
