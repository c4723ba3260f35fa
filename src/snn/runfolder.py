"""A run folder as a resource: one writer at a time, and no finished run overwritten by accident.

A training holds an exclusive ``flock`` on the folder itself for as long as it runs
(a lock on the directory needs no lock file beside the run's files). The kernel drops the lock when the process ends, however it ends (even
``kill -9``), so a lock never goes stale, and "is this run running?" has an exact
answer: can the lock be taken?
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import RunFolderError
from .files import refuse_unless_regular

STOP_FILE, SUMMARY, CHECKPOINT = "STOP", "summary.json", "checkpoint.json"
# What a training writes; --force removes these (and only these) before starting over.
RUN_FILES = ("summary.json", "history.csv", "invocations.csv", "checkpoint.json", "runtime.json",
             "model.json", "model.safetensors", "config.json", "telemetry.safetensors",
             "model.onnx", "report.html")  # what `snn export` and `snn report` write beside a run
REPORT_FOLDER = "report"  # `snn report`'s figures: *.png, nothing else


@contextlib.contextmanager
def claim(folder: Path, resume: bool = False, force: bool = False):
    """Hold ``folder`` for one training; refuse a folder in use, or a complete run unless ``force``."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"{folder}: not a folder; help: give --out a new or existing folder")
    if not (resume or force):
        if (folder / SUMMARY).exists():
            raise RunFolderError(f"{folder}: holds a complete run; help: pass --force to overwrite it, "
                                 "or another --out")
        if (folder / CHECKPOINT).exists():
            raise RunFolderError(f"{folder}: holds an unfinished run; help: `snn train --resume {folder}` goes on "
                                 "with it, --force starts over")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(f"{folder}: in use by another training; help: wait for it to end, "
                                 f"or `snn stop {folder}`") from None
        # A stop flag left by an earlier process is not meant for this one.
        (folder / STOP_FILE).unlink(missing_ok=True)
        if force and not resume:
            _clear(folder)
        yield folder
    finally:
        os.close(fd)  # releases the lock


def is_run_file(name: str) -> bool:
    """Is ``name`` one of the files a training (or its export and report) writes in a run folder?"""
    return name in RUN_FILES or (name.startswith("checkpoint-") and name.endswith(".safetensors"))


def _clear(folder: Path) -> None:
    """Remove an earlier run's files by their names (and the checkpoint-N.safetensors pattern), nothing else.

    Every one is checked first: a folder or a FIFO where a run file goes stops ``--force`` before anything is
    removed, so a complete run is never left half cleared.
    """
    doomed = [folder / name for name in RUN_FILES] + [p for p in folder.iterdir() if is_run_file(p.name)]
    for path in doomed:
        refuse_unless_regular(path)
    for path in doomed:
        path.unlink(missing_ok=True)
    figures = folder / REPORT_FOLDER
    if figures.is_dir() and not figures.is_symlink():  # never through a link, out of the folder
        for path in figures.iterdir():
            if path.suffix == ".png" and path.is_file() and not path.is_symlink():
                path.unlink()
        with contextlib.suppress(OSError):  # a figure folder holding anything else is left as it is
            figures.rmdir()


def is_running(folder: Path) -> bool:
    """True while a training holds ``folder``."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)

