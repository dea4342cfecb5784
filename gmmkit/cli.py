"""The ``gmmkit`` command line (click + rich).

Exit codes: 0 on success; 2 on a usage error or bad input (one clear line, no traceback);
1 on an unexpected failure; 130 when interrupted (Ctrl-C), with nothing saved.  Every
command writes into a temporary directory and swaps it into place (``gmmkit.output``), so
``--out`` is never left half-written and never replaces a directory gmmkit did not write.
"""

from __future__ import annotations

import os
import signal
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
    """Turn ValueError (bad input) into exit 2, Ctrl-C into exit 130 (one line, nothing
    saved: output directories are only swapped into place once complete), anything
    unexpected into exit 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            # A second Ctrl-C while reporting the first must not print a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            click.echo("gmmkit: interrupted; nothing was saved", err=True)
            sys.exit(130)
        except ValueError as err:
            raise BadInput(str(err)) from None
        except (click.ClickException, click.exceptions.Exit):
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
Method options are refused where they do not apply: --tol and --max-iter (cavi, em,
kmeans), --n-iter and --learning-rate (advi, fullrank_advi), --draws (advi,
fullrank_advi, nuts, smc), --tune and --target-accept (nuts), --chains (nuts, smc).

\b
Writes to --out: responsibilities.npy (and .csv when N x K <= 1e6), data.npy,
params.json, diagnostics.json, elbo_trace.csv, fit.pkl (gmmkit.load), idata.nc, trace.png
(the ELBO or log-likelihood trace), fit.png and .gmmkit-output.json. --force replaces
only a directory gmmkit wrote. Ctrl-C exits with code 130 and saves nothing.
"""


# Options shared by fit and compare, as decorator lists applied in order.
MODEL_OPTIONS = [
    click.option("--model", "model_name", type=click.Choice(MODELS), default="bayesian",
                 show_default=True, help="Which model to fit."),
    click.option("-k", "--components", type=click.IntRange(min=1), default=2,
                 show_default=True, help="Number of mixture components K."),
]
PRIOR_OPTIONS = [
    click.option("--alpha0", type=float, default=None,
                 help="Dirichlet concentration (bayesian) [default: 1/K]."),
    click.option("--beta0", type=float, default=1.0, show_default=True,
                 help="Scale of the mean's prior precision (bayesian)."),
    click.option("--nu0", type=float, default=None,
                 help="Wishart degrees of freedom, > D - 1 (bayesian) [default: D]."),
    click.option("--prior-sd", type=float, default=None,
                 help="Prior sd of the means (univariate) [default: 3 x the data's root mean "
                      "square, so the prior covers every point]."),
    click.option("--obs-sd", type=float, default=1.0, show_default=True,
                 help="Known observation sd (univariate)."),
    click.option("--reg-covar", type=float, default=1e-6, show_default=True,
                 help="Added to covariance diagonals (gmm)."),
]
RUN_OPTIONS = [
    click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
    click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Restarts; the best objective is kept."),
    click.option("--init", type=click.Choice(["kmeans++", "random"]), default="kmeans++",
                 show_default=True, help="Initialisation of the means."),
    click.option("--tol", type=float, default=1e-8, show_default=True,
                 help="Relative change of the objective at which to stop."),
    click.option("--max-iter", type=click.IntRange(min=1), default=1000, show_default=True,
                 help="Maximum iterations per restart."),
    click.option("--draws", type=click.IntRange(min=1), default=None,
                 help="Draws per chain (nuts, smc) or from q (advi)."),
    click.option("--tune", type=click.IntRange(min=1), default=None,
                 help="Tuning steps (nuts)."),
    click.option("--chains", type=click.IntRange(min=1), default=None,
                 help="Chains (nuts, smc)."),
    click.option("--n-iter", type=click.IntRange(min=1), default=None,
                 help="Optimisation steps (advi, fullrank_advi) [default: 20000]."),
    click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Adam learning rate (advi, fullrank_advi) [default: 0.01]."),
    click.option("--target-accept", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                 default=None, help="Target acceptance rate (nuts) [default: 0.9]."),
]
DATA_OPTIONS = [
    click.option("--columns", type=str, default=None,
                 help="Comma-separated feature columns, by header name or 0-based index; "
                      "only these are read [default: every numeric column]."),
    click.option("--labels", type=str, default=None,
                 help="Column of true labels (any text), by name or 0-based index; never a "
                      "feature (compare: truth columns)."),
    click.option("--dropna", is_flag=True,
                 help="Drop rows with missing values instead of refusing them."),
    click.option("--standardize", is_flag=True,
                 help="Centre each column and scale it to unit standard deviation."),
]

