"""safetensors files: written atomically with the mode of any new file, read back bounded and checked.

Model files and checkpoints hold their tensors this way; nothing in them is executable.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, load_file, save_file

from .documents import regular_size, short
from .errors import SnnError
from .files import atomic_path

TENSOR_HEADER_BYTES = 1 << 20  # a safetensors header of a few dozen tensors is a few kilobytes


def write_tensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` atomically, with the mode of any new file (0666 less the umask).

    safetensors writes a private file of its own (0600) and renames it, so the mode of
    the file ``atomic_path`` created is put back afterwards.
    """
    with atomic_path(path) as tmp:
        mode = stat.S_IMODE(os.stat(tmp).st_mode)
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        os.chmod(tmp, mode)


def read_tensors(path: Path, error: type[SnnError], min_bytes: int, max_bytes: int) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file of ``min_bytes`` to ``max_bytes``; ``error`` of one line otherwise."""
    size = regular_size(path, error)
    if not min_bytes <= size <= max_bytes:
        raise error(f"{path}: {size} bytes; its tensors take {min_bytes} to {max_bytes}: it does not hold "
                    "the tensors its model or run needs")
    return _parsed(path, error, lambda: load_file(str(path)))


def read_run_tensors(path: Path, error: type[SnnError], max_bytes: int) -> dict[str, np.ndarray]:
    """The tensors of a file of at most ``max_bytes`` that a run folder holds (and a server shows): opened
    without following a link, and only if it is a regular file (a FIFO would block the read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e}); help: it must be a plain file, not a link") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{path}: {info.st_size} bytes; at most {max_bytes} are read: it is not one snn wrote")
        data = f.read(max_bytes + 1)
    return _parsed(path, error, lambda: load(data))


def _parsed(path: Path, error: type[SnnError], parse) -> dict[str, np.ndarray]:
    try:
        return parse()
    except (SafetensorError, OSError, ValueError, TypeError, KeyError, OverflowError) as e:
        raise error(f"{path}: not a readable safetensors file ({' '.join(str(e).split())[:200]})") from None


def check_tensors(path: Path, tensors: dict[str, np.ndarray], expected: dict[str, tuple],
                  error: type[SnnError]) -> None:
    """Exactly the ``expected`` names, each of its ``(shape, dtype)``, every value finite."""
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        wrong = "; ".join(f"{what}: {short(names)}" for what, names in (("missing", missing), ("not expected", extra))
                          if names)
        raise error(f"{path}: tensors {wrong}; it should hold {short(sorted(expected))}")
    for name, (shape, dtype) in expected.items():
        got = tensors[name]
        if got.shape != tuple(shape) or got.dtype != dtype:
            raise error(f"{path}: tensor {name} is {got.dtype}{list(got.shape)}; "
                        f"expected {np.dtype(dtype)}{list(shape)}")
        if not np.isfinite(got).all():
            raise error(f"{path}: tensor {name} holds NaN or infinite values")
