"""``gmmkit select``: choose K (and the family) by the bound, BIC/AIC/ICL and held-out
likelihood, and write the table and figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from gmmkit.cli.common import DATA_OPTIONS, handle_errors, option_groups, read_table, split_list

SELECT_EPILOG = """\b
Examples:
  gmmkit select faithful.csv --standardize -k 1..9 --out faithful-select
  gmmkit select faithful.csv --standardize -k 1..9 --model gmm \\
      --covariance full,diag,spherical,tied --criteria bic,icl --out faithful-bic
  gmmkit select faithful.csv --standardize -k 1..9 --model bayesian --alpha0 1e-3 \\
      --criteria bound,cv --out faithful-bound

\b
Candidates are every --model x --covariance x K (the Bayesian model has Dirichlet
weights and "full" covariance so far; other covariances are skipped for it with a note).
Each is fitted by its closed-form method (Bishop's VB, EM) with --n-init restarts.

\b
Criteria (see gmmkit.comparisons.selection):
  bound  ELBO + ln K!/(K - K_live)! (Bayesian; higher is better)
  exact  exact log evidence by enumeration, tiny data only (Bayesian; higher is better)
  bic    -2 ln L + p ln N (gmm; lower is better, scikit-learn's sign)
  aic    -2 ln L + 2p (gmm; lower is better)
  icl    BIC + 2 x entropy of the responsibilities (gmm; lower is better)
  cv     held-out log predictive density, --folds-fold CV, with its se (all; higher)

\b
Writes to --out: table.csv (one row per candidate), best.json (the choice per
criterion), selection_<criterion>.png (criterion vs K, one line per family, se bars) and
bic_by_covariance.png (mclust-style). --force replaces only a directory gmmkit wrote.
"""

_RANGE = re.compile(r"^\s*(\d+)\s*(?:\.\.|-)\s*(\d+)\s*$")


def parse_components(value: str) -> list[int]:
    """"1..9", "1-9", "2,3,5" or "3" -> the list of K."""
    match = _RANGE.match(value)
    if match:
        lo, hi = int(match.group(1)), int(match.group(2))
        if lo < 1 or hi < lo:
            raise ValueError(f"-k: {value!r} must be a range LO..HI with 1 <= LO <= HI")
        return list(range(lo, hi + 1))
    items = split_list(value)
    if not items:
        raise ValueError(f"-k must be a range like 1..9 or a list like 2,3,5, got {value!r}")
    out = []
    for item in items:
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"-k: {item!r} is not an integer >= 1 (use 1..9 or 2,3,5)")
        out.append(int(item))
    return out


def _list(value: str, option: str) -> list[str]:
    items = split_list(value)
    if not items:
        raise ValueError(f"{option} must name at least one value, got {value!r}")
    return items


@click.command(epilog=SELECT_EPILOG)
@click.argument("data", type=str)
@click.option("-k", "--components", default="1..9", show_default=True,
              help="The K to try: a range 1..9 or a list 2,3,5.")
@click.option("--model", "models", default="bayesian,gmm", show_default=True,
              help="Comma-separated model kinds: bayesian, gmm.")
@click.option("--covariance", default="full", show_default=True,
              help="Comma-separated covariance types: full, diag, spherical, tied.")
@click.option("--criteria", default="bound,bic,aic,icl,cv", show_default=True,
              help="Comma-separated criteria: bound, exact, bic, aic, icl, cv.")
@click.option("--alpha0", type=float, default=None,
              help="Dirichlet concentration (bayesian) [default: 1/K].")
@click.option("--n-init", type=click.IntRange(min=1), default=3, show_default=True,
              help="Restarts per fit; the best objective is kept.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (cv).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed (fits and folds).")
@option_groups(DATA_OPTIONS)
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-select].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No table.")
@handle_errors
def select(
    data: str, components: str, models: str, covariance: str, criteria: str,
    alpha0: float | None, n_init: int, folds: int, seed: int, columns: str | None,
    labels: str | None, dropna: bool, standardize: bool, out: str | None, force: bool,
    quiet: bool,
) -> None:
    """Choose the number of components K (and the family) for DATA."""
    import warnings

    from gmmkit.comparisons.selection import select as run_select
    from gmmkit.output import atomic_directory, check_output_directory
    from gmmkit.report import make_console, selection_figures

    ks = parse_components(components)
    model_list = _list(models, "--model")
    covariances = _list(covariance, "--covariance")
    criteria_list = _list(criteria, "--criteria")
    out_dir = Path(out or "gmmkit-select")
    check_output_directory(out_dir, force, inputs=[data])
    table = read_table(data, columns, labels, dropna, standardize)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            selection = run_select(
                table.X, ks, models=model_list, covariance=covariances,
                criteria=criteria_list, n_init=n_init, seed=seed, alpha0=alpha0,
                n_folds=folds)
    except ValueError as err:
        # Name the option, not the keyword of gmmkit.select.
        message = str(err)
        for keyword, flag in (("n_components", "-k"), ("models", "--model"),
                              ("n_folds", "--folds")):
            message = re.sub(rf"^{keyword}\b", flag, message)
        raise ValueError(message) from None
    if caught and not quiet:
        click.echo(f"gmmkit: note: {len(caught)} fit warning(s) (e.g. {caught[0].message})",
                   err=True)
    for note in selection.notes:
        click.echo(f"gmmkit: note: {note}", err=True)
    best = {name: (None if cand is None else {
        "model": cand.model, "n_components": cand.n_components,
        "covariance": cand.covariance, "weight_prior": cand.weight_prior,
        "higher_is_better": selection.higher_is_better[name]})
        for name, cand in selection.best.items()}
    with atomic_directory(out_dir, force, kind="select", inputs=[data]) as tmp:
        selection.table.to_csv(tmp / "table.csv", index=False)
        (tmp / "best.json").write_text(json.dumps(best, indent=2) + "\n")
        for stem, fig in selection_figures(selection).items():
            fig.savefig(tmp / f"{stem}.png", dpi=110)
    if not quiet:
        _print_selection(selection, make_console())
    for name, cand in selection.best.items():
        arrow = "max" if selection.higher_is_better[name] else "min"
        click.echo(f"best by {name} ({arrow}): {cand if cand is not None else 'n/a'}")
    click.echo(f"wrote {out_dir}")


def _print_selection(selection, console) -> None:
    import numpy as np
    from rich.table import Table

    table = Table(title="model selection")
    for header in ("model", "covariance", "weights", "K"):
        table.add_column(header, justify="left" if header != "K" else "right")
    columns = [c for name in selection.criteria for c in (name, f"{name}_se")
               if c in selection.table.columns]
    for column in columns:
        arrow = "" if column.endswith("_se") else (
            " ↑" if selection.higher_is_better[column] else " ↓")
        table.add_column(column + arrow, justify="right")
    chosen = {(c.model, c.n_components, c.covariance, c.weight_prior): name
              for name, c in selection.best.items() if c is not None}
    for row in selection.table.itertuples(index=False):
        key = (row.model, row.n_components, row.covariance, row.weight_prior)
        cells = [row.model, row.covariance, row.weight_prior, str(row.n_components)]
        for column in columns:
            value = float(getattr(row, column))
            text = f"{value:.2f}" if np.isfinite(value) else ""
            if not column.endswith("_se") and chosen.get(key) == column:
                text = f"[bold]{text}*[/bold]"
            cells.append(text)
        table.add_row(*cells)
    console.print(table)