#: The methods each method-specific option applies to; any other method refuses it.
#: (cli parameter name -> methods.)  tol/max_iter are the closed-form loops' stopping
#: rule, n_init their and ADVI's restarts, init where they, ADVI and NUTS start.
_METHOD_OPTIONS = {
    "n_init": ("cavi", "em", "kmeans", "advi", "fullrank_advi"),
    "init": ("cavi", "em", "kmeans", "advi", "fullrank_advi", "nuts"),
    "tol": ("cavi", "em", "kmeans"),
    "max_iter": ("cavi", "em", "kmeans"),
    "draws": ("advi", "fullrank_advi", "nuts", "smc"),
    "tune": ("nuts",),
    "chains": ("nuts", "smc"),
    "n_iter": ("advi", "fullrank_advi"),
    "learning_rate": ("advi", "fullrank_advi"),
    "target_accept": ("nuts",),
}
#: Options passed to ``gmmkit.fit`` as method options (only when given).
_PYMC_OPTIONS = ("draws", "tune", "chains", "n_iter", "learning_rate", "target_accept")


def _given(name: str) -> bool:
    """Whether option ``name`` was given by the user (not its default)."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _check_options_apply(methods: list[str], values: dict[str, Any]) -> None:
    """Refuse a method-specific option given by the user that applies to none of
    ``methods`` (rather than silently ignoring it)."""
    for name, value in values.items():
        allowed = _METHOD_OPTIONS[name]
        if _given(name) and value is not None and not any(m in allowed for m in methods):
            flag = "--" + name.replace("_", "-")
            subject = (f"--method {methods[0]}" if len(methods) == 1
                       else f"--methods {','.join(methods)}")
            raise ValueError(
                f"{flag} does not apply to {subject}; it applies to {', '.join(allowed)}"
            )


def _read(data: str, columns: str | None, labels: str | None, dropna: bool,
          standardize: bool) -> Any:
    """Read DATA and say on stderr which columns are used (and what was left out)."""
    from gmmkit._io import read_data

    table = read_data(data, columns=_split_list(columns), standardize=standardize,
                      dropna=dropna, labels=labels)
    for note in table.notes:
        click.echo(f"gmmkit: note: {note}", err=True)
    used = f"gmmkit: using column(s) {', '.join(table.names)} of {data} ({len(table.X)} rows"
    if labels is not None:
        used += f"; labels from {labels!r}"
    click.echo(used + ")", err=True)
    return table


def _options(*groups: list[Callable[..., Any]]) -> Callable[..., Any]:
    """Apply option decorators so that they appear in ``--help`` in the listed order."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed([opt for group in groups for opt in group]):
            command = option(command)
        return command

    return decorate


@cli.command(epilog=FIT_EPILOG)
@click.argument("data", type=str)
@_options(
    MODEL_OPTIONS,
    [click.option("--method", type=click.Choice(METHODS), default=None,
                  help="Inference method [default: cavi, or em for --model gmm].")],
    PRIOR_OPTIONS, RUN_OPTIONS, DATA_OPTIONS,
)
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-fit-METHOD].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No progress bar and no table.")
@_handle_errors
def fit(
    data: str, model_name: str, components: int, method: str | None, alpha0: float | None,
    beta0: float, nu0: float | None, prior_sd: float | None, obs_sd: float,
    reg_covar: float, seed: int, n_init: int, init: str, tol: float, max_iter: int,
    draws: int | None, tune: int | None, chains: int | None, n_iter: int | None,
    learning_rate: float | None, target_accept: float | None, columns: str | None,
    labels: str | None, dropna: bool, standardize: bool, out: str | None, force: bool,
    quiet: bool,
) -> None:
    """Fit a mixture to DATA and write the fit, its trace and plots to --out."""
    import gmmkit
    from gmmkit.output import atomic_directory, check_output_directory

    method = method or DEFAULT_METHOD[model_name]
    values = {"n_init": n_init, "init": init, "tol": tol, "max_iter": max_iter,
              "draws": draws, "tune": tune, "chains": chains, "n_iter": n_iter,
              "learning_rate": learning_rate, "target_accept": target_accept}
    _check_options_apply([method], values)
    out_dir = Path(out or f"gmmkit-fit-{method}")
    # Refuse a bad --out before any fitting, so a long run is not wasted.
    check_output_directory(out_dir, force, inputs=[data])
    table = _read(data, columns, labels, dropna, standardize)
    X, names = table.X, table.names
    model = build_model(
        model_name, components, X, alpha0=alpha0, beta0=beta0, nu0=nu0, prior_sd=prior_sd,
        obs_sd=obs_sd, reg_covar=reg_covar,
    )
    x = X[:, 0] if model_name == "univariate" and X.shape[1] == 1 else X
    options = {name: values[name] for name in _PYMC_OPTIONS if values[name] is not None}
    if not quiet:
        click.echo(f"gmmkit: fitting {method} ...", err=True)
    result = gmmkit.fit(
        model, x, method, seed=seed, n_init=n_init, init=init, tol=tol, max_iter=max_iter,
        progress=_show_progress(quiet), **options,
    )
    with atomic_directory(out_dir, force, kind="fit", inputs=[data]) as tmp:
        result.write_files(tmp)
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


