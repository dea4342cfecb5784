"""``gmmkit compare``: fit one model by several methods and compare them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gmmkit.cli.common import (
    DATA_OPTIONS,
    MODEL_OPTIONS,
    PRIOR_OPTIONS,
    RUN_OPTIONS,
    check_methods_apply,
    check_options_apply,
    fit_options,
    handle_errors,
    option_groups,
    parse_methods,
    read_table,
    show_progress,
)
from gmmkit.inference.methods import ADVI, CAVI, EM, KMEANS, NUTS, methods_for

#: Methods compared when ``--methods`` is not given: the closed form, ADVI and NUTS (the
#: reference); for the maximum-likelihood model, EM and k-means.
BAYESIAN_METHODS = (CAVI, ADVI, NUTS)
DEFAULT_METHODS = {"gmm": (EM, KMEANS)}
#: Exit status when the report was written but the reference's draws failed their checks.
EXIT_REFERENCE_NOT_CONVERGED = 3

COMPARE_EPILOG = """\b
Examples:
  gmmkit compare faithful.csv --standardize -k 6 --alpha0 1e-3 \\
      --methods cavi,advi,nuts --out faithful-compare
  gmmkit compare x.csv --model univariate -k 3 --methods cavi,advi,fullrank_advi,nuts,smc \\
      --draws 500 --tune 500 --reference nuts --out x-compare
  gmmkit compare x.npy --model gmm -k 2 --methods em,kmeans --reference em --out x-ml

\b
Every method fits the same model to the same data; the fits are aligned to the
--reference fit (default: nuts, else smc, else the first method) and compared in one
table: ELBO, log evidence (exact, SMC or importance sampling) and the gap between them,
PSIS k-hat of the variational fits, agreement with the reference (mean shift in
reference sd, sd ratio, 2-Wasserstein distance of the means, ARI) and wall time.

\b
--draws applies to advi, fullrank_advi, nuts and smc; --tune and --target-accept to
nuts; --chains to nuts and smc; --n-iter and --learning-rate to advi and fullrank_advi;
--tol and --max-iter to cavi, em and kmeans. Each goes to the methods it applies to; one
that applies to none of --methods is refused. --labels COL adds truth columns.

\b
Writes to --out: table.csv, summary.csv (ArviZ summary of every aligned fit),
report.md (the table and a plain-language reading), elbo.png, fit.png, forest.png,
khat.png, trace_METHOD.png and fits/METHOD.nc (the aligned InferenceData).

