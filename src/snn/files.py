"""Writing files so that nothing is ever half-written: write beside, then rename."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import stat
import uuid
from pathlib import Path

from .errors import FileKindError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the target's folder; rename it over ``path`` on success.

    On any error the temporary file is removed and ``path`` is left as it was; an ``OSError``
    names ``path`` (a full disk fails in ``write``, which names no file). A target that exists
    and is not a regular file (a device, a FIFO, a socket, a folder) is never replaced: that
    is a ``FileKindError``, before anything is written.
    """
    path = Path(path)
    refuse_unless_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.part"
    try:
        # Created like any new file (0666 less the umask), unlike mkstemp's private 0600.
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        try:
            yield Path(tmp)
            refuse_unless_regular(path)  # it may have changed kind while the file was written
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as e:
        if e.filename is None or str(e.filename) == str(tmp):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise


def refuse_unless_regular(path: Path) -> None:
    """``path`` may be replaced: it does not exist, or it is a regular file, or a link to one (the link is
    replaced, not what it points to; ``/dev/stdout``, a link to a device or a pipe, is refused)."""
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            mode = os.stat(path).st_mode
    except FileNotFoundError:  # nothing there, or a dangling link
        return
    if not stat.S_ISREG(mode):
        raise FileKindError(f"{path}: is {file_kind(mode)}, not a regular file; snn never replaces one; "
                            "help: name a new file or a regular file to replace")


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((word for test, word in kinds if test(mode)), "not a plain file")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_tail(path, max_bytes: int) -> tuple[bytes, bool]:
    """The header line and the last whole lines, at most ``max_bytes``, of a regular file (never through a
    link, never a FIFO or a device), and whether lines before them were left out. ``OSError`` otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        header = f.readline(64 << 10)
        start = max(f.tell(), os.fstat(fd).st_size - max_bytes)
        f.seek(start)
        body = f.read(max_bytes)
    if start > len(header):  # the read began inside a row: drop what is left of it
        body = body.partition(b"\n")[2]
    return header + body, start > len(header)


def read_table(path) -> list[dict]:
    """A CSV with a header, as dicts: numbers as float, empty as None, True/False as bool."""
    with open(path, newline="") as f:
        return [{k: _typed(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _typed(value: str):
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    try:
        return float(value)
    except ValueError:
        return value