#: fit.png draws a random sample of at most this many points.
PLOT_MAX_POINTS = 20_000


def write_fit_figures(result: Any, directory: Path) -> None:
    """trace.png (ELBO, or log-likelihood for maximum-likelihood fits) and fit.png (a
    sample of at most ``PLOT_MAX_POINTS`` points)."""
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
    x = result.data
    if len(x) > PLOT_MAX_POINTS:
        # A million-point scatter takes matplotlib ~10 s and shows no more than a sample.
        x = x[np.sort(np.random.default_rng(0).choice(len(x), PLOT_MAX_POINTS, replace=False))]
    plot_fit(x, {result.method: result}).savefig(directory / "fit.png", dpi=110)


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


# ----------------------------------------------------------------------------- compare
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
"""

def _method_options(method: str, **values: Any) -> dict[str, Any]:
    """The PyMC option values (--draws, --tune, ...) that apply to ``method``."""
    return {
        name: value for name, value in values.items()
        if value is not None and method in _METHOD_OPTIONS[name]
    }


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


def _parse_methods(value: str | None, option: str = "--methods") -> list[str]:
    methods = _split_list(value)
    if not methods:
        raise ValueError(f"{option} must name at least one method, e.g. cavi,advi,nuts")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(
            f"{option}: unknown method(s) {', '.join(map(repr, unknown))}; expected some of "
            f"{', '.join(METHODS)}"
        )
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ValueError(f"{option}: method(s) {', '.join(map(repr, repeated))} given twice")
    return methods


def _check_methods_apply(methods: list[str], allowed: tuple[str, ...], model: str) -> None:
    """Refuse methods that do not apply to the model (``model`` names it in the message)."""
    wrong = [m for m in methods if m not in allowed]
    if wrong:
        subject = (f"method {wrong[0]!r} does" if len(wrong) == 1
                   else f"methods {', '.join(map(repr, wrong))} do")
        raise ValueError(
            f"--methods: {subject} not apply to --model {model}; expected some of "
            f"{', '.join(allowed)}"
        )


@cli.command(epilog=COMPARE_EPILOG)
@click.argument("data", type=str)
@_options(
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
@_handle_errors
def compare(
    data: str, model_name: str, components: int, methods: str | None, reference: str | None,
    alpha0: float | None, beta0: float, nu0: float | None, prior_sd: float | None,
    obs_sd: float, reg_covar: float, seed: int, n_init: int, init: str, tol: float,
    max_iter: int, draws: int | None, tune: int | None, chains: int | None,
    n_iter: int | None, learning_rate: float | None, target_accept: float | None,
    columns: str | None, labels: str | None, dropna: bool, standardize: bool,
    psis_draws: int, min_weight: float,
    log_likelihood: bool | None,
    out: str | None, force: bool, quiet: bool,
) -> None:
    """Fit DATA with several methods and compare them against a reference fit."""
    import gmmkit
    from gmmkit.output import check_output_directory

    out_dir = Path(out or "gmmkit-compare")
    check_output_directory(out_dir, force, inputs=[data])
    default = "em,kmeans" if model_name == "gmm" else "cavi,advi,nuts"
    method_list = _parse_methods(methods if methods is not None else default)
    if reference is not None and reference not in method_list:
        raise ValueError(
            f"--reference {reference!r} is not among --methods ({', '.join(method_list)})"
        )
    values = {"n_init": n_init, "init": init, "tol": tol, "max_iter": max_iter,
              "draws": draws, "tune": tune, "chains": chains, "n_iter": n_iter,
              "learning_rate": learning_rate, "target_accept": target_accept}
    _check_options_apply(method_list, values)
    table = _read(data, columns, labels, dropna, standardize)
    X = table.X
    model = build_model(
        model_name, components, X, alpha0=alpha0, beta0=beta0, nu0=nu0, prior_sd=prior_sd,
        obs_sd=obs_sd, reg_covar=reg_covar,
    )
    from gmmkit.api import methods_for

    _check_methods_apply(
        method_list, methods_for(model), f"{model_name} ({type(model).__name__})"
    )
    x = X[:, 0] if model_name == "univariate" and X.shape[1] == 1 else X
    progress = _show_progress(quiet)
    fits = {}
    for method in method_list:
        if progress:
            click.echo(f"fitting {method} ...", err=True)
        fits[method] = gmmkit.fit(
            model, x, method, seed=seed, n_init=n_init, init=init, tol=tol,
            max_iter=max_iter, progress=progress,
            **_method_options(method, **{n: values[n] for n in _PYMC_OPTIONS}),
        )
    truth = None if table.labels is None else _truth_from_labels(X, table.labels)
    comparison = gmmkit.compare(fits, reference=reference, psis_draws=psis_draws, seed=seed,
                                min_weight=min_weight, truth=truth)
    comparison.save(out_dir, force=force, log_likelihood=log_likelihood)
    if not quiet:
        print_comparison(comparison, title=f"{type(model).__name__}, K = {components}")
    click.echo(f"wrote {out_dir}")


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
    import pandas as pd

    return [
        c for c in _COMPARISON_COLUMNS
        if c[0] in frame.columns and not pd.isna(frame[c[0]]).all()
    ]


def comparison_table(comparison: Any, title: str | None = None) -> Any:
    """A rich Table of the key columns of ``comparison.table``: blank where unknown,
    columns that are unknown for every fit left out."""
    import numpy as np
    from rich.table import Table

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
    console = console or _console()
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


def _console() -> Any:
    """A rich Console; 160 columns wide when writing to a file or pipe (rich's default of
    80 would truncate the tables in a log)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


