"""What every ``gmmkit`` command shares: error handling, options, reading data.

Exit codes: 0 on success; 2 on a usage error or bad input (one clear line, no traceback);
1 on an unexpected failure; 130 when interrupted (Ctrl-C), with nothing saved.  Every
command writes into a temporary directory and swaps it into place (``gmmkit.output``), so
``--out`` is never left half-written and never replaces a directory gmmkit did not write.

Which option applies to which method is read from the method table
(:data:`gmmkit.inference.methods.METHODS`), never spelled here.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import wraps
from typing import Any

import click

from gmmkit.inference.methods import METHODS, Method, get_method, methods_for
from gmmkit.models.factory import MODEL_KINDS

#: Model kinds by name, as ``--model`` takes them.
MODELS = tuple(MODEL_KINDS)


def default_method(model_name: str) -> str:
    """The method used when ``--method`` is not given: the first the table lists for the
    model (closed form where it exists)."""
    return methods_for(MODEL_KINDS[model_name])[0]


class BadInput(click.ClickException):
    """Bad data or options: one line on stderr and exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"gmmkit: error: {self.format_message()}", err=True)


def handle_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn ValueError (bad input) into exit 2, Ctrl-C into exit 130 (one line, nothing
    saved: output directories are only swapped into place once complete), anything
    unexpected into exit 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = show_warning
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


def show_warning(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: Any = None, line: str | None = None) -> None:
    """Show a warning as one line on stderr, ``gmmkit: warning: <message>``, never as
    Python's warning text with its source line (installed by :func:`handle_errors`)."""
    text = " ".join(str(message).split())
    click.echo(f"gmmkit: warning: {text}", err=True)


def show_progress(quiet: bool) -> bool:
    # A bar in a log file or pipe is noise: only draw it on a terminal.
    return not quiet and sys.stdout.isatty()


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None


# Options shared by fit and compare, as decorator lists applied in order.
MODEL_OPTIONS = [
    click.option("--model", "model_name", type=click.Choice(MODELS), default="bayesian",
                 show_default=True, help="Which model to fit."),
    click.option("-k", "--components", type=click.IntRange(min=1), default=2,
                 show_default=True, help="Number of mixture components K."),
]
PRIOR_OPTIONS = [
    click.option("--alpha0", type=float, default=None,
                 help="Weight concentration (bayesian): the Dirichlet's alpha0, or the "
                      "stick-breaking gamma with --weight-prior dirichlet_process "
                      "[default: 1/K]."),
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
    click.option("--covariance", type=click.Choice(["full", "diag", "spherical", "tied"]),
                 default="full", show_default=True,
                 help="Covariance family (gmm: all four; bayesian: full so far)."),
    click.option("--weight-prior", type=click.Choice(["dirichlet_distribution",
                                                      "dirichlet_process"]),
                 default="dirichlet_distribution", show_default=True,
                 help="Prior on the weights (bayesian): symmetric Dirichlet, or truncated "
                      "stick-breaking, where K is only an upper bound on the components."),
]
RUN_OPTIONS = [
    click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
    click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Restarts; the best objective is kept."),
    click.option("--init", type=click.Choice(["kmeans++", "random"]), default="kmeans++",
                 show_default=True, help="Initialisation of the means."),
    click.option("--tol", type=float, default=None,
                 help="Stop when one iteration changes the objective by at most this many "
                      "nats (cavi, em, kmeans) [default: 1e-5]."),
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
    click.option("--n-threads", type=click.IntRange(min=1), default=None,
                 metavar="N",
                 help="Threads of every pass over in-memory data (cavi); the fit is the "
                      "same on any number [default: as many as the BLAS may use, i.e. "
                      "every core unless OMP_NUM_THREADS says fewer]."),
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

def _given(name: str) -> bool:
    """Whether option ``name`` was given by the user (not its default)."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def applies(name: str, method: str) -> bool:
    """Whether option ``name`` (the keyword of ``gmmkit.fit``) applies to ``method``."""
    return name in get_method(method).all_options()


def methods_taking(name: str) -> tuple[str, ...]:
    """The methods an option applies to, in the table's order."""
    return tuple(m.name for m in METHODS.values() if name in m.all_options())


def check_options_apply(methods: list[str], values: dict[str, Any]) -> None:
    """Refuse a method-specific option given by the user that applies to none of
    ``methods`` (rather than silently ignoring it)."""
    for name, value in values.items():
        allowed = methods_taking(name)
        if _given(name) and value is not None and not any(m in allowed for m in methods):
            flag = "--" + name.replace("_", "-")
            subject = (f"--method {methods[0]}" if len(methods) == 1
                       else f"--methods {','.join(methods)}")
            raise ValueError(
                f"{flag} does not apply to {subject}; it applies to {', '.join(allowed)}"
            )


def read_table(data: str, columns: str | None, labels: str | None, dropna: bool,
               standardize: bool, *, lazy: bool | None = False,
               chunk_rows: int | None = None) -> Any:
    """Read DATA and say on stderr which columns are used (and what was left out).

    ``lazy`` and ``chunk_rows`` are :func:`gmmkit.reading.read_data`'s; by default
    (``lazy=False``) every source, a Zarr store or Parquet files included, is read into
    memory; ``gmmkit fit`` passes ``lazy=None`` to keep those as Dask arrays."""
    from gmmkit.reading import read_data

    table = read_data(data, columns=split_list(columns), standardize=standardize,
                      dropna=dropna, labels=labels, lazy=lazy, chunk_rows=chunk_rows)
    for note in table.notes:
        click.echo(f"gmmkit: note: {note}", err=True)
    used = f"gmmkit: using column(s) {', '.join(table.names)} of {data} ({len(table.X)} rows"
    if labels is not None:
        used += f"; labels from {labels!r}"
    click.echo(used + ")", err=True)
    return table


#: Running on Dask: ``gmmkit fit`` only (the closed-form methods stream Dask data).
DASK_OPTIONS = [
    click.option("--scheduler", type=str, default=None, metavar="ADDRESS",
                 help="Run on an existing Dask cluster: its scheduler's address, e.g. "
                      "tcp://10.0.0.5:8786. The data are read lazily, chunk by chunk."),
    click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Run on a local Dask cluster of N worker processes, started for this "
                      "run and closed after it (also on errors and Ctrl-C)."),
    click.option("--chunk-rows", type=click.IntRange(min=1), default=None, metavar="ROWS",
                 help="Read the data lazily with Dask in chunks of ROWS rows [default: the "
                      "Zarr store's chunks, the Parquet row groups, about 128 MiB for .npy]."),
]

