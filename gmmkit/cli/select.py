"""``gmmkit select``: choose K (and the family) by the bound, BIC/AIC/ICL and held-out
likelihood, and write the table and figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from gmmkit.cli.common import (
    DATA_OPTIONS,
    handle_errors,
    option_groups,
    read_table,
    show_progress,
    split_list,
)
from gmmkit.inference.methods import NUTS, SMC

SELECT_EPILOG = f"""\b
Examples:
  gmmkit select faithful.csv --standardize -k 1..9 --out faithful-select
  gmmkit select faithful.csv --standardize -k 1..9 --covariance full,diag \\
      --weight-prior dirichlet_distribution,dirichlet_process \\
      --criteria bound,bic,cv --jobs 2 --out faithful-sel
  gmmkit select faithful.csv --standardize -k 1..9 --model gmm \\
      --covariance full,diag,spherical,tied --criteria bic,icl --out faithful-bic
  gmmkit select faithful.csv --standardize -k 1..9 --model bayesian --alpha0 1e-3 \\
      --criteria bound,cv --out faithful-bound
  gmmkit select small.csv -k 1..3 --model bayesian --method bayesian={NUTS.name} \\
      --criteria loo,cv --out small-loo

\b
Candidates are every --model x --covariance x --weight-prior x K that the model
implements (the others are skipped with a note); the maximum-likelihood model (gmm)
has no weight prior. Each is fitted by its closed-form method (Bishop's VB for
bayesian, EM for gmm; --method changes it) with --n-init restarts; the fits and the
cross-validation folds run in --jobs processes (the result does not depend on it).

\b
Criteria (see gmmkit.comparisons.selection):
  bound  ELBO + label-symmetry correction, ln K!/(K - K_live)! for Dirichlet weights
         (bayesian; higher is better)
  exact  exact log evidence by enumeration, tiny data only (bayesian; higher is better)
  bic    -2 ln L + p ln N (gmm; lower is better, scikit-learn's sign)
  aic    -2 ln L + 2p (gmm; lower is better)
  icl    BIC + 2 x entropy of the responsibilities (gmm; lower is better)
  cv     held-out log predictive density, --folds-fold CV, with its se (all; higher)
  loo    PSIS-LOO elpd with its se and Pareto k-hat (sampler fits only, e.g.
         --method bayesian={NUTS.name}; higher is better)
  evidence  log evidence estimated by the sampler, with its se (--method
         bayesian={SMC.name}, small data; higher is better)

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


def parse_methods(value: str | None) -> dict[str, str] | None:
    """"bayesian=nuts,gmm=em" -> {"bayesian": "nuts", "gmm": "em"}."""
    items = split_list(value)
    if items is None:
        return None
    out = {}
    for item in items:
        kind, sep, name = item.partition("=")
        if not sep or not kind.strip() or not name.strip():
            raise ValueError(f"--method takes MODEL=METHOD pairs like bayesian={NUTS.name}, "
                             f"got {item!r}")
        out[kind.strip()] = name.strip()
    return out


@click.command(epilog=SELECT_EPILOG)
@click.argument("data", type=str)
@click.option("-k", "--components", default="1..9", show_default=True,
              help="The K to try: a range 1..9 or a list 2,3,5.")
@click.option("--model", "models", default="bayesian,gmm", show_default=True,
              help="Comma-separated model kinds: bayesian, gmm.")
@click.option("--covariance", default=None,
              help="Comma-separated covariance types: full, diag, spherical, tied "
                   "[default: all four].")
@click.option("--weight-prior", "weight_prior", default=None,
              help="Comma-separated weight priors of the bayesian model: "
                   "dirichlet_distribution, dirichlet_process [default: both].")
@click.option("--criteria", default="bound,bic,aic,icl,cv", show_default=True,
              help="Comma-separated criteria: bound, exact, bic, aic, icl, cv, loo, "
                   "evidence.")
@click.option("--method", "methods", default=None,
              help="MODEL=METHOD pairs, e.g. bayesian=" + NUTS.name + " for loo "
                   "[default: the closed-form method of each model].")
@click.option("--alpha0", type=float, default=None,
              help="Weight concentration (bayesian) [default: 1/K].")
@click.option("--n-init", type=click.IntRange(min=1), default=3, show_default=True,
              help="Restarts per full-data fit; the best objective is kept.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (cv).")
@click.option("--cv-n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="Restarts per cross-validation fold fit.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed (fits and folds).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: the CPUs available].")
@option_groups(DATA_OPTIONS)
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-select].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@handle_errors
def select(
    data: str, components: str, models: str, covariance: str | None,
    weight_prior: str | None, criteria: str, methods: str | None, alpha0: float | None,
    n_init: int, folds: int, cv_n_init: int, seed: int, jobs: int | None,
    columns: str | None, labels: str | None, dropna: bool, standardize: bool,
    out: str | None, force: bool, quiet: bool,
) -> None:
    """Choose the number of components K (and the family) for DATA."""
    import warnings

    from gmmkit.comparisons.selection import select as run_select
    from gmmkit.output import atomic_directory, check_output_directory
    from gmmkit.report import make_console, selection_figures

    ks = parse_components(components)
    model_list = _list(models, "--model")
    covariances = None if covariance is None else _list(covariance, "--covariance")
    priors = None if weight_prior is None else _list(weight_prior, "--weight-prior")
    criteria_list = _list(criteria, "--criteria")
    method_map = parse_methods(methods)
    out_dir = Path(out or "gmmkit-select")
    check_output_directory(out_dir, force, inputs=[data])
    table = read_table(data, columns, labels, dropna, standardize)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            selection = run_select(
                table.X, ks, models=model_list, covariance=covariances,
                weight_prior=priors, criteria=criteria_list, n_init=n_init, seed=seed,
                alpha0=alpha0, n_folds=folds, cv_n_init=cv_n_init, methods=method_map,
                n_jobs=jobs, progress=show_progress(quiet))
    except ValueError as err:
        # Name the option, not the keyword of gmmkit.select.
        message = str(err)
        for keyword, flag in (("n_components", "-k"), ("models", "--model"),
                              ("n_folds", "--folds"), ("weight_prior", "--weight-prior"),
                              ("methods", "--method"), ("n_jobs", "--jobs")):
            message = re.sub(rf"^{keyword}\b", flag, message)
        message = message.replace("pass methods= with a sampler",
                                  f"pass --method bayesian={NUTS.name}")
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
    # Each criterion, its se, and for loo the number of points with a high Pareto k-hat.
    columns = [c for name in selection.criteria
               for c in (name, f"{name}_se", f"{name}_n_high_khat")
               if c in selection.table.columns]
    for column in columns:
        arrow = {True: " ↑", False: " ↓"}.get(selection.higher_is_better.get(column), "")
        table.add_column(column + arrow, justify="right")
    chosen: dict[tuple, set[str]] = {}  # a candidate may be best by several criteria
    for name, c in selection.best.items():
        if c is not None:
            chosen.setdefault((c.model, c.n_components, c.covariance, c.weight_prior),
                              set()).add(name)
    for row in selection.table.itertuples(index=False):
        key = (row.model, row.n_components, row.covariance, row.weight_prior)
        cells = [row.model, row.covariance, row.weight_prior, str(row.n_components)]
        for column in columns:
            value = float(getattr(row, column))
            text = "" if not np.isfinite(value) else (
                f"{value:.0f}" if column.endswith("_khat") else f"{value:.2f}")
            if column in chosen.get(key, ()):
                text = f"[bold]{text}*[/bold]"
            cells.append(text)
        table.add_row(*cells)
    console.print(table)
