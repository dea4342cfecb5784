"""The ``gmmkit`` command line (click + rich): one module per command.

``gmmkit fit``, ``gmmkit compare``, ``gmmkit select``, ``gmmkit sweep`` and
``gmmkit demo``; what they share
(error handling and exit codes, options, reading data) is in :mod:`gmmkit.cli.common`.
"""

from __future__ import annotations

import click

from gmmkit._version import __version__
from gmmkit.cli.compare import compare
from gmmkit.cli.demo import demo
from gmmkit.cli.fit import fit
from gmmkit.cli.select import select
from gmmkit.cli.sweep import sweep

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gmmkit")
def cli() -> None:
    """Fit Bayesian Gaussian mixtures and compare inference methods.

    Run `gmmkit COMMAND --help` for the options and examples of each command.
    """


for _command in (fit, compare, select, sweep, demo):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="gmmkit")
