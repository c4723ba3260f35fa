"""Download, verify and inspect the published datasets under a data root.

A mirror is not trusted: each file may not exceed its published size, must arrive within
an overall deadline (a server that trickles a byte at a time is cut off), and must match
its published SHA-256; otherwise nothing is written.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..files import atomic_path
from .catalog import PUBLISHED, Published, PublishedFile
from .checks import reason
from .root import dataset_folder

CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds: the longest wait for a connection or for any one read
DEADLINE = 900.0  # seconds: the longest one whole file may take (26 MB at 30 kB/s)
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)


def published(name: str) -> Published:
    try:
        return PUBLISHED[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; published ones: {', '.join(PUBLISHED)}") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    dataset: str
    file: str
    state: str  # "ok", "missing" or "corrupt"
    size: int


def verify(root: Path, name: str) -> list[FileStatus]:
    """Each file's state: missing, ok (its published size and SHA-256), or corrupt."""
    dataset = published(name)
    out = []
    for file, expected in dataset.files.items():
        path = root / name / file
        if not path.exists():
            out.append(FileStatus(name, file, "missing", 0))
            continue
        size = path.stat().st_size if path.is_file() else 0
        ok = path.is_file() and size == expected.size and sha256_of(path) == expected.sha256
        out.append(FileStatus(name, file, "ok" if ok else "corrupt", size))
    return out


def fetch(root: Path, name: str, base_url: str | None = None, timeout: float = TIMEOUT, progress=None,
          deadline: float = DEADLINE, clock: Callable[[], float] = time.monotonic) -> list[Path]:
    """Download every missing or corrupt file of ``name``; verify size and SHA-256; write atomically.

    ``timeout`` bounds each wait on the network, ``deadline`` each whole file (measured with
    ``clock``), so no file takes longer than ``deadline + timeout`` seconds.
    """
    dataset = published(name)
    dataset_folder(root, name)
    base = _mirror(base_url or dataset.mirror)
    fetched = []
    for status in verify(root, name):
        if status.state == "ok":
            continue
        url = base.rstrip("/") + "/" + status.file
        target = root / name / status.file
        _download(url, target, dataset.files[status.file], timeout, progress, deadline, clock)
        fetched.append(target)
    return fetched


def _mirror(url: str) -> str:
    try:
        scheme = urllib.parse.urlparse(url).scheme
    except ValueError as e:  # e.g. an unclosed [ in an IPv6 host
        raise DataError(f"mirror URL {url!r} is not a URL ({reason(e)}); help: pass --url http://HOST/PATH/") from None
    if scheme not in ("http", "https"):
        raise DataError(f"mirror URL {url!r} must start with http:// or https://")
    return url


def _download(url: str, target: Path, expected: PublishedFile, timeout: float, progress,
              deadline: float, clock: Callable[[], float]) -> None:
    start = clock()
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                digest = _copy(response, out, url, expected, deadline, lambda: clock() - start, progress)
        except DOWNLOAD_ERRORS as e:
            raise DataError(f"could not download {url}: {reason(e)}; help: pass another mirror with --url") from None
        if digest != expected.sha256:
            raise DataError(f"{url}: SHA-256 {digest} does not match the published {expected.sha256}; "
                            "nothing was written")


def _copy(response, out, url: str, expected: PublishedFile, deadline: float, elapsed: Callable[[], float],
          progress) -> str:
    """Copy the body to ``out`` within the published size and the deadline; its SHA-256."""
    if (response.length or 0) > expected.size:
        raise DataError(f"{url}: the server announces {response.length} bytes, but the published file "
                        f"has {expected.size}; nothing was written; help: pass another mirror with --url")
    h, got = hashlib.sha256(), 0
    # read1 returns what has arrived, so a trickling server cannot hold one read past the deadline
    while chunk := response.read1(CHUNK):
        got += len(chunk)
        if got > expected.size:
            raise DataError(f"{url}: more than the published {expected.size} bytes; nothing was written; "
                            "help: pass another mirror with --url")
        if elapsed() > deadline:
            raise DataError(f"{url}: not complete after {deadline:g} s ({got} of {expected.size} bytes); "
                            "nothing was written; help: retry, or pass a faster mirror with --url")
        h.update(chunk)
        out.write(chunk)
        if progress:
            progress(len(chunk))
    return h.hexdigest()


def ensure(root: Path, name: str) -> None:
    """Fetch ``name`` into ``root`` when any of its files is absent."""
    if any(s.state == "missing" for s in verify_presence(root, name)):
        fetch(root, name)


def verify_presence(root: Path, name: str) -> list[FileStatus]:
    """Like ``verify`` without hashing: only whether each file exists."""
    dataset = published(name)
    return [
        FileStatus(name, f, "ok" if (root / name / f).is_file() else "missing", 0) for f in dataset.files
    ]