#: How long ``--scheduler`` waits for the scheduler to answer, in seconds.
CONNECT_TIMEOUT_S = 10


class RunFailed(click.ClickException):
    """The computation failed outside gmmkit (a Dask worker died, the scheduler went
    away): one line on stderr and exit code 1; nothing was saved."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"gmmkit: error: {self.format_message()}", err=True)


@contextmanager
def dask_cluster(
    scheduler: str | None, workers: int | None, say: Callable[[str], None],
) -> Iterator[Any]:
    """The ``distributed.Client`` of ``--scheduler`` or ``--workers`` for the block (None
    without them: Dask's local threaded scheduler, or NumPy for in-memory data).

    A local cluster is closed when the block ends, however it ends; a worker that dies
    for good, or a lost scheduler, becomes :class:`RunFailed` (exit 1) rather than a
    traceback, after the caller's atomic output has been removed.
    """
    if scheduler is not None and workers is not None:
        raise ValueError(
            "--scheduler and --workers exclude each other: --scheduler runs on an existing "
            "cluster, --workers starts a local one"
        )
    if scheduler is None and workers is None:
        yield None
        return
    option = "--scheduler" if scheduler is not None else "--workers"
    if scheduler is not None and not scheduler.strip():
        raise ValueError("--scheduler must be a scheduler address such as "
                         "tcp://host:8786, got an empty string")
    try:
        import logging

        from distributed import Client, LocalCluster
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker
    except ImportError:
        raise ValueError(f"{option} needs Dask's distributed scheduler: "
                         "pip install 'gmmkit[dask]'") from None
    with ExitStack() as stack:
        if workers is not None:
            say(f"starting a local Dask cluster of {workers} worker process(es)")
            # No dashboard: a fixed port would collide with another run's.
            address = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
        else:
            address = scheduler.strip()
        try:
            client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT_S))
        except (OSError, TimeoutError, ValueError) as err:
            raise ValueError(
                f"--scheduler: no Dask scheduler answered at {scheduler!r} within "
                f"{CONNECT_TIMEOUT_S} s ({err})"
            ) from None
        n_workers = len(client.scheduler_info().get("workers", {}))
        say(f"running on the Dask scheduler at {client.scheduler.address} "
            f"({n_workers} worker(s))")
        try:
            yield client
        except KilledWorker as err:
            raise RunFailed(
                f"a Dask worker died while computing ({err}); nothing was saved. A worker "
                "usually dies of its memory limit: try a smaller --chunk-rows or more "
                "memory per worker"
            ) from None
        except CommClosedError as err:
            raise RunFailed(
                f"lost the connection to the Dask cluster ({err}); nothing was saved"
            ) from None


def streams_dask(model: Any, method: str) -> bool:
    """Whether ``method`` fits ``model`` on a Dask array chunk by chunk (one pass per
    iteration) rather than needing its data in memory; the inference layer decides."""
    from gmmkit.inference.chunked import chunked_backend

    try:
        chunked_backend(model, get_method(method))
    except ValueError:
        return False
    return True


def option_groups(*groups: list[Callable[..., Any]]) -> Callable[..., Any]:
    """Apply option decorators so that they appear in ``--help`` in the listed order."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed([opt for group in groups for opt in group]):
            command = option(command)
        return command

    return decorate




def fit_options(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """The keywords of ``gmmkit.fit`` for ``method``: the given values of the options that
    apply to it (the method's defaults stand for the others)."""
    return {name: value for name, value in values.items()
            if value is not None and applies(name, method)}


def method_description(method: Method) -> str:
    return f"{method.name}: {method.summary}"


def parse_methods(value: str | None, option: str = "--methods") -> list[str]:
    methods = split_list(value)
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


def check_methods_apply(methods: list[str], allowed: tuple[str, ...], model: str) -> None:
    """Refuse methods that do not apply to the model (``model`` names it in the message)."""
    wrong = [m for m in methods if m not in allowed]
    if wrong:
        subject = (f"method {wrong[0]!r} does" if len(wrong) == 1
                   else f"methods {', '.join(map(repr, wrong))} do")
        raise ValueError(
            f"--methods: {subject} not apply to --model {model}; expected some of "
            f"{', '.join(allowed)}"
        )


