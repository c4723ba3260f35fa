"""Download, verify and inspect the published datasets under a data root.

A mirror is not trusted: each file may not exceed its published size, must arrive within
an overall deadline (a server that trickles a byte at a time is cut off), and must match
its published SHA-256; otherwise nothing is written. A published archive is then unpacked
member by member (never ``extractall``): only the files its loader reads, all or none.

Whatever stands where a dataset's file goes must be that file or nothing: a FIFO (a read would
block), a device (a read would never end) or a folder there is one ``DataError``, never read and
never a reason to download. A SIGTERM during a fetch ends it as Ctrl-C does, leaving no partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import stat
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..files import atomic_path
from .catalog import PUBLISHED, Published, PublishedFile, Unpack
from .checks import reason, shown
from .root import dataset_folder

CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds: the longest wait for a connection or for any one read
DEADLINE = 900.0  # seconds: the longest one whole file may take (26 MB at 30 kB/s) ...
MIN_RATE = 30e3  # ... or its size at this many bytes a second, if longer (CIFAR-10's 170 MB: 95 minutes)
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)
UNPACK_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)  # zlib, EOF: a damaged gzip stream
MAX_ENTRIES = 1000  # entries read from one archive; the published ones hold a handful
MAX_OTHER_BYTES = 1 << 20  # what an archive may hold beyond its members (a readme)
MAX_HEADER_BYTES = 64 << 10  # one extended header (a GNU long name, a PAX record set): tarfile reads it whole
MAX_HEADER_CHAIN = 8  # extended headers in front of one entry: tarfile reads each with one more recursion
EXTENDED_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                  tarfile.SOLARIS_XHDTYPE)
SPARSE_REFUSED = "a sparse file; allowed: regular files and folders"
NOT_REGULAR = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
               (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


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
        if not present(root, name, file):
            out.append(FileStatus(name, file, "missing", 0))
            continue
        size = path.stat().st_size
        ok = size == expected.size and sha256_of(path) == expected.sha256
        out.append(FileStatus(name, file, "ok" if ok else "corrupt", size))
    return out


def present(root: Path, name: str, file: str) -> bool:
    """Whether ``file`` of dataset ``name`` is there as a regular file (False: nothing is there).

    Anything else in its place, or in place of a folder on its way, is a ``DataError`` naming it:
    opening a FIFO would block, a device would never end, and a download could not replace a folder.
    """
    path, parts = root / name, PurePosixPath(file).parts
    for depth, part in enumerate(parts, 1):
        path = path / part
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as e:  # a loop of links, a name too long
            raise DataError(f"{path}: cannot be read ({reason(e)}); help: remove it, then run "
                            f"`snn data fetch {name}`") from None
        wanted = ("folder", stat.S_ISDIR) if depth < len(parts) else ("regular file", stat.S_ISREG)
        if not wanted[1](mode):
            kind = next((kind for test, kind in NOT_REGULAR if test(mode)), "special file")
            raise DataError(f"{path} is a {kind}, not a {wanted[0]}; help: remove it, then run "
                            f"`snn data fetch {name}`")
    return True


def fetch(root: Path, name: str, base_url: str | None = None, timeout: float = TIMEOUT, progress=None,
          deadline: float | None = None, clock: Callable[[], float] = time.monotonic) -> list[Path]:
    """Download every missing or corrupt file of ``name``; verify size and SHA-256; write atomically.

    ``timeout`` bounds each wait on the network, ``deadline`` each whole file (by default
    ``DEADLINE``, or the file's size at ``MIN_RATE`` if longer; measured with
    ``clock``), so no file takes longer than ``deadline + timeout`` seconds. An archive is then
    unpacked again, downloaded or not, so a fetch also repairs a damaged unpacked file.
    """
    dataset = published(name)
    dataset_folder(root, name)
    base = _mirror(base_url or dataset.mirror)
    for file in dataset.needed:  # before any download: an unpacked file's place must be free for it
        present(root, name, file)
    fetched = []
    with terminated_as_interrupted():
        for status in verify(root, name):
            if status.state == "ok":
                continue
            url = base.rstrip("/") + "/" + status.file
            target = root / name / status.file
            expected = dataset.files[status.file]
            limit = deadline if deadline is not None else max(DEADLINE, expected.size / MIN_RATE)
            _download(url, target, expected, timeout, progress, limit, clock)
            fetched.append(target)
        if dataset.unpack:
            unpack(root / name, dataset.unpack)
    return fetched


@contextlib.contextmanager
def terminated_as_interrupted():
    """While this runs, SIGTERM raises ``SystemExit(143)`` as Ctrl-C raises KeyboardInterrupt.

    SIGTERM's default action kills the process without running a ``finally``, so ``atomic_path``
    would leave its ``.part`` file behind; an exception lets it remove it. The previous handler is put
    back after. Nothing changes outside the main thread (the only one that takes signals), nor when
    SIGTERM is ignored on purpose or handled outside Python (no handler could be put back).
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) in (signal.SIG_IGN, None):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame):
    sys.stderr.write("\nTerminated (SIGTERM): the download stops, and no partial file is kept\n")
    raise SystemExit(128 + signum)


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
    """Fetch ``name`` into ``root`` when any file its loader reads is absent (something else there is refused)."""
    if not all(present(root, name, file) for file in published(name).needed):
        fetch(root, name)


