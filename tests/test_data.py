import gzip
import hashlib
import shutil

import h5py
import numpy as np
import pytest

from snn.data import data_root, load_dataset
from snn.data.catalog import PUBLISHED
from snn.data.fetch import fetch, verify
from snn.data.idx import IMAGES_MAGIC, read_idx
from snn.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_cat_dataset(cat):
    assert cat.x_train.shape == (209, 64, 64, 3) and cat.x_test.shape == (50, 64, 64, 3)
    assert cat.classes == ("non-cat", "cat")
    assert np.bincount(cat.y_train).tolist() == [137, 72] and np.bincount(cat.y_test).tolist() == [17, 33]
    X = cat.preprocessing.columns(cat.x_train)
    classic = cat.x_train.reshape(209, -1).T / 255
    np.testing.assert_array_equal(X, classic)
    assert X.shape == (12288, 209) and X.dtype == np.float64


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_datasets(data_root, name):
    ds = load_dataset(name, data_root)
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    counts = np.bincount(ds.y_train).tolist()
    assert counts == (MNIST_TRAIN_COUNTS if name == "mnist" else [6000] * 10)
    assert ds.preprocessing.columns(ds.x_test[:5], np.float32).dtype == np.float32


def test_shared_data_is_intact(data_root):
    # CIFAR-10 (170 MB) is not in the shared root: see its README, "Not included"; tests/test_cifar.py covers it
    for name in (n for n in PUBLISHED if n != "cifar-10"):
        assert {s.state for s in verify(data_root, name)} == {"ok"}


def test_validation_split_comes_from_training_data_only(cat):
    split = cat.with_validation(0.2, seed=1)
    assert len(split.y_val) == 42 and len(split.y_train) == 167
    assert split.x_test is cat.x_test
    both = np.concatenate([split.x_train, split.x_val]).reshape(209, -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, cat.x_train.reshape(209, -1)))


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SNN_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("SNN_DATA_DIR")
    assert data_root().name == "data" and "snn" in str(data_root())


# Corrupt files: each gives a DataError that names the file.

def idx_copy(data_root, tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(data_root / "mnist", folder)
    return folder


def test_truncated_gzip(data_root, tmp_path):
    folder = idx_copy(data_root, tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: truncated or not a gzip file"):
        load_dataset("mnist", tmp_path)


def test_wrong_magic_and_wrong_size(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc"))
    with pytest.raises(DataError, match=r"x.gz: magic number 0x00000801, expected 0x00000803"):
        read_idx(bad, IMAGES_MAGIC)
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (2, 2, 2)) + b"12345"))
    with pytest.raises(DataError, match=r"x.gz: 21 bytes, but its header \(2, 2, 2\) needs 24"):
        read_idx(bad, IMAGES_MAGIC)
    bad.write_bytes(gzip.compress(b"\x00\x00"))
    with pytest.raises(DataError, match="too short"):
        read_idx(bad, IMAGES_MAGIC)