# ----------------------------------------------------------------------------- sweep
SWEEP_EPILOG = """\b
Examples:
  gmmkit sweep --methods cavi,advi --n 100,1000 -k 3 --separation 2,4,8 --out sweep
  gmmkit sweep --methods cavi,nuts --n 200 -k 2,3 --seeds 0,1,2 --draws 500 --tune 500 \\
      --out sweep-nuts
  gmmkit sweep --methods cavi --separation prior --seeds 0,1,2,3 --out sweep-prior

\b
Simulates univariate data sets (Blei et al.'s model, known --obs-sd) on the grid
--n x -k x --separation x --seeds and fits every method to each. A separation is the
distance between neighbouring true means in units of --obs-sd; "prior" draws the means
from the model's prior instead.

\b
Writes to --out: sweep.csv (one row per data set and method: mean error, ELBO, log
evidence and gap, PSIS k-hat, ARI, wall time, iterations) and sweep.png (error and
wall time against N, ARI against separation, ELBO gap against N).
"""


def _parse_numbers(value: str, option: str, kind: type, allow_prior: bool = False) -> list:
    items = _split_list(value)
    if not items:
        raise ValueError(f"{option} must hold at least one value, got {value!r}")
    out = []
    for item in items:
        if allow_prior and item.lower() in ("prior", "none"):
            out.append(None)
            continue
        try:
            number = kind(item)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            extra = ' or "prior"' if allow_prior else ""
            raise ValueError(f"{option}: {item!r} is not {expected}{extra}") from None
        out.append(number)
    return out


@cli.command(epilog=SWEEP_EPILOG)
@click.option("--methods", type=str, default="cavi", show_default=True,
              help="Comma-separated methods to fit (those of --model univariate).")
@click.option("--n", "n_values", type=str, default="100,1000", show_default=True,
              help="Comma-separated sample sizes N.")
@click.option("-k", "--components", "k_values", type=str, default="3", show_default=True,
              help="Comma-separated numbers of clusters K (true and fitted).")
@click.option("--separation", type=str, default="4", show_default=True,
              help='Comma-separated separations of neighbouring true means (obs sd units); '
                   '"prior" draws the means from the prior.')
@click.option("--seeds", type=str, default="0", show_default=True,
              help="Comma-separated data (and fit) seeds.")
@click.option("--model", "model_name", type=click.Choice(["univariate"]),
              default="univariate", show_default=True,
              help="Data-generating and fitted model.")
@click.option("--obs-sd", type=float, default=1.0, show_default=True,
              help="Known observation sd.")
@click.option("--prior-sd", type=float, default=None,
              help="Prior sd of the means [default: max(10, 2 x the largest |true mean|)].")
@click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="Restarts per fit.")
@click.option("--evidence/--no-evidence", default=True, show_default=True,
              help="Fill log evidence, ELBO gap and k-hat (exact where small, SMC, else "
                   "importance sampling).")