def verify_presence(root: Path, name: str) -> list[FileStatus]:
    """Like ``verify`` without hashing: only whether each file exists."""
    dataset = published(name)
    return [FileStatus(name, f, "ok" if present(root, name, f) else "missing", 0) for f in dataset.files]


class _HeaderRefused(tarfile.TarError):
    """An extended or sparse header refused before tarfile reads what it announces."""


class _BoundedInfo(tarfile.TarInfo):
    """A ``TarInfo`` that bounds what tarfile reads whole before any entry reaches ``unpack``'s checks.

    tarfile reads a GNU long name or a PAX header in one piece, whatever size its header claims
    (1 MB of gzip can claim a gigabyte), and each one in front of an entry costs a recursion; it
    also collects the blocks of a GNU sparse map without end. ``_proc_member`` is tarfile's own
    hook for this (see its comment). Each archive gets a fresh subclass (``for_archive``), whose
    ``bytes_left`` counts what its extended headers may still take.
    """

    bytes_left = MAX_OTHER_BYTES
    chain = 0

    @classmethod
    def for_archive(cls) -> type[_BoundedInfo]:
        return type(cls.__name__, (cls,), {"bytes_left": MAX_OTHER_BYTES, "chain": 0})

    def _proc_member(self, tar):
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _HeaderRefused(SPARSE_REFUSED)
        if self.type not in EXTENDED_TYPES:
            return super()._proc_member(tar)
        cls = type(self)
        if self.size > min(MAX_HEADER_BYTES, cls.bytes_left):
            raise _HeaderRefused(f"an extended header of {self.size} bytes; allowed: at most {MAX_HEADER_BYTES} "
                                 f"bytes each, {MAX_OTHER_BYTES} in all")
        if cls.chain >= MAX_HEADER_CHAIN:
            raise _HeaderRefused(f"more than {MAX_HEADER_CHAIN} extended headers in front of one entry")
        cls.bytes_left -= self.size
        cls.chain += 1
        try:
            return super()._proc_member(tar)
        finally:
            cls.chain -= 1

    def _proc_gnusparse_10(self, next, pax_headers, tar):  # a PAX sparse file: it reads a map of any length
        raise _HeaderRefused(SPARSE_REFUSED)


def unpack(folder: Path, spec: Unpack) -> list[Path]:
    """Write ``spec.members`` from the archive in ``folder`` to their paths under it: all of them, or none.

    Entries are read one at a time and each named member is copied to its own path (the
    archive's names never choose where a file goes); the whole archive is refused on the first
    unsafe entry, a member over its size, or a member missing.
    """
    archive = folder / spec.archive
    most = sum(spec.members.values()) + MAX_OTHER_BYTES
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:*", tarinfo=_BoundedInfo.for_archive()) as tar, \
                contextlib.ExitStack() as written:
            total = 0
            for count, entry in enumerate(tar, 1):
                total += entry.size
                name = _entry_name(archive, entry, count, total, most)
                if name in spec.members:
                    _check_member(archive, entry, name, spec.members[name], found)
                    _copy_member(tar, entry, written.enter_context(atomic_path(folder / name)))
            if missing := [name for name in spec.members if name not in found]:
                raise DataError(f"{archive}: no member {missing[0]}; allowed: an archive holding "
                                f"{', '.join(spec.members)}; nothing was written; help: fetch it again")
    except UNPACK_ERRORS as e:
        raise DataError(f"{archive}: cannot unpack it ({reason(e)}); nothing was written; "
                        "help: fetch it again") from None
    return [folder / name for name in spec.members]


def _entry_name(archive: Path, entry: tarfile.TarInfo, count: int, total: int, most: int) -> str:
    """The entry's path (``./`` and ``//`` folded), once it is a safe file or folder within the bounds."""
    if count > MAX_ENTRIES or total > most:
        raise DataError(f"{archive}: more than {MAX_ENTRIES} entries or {most} bytes; allowed: the members "
                        f"and at most {MAX_OTHER_BYTES} bytes more; nothing was written; help: fetch it again")
    path = PurePosixPath(entry.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise DataError(f"{archive}: entry {shown(entry.name)} has an unsafe path; allowed: relative paths "
                        "without '..'; nothing was written")
    if not (entry.isreg() or entry.isdir()):
        raise DataError(f"{archive}: entry {shown(entry.name)} is a {_kind(entry)}; allowed: regular files "
                        "and folders; nothing was written")
    return path.as_posix()


def _check_member(archive: Path, entry: tarfile.TarInfo, name: str, limit: int, found: set[str]) -> None:
    if not entry.isreg():
        raise DataError(f"{archive}: {name} is a {_kind(entry)}; allowed: a regular file; nothing was written")
    if entry.size > limit:
        raise DataError(f"{archive}: {name} has {entry.size} bytes; allowed: at most {limit}; nothing was written")
    if name in found:
        raise DataError(f"{archive}: {name} appears twice; allowed: once; nothing was written")
    found.add(name)


def _copy_member(tar: tarfile.TarFile, entry: tarfile.TarInfo, target: Path) -> None:
    # extractfile reads the member's bytes only: no metadata, owner or mode from the archive is applied
    with tar.extractfile(entry) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def _kind(entry: tarfile.TarInfo) -> str:
    kinds = {tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "folder",
             tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "pipe"}
    return kinds.get(entry.type, f"entry of type {entry.type!r}")
