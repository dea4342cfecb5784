"""``gmmkit fit``: fit one model by one method and write the fit to a directory."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from gmmkit.cli.common import (
    DASK_OPTIONS,
    DATA_OPTIONS,
    MODEL_OPTIONS,
    PRIOR_OPTIONS,
    RUN_OPTIONS,
    check_options_apply,
    dask_cluster,
    default_method,
    fit_options,
    handle_errors,
    option_groups,
    read_table,
    show_progress,
    streams_dask,
)
from gmmkit.inference.methods import METHODS

FIT_EPILOG = """\b
Examples:
  gmmkit fit faithful.csv --standardize -k 6 --alpha0 1e-3 --out faithful-vb
  gmmkit fit x.txt --model gmm --method em -k 3 --n-init 5 --out x-em
  gmmkit fit data.csv --columns waiting --model univariate -k 2 --standardize \\
      --method nuts --out waiting-nuts
  cat data.csv | gmmkit fit - -k 2 --out fit-from-stdin
  gmmkit fit catalogue.zarr -k 16 --workers 2 --out catalogue-vb
  gmmkit fit frames/ --columns 0,1,2,3 --model gmm --method em -k 8 \\
      --scheduler tcp://10.0.0.5:8786 --chunk-rows 1000000 --out frames-em

\b
DATA is a CSV file with a header row, whitespace-delimited text (np.loadtxt style),
a .npy array, or - for standard input; with Dask installed (pip install
'gmmkit[dask]') also a Zarr store (an N x D array, or a group of one such array or of
1-D column arrays), a Parquet file or a directory of them. A Zarr store, Parquet files
and a .npy larger than 512 MiB are read lazily, a chunk of rows at a time, by the
methods that stream (cavi, em, kmeans: one pass over the data per iteration); the
other methods read them into memory.

\b
Dask: --workers N starts a local cluster of N processes for the run; --scheduler
ADDRESS runs on an existing cluster (its workers must see DATA at the same path);
--chunk-rows sets the rows per chunk. Each reads DATA lazily, also a CSV or .npy.

\b
Models:
  bayesian    Bishop's Bayesian GMM (Dirichlet weights, Gaussian-Wishart components);
              methods cavi (Bishop VB), advi, fullrank_advi, nuts, smc.
  univariate  Blei et al.'s GMM with known noise (--obs-sd) and mu_k ~ N(0, prior_sd^2);
              methods cavi, advi, fullrank_advi, nuts, smc. Needs one column.
  gmm         Likelihood-only GMM; methods em, kmeans.

\b
Method options are refused where they do not apply: --tol and --max-iter (cavi, em,
kmeans), --n-threads (cavi), --n-iter and --learning-rate (advi, fullrank_advi), --draws
(advi, fullrank_advi, nuts, smc), --tune and --target-accept (nuts), --chains (nuts,
smc).

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
    PRIOR_OPTIONS, RUN_OPTIONS, DATA_OPTIONS, DASK_OPTIONS,
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
    learning_rate: float | None, target_accept: float | None, n_threads: int | None,
    columns: str | None,
    labels: str | None, dropna: bool, standardize: bool, scheduler: str | None,
    workers: int | None, chunk_rows: int | None, out: str | None, force: bool, quiet: bool,
    weight_prior: str = "dirichlet_distribution",
) -> None:
    """Fit a mixture to DATA and write the fit, its trace and plots to --out."""
    from gmmkit.api import fit as fit_model
    from gmmkit.models.factory import build_model
    from gmmkit.output import atomic_directory, check_output_directory
    from gmmkit.reading import is_lazy
    from gmmkit.report import print_fit_summary, write_fit_report

    method = method or default_method(model_name)
    values = {"n_init": n_init, "init": init, "tol": tol, "max_iter": max_iter,
              "draws": draws, "tune": tune, "chains": chains, "n_iter": n_iter,
              "learning_rate": learning_rate, "target_accept": target_accept,
              "n_threads": n_threads}
    check_options_apply([method], values)
    out_dir = Path(out or f"gmmkit-fit-{method}")
    # Refuse a bad --out before any fitting, so a long run is not wasted.
    check_output_directory(out_dir, force, inputs=[data])
    def say(step: str) -> None:
        if not quiet:
            click.echo(f"gmmkit: {step} ...", err=True)

    on_dask = scheduler is not None or workers is not None or chunk_rows is not None
    with dask_cluster(scheduler, workers, say):
        # Read lazily where the data may be large; with a Dask option, always.
        table = read_table(data, columns, labels, dropna, standardize,
                           lazy=True if on_dask else None, chunk_rows=chunk_rows)
        X, names = table.X, table.names
        model = build_model(
            model_name, components, X, alpha0=alpha0, beta0=beta0, nu0=nu0,
            prior_sd=prior_sd, obs_sd=obs_sd, reg_covar=reg_covar, covariance=covariance,
            weight_prior=weight_prior,
        )
        if is_lazy(X) and not streams_dask(model, method):
            if on_dask:
                streaming = [m for m in METHODS if streams_dask(model, m)]
                raise ValueError(
                    f"--scheduler, --workers and --chunk-rows apply to the methods that "
                    f"take Dask data ({', '.join(streaming)}) for --model {model_name}; "
                    f"method {method!r} needs its data in memory"
                )
            say(f"reading {data} into memory (method {method} needs its data in memory)")
            X = np.asarray(X.compute(), dtype=np.float64)
        # The shape the model's inference expects; gmmkit.fit checks a Dask array itself,
        # without computing it (the model's own check would read it into memory).
        x = X if is_lazy(X) else model.check_data(X)
        if not quiet:
            click.echo(f"gmmkit: fitting {method} ...", err=True)
        result = fit_model(model, x, method, seed=seed, progress=show_progress(quiet),
                           **fit_options(method, values))
        with atomic_directory(out_dir, force, kind="fit", inputs=[data]) as tmp:
            write_fit_report(result, tmp, feature_names=names, progress=say)
    if not quiet:
        print_fit_summary(result, names)
    click.echo(f"wrote {out_dir}")
