"""Every Python code block of the README runs, in order, in one namespace.

The README is the first thing a user copies from; it must never drift from the code.
The blocks fit PyMC models with the README's own settings, so this test is slow.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_python_blocks():
    assert len(python_blocks(README.read_text())) >= 4


@pytest.mark.slow
def test_every_readme_python_block_runs(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # blocks write files (fit.save, report.save)
    namespace: dict = {"__name__": "readme"}
    for number, block in enumerate(python_blocks(README.read_text()), start=1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as err:  # name the block that failed, with its source
            raise AssertionError(f"README python block {number} failed:\n{block}") from err
