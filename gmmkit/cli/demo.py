"""``gmmkit demo``: the reference comparison (:mod:`gmmkit.experiments.demo`)."""

from __future__ import annotations

import click

from gmmkit.cli.common import handle_errors, show_progress

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


@click.command(epilog=DEMO_EPILOG)
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
@handle_errors
def demo(out: str, force: bool, seed: int, quick: bool, faithful: bool, parallel: bool,
         quiet: bool) -> None:
    """Run the reference comparison and write its report to --out."""
    from gmmkit.experiments.demo import run_demo

    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}")
    run_demo(out, force=force, seed=seed, progress=show_progress(quiet), quick=quick,
             faithful=faithful, parallel=parallel)


