"""``gmmkit demo``: the reference comparison, runnable from the shell or from Python.

An experiment: it calls the library (``gmmkit.fit``, ``gmmkit.report.compare``) and the
report layer, never the command line.  Two parts, each written as a comparison report:

(a) ``blei/``: Blei, Kucukelbir & McAuliffe's (2017, §3) example, K = 5 means drawn from
    N(0, 3^2), N = 1000 points with known noise sd 1, fitted by closed-form CAVI, ADVI,
    full-rank ADVI, NUTS and SMC (SMC gives the log evidence), compared with NUTS as the
    reference and the true means as the truth.
(b) ``faithful/``: Old Faithful (standardised), Bishop's Bayesian GMM with K = 6 and
    alpha0 = 1e-3 fitted by variational Bayes ("cavi"; PRML §10.2, Fig. 10.6: only two
    components keep weight), against maximum-likelihood EM with K = 2 and (optionally,
    ``DemoSettings.faithful_advi``) ADVI on the same Bayesian model; ``weights.csv`` adds
    EM with K = 6, which keeps all six components.

Everything is written into ``out`` atomically (a temporary directory renamed at the end).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from gmmkit import datasets
from gmmkit.api import fit
from gmmkit.inference.methods import ADVI, CAVI, EM, FULLRANK_ADVI, NUTS, SMC
from gmmkit.models.bayesian import BayesianGMM
from gmmkit.models.mixture import GaussianMixture
from gmmkit.models.univariate import UnivariateGMM
from gmmkit.output import atomic_directory, check_output_directory
from gmmkit.report.comparison import ComparisonReport, compare
from gmmkit.report.tables import (
    make_console,
    print_comparison,
    sorted_weights,
    timings_table,
    weights_table,
)
from gmmkit.result import Fit

__all__ = ["FULL", "QUICK", "DemoResult", "DemoSettings", "run_demo"]


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo's fits (the full run and a quick one for tests)."""

    blei_n: int = 1000
    cavi_restarts: int = 10
    advi: dict[str, Any] = dataclasses.field(default_factory=dict)
    fullrank_advi: dict[str, Any] = dataclasses.field(default_factory=dict)
    nuts: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"draws": 500, "tune": 500, "chains": 2}
    )
    smc: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"draws": 500, "chains": 2}
    )
    #: ADVI options for Old Faithful (on BayesianGMM's PyMC graph), or None to skip it.
    faithful_advi: dict[str, Any] | None = dataclasses.field(
        default_factory=lambda: {"n_iter": 10_000}
    )
    vb_restarts: int = 5
    #: Draws for the agreement metrics, the summaries and the stored InferenceData.
    compare_draws: int = 1000
    #: Draws from each q for PSIS k-hat and the importance-sampling evidence.
    psis_draws: int = 2000
    dpi: int = 100


