"""The ``gmmkit`` command line (click + rich).

Exit codes: 0 on success; 2 on a usage error or bad input (one clear line, no traceback);
1 on an unexpected failure. Every command writes into a temporary directory and renames it
into place, so ``--out`` is never left half-written.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from gmmkit import __version__

MODELS = ("univariate", "bayesian", "gmm")
METHODS = ("cavi", "em", "kmeans", "advi", "fullrank_advi", "nuts", "smc")
#: Method used when ``--method`` is not given.
DEFAULT_METHOD = {"univariate": "cavi", "bayesian": "cavi", "gmm": "em"}


class BadInput(click.ClickException):
    """Bad data or options: one line on stderr and exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"gmmkit: error: {self.format_message()}", err=True)


def _handle_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn ValueError (bad input) into exit 2, anything unexpected into exit 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except ValueError as err:
            raise BadInput(str(err)) from None
        except (click.ClickException, click.exceptions.Exit, KeyboardInterrupt):
            raise
        except Exception as err:
            if os.environ.get("GMMKIT_DEBUG"):
                traceback.print_exc()
            click.echo(
                f"gmmkit: unexpected error: {type(err).__name__}: {err} "
                "(set GMMKIT_DEBUG=1 for the traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper


def _show_progress(quiet: bool) -> bool:
    # A bar in a log file or pipe is noise: only draw it on a terminal.
    return not quiet and sys.stdout.isatty()


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gmmkit")
def cli() -> None:
    """Fit Bayesian Gaussian mixtures and compare inference methods.

    Run `gmmkit COMMAND --help` for the options and examples of each command.
    """


# ----------------------------------------------------------------------------- fit
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
Writes to --out: responsibilities.csv, params.json, elbo_trace.csv, idata.nc,
trace.png (the ELBO or log-likelihood trace) and fit.png (the data with the fit).
"""


@cli.command(epilog=FIT_EPILOG)
@click.argument("data", type=str)
@click.option("--model", "model_name", type=click.Choice(MODELS), default="bayesian",
              show_default=True, help="Which model to fit.")
@click.option("-k", "--components", type=click.IntRange(min=1), default=2, show_default=True,
              help="Number of mixture components K.")
@click.option("--method", type=click.Choice(METHODS), default=None,
              help="Inference method [default: cavi, or em for --model gmm].")
@click.option("--alpha0", type=float, default=None,
              help="Dirichlet concentration (bayesian) [default: 1/K].")
@click.option("--beta0", type=float, default=1.0, show_default=True,
              help="Scale of the mean's prior precision (bayesian).")
@click.option("--nu0", type=float, default=None,
              help="Wishart degrees of freedom, > D - 1 (bayesian) [default: D].")
@click.option("--prior-sd", type=float, default=None,
              help="Prior sd of the means (univariate) [default: 3 x the data's root mean "
                   "square, so the prior covers every point].")
@click.option("--obs-sd", type=float, default=1.0, show_default=True,
              help="Known observation sd (univariate).")
@click.option("--reg-covar", type=float, default=1e-6, show_default=True,
              help="Added to covariance diagonals (gmm).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="Restarts; the best objective is kept.")
@click.option("--init", type=click.Choice(["kmeans++", "random"]), default="kmeans++",
              show_default=True, help="Initialisation of the means.")
@click.option("--tol", type=float, default=1e-8, show_default=True,
              help="Relative change of the objective at which to stop.")
@click.option("--max-iter", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Maximum iterations per restart.")
@click.option("--draws", type=click.IntRange(min=1), default=None,
              help="Draws per chain (nuts, smc) or from q (advi).")
@click.option("--tune", type=click.IntRange(min=0), default=None, help="Tuning steps (nuts).")
@click.option("--chains", type=click.IntRange(min=1), default=None, help="Chains (nuts, smc).")
@click.option("--columns", type=str, default=None,
              help="Comma-separated columns to use, by header name (or 0-based index).")
@click.option("--standardize", is_flag=True,
              help="Centre each column and scale it to unit standard deviation.")
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-fit-METHOD].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@_handle_errors
def fit(
    data: str, model_name: str, components: int, method: str | None, alpha0: float | None,
    beta0: float, nu0: float | None, prior_sd: float | None, obs_sd: float,
    reg_covar: float, seed: int, n_init: int, init: str, tol: float, max_iter: int,
    draws: int | None, tune: int | None, chains: int | None, columns: str | None,
    standardize: bool, out: str | None, force: bool, quiet: bool,
) -> None:
    """Fit a mixture to DATA and write the fit, its trace and plots to --out."""
    import gmmkit
    from gmmkit._io import atomic_directory, check_output_directory, load_data

    method = method or DEFAULT_METHOD[model_name]
    out_dir = Path(out or f"gmmkit-fit-{method}")
    # Refuse a bad --out before any fitting, so a long run is not wasted.
    check_output_directory(out_dir, force)
    X, names = load_data(data, columns=_split_list(columns), standardize=standardize)
    model = build_model(
        model_name, components, X, alpha0=alpha0, beta0=beta0, nu0=nu0, prior_sd=prior_sd,
        obs_sd=obs_sd, reg_covar=reg_covar,
    )
    x = X[:, 0] if model_name == "univariate" and X.shape[1] == 1 else X
    options = {
        name: value for name, value in (("draws", draws), ("tune", tune), ("chains", chains))
        if value is not None
    }
    result = gmmkit.fit(
        model, x, method, seed=seed, n_init=n_init, init=init, tol=tol, max_iter=max_iter,
        progress=_show_progress(quiet), **options,
    )
    with atomic_directory(out_dir, force=force) as tmp:
        result.save(tmp)
        write_fit_figures(result, tmp)
    if not quiet:
        print_fit_summary(result, names)
    click.echo(f"wrote {out_dir}")


def build_model(
    model_name: str, n_components: int, X: Any, *, alpha0: float | None = None,
    beta0: float = 1.0, nu0: float | None = None, prior_sd: float | None = None,
    obs_sd: float = 1.0, reg_covar: float = 1e-6,
) -> Any:
    """The model named on the command line, with its prior options."""
    import numpy as np

    if model_name == "univariate":
        from gmmkit.models.univariate import UnivariateGMM

        if X.shape[1] != 1:
            raise ValueError(
                f"--model univariate needs one column, got {X.shape[1]}; choose one with "
                "--columns"
            )
        if prior_sd is None:
            prior_sd = 3.0 * float(np.sqrt(np.mean(X**2))) or 1.0
        return UnivariateGMM(n_components, prior_sd=prior_sd, obs_sd=obs_sd)
    if model_name == "bayesian":
        from gmmkit.models.bayesian import BayesianGMM

        return BayesianGMM(n_components, alpha0=alpha0, beta0=beta0, nu0=nu0)
    from gmmkit.models.mixture import GaussianMixture

    return GaussianMixture(n_components, reg_covar=reg_covar)


def write_fit_figures(result: Any, directory: Path) -> None:
    """trace.png (ELBO, or log-likelihood for maximum-likelihood fits) and fit.png."""
    import numpy as np
    from matplotlib.figure import Figure

    from gmmkit.comparisons.plots import plot_fit

    trace = result.log_likelihood_trace
    label = "log-likelihood (nats)"
    if trace is None or np.size(trace) == 0:
        trace, label = result.elbo_trace, "ELBO (nats)"
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    if np.size(trace):
        ax.plot(np.arange(np.size(trace)), trace, marker=".", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(label)
    ax.set_title(f"{result.method}: {label.split(' (')[0]} per iteration")
    fig.savefig(directory / "trace.png", dpi=110)
    plot_fit(result.data, {result.method: result}).savefig(directory / "fit.png", dpi=110)


def print_fit_summary(result: Any, names: list[str]) -> None:
    """A short rich table: one row per component, heaviest first."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    console = Console()
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
    objective = "ELBO" if np.isfinite(result.elbo) else "log-likelihood"
    value = result.elbo if np.isfinite(result.elbo) else (
        result.log_likelihood_trace[-1] if result.log_likelihood_trace is not None
        and len(result.log_likelihood_trace) else float("nan")
    )
    console.print(
        f"{objective} = {value:.6g} nats; {result.n_iter} iterations; "
        f"converged = {result.converged}; {result.elapsed_s:.2f} s"
    )
    for message in result.restart_failures:
        console.print(f"[yellow]restart failed:[/yellow] {message}")


# ----------------------------------------------------------------------------- demo
@cli.command(
    epilog="\b\nExamples:\n  gmmkit demo\n  gmmkit demo --out results --force",
)
@click.option("--out", default="gmmkit-demo", show_default=True, type=click.Path(),
              help="Directory for the tables and figures.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_handle_errors
def demo(out: str, force: bool, seed: int, quiet: bool) -> None:
    """Run the reference comparison and write its report to --out."""
    from gmmkit.demo import run_demo

    run_demo(out, force=force, seed=seed, progress=_show_progress(quiet))


def main() -> None:
    cli(prog_name="gmmkit")
