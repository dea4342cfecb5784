"""``gmmkit fit``: fit one model by one method and write the fit to a directory."""

from __future__ import annotations

from pathlib import Path

import click

from gmmkit.cli.common import (
    DATA_OPTIONS,
    MODEL_OPTIONS,
    PRIOR_OPTIONS,
    RUN_OPTIONS,
    check_options_apply,
    default_method,
    fit_options,
    handle_errors,
    option_groups,
    read_table,
    show_progress,
)
from gmmkit.inference.methods import METHODS

FIT_EPILOG = """\b
Examples:
  gmmkit fit faithful.csv --standardize -k 6 --alpha0 1e-3 --out faithful-vb
  gmmkit fit x.txt --model gmm --method em -k 3 --n-init 5 --out x-em
  gmmkit fit data.csv --columns waiting --model univariate -k 2 --standardize \\
      --method nuts --out waiting-nuts
  cat data.csv | gmmkit fit - -k 2 --out fit-from-stdin

\b
DATA is a CSV file with a header row, whitespace-delimited text (np.loadtxt style),
a .npy array, or - for standard input.

\b
Models:
  bayesian    Bishop's Bayesian GMM (Dirichlet weights, Gaussian-Wishart components);
              methods cavi (Bishop VB), advi, fullrank_advi, nuts, smc.
  univariate  Blei et al.'s GMM with known noise (--obs-sd) and mu_k ~ N(0, prior_sd^2);
              methods cavi, advi, fullrank_advi, nuts, smc. Needs one column.
  gmm         Likelihood-only GMM; methods em, kmeans.

\b
Method options are refused where they do not apply: --tol and --max-iter (cavi, em,
kmeans), --n-iter and --learning-rate (advi, fullrank_advi), --draws (advi,
fullrank_advi, nuts, smc), --tune and --target-accept (nuts), --chains (nuts, smc).

\b
Writes to --out: responsibilities.npy (and .csv when N x K <= 1e6), data.npy,
params.json, diagnostics.json, elbo_trace.csv, fit.pkl (gmmkit.load), idata.nc, trace.png
(the ELBO or log-likelihood trace), fit.png and .gmmkit-output.json. --force replaces
only a directory gmmkit wrote. Ctrl-C exits with code 130 and saves nothing.
"""


@click.command(epilog=FIT_EPILOG)
@click.argument("data", type=str)
@option_groups(
    MODEL_OPTIONS,
    [click.option("--method", type=click.Choice(list(METHODS)), default=None,
                  help="Inference method [default: cavi, or em for --model gmm].")],
    PRIOR_OPTIONS, RUN_OPTIONS, DATA_OPTIONS,
)
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-fit-METHOD].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@handle_errors
def fit(
    data: str, model_name: str, components: int, method: str | None, alpha0: float | None,
    beta0: float, nu0: float | None, prior_sd: float | None, obs_sd: float,
    reg_covar: float, covariance: str, seed: int, n_init: int, init: str, tol: float, max_iter: int,
    draws: int | None, tune: int | None, chains: int | None, n_iter: int | None,
    learning_rate: float | None, target_accept: float | None, columns: str | None,
    labels: str | None, dropna: bool, standardize: bool, out: str | None, force: bool,
    quiet: bool,
    weight_prior: str = "dirichlet_distribution",
) -> None:
    """Fit a mixture to DATA and write the fit, its trace and plots to --out."""
    from gmmkit.api import fit as fit_model
    from gmmkit.models.factory import build_model
    from gmmkit.output import atomic_directory, check_output_directory
    from gmmkit.report import print_fit_summary, write_fit_report

    method = method or default_method(model_name)
    values = {"n_init": n_init, "init": init, "tol": tol, "max_iter": max_iter,
              "draws": draws, "tune": tune, "chains": chains, "n_iter": n_iter,
              "learning_rate": learning_rate, "target_accept": target_accept}
    check_options_apply([method], values)
    out_dir = Path(out or f"gmmkit-fit-{method}")
    # Refuse a bad --out before any fitting, so a long run is not wasted.
    check_output_directory(out_dir, force, inputs=[data])
    table = read_table(data, columns, labels, dropna, standardize)
    X, names = table.X, table.names
    model = build_model(
        model_name, components, X, alpha0=alpha0, beta0=beta0, nu0=nu0, prior_sd=prior_sd,
        obs_sd=obs_sd, reg_covar=reg_covar, covariance=covariance,
        weight_prior=weight_prior,
    )
    x = model.check_data(X)  # the shape the model's inference expects
    if not quiet:
        click.echo(f"gmmkit: fitting {method} ...", err=True)
    result = fit_model(model, x, method, seed=seed, progress=show_progress(quiet),
                       **fit_options(method, values))
    def progress(step: str) -> None:
        if not quiet:
            click.echo(f"gmmkit: {step} ...", err=True)

    with atomic_directory(out_dir, force, kind="fit", inputs=[data]) as tmp:
        write_fit_report(result, tmp, feature_names=names, progress=progress)
    if not quiet:
        print_fit_summary(result, names)
    click.echo(f"wrote {out_dir}")


