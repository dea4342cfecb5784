"""Comparing fits: alignment, PSIS, the evidence policy, agreement tables and verdicts.

Everything here computes; figures, console tables and files are in :mod:`gmmkit.report`.
"""

from gmmkit.comparisons.align import align, aligned_inference_data
from gmmkit.comparisons.compare import Comparison, compare
from gmmkit.comparisons.diagnostics import (
    PsisResult,
    loo,
    psis_diagnostics,
    reference_diagnostics,
)
from gmmkit.comparisons.errors import parameter_errors
from gmmkit.comparisons.evidence import EvidenceEstimate, choose_evidence, evidence_estimates
from gmmkit.comparisons.matching import match_components
from gmmkit.comparisons.selection import Candidate, Selection, select

__all__ = [
    "Candidate",
    "Comparison",
    "EvidenceEstimate",
    "PsisResult",
    "Selection",
    "align",
    "aligned_inference_data",
    "choose_evidence",
    "compare",
    "evidence_estimates",
    "loo",
    "match_components",
    "parameter_errors",
    "psis_diagnostics",
    "reference_diagnostics",
    "select",
]