#: The full demo (about a minute of fitting on 2 cores, plus PyTensor compilation on the
#: first run).
FULL = DemoSettings()
#: A small version for tests: N = 200, short ADVI runs, 100 + 100 NUTS draws.
QUICK = DemoSettings(
    blei_n=200,
    cavi_restarts=3,
    advi={"n_iter": 2000, "draws": 200},
    fullrank_advi={"n_iter": 2000, "draws": 200},
    nuts={"draws": 100, "tune": 100, "chains": 2},
    smc={"draws": 100, "chains": 2},
    faithful_advi=None,
    vb_restarts=2,
    compare_draws=200,
    psis_draws=200,
    dpi=60,
)


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` computed: the comparisons, the timings and the directory."""

    out: Path
    blei: ComparisonReport
    faithful: ComparisonReport | None
    #: Wall time in seconds of every step ("blei: nuts", "blei: compare", ...).
    timings: dict[str, float]
    #: Warnings raised while fitting, as "step: message".
    warnings: tuple[str, ...]

    @property
    def wall_s(self) -> float:
        return float(self.timings["total"])


class _Steps:
    """Times each step, collects its warnings and prints one line when it ends."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []

    def run(self, name: str, action: Callable[[], Any], detail: str = "") -> Any:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = action()
        elapsed = time.perf_counter() - start
        self.timings[name] = elapsed
        self.console.print(
            f"  {name}{f' ({detail})' if detail else ''}: {elapsed:.1f} s", highlight=False
        )
        seen = set()
        for item in caught:
            if not issubclass(item.category, RuntimeWarning | UserWarning):
                continue
            message = str(item.message).splitlines()[0]
            if message in seen:
                continue
            seen.add(message)
            self.warnings.append(f"{name}: {message}")
            self.console.print(f"    [yellow]warning:[/yellow] {message}", highlight=False)
        return value


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _blei(
    steps: _Steps, settings: DemoSettings, seed: int, progress: bool
) -> ComparisonReport:
    data = datasets.blei_example(settings.blei_n, seed=seed)
    model = UnivariateGMM(n_components=data.means.size, prior_sd=3.0, obs_sd=1.0)
    steps.console.rule(
        f"(a) Blei et al.'s example: N = {settings.blei_n}, K = {model.n_components}, "
        f"means ~ N(0, 3^2), obs sd 1"
    )
    plan = [
        (CAVI.name, {}, {"n_init": settings.cavi_restarts},
         f"closed form, best of {settings.cavi_restarts} restarts"),
        (ADVI.name, settings.advi, {}, _describe(settings.advi) or "defaults"),
        (FULLRANK_ADVI.name, settings.fullrank_advi, {},
         _describe(settings.fullrank_advi) or "defaults"),
        (NUTS.name, settings.nuts, {},
         _describe(settings.nuts) + f"; chains start from the {CAVI.name} solution"),
        (SMC.name, settings.smc, {}, _describe(settings.smc) + "; log evidence"),
    ]
    fits: dict[str, Fit] = {}
    for method, options, common, detail in plan:
        if method == NUTS.name:
            # The reference starts where CAVI converged (PyMC jitters it per chain): chains
            # started apart can settle in different modes of the label-switched posterior.
            common = {"init": fits[CAVI.name]}
        fits[method] = steps.run(
            f"blei: {method}",
            lambda m=method, o=options, c=common: fit(
                model, data.x, m, seed=seed, progress=progress, **c, **o
            ),
            detail,
        )
    return steps.run(
        "blei: compare",
        lambda: compare(fits, reference=NUTS.name, truth=data, n_draws=settings.compare_draws,
                        psis_draws=settings.psis_draws, seed=seed),
        f"align to {NUTS.name}, PSIS k-hat, agreement",
    )


def _faithful(
    steps: _Steps, settings: DemoSettings, seed: int, progress: bool
) -> tuple[ComparisonReport, dict[str, Fit]]:
    """The comparison of VB (reference), EM with K = 2 (and ADVI), plus EM with K = 6,
    which is shown in the weights table only: its six point-estimate components have no
    counterpart in VB's two occupied ones, so agreement metrics would be meaningless."""
    X = datasets.old_faithful(standardize=True)
    model = BayesianGMM(6, alpha0=1e-3)
    steps.console.rule(
        f"(b) Old Faithful (standardised, N = {X.shape[0]}): Bayesian GMM K = 6, "
        "alpha0 = 1e-3, against EM"
    )
    fits: dict[str, Fit] = {}
    fits[CAVI.name] = steps.run(
        f"faithful: {CAVI.name}",
        lambda: fit(model, X, CAVI.name, seed=seed, n_init=settings.vb_restarts,
                    progress=progress),
        f"Bishop's VB, best of {settings.vb_restarts} restarts",
    )
    extra: dict[str, Fit] = {}
    for k, target in ((2, fits), (6, extra)):
        target[f"{EM.name}_k{k}"] = steps.run(
            f"faithful: {EM.name}_k{k}",
            lambda k=k: fit(GaussianMixture(k), X, EM.name, seed=seed, n_init=5,
                            progress=progress),
            f"maximum likelihood, K = {k}, best of 5 restarts",
        )
    if settings.faithful_advi is not None:
        fits[ADVI.name] = steps.run(
            f"faithful: {ADVI.name}",
            lambda: fit(model, X, ADVI.name, seed=seed, progress=progress,
                        **settings.faithful_advi),
            _describe(settings.faithful_advi) or "defaults",
        )
    comparison = steps.run(
        "faithful: compare",
        lambda: compare(fits, reference=CAVI.name, align="match",
                        n_draws=settings.compare_draws, psis_draws=settings.psis_draws,
                        seed=seed, min_weight=0.01,
                        feature_names=("eruptions (std)", "waiting (std)")),
        f"align to {CAVI.name} (components matched where K differs); agreement over the "
        "components VB keeps (weight >= 0.01)",
    )
    return comparison, extra


def _write_weights(fits: dict[str, Fit], path: Path) -> None:
    weights = sorted_weights(fits)
    k_max = max(w.size for w in weights.values())
    lines = ["fit," + ",".join(f"weight_{j}" for j in range(k_max))]
    for name, w in weights.items():
        lines.append(name + "," + ",".join(f"{v:.6g}" for v in w) + "," * (k_max - w.size))
    path.write_text("\n".join(lines) + "\n")


def _readme(result_timings: dict[str, float], caught: list[str], parts: dict[str, str]) -> str:
    lines = ["# gmmkit demo", ""]
    for directory, text in parts.items():
        lines += [f"- [{directory}/report.md]({directory}/report.md): {text}"]
    lines += ["", "## Wall time", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in result_timings.items()]
    if caught:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in caught]
    return "\n".join(lines) + "\n"


def run_demo(
    out: str | Path = "gmmkit-demo", *, force: bool = False, seed: int = 0,
    progress: bool = False, console: Console | None = None, quick: bool = False,
    faithful: bool = True, settings: DemoSettings | None = None, parallel: bool = False,
) -> DemoResult:
    """Run the reference comparison and write its reports to ``out``.

    Parameters
    ----------
    out : str or Path
        Output directory; an existing non-empty one is refused unless ``force``.
    force : bool
        Replace a non-empty ``out``.
    seed : int
        Seed of the data of part (a) and of every fit.
    progress : bool
        Show PyMC's progress bars.
    console : rich.console.Console, optional
        Where the tables go (a new Console by default).
    quick : bool
        Use :data:`QUICK` (smaller data and shorter runs, for tests) instead of
        :data:`FULL`.
    faithful : bool
        Run part (b), Old Faithful.
    settings : DemoSettings, optional
        Explicit sizes; overrides ``quick``.
    parallel : bool
        Run part (b) in a second process, with its own PyTensor compile directory, while
        part (a) runs here.  PyTensor compiles C code under a lock on its compile
        directory, so on a fresh machine (no compiled code cached yet) the two parts'
        compilations would otherwise run one after the other: measured 3 min 15 s in
        sequence.  ``DemoResult.faithful`` is then None (the report is on disk).

    Returns
    -------
    DemoResult
        The comparisons, the wall time of every step and the warnings raised.

    Writes ``blei/`` and ``faithful/`` (each a :meth:`Comparison.save` report: table.csv,
    summary.csv, report.md, figures, fits/*.nc without the pointwise log-likelihood) and
    ``README.md`` (links and wall times).
    """
    console = console or make_console()
    settings = settings or (QUICK if quick else FULL)
    check_output_directory(out, force)  # refuse a bad --out before minutes of fitting
    # Every linear-algebra call here is tiny (D <= 2, K <= 6): a multi-threaded BLAS only
    # adds synchronisation, which on a loaded 2-core machine made EM and VB 10-20 times
    # slower (2x2 triangular solves at 1 ms each), so run on one BLAS thread.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _run(out, force, seed, progress, console, faithful, settings, parallel)


def _run(
    out: str | Path, force: bool, seed: int, progress: bool, console: Console,
    faithful: bool, settings: DemoSettings, parallel: bool,
) -> DemoResult:
    steps = _Steps(console)
    start = time.perf_counter()
    child = None
    if faithful and parallel:
        child = _start_faithful_process(settings, seed)

    blei = _blei(steps, settings, seed, progress)
    print_comparison(blei, title="(a) Blei et al.'s example", console=console)
    faithful_cmp, faithful_fits, faithful_dir, has_advi = None, {}, None, False
    if child is not None:
        executor, future, faithful_dir = child
        with executor:
            report = future.result()
        console.print(report["text"], end="", highlight=False, markup=False)
        steps.timings.update(report["timings"])
        steps.warnings.extend(report["warnings"])
        has_advi = report["has_advi"]
    elif faithful:
        faithful_cmp, faithful_fits = _faithful_report(steps, settings, seed, progress)
        has_advi = ADVI.name in faithful_cmp.fits

    parts = {"blei": "Blei et al.'s example: CAVI, ADVI, full-rank ADVI, NUTS (reference) "
                     "and SMC (evidence)"}
    if faithful:
        parts["faithful"] = (
            "Old Faithful: Bishop's VB (K = 6, alpha0 = 1e-3) against EM with K = 2"
            + (" and ADVI" if has_advi else "")
            + "; weights.csv also lists EM with K = 6, which keeps all six components"
        )

    fitted = {**steps.timings, "total before writing": time.perf_counter() - start}

    def write() -> None:
        with atomic_directory(out, force=force, kind="demo") as tmp:
            blei.save(tmp / "blei", dpi=settings.dpi, log_likelihood=False)
            if faithful_cmp is not None:
                _save_faithful(faithful_cmp, faithful_fits, tmp / "faithful", settings)
            elif faithful_dir is not None:
                shutil.move(str(faithful_dir / "faithful"), str(tmp / "faithful"))
            (tmp / "README.md").write_text(_readme(fitted, steps.warnings, parts))

    try:
        steps.run("write reports", write, "tables, figures, fits/*.nc")
    finally:
        if faithful_dir is not None:
            shutil.rmtree(faithful_dir, ignore_errors=True)
    steps.timings["total"] = time.perf_counter() - start
    console.print(timings_table(steps.timings))
    console.print(f"wrote {Path(out).resolve()}", highlight=False)
    return DemoResult(
        out=Path(out), blei=blei, faithful=faithful_cmp, timings=dict(steps.timings),
        warnings=tuple(steps.warnings),
    )


def _faithful_report(steps: _Steps, settings: DemoSettings, seed: int, progress: bool):
    """Part (b): fit, compare and print; returns the comparison and every fit."""
    console = steps.console
    faithful_cmp, extra = _faithful(steps, settings, seed, progress)
    faithful_fits = {**faithful_cmp.fits, **extra}
    print_comparison(faithful_cmp, title="(b) Old Faithful", console=console)
    console.print(weights_table(faithful_fits))
    # The four pruned components are left out of the agreement columns: their q is
    # (nearly) the prior under VB and an unidentified blob under ADVI.
    console.print("Agreement columns of (b): the components VB keeps (weight >= 0.01) only.")
    return faithful_cmp, faithful_fits


def _save_faithful(comparison: ComparisonReport, fits: dict[str, Fit], directory: Path,
                   settings: DemoSettings) -> None:
    comparison.save(directory, dpi=settings.dpi, log_likelihood=False)
    _write_weights(fits, directory / "weights.csv")


def _start_faithful_process(settings: DemoSettings, seed: int):
    """Start part (b) in a spawned process with its own PyTensor compile directory."""
    import concurrent.futures
    import multiprocessing
    import os
    import tempfile

    import pytensor

    directory = Path(tempfile.mkdtemp(prefix="gmmkit-demo-faithful-"))
    # A compile directory of its own: PyTensor compiles under a lock on the directory,
    # which would serialise the two processes' compilations.  It persists, so a second
    # demo finds part (b)'s compiled code there.
    compiledir = Path(pytensor.config.base_compiledir) / "gmmkit-demo-faithful"
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f for f in (flags, f"base_compiledir={compiledir}") if f)
    try:
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        future = executor.submit(_faithful_in_process, settings, seed, directory)
        # The worker is spawned (and copies the environment) on the first submit.
    finally:
        if flags:
            os.environ["PYTENSOR_FLAGS"] = flags
        else:
            del os.environ["PYTENSOR_FLAGS"]
    return executor, future, directory


def _faithful_in_process(settings: DemoSettings, seed: int, directory: Path) -> dict:
    """Part (b) in the worker: fit, print into a recorded console, save the report."""
    import io

    from threadpoolctl import threadpool_limits

    console = Console(record=True, file=io.StringIO(), width=160)
    steps = _Steps(console)
    with threadpool_limits(limits=1, user_api="blas"):
        comparison, fits = _faithful_report(steps, settings, seed, progress=False)
        _save_faithful(comparison, fits, directory / "faithful", settings)
    return {"text": console.export_text(), "timings": steps.timings,
            "warnings": steps.warnings, "has_advi": ADVI.name in comparison.fits}
