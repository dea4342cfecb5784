"""Experiments that call the library: the reference demo and simulation sweeps.

They sit above the report layer and below the command line: each fits through
``gmmkit.fit``, compares through ``gmmkit.report.compare`` and writes through the report
layer, so the shell and Python run exactly the same experiment.
"""

from gmmkit.experiments.demo import FULL, QUICK, DemoResult, DemoSettings, run_demo
from gmmkit.experiments.sweep import SWEEP_COLUMNS, simulate, sweep

__all__ = [
    "FULL",
    "QUICK",
    "SWEEP_COLUMNS",
    "DemoResult",
    "DemoSettings",
    "run_demo",
    "simulate",
    "sweep",
]
