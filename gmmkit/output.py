"""Writing output directories safely: the one place where gmmkit creates or replaces them.

Every directory gmmkit writes carries a manifest, :data:`MANIFEST` (``.gmmkit-output.json``:
the files written, the gmmkit version and the kind of output).  Replacing a directory is
only allowed when it carries that manifest, so ``--force`` can never delete a user's
files, the current directory, or the data being read.

A directory is written into a temporary directory beside the target and swapped into
place with renames (old -> backup, new -> target, backup removed), so the target holds
either the old output or the complete new one, never a mixture; on any failure,
Ctrl-C included, the temporary directories are removed and the old output is restored.

This module imports nothing else from gmmkit at import time (it is the bottom layer that
``result``, ``comparisons``, ``demo`` and the CLI build on).
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST",
    "atomic_directory",
    "check_output_directory",
    "is_gmmkit_output",
    "read_manifest",
    "write_array",
    "write_csv",
    "write_json",
]

#: Name of the manifest file in every directory gmmkit writes.
MANIFEST = ".gmmkit-output.json"


# ---------------------------------------------------------------------- file writers
def write_json(path: Path, value: Any) -> Path:
    """``value`` as indented JSON."""
    Path(path).write_text(json.dumps(value, indent=2))
    return Path(path)


def write_array(path: Path, array: np.ndarray) -> Path:
    """``array`` as ``.npy``: full precision, 8 bytes a float, read back with ``np.load``."""
    np.save(path, np.asarray(array), allow_pickle=False)
    return Path(path)


def write_csv(path: Path, columns: list[str], matrix: np.ndarray, fmt: str = "%.17g") -> Path:
    """A header row and one row per row of ``matrix``; ``%.17g`` round-trips float64."""
    np.savetxt(path, np.asarray(matrix), delimiter=",", header=",".join(columns),
               comments="", fmt=fmt)
    return Path(path)


# ---------------------------------------------------------------------- manifest
def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest of ``directory``, or None when it has none (or an unreadable one)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "gmmkit_output" in manifest else None


def is_gmmkit_output(directory: str | Path) -> bool:
    """True when ``directory`` carries a gmmkit manifest."""
    return read_manifest(directory) is not None


def _write_manifest(directory: Path, kind: str) -> None:
    from gmmkit._version import __version__

    files = sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()
    )
    write_json(directory / MANIFEST, {
        "gmmkit_output": 1,
        "kind": kind,
        "gmmkit_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": files,
    })


# ---------------------------------------------------------------------- checks
def _is_within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_directory(
    out: str | Path, force: bool = False, *, inputs: Iterable[str | Path] = (),
    option: str = "--out", force_name: str = "--force",
) -> Path:
    """Refuse an ``out`` that gmmkit may not (re)write; return it resolved.

    Checked before any work, so a long fit is never wasted on an unusable ``out``.

    Parameters
    ----------
    out : str or Path
        The output directory.
    force : bool
        Allow replacing an existing non-empty directory, but only one that carries a
        gmmkit manifest (:data:`MANIFEST`).
    inputs : iterable of paths
        Files being read ("-" for standard input is skipped): ``out`` may be neither one
        of them nor a directory containing one.
    option : str
        How ``out`` is named in error messages (``--out`` or ``directory``).
    force_name : str
        How ``force`` is named in error messages (``--force`` or ``replace=True``).

    Raises
    ------
    ValueError
        One line naming the option, what is expected and what was found.
    """
    given = Path(out)
    out = given.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} must be a directory, but {given} is an existing file")
    cwd = Path.cwd().resolve()
    if _is_within(cwd, out):
        raise ValueError(
            f"{option} {given} is the current directory or one of its parents; gmmkit "
            "writes a new directory and will not replace this one"
        )
    for source in inputs:
        if str(source) == "-":
            continue
        source_path = Path(source).expanduser().resolve()
        if _is_within(source_path, out):
            raise ValueError(
                f"{option} {given} is the input {source} or a directory containing it; "
                "choose another output directory"
            )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            what = "output directory" if option == "--out" else option
            raise ValueError(
                f"{what} {given} exists and is not empty; pass {force_name} to replace it "
                "(only a directory gmmkit wrote can be replaced)"
            )
        if not is_gmmkit_output(out):
            raise ValueError(
                f"{option} {given} is not empty and was not written by gmmkit (it has no "
                f"{MANIFEST}); refusing to replace it even when asked to; choose a new "
                "directory"
            )
    parent = _nearest_existing(out.parent)
    if not parent.is_dir():
        raise ValueError(
            f"{option} {given} cannot be created: {parent} is a file, expected a directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {given} cannot be written: directory {parent} is not writable"
        )
    return out


def _umask() -> int:
    # Read without changing it where the OS says (Linux); os.umask must set to read.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _free_name(parent: Path, stem: str) -> Path:
    while True:
        path = parent / f".{stem}.{secrets.token_hex(4)}"
        if not path.exists():
            return path


# ---------------------------------------------------------------------- writing
@contextmanager
def atomic_directory(
    out: str | Path, force: bool = False, *, kind: str = "output",
    inputs: Iterable[str | Path] = (), option: str = "--out", force_name: str = "--force",
) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``out``; on success swap it into place.

    Parameters
    ----------
    out : str or Path
        The directory to write; checked by :func:`check_output_directory`.
    force : bool
        Replace an existing gmmkit output (one with a manifest); never anything else.
    kind : str
        Recorded in the manifest ("fit", "comparison", "sweep", "demo").
    inputs, option, force_name
        As for :func:`check_output_directory`.

    Notes
    -----
    The swap is two renames within one directory: the old output is renamed to a hidden
    backup, the new one to ``out``, then the backup is removed.  If the second rename
    fails the backup is renamed back.  On any exception (``KeyboardInterrupt`` too) no
    temporary directory is left behind and ``out`` is as it was.
    """
    target = check_output_directory(out, force, inputs=inputs, option=option,
                                    force_name=force_name)
    # Create missing parents now, remembering which, to remove them again on failure.
    created = []
    parent = target.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        # mkdtemp makes 0700; an output directory gets the permissions mkdir would give.
        tmp.chmod(0o777 & ~_umask())
        yield tmp
        _write_manifest(tmp, kind)
        with _sigint_ignored():  # two renames: do not stop between them
            _swap(tmp, target, force, option, force_name)
    except BaseException:
        with _sigint_ignored():
            shutil.rmtree(tmp, ignore_errors=True)
            _remove_empty(created)
        raise


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    # Cleaning up after a first Ctrl-C must not be cut short by a second one.
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _remove_empty(directories: list[Path]) -> None:
    for directory in directories:  # deepest first
        try:
            directory.rmdir()
        except OSError:
            return


def _swap(tmp: Path, target: Path, force: bool, option: str, force_name: str) -> None:
    if not target.exists():
        os.rename(tmp, target)
        return
    # Checked again: the directory may have changed while the fit ran.
    check_output_directory(target, force, option=option, force_name=force_name)
    backup = _free_name(target.parent, f"{target.name}.old")
    os.rename(target, backup)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
