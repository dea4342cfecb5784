"""The ``gmmkit`` command line (click + rich)."""

from __future__ import annotations

import sys

import click

from gmmkit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gmmkit")
def cli() -> None:
    """Fit Bayesian Gaussian mixtures and compare inference methods."""


@cli.command(
    epilog="Examples:\n\n  gmmkit demo\n\n  gmmkit demo --out results --force",
)
@click.option("--out", default="gmmkit-demo", show_default=True, type=click.Path(),
              help="Directory for the tables and figures.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(out: str, force: bool, seed: int, quiet: bool) -> None:
    """Run the reference comparison and write its report to --out."""
    from gmmkit.demo import run_demo

    try:
        run_demo(out, force=force, seed=seed, progress=not quiet and sys.stdout.isatty())
    except ValueError as err:
        raise click.UsageError(str(err)) from None


def main() -> None:
    cli(prog_name="gmmkit")
