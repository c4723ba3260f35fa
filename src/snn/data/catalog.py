"""The published datasets: their files, checksums, mirrors and loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from . import cifar
from .checks import check_splits
from .dataset import Dataset, Preprocessing
from .hdf5 import read_h5_split
from .idx import load_idx_pair


@dataclass(frozen=True)
class PublishedFile:
    sha256: str
    size: int  # bytes; a download may not exceed it


@dataclass(frozen=True)
class Unpack:
    """The files a loader reads, taken out of a published tar archive after it is verified.

    Only these members are written, each under its own path in the dataset folder and within
    its size; the archive is refused whole if any member is a link or a device, or is named
    with an absolute path or ``..`` (no published archive has one).
    """

    archive: str  # one of the dataset's published files
    members: dict[str, int]  # path inside the archive (and under the dataset folder) -> at most this many bytes


@dataclass(frozen=True)
class Published:
    name: str
    mirror: str  # base URL; file names are appended
    files: dict[str, PublishedFile]
    load: Callable[[Path], Dataset]
    about: str
    unpack: Unpack | None = None  # for an archive: what the loader reads from it

    @property
    def needed(self) -> tuple[str, ...]:
        """The files the loader reads, under the dataset folder."""
        return tuple(self.unpack.members if self.unpack else self.files)


def _load_cat(folder: Path) -> Dataset:
    x, y, classes = read_h5_split(folder / "train_catvnoncat.h5", "train")
    xt, yt, test_classes = read_h5_split(folder / "test_catvnoncat.h5", "test")
    if test_classes != classes:
        raise DataError(f"{folder}: the test file's classes {test_classes} differ from the training file's {classes}")
    return check_splits(Dataset("catvnoncat", x, y, classes, Preprocessing("image", x.shape[1:], 255.0), xt, yt))


def _idx_loader(name: str, classes: tuple[str, ...]):
    def load(folder: Path) -> Dataset:
        x, y = load_idx_pair(folder, "train", len(classes))
        xt, yt = load_idx_pair(folder, "t10k", len(classes))
        return check_splits(Dataset(name, x, y, classes, Preprocessing("image", x.shape[1:], 255.0), xt, yt))

    return load


DIGITS = tuple(str(i) for i in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

PUBLISHED = {
    p.name: p
    for p in (
        Published(
            "catvnoncat",
            "https://raw.githubusercontent.com/ramakris/coursera-deeplearning/"
            "c79617ebb9ff38e765e821f80352adee93f19357/neuralnetworks/week2/datasets/",
            {
                "train_catvnoncat.h5": PublishedFile(
                    "fbe56ab67c3ae28d564e3a644189117976d6b31af0a3ce9bb17dbf22908af242", 2572022
                ),
                "test_catvnoncat.h5": PublishedFile(
                    "6a9d39ce52fa85953c5834695b8534a30ed8cfd54971fb2f080b5a24d002b951", 616958
                ),
            },
            _load_cat,
            "deeplearning.ai cat vs non-cat, 209 train + 50 test RGB 64x64 images",
        ),
        Published(
            "mnist",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            {
                "train-images-idx3-ubyte.gz": PublishedFile(
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422
                ),
                "train-labels-idx1-ubyte.gz": PublishedFile(
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881
                ),
                "t10k-images-idx3-ubyte.gz": PublishedFile(
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877
                ),
                "t10k-labels-idx1-ubyte.gz": PublishedFile(
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542
                ),
            },
            _idx_loader("mnist", DIGITS),
            "MNIST handwritten digits, 60,000 train + 10,000 test 28x28 images (CC BY-SA 3.0)",
        ),
        Published(
            "fashion-mnist",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            {
                "train-images-idx3-ubyte.gz": PublishedFile(
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880
                ),
                "train-labels-idx1-ubyte.gz": PublishedFile(
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515
                ),
                "t10k-images-idx3-ubyte.gz": PublishedFile(
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102
                ),
                "t10k-labels-idx1-ubyte.gz": PublishedFile(
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148
                ),
            },
            _idx_loader("fashion-mnist", FASHION),
            "Zalando Fashion-MNIST, 60,000 train + 10,000 test 28x28 images (MIT)",
        ),
        Published(
            cifar.NAME,
            "https://www.cs.toronto.edu/~kriz/",
            {
                # The binary version; as in tensorflow/datasets' url_checksums/cifar10.txt
                # (the publisher gives the MD5, c32a1d4ab5d03f1284b67883e8d87530).
                cifar.ARCHIVE: PublishedFile(
                    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171
                ),
            },
            cifar.load_cifar10,
            "CIFAR-10 (Krizhevsky 2009), 50,000 train + 10,000 test 32x32 RGB images in 10 classes",
            Unpack(cifar.ARCHIVE, cifar.MEMBERS),
        ),
    )
}