\b
Exit status: 0 done; 3 the report was written, but the reference (a sampler) did not
converge after relabelling its chains (r-hat > 1.01, ESS < 100 per chain, divergences,
or chains in different modes), so its agreement columns are left blank; 2 bad input;
130 interrupted; 1 unexpected error.
"""

def _truth_from_labels(X: Any, labels: Any) -> dict[str, Any]:
    """The truth the labels imply: per-label means, weights, covariances, labels."""
    import numpy as np

    names, codes = np.unique(labels, return_inverse=True)
    groups = [X[codes == k] for k in range(names.size)]
    d = X.shape[1]
    covariances = np.stack([
        np.cov(g, rowvar=False).reshape(d, d) if len(g) > 1 else np.eye(d) for g in groups
    ])
    return {"means": np.stack([g.mean(axis=0) for g in groups]),
            "weights": np.array([len(g) for g in groups]) / len(X),
            "covariances": covariances, "labels": codes}


@click.command(epilog=COMPARE_EPILOG)
@click.argument("data", type=str)
@option_groups(
    MODEL_OPTIONS,
    [
        click.option("--methods", type=str, default=None,
                     help="Comma-separated methods to compare [default: cavi,advi,nuts, or "
                          "em,kmeans for --model gmm]."),
        click.option("--reference", type=str, default=None,
                     help="Method the others are aligned to and measured against; one of "
                          "--methods [default: nuts, else smc, else the first]."),
    ],
    PRIOR_OPTIONS, RUN_OPTIONS, DATA_OPTIONS,
)
@click.option("--psis-draws", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Draws from each variational q for PSIS k-hat and the evidence.")
@click.option("--min-weight", type=click.FloatRange(min=0.0, max=1.0), default=0.0,
              show_default=True,
              help="Agreement columns over the reference's components with at least this "
                   "weight (leave out components a Bayesian fit switched off).")
@click.option("--log-likelihood/--no-log-likelihood", default=None,
              help="Store the pointwise log-likelihood in fits/METHOD.nc (draws x N floats "
                   "per fit) [default: when draws x N <= 2e7].")
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-compare].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No progress and no table.")
@handle_errors
def compare(
    data: str, model_name: str, components: int, methods: str | None, reference: str | None,
    alpha0: float | None, beta0: float, nu0: float | None, prior_sd: float | None,
    obs_sd: float, reg_covar: float, covariance: str, seed: int, n_init: int, init: str, tol: float,
    max_iter: int, draws: int | None, tune: int | None, chains: int | None,
    n_iter: int | None, learning_rate: float | None, target_accept: float | None,
    n_threads: int | None,
    columns: str | None, labels: str | None, dropna: bool, standardize: bool,
    psis_draws: int, min_weight: float,
    log_likelihood: bool | None,
    out: str | None, force: bool, quiet: bool,
    weight_prior: str = "dirichlet_distribution",
) -> None:
    """Fit DATA with several methods and compare them against a reference fit."""
    from gmmkit.api import fit as fit_model
    from gmmkit.models.factory import build_model
    from gmmkit.output import check_output_directory
    from gmmkit.report import compare as compare_fits
    from gmmkit.report import print_comparison

    out_dir = Path(out or "gmmkit-compare")
    check_output_directory(out_dir, force, inputs=[data])
    default = ",".join(m.name for m in DEFAULT_METHODS.get(model_name, BAYESIAN_METHODS))
    method_list = parse_methods(methods if methods is not None else default)
    if reference is not None and reference not in method_list:
        raise ValueError(
            f"--reference {reference!r} is not among --methods ({', '.join(method_list)})"
        )
    values = {"n_init": n_init, "init": init, "tol": tol, "max_iter": max_iter,
              "draws": draws, "tune": tune, "chains": chains, "n_iter": n_iter,
              "learning_rate": learning_rate, "target_accept": target_accept,
              "n_threads": n_threads}
    check_options_apply(method_list, values)
    table = read_table(data, columns, labels, dropna, standardize)
    X = table.X
    model = build_model(
        model_name, components, X, alpha0=alpha0, beta0=beta0, nu0=nu0, prior_sd=prior_sd,
        obs_sd=obs_sd, reg_covar=reg_covar, covariance=covariance,
        weight_prior=weight_prior,
    )
    check_methods_apply(
        method_list, methods_for(model), f"{model_name} ({type(model).__name__})"
    )
    x = model.check_data(X)  # the shape the model's inference expects
    progress = show_progress(quiet)
    fits = {}
    for method in method_list:
        if progress:
            click.echo(f"fitting {method} ...", err=True)
        fits[method] = fit_model(model, x, method, seed=seed, progress=progress,
                                 **fit_options(method, values))
    truth = None if table.labels is None else _truth_from_labels(X, table.labels)
    comparison = compare_fits(fits, reference=reference, psis_draws=psis_draws, seed=seed,
                              min_weight=min_weight, truth=truth, feature_names=table.names)
    if not quiet:
        click.echo(f"gmmkit: writing the report to {out_dir} (tables, figures, fits/*.nc) ...",
                   err=True)
    comparison.save(out_dir, force=force, log_likelihood=log_likelihood)
    if not quiet:
        print_comparison(comparison, title=f"{type(model).__name__}, K = {components}")
    click.echo(f"wrote {out_dir}")
    if not comparison.reference_converged:
        # The report is written (and says why); the exit status says it is not to be
        # believed as it stands.
        click.echo(
            f"gmmkit: reference {comparison.reference!r} did not converge "
            f"({'; '.join(comparison.reference_problems)}); agreement not reported",
            err=True,
        )
        sys.exit(EXIT_REFERENCE_NOT_CONVERGED)


