"""CIFAR-10 in its publisher's binary format, read with NumPy; nothing is ever unpickled.

Layout under the data root (``snn data fetch cifar-10`` makes it)::

    cifar-10/cifar-10-binary.tar.gz          the published archive, kept: `snn data verify` checks its SHA-256
    cifar-10/cifar-10-batches-bin/           the 7 files unpacked from it, the only ones read:
        data_batch_1.bin .. data_batch_5.bin     training, 10,000 records each
        test_batch.bin                           test, 10,000 records
        batches.meta.txt                         the class names, one a line

The archive's other members (``readme.html``) are never written, and its pickled
"python version" sibling (``cifar-10-python.tar.gz``) is never read.

A record is 3073 bytes: the label (0..9), then 1024 red, 1024 green and 1024 blue bytes,
each plane a 32x32 image row by row. Images come back as ``(m, 32, 32, 3)`` uint8, height,
width, channels, like the cat images, so the one preprocessing rule applies unchanged
(channels first for convolutions, ``/ 255``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import MAX_FILE_BYTES, check_labels, check_splits, regular_file, shown
from .dataset import Dataset, Preprocessing

NAME = "cifar-10"
SIDE, CHANNELS = 32, 3
PIXELS = CHANNELS * SIDE * SIDE
RECORD = 1 + PIXELS  # bytes: the label, then the red, green and blue planes
MAX_RECORDS = 10_000  # per file, as published
MAX_BATCH_BYTES = MAX_RECORDS * RECORD  # 30,730,000: each published batch is exactly this
MAX_META_BYTES = 4096  # the published class list is about 60 bytes

ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST = "test_batch.bin"
META = "batches.meta.txt"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# What is unpacked from the archive (its member paths, also their paths under the dataset folder),
# each with the most bytes it may have.
MEMBERS = {f"{FOLDER}/{file}": MAX_BATCH_BYTES for file in (*TRAIN, TEST)} | {f"{FOLDER}/{META}": MAX_META_BYTES}
FETCH_HINT = f"run `snn data fetch {NAME}`"


def load_cifar10(folder: Path) -> Dataset:
    """The 50,000 training and 10,000 test images of ``folder`` (the dataset folder, see above)."""
    batches = folder / FOLDER
    check_classes(batches / META)
    train = [read_batch(batches / file) for file in TRAIN]
    x, y = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    x_test, y_test = read_batch(batches / TEST)
    return check_splits(Dataset(NAME, x, y, CLASSES, Preprocessing("image", x.shape[1:], 255.0), x_test, y_test))


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(m, 32, 32, 3)`` uint8 and labels ``(m,)`` int64 of one batch file."""
    regular_file(path, MAX_FILE_BYTES, FETCH_HINT)
    with open(path, "rb") as f:
        raw = f.read(MAX_BATCH_BYTES + 1)  # one byte more tells a file over the bound
    check_batch_size(path, len(raw))
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    y = check_labels(records[:, 0], len(CLASSES), str(path), at=lambda i: f"record {i}")
    planes = records[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE)  # as stored: channel, row, column
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), y


def check_batch_size(path: Path, size: int) -> None:
    """A batch is 1 to ``MAX_RECORDS`` whole records; anything else is one line naming what was found."""
    if size > MAX_BATCH_BYTES:
        found = f"more than {MAX_BATCH_BYTES} bytes"
    elif size % RECORD:
        found = f"{size} bytes, not a whole number of records ({size % RECORD} bytes past the last whole one)"
    elif not size:
        found = "0 bytes"
    else:
        return
    raise DataError(f"{path}: {found}; allowed: 1 to {MAX_RECORDS} records of {RECORD} bytes "
                    f"(a label byte, then {PIXELS} pixel bytes); help: {FETCH_HINT}")


def check_classes(path: Path) -> None:
    """The class list must be CIFAR-10's: another set's batches (CIFAR-100's) are not read as these."""
    regular_file(path, MAX_META_BYTES, FETCH_HINT)
    with open(path, "rb") as f:
        text = f.read(MAX_META_BYTES).decode("ascii", errors="replace")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if names != CLASSES:
        raise DataError(f"{path}: classes {shown(names, 80)}; allowed: {', '.join(CLASSES)}, one a line, "
                        f"in this order; help: {FETCH_HINT}")