def test_labels_images_mismatch(data_root, tmp_path):
    folder = idx_copy(data_root, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02\x03"))
    with pytest.raises(DataError, match="10000 t10k images but 3 labels"):
        load_dataset("mnist", tmp_path)


def test_truncated_and_wrong_hdf5(data_root, tmp_path):
    folder = tmp_path / "catvnoncat"
    shutil.copytree(data_root / "catvnoncat", folder)
    path = folder / "test_catvnoncat.h5"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(DataError, match="test_catvnoncat.h5: not a readable HDF5 file"):
        load_dataset("catvnoncat", tmp_path)
    with h5py.File(path, "w") as f:
        f["something_else"] = np.zeros(3)
    with pytest.raises(DataError, match="missing datasets \\['test_set_x'"):
        load_dataset("catvnoncat", tmp_path)
    (folder / "train_catvnoncat.h5").unlink()
    with pytest.raises(DataError, match="train_catvnoncat.h5: file not found; help: run `snn data fetch catvnoncat`"):
        load_dataset("catvnoncat", tmp_path)


def test_csv_and_npz(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,label\n0.5,1.5,0\n2,3,2\n")
    ds = load_dataset(f"csv:{csv}")
    np.testing.assert_array_equal(ds.x_train, [[0.5, 1.5], [2, 3]])
    assert ds.y_train.tolist() == [0, 2] and ds.classes == ("0", "1", "2")
    csv.write_text("1,2,0.5\n")
    with pytest.raises(DataError, match=r"t.csv: row 1, column 3: label 0.5; allowed: whole numbers 0..9999"):
        load_dataset(f"csv:{csv}")
    csv.write_text("1,2,0\n3,x,1\n")
    with pytest.raises(DataError, match=r"t.csv: row 2, column 2: 'x' is not a number"):
        load_dataset(f"csv:{csv}")
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=np.ones((4, 3)), y_train=np.array([0, 1, 1, 0]), x_test=np.zeros((2, 3)), y_test=np.array([1, 0]))
    ds = load_dataset(f"npz:{npz}")
    assert ds.x_test.shape == (2, 3) and ds.n_input == 3
    np.savez(npz, x_train=np.array([{"a": 1}], dtype=object), y_train=np.array([0]))
    with pytest.raises(DataError, match=r"d.npz: x_train: dtype \|O \(Python objects\); allowed: bool, integer or float"):
        load_dataset(f"npz:{npz}")
    np.savez(npz, x=np.ones(2))
    with pytest.raises(DataError, match=r"missing arrays \['x_train', 'y_train'\]"):
        load_dataset(f"npz:{npz}")


def test_unknown_dataset_lists_the_allowed_ones():
    with pytest.raises(DataError, match="allowed: catvnoncat, mnist, fashion-mnist, cifar-10, spiral, xor, iris, "
                                        "csv:PATH"):
        load_dataset("cifar10")


def test_fetch_downloads_and_verifies(mirror, tmp_path):
    _, url = mirror
    root = tmp_path / "root"
    got = fetch(root, "catvnoncat", url)
    assert sorted(p.name for p in got) == ["test_catvnoncat.h5", "train_catvnoncat.h5"]
    assert {s.state for s in verify(root, "catvnoncat")} == {"ok"}
    assert fetch(root, "catvnoncat", url) == []  # nothing left to do
    assert load_dataset("catvnoncat", root).x_train.shape == (209, 64, 64, 3)


def test_fetch_refuses_a_corrupt_download_and_leaves_no_file(mirror, tmp_path):
    served, url = mirror
    (served / "test_catvnoncat.h5").write_bytes(b"not the real file")
    root = tmp_path / "root"
    with pytest.raises(DataError, match="does not match the published"):
        fetch(root, "catvnoncat", url)
    assert sorted(p.name for p in (root / "catvnoncat").iterdir()) == ["train_catvnoncat.h5"]


def test_fetch_errors(tmp_path):
    with pytest.raises(DataError, match="must start with http:// or https://"):
        fetch(tmp_path, "mnist", "file:///etc/")
    with pytest.raises(DataError, match="could not download http://127.0.0.1:9/"):
        fetch(tmp_path, "mnist", "http://127.0.0.1:9/", timeout=2)
    assert not any((tmp_path / "mnist").iterdir())
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        fetch(tmp_path, "cifar")


def test_verify_reports_missing_and_corrupt(tmp_path, data_root):
    (tmp_path / "catvnoncat").mkdir()
    shutil.copy(data_root / "catvnoncat" / "train_catvnoncat.h5", tmp_path / "catvnoncat")
    (tmp_path / "catvnoncat" / "test_catvnoncat.h5").write_bytes(b"x")
    states = {s.file: s.state for s in verify(tmp_path, "catvnoncat")}
    assert states == {"train_catvnoncat.h5": "ok", "test_catvnoncat.h5": "corrupt"}
    assert hashlib.sha256(b"x").hexdigest() != PUBLISHED["catvnoncat"].files["test_catvnoncat.h5"].sha256