@click.option("--psis-draws", type=click.IntRange(min=10), default=500, show_default=True,
              help="Draws from q for k-hat and the importance-sampling evidence.")
@click.option("--draws", type=click.IntRange(min=1), default=None,
              help="Draws per chain (nuts, smc) or from q (advi).")
@click.option("--tune", type=click.IntRange(min=1), default=None, help="Tuning steps (nuts).")
@click.option("--chains", type=click.IntRange(min=1), default=None, help="Chains (nuts, smc).")
@click.option("--out", type=click.Path(), default=None,
              help="Output directory [default: gmmkit-sweep].")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--quiet", is_flag=True, help="No table.")
@_handle_errors
def sweep(
    methods: str, n_values: str, k_values: str, separation: str, seeds: str,
    model_name: str, obs_sd: float, prior_sd: float | None, n_init: int, evidence: bool,
    psis_draws: int, draws: int | None, tune: int | None, chains: int | None,
    out: str | None, force: bool, quiet: bool,
) -> None:
    """Fit methods on simulated data over a grid of N, K and separation."""
    import gmmkit
    from gmmkit.api import methods_for
    from gmmkit.models.univariate import UnivariateGMM
    from gmmkit.output import atomic_directory, check_output_directory

    out_dir = Path(out or "gmmkit-sweep")
    check_output_directory(out_dir, force)
    method_list = _parse_methods(methods)
    _check_methods_apply(method_list, methods_for(UnivariateGMM), model_name)
    fit_options = {
        method: options for method in method_list
        if (options := _method_options(method, draws=draws, tune=tune, chains=chains))
    }
    table = gmmkit.sweep(
        method_list,
        n=_parse_numbers(n_values, "--n", int),
        k=_parse_numbers(k_values, "-k", int),
        separation=_parse_numbers(separation, "--separation", float, allow_prior=True),
        seeds=_parse_numbers(seeds, "--seeds", int),
        model=model_name, obs_sd=obs_sd, prior_sd=prior_sd, n_init=n_init,
        evidence=evidence, psis_draws=psis_draws, fit_options=fit_options,
    )
    with atomic_directory(out_dir, force, kind="sweep") as tmp:
        table.to_csv(tmp / "sweep.csv", index=False)
        gmmkit.plot_sweep(table).savefig(tmp / "sweep.png", dpi=110)
    if not quiet:
        print_sweep(table)
    click.echo(f"wrote {out_dir}")


def print_sweep(frame: Any) -> None:
    """One rich row per (data set, method)."""
    import numpy as np
    from rich.table import Table

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
    _console().print(table)


# ----------------------------------------------------------------------------- demo
DEMO_EPILOG = """\b
Examples:
  gmmkit demo
  gmmkit demo --out results --force
  gmmkit demo --quick --no-faithful --out smoke-test

\b
(a) Blei et al.'s (2017) example: K = 5 means drawn from N(0, 3^2), N = 1000 points,
    fitted by CAVI, ADVI, full-rank ADVI, NUTS (500 + 500 draws x 2 chains; the
    reference) and SMC (500 draws x 2 chains; the log evidence).
(b) Old Faithful (standardised): Bishop's Bayesian GMM, K = 6, alpha0 = 1e-3, fitted by
    variational Bayes (two components keep weight), against EM with K = 2 (and K = 6 in
    weights.csv).

\b
Takes about 1.5 minutes on 2 cores (--quick: about 15 s). Writes to --out: blei/ and
faithful/ (each table.csv, summary.csv, report.md, figures and fits/*.nc) and README.md
with the wall time of every step.
"""


@cli.command(epilog=DEMO_EPILOG)
@click.option("--out", default="gmmkit-demo", show_default=True, type=click.Path(),
              help="Directory for the tables and figures.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--quick", is_flag=True,
              help="Smaller data and shorter runs (a smoke test, not a reference).")
@click.option("--faithful/--no-faithful", default=True, show_default=True,
              help="Run part (b), Old Faithful.")
@click.option("--parallel/--sequential", default=True, show_default=True,
              help="Run part (b) in a second process while part (a) runs (2 cores).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_handle_errors
def demo(out: str, force: bool, seed: int, quick: bool, faithful: bool, parallel: bool,
         quiet: bool) -> None:
    """Run the reference comparison and write its report to --out."""
    from gmmkit.demo import run_demo

    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}")
    run_demo(out, force=force, seed=seed, progress=_show_progress(quiet), quick=quick,
             faithful=faithful, parallel=parallel)


def main() -> None:
    cli(prog_name="gmmkit")
