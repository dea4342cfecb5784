"""Writing output directories safely."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "check_output_directory"]


def check_output_directory(out: str | Path, force: bool) -> Path:
    """Refuse an existing non-empty ``out`` unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a directory, but {out} is an existing file")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(
            f"output directory {out} exists and is not empty; pass --force to replace it"
        )
    return out


@contextmanager
def atomic_directory(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success rename it to ``out``.

    On failure the temporary directory is removed, so ``out`` is never half-written.
    """
    out = check_output_directory(out, force).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
