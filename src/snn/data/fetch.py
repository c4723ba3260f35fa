"""Download, verify and inspect the published datasets under a data root."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..files import atomic_path
from .catalog import PUBLISHED, Published

CHUNK = 1 << 20


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
    dataset = published(name)
    out = []
    for file, digest in dataset.files.items():
        path = root / name / file
        if not path.exists():
            out.append(FileStatus(name, file, "missing", 0))
        else:
            state = "ok" if sha256_of(path) == digest else "corrupt"
            out.append(FileStatus(name, file, state, path.stat().st_size))
    return out


def fetch(root: Path, name: str, base_url: str | None = None, timeout: float = 60.0, progress=None) -> list[Path]:
    """Download every missing or corrupt file of ``name``; verify SHA-256; write atomically."""
    dataset = published(name)
    base = base_url or dataset.mirror
    scheme = urllib.parse.urlparse(base).scheme
    if scheme not in ("http", "https"):
        raise DataError(f"mirror URL {base!r} must start with http:// or https://")
    fetched = []
    for status in verify(root, name):
        if status.state == "ok":
            continue
        url = base.rstrip("/") + "/" + status.file
        target = root / name / status.file
        _download(url, target, dataset.files[status.file], timeout, progress)
        fetched.append(target)
    return fetched


def _download(url: str, target: Path, digest: str, timeout: float, progress) -> None:
    with atomic_path(target) as tmp:
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while chunk := response.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
        except (urllib.error.URLError, OSError) as e:
            raise DataError(f"could not download {url}: {e}; help: pass another mirror with --url") from None
        if h.hexdigest() != digest:
            raise DataError(f"{url}: SHA-256 {h.hexdigest()} does not match the published {digest}; nothing was written")


def ensure(root: Path, name: str) -> None:
    """Fetch ``name`` into ``root`` when any of its files is absent."""
    if any(s.state == "missing" for s in verify_presence(root, name)):
        fetch(root, name)


def verify_presence(root: Path, name: str) -> list[FileStatus]:
    """Like ``verify`` without hashing: only whether each file exists."""
    dataset = published(name)
    return [
        FileStatus(name, f, "ok" if (root / name / f).exists() else "missing", 0) for f in dataset.files
    ]


