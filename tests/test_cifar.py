"""CIFAR-10 in the publisher's binary format: the real archive cannot be downloaded here, so
these tests write small files in exactly that format (a few records per batch), pack them
as the publisher does, and serve them from a loopback mirror."""

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.data import cifar, load_dataset
from snn.data.catalog import PUBLISHED, PublishedFile, Unpack
from snn.data.dataset import Preprocessing
from snn.data.fetch import ensure, fetch, unpack, verify
from snn.errors import DataError

META_TEXT = "\n".join(cifar.CLASSES) + "\n\n"  # as published: one name a line, then a blank line
PER_BATCH = 3


def planes(seed: int) -> np.ndarray:
    """Three distinct 32x32 planes (red, green, blue) of one image."""
    return np.random.default_rng(seed).integers(0, 256, (3, 32, 32), dtype=np.uint8)


def record(label: int, rgb: np.ndarray) -> bytes:
    """One record as published: the label byte, then red, green and blue, each row by row."""
    return bytes([label]) + rgb[0].tobytes() + rgb[1].tobytes() + rgb[2].tobytes()


def batch_bytes(first: int, n: int = PER_BATCH) -> bytes:
    """Records ``first .. first+n-1``: image k has planes(k) and label k % 10."""
    return b"".join(record(k % 10, planes(k)) for k in range(first, first + n))


def cifar_files() -> dict[str, bytes]:
    """The 7 files under their archive paths: 5 training batches, then the test batch (records 15..17)."""
    files = {f"{cifar.FOLDER}/{name}": batch_bytes(PER_BATCH * i) for i, name in enumerate(cifar.TRAIN)}
    files[f"{cifar.FOLDER}/{cifar.TEST}"] = batch_bytes(PER_BATCH * 5)
    files[f"{cifar.FOLDER}/{cifar.META}"] = META_TEXT.encode()
    return files


def write_folder(root: Path, files: dict[str, bytes] | None = None) -> Path:
    """A dataset folder ``root/cifar-10`` holding the unpacked files, as `snn data fetch` leaves it."""
    folder = root / cifar.NAME
    for name, data in (cifar_files() if files is None else files).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kind) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if not kind else 0
    for key, value in kind.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def write_archive(path: Path, entries: list[tuple]) -> Path:
    """A .tar.gz of ``(name, data, {TarInfo fields})`` entries, in that order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data, *kind in entries:
            add(tar, name, data, **(kind[0] if kind else {}))
    return path


def published_archive(path: Path, extra: list[tuple] = ()) -> Path:
    """The archive as the publisher lays it out: the folder, the 7 files and a readme."""
    entries = [(cifar.FOLDER, b"", {"type": tarfile.DIRTYPE}), *((n, d) for n, d in cifar_files().items())]
    return write_archive(path, [*entries, (f"{cifar.FOLDER}/readme.html", b"<html></html>"), *extra])


def refused(call, *args, match: str) -> str:
    """The one-line DataError message ``call(*args)`` raises."""
    with pytest.raises(DataError, match=match) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# 1. The loader: every byte lands where the format says.

def test_each_pixel_lands_at_its_row_column_and_channel(tmp_path):
    ds = load_dataset(cifar.NAME, write_folder(tmp_path).parent)
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.flags.c_contiguous
    for k, image in enumerate([*ds.x_train, *ds.x_test]):
        rgb = planes(k)
        for channel in range(3):
            np.testing.assert_array_equal(image[:, :, channel], rgb[channel])
    red, green, blue = planes(4)
    assert ds.x_train[4, 7, 21, 0] == red[7, 21] and ds.x_train[4, 31, 0, 2] == blue[31, 0]
    assert ds.x_train[4, 0, 31, 1] == green[0, 31]


def test_labels_classes_and_splits(tmp_path):
    ds = load_dataset(cifar.NAME, write_folder(tmp_path).parent)
    assert ds.name == "cifar-10" and ds.classes == cifar.CLASSES and len(ds.classes) == 10
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert ds.y_train.tolist() == [k % 10 for k in range(15)] and ds.y_test.tolist() == [5, 6, 7]
    assert ds.y_train.dtype == np.int64
    assert ds.preprocessing == Preprocessing("image", (32, 32, 3), 255.0)


def test_images_go_channels_first_for_convolutions_unchanged(tmp_path):
    ds = load_dataset(cifar.NAME, write_folder(tmp_path).parent)
    conv = replace(ds.preprocessing, channels_first=True)
    assert conv.image_shape == (3, 32, 32)
    X = conv.columns(ds.x_train)
    assert X.shape == (3072, 15)
    np.testing.assert_array_equal(X[:, 2].reshape(3, 32, 32), planes(2) / 255.0)
    classic = ds.preprocessing.columns(ds.x_train)  # dense networks: the cat images' flattening
    np.testing.assert_array_equal(classic, ds.x_train.reshape(15, -1).T / 255.0)


# 2. Damaged files: each is one line naming the file, what it holds and what is allowed.

BATCH1 = f"{cifar.FOLDER}/data_batch_1.bin"
TEST = f"{cifar.FOLDER}/{cifar.TEST}"


def damaged(tmp_path, name: str, data: bytes | None) -> Path:
    files = cifar_files()
    if data is None:
        del files[name]
    else:
        files[name] = data
    return write_folder(tmp_path, files).parent


def test_a_truncated_batch_is_refused(tmp_path):
    root = damaged(tmp_path, BATCH1, batch_bytes(0)[:-1])
    refused(load_dataset, cifar.NAME, root,
            match=r"data_batch_1.bin: 9218 bytes, not a whole number of records \(3072 bytes past the last whole "
                  r"one\); allowed: 1 to 10000 records of 3073 bytes \(a label byte, then 3072 pixel bytes\); "
                  r"help: run `snn data fetch cifar-10`$")


def test_a_batch_of_more_records_than_published_is_refused(tmp_path):
    root = damaged(tmp_path, TEST, bytes(cifar.RECORD * (cifar.MAX_RECORDS + 1)))
    refused(load_dataset, cifar.NAME, root,
            match=r"test_batch.bin: more than 30730000 bytes; allowed: 1 to 10000 records of 3073 bytes")


def test_an_empty_batch_is_refused(tmp_path):
    refused(load_dataset, cifar.NAME, damaged(tmp_path, BATCH1, b""), match=r"data_batch_1.bin: 0 bytes; allowed: 1 to")


def test_a_label_of_10_is_refused_naming_the_record(tmp_path):
    data = bytearray(batch_bytes(15))
    data[cifar.RECORD] = 10  # the second record's label byte
    refused(load_dataset, cifar.NAME, damaged(tmp_path, TEST, bytes(data)),
            match=r"test_batch.bin: record 1: label 10; allowed: whole numbers 0..9$")


def test_a_missing_batch_is_refused_with_the_command_that_fetches_it(tmp_path):
    root = damaged(tmp_path, f"{cifar.FOLDER}/data_batch_5.bin", None)
    refused(load_dataset, cifar.NAME, root, match=r"data_batch_5.bin: file not found; help: run `snn data fetch cifar-10`$")


def test_a_folder_in_place_of_a_batch_is_refused(tmp_path):
    root = damaged(tmp_path, TEST, None)
    (root / cifar.NAME / TEST).mkdir()
    refused(load_dataset, cifar.NAME, root, match=r"test_batch.bin: not a regular file")


def test_another_datasets_class_list_is_refused(tmp_path):
    root = damaged(tmp_path, f"{cifar.FOLDER}/{cifar.META}", b"apple\naquarium_fish\nbaby\n")
    refused(load_dataset, cifar.NAME, root,
            match=r"batches.meta.txt: classes \('apple', 'aquarium_fish', 'baby'\); allowed: airplane, automobile")


# 3. Unpacking: only the named members, to their own paths, all or none.

SPEC = Unpack("a.tar.gz", {"d/x.bin": 8, "d/y.txt": 4})


def unpacked(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_unpack_writes_only_the_named_members(tmp_path):
    write_archive(tmp_path / "a.tar.gz", [("d", b"", {"type": tarfile.DIRTYPE}), ("./d/x.bin", b"12345678"),
                                          ("d/readme.html", b"<p>"), ("d/y.txt", b"ab")])
    assert unpack(tmp_path, SPEC) == [tmp_path / "d/x.bin", tmp_path / "d/y.txt"]
    assert unpacked(tmp_path) == ["a.tar.gz", "d/x.bin", "d/y.txt"]
    assert (tmp_path / "d/x.bin").read_bytes() == b"12345678"


@pytest.mark.parametrize("entry, match", [
    (("../d/x.bin", b"1"), r"entry '../d/x.bin' has an unsafe path; allowed: relative paths without '..'"),
    (("d/../../evil", b"1"), r"entry 'd/../../evil' has an unsafe path"),
    (("/tmp/evil", b"1"), r"entry '/tmp/evil' has an unsafe path"),
    (("d/x.bin", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
     r"entry 'd/x.bin' is a symbolic link; allowed: regular files and folders"),
    (("d/other", b"", {"type": tarfile.SYMTYPE, "linkname": "../../x"}), r"entry 'd/other' is a symbolic link"),
    (("d/x.bin", b"", {"type": tarfile.LNKTYPE, "linkname": "d/y.txt"}), r"entry 'd/x.bin' is a hard link"),
    (("d/fifo", b"", {"type": tarfile.FIFOTYPE}), r"entry 'd/fifo' is a pipe"),
    (("d/x.bin", b"123456789"), r"d/x.bin has 9 bytes; allowed: at most 8"),
    (("d/x.bin", b"", {"type": tarfile.DIRTYPE}), r"d/x.bin is a folder; allowed: a regular file"),
    (("d/y.txt", b"cd"), r"d/y.txt appears twice; allowed: once"),
])
def test_an_unsafe_archive_is_refused_whole(tmp_path, entry, match):
    archive = write_archive(tmp_path / "a.tar.gz", [("d/y.txt", b"ab"), entry, ("d/x.bin", b"1")])
    message = refused(unpack, tmp_path, SPEC, match=match)
    assert message.startswith(f"{archive}: ") and message.endswith("nothing was written")
    assert unpacked(tmp_path) == ["a.tar.gz"]  # not even d/y.txt, read before the bad entry


def test_an_archive_lacking_a_member_or_damaged_is_refused(tmp_path):
    write_archive(tmp_path / "a.tar.gz", [("d/x.bin", b"1")])
    refused(unpack, tmp_path, SPEC, match=r"a.tar.gz: no member d/y.txt; allowed: an archive holding d/x.bin, d/y.txt")
    whole = (tmp_path / "a.tar.gz").read_bytes()
    (tmp_path / "a.tar.gz").write_bytes(whole[: len(whole) // 2])
    refused(unpack, tmp_path, SPEC, match=r"a.tar.gz: cannot unpack it \(.*\); nothing was written; help: fetch it")
    (tmp_path / "a.tar.gz").write_bytes(b"not an archive")
    refused(unpack, tmp_path, SPEC, match=r"a.tar.gz: cannot unpack it")
    assert unpacked(tmp_path) == ["a.tar.gz"]


def test_an_archive_of_more_than_its_members_is_refused_before_reading_on(tmp_path):
    write_archive(tmp_path / "a.tar.gz", [("d/big", bytes((1 << 20) + 13)), ("d/x.bin", b"1"), ("d/y.txt", b"2")])
    refused(unpack, tmp_path, SPEC, match=r"more than 1000 entries or 1048588 bytes; allowed: the members and at most")
    write_archive(tmp_path / "a.tar.gz", [(f"d/{i}", b"") for i in range(1001)])
    refused(unpack, tmp_path, SPEC, match=r"more than 1000 entries")


def test_the_published_layout_unpacks_to_the_seven_files(tmp_path):
    folder = tmp_path / cifar.NAME
    published_archive(folder / cifar.ARCHIVE)
    unpack(folder, PUBLISHED[cifar.NAME].unpack)
    assert unpacked(folder) == sorted([cifar.ARCHIVE, *cifar.MEMBERS])
    assert load_dataset(cifar.NAME, tmp_path).y_test.tolist() == [5, 6, 7]


# 4. Fetching from a mirror: download, verify, unpack.

@pytest.fixture
def cifar_mirror(tmp_path, monkeypatch):
    """A loopback server holding a small archive in the published layout, which the catalog then expects."""
    served = tmp_path / "served"
    archive = published_archive(served / cifar.ARCHIVE)
    pinned = PublishedFile(hashlib.sha256(archive.read_bytes()).hexdigest(), archive.stat().st_size)
    monkeypatch.setitem(PUBLISHED, cifar.NAME, replace(PUBLISHED[cifar.NAME], files={cifar.ARCHIVE: pinned}))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_the_catalog_pins_the_publishers_archive():
    entry = PUBLISHED["cifar-10"]
    assert entry.mirror + cifar.ARCHIVE == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert entry.files[cifar.ARCHIVE] == PublishedFile(
        "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171)
    assert entry.unpack.archive == cifar.ARCHIVE and len(entry.unpack.members) == 7
    assert entry.needed == tuple(cifar.MEMBERS)


def test_fetch_downloads_verifies_and_unpacks(cifar_mirror, tmp_path):
    _, url = cifar_mirror
    root = tmp_path / "root"
    assert fetch(root, cifar.NAME, url) == [root / cifar.NAME / cifar.ARCHIVE]
    assert unpacked(root / cifar.NAME) == sorted([cifar.ARCHIVE, *cifar.MEMBERS])  # no readme.html
    assert {s.state for s in verify(root, cifar.NAME)} == {"ok"}
    assert load_dataset(cifar.NAME, root).x_train.shape == (15, 32, 32, 3)
    (root / cifar.NAME / TEST).write_bytes(b"damaged")  # a fetch repairs it from the kept archive, no download
    assert fetch(root, cifar.NAME, url) == []
    assert load_dataset(cifar.NAME, root).y_test.tolist() == [5, 6, 7]


def test_a_missing_unpacked_file_is_unpacked_again_on_first_use(cifar_mirror, tmp_path):
    served, _ = cifar_mirror
    folder = tmp_path / cifar.NAME
    folder.mkdir()
    (folder / cifar.ARCHIVE).write_bytes((served / cifar.ARCHIVE).read_bytes())
    ensure(tmp_path, cifar.NAME)  # the archive verifies, so nothing is downloaded (no mirror is given)
    assert load_dataset(cifar.NAME, tmp_path, fetch_missing=True).x_test.shape == (3, 32, 32, 3)


def test_a_corrupt_download_writes_nothing(cifar_mirror, tmp_path):
    served, url = cifar_mirror
    (served / cifar.ARCHIVE).write_bytes(b"x" * 100)
    refused(fetch, tmp_path, cifar.NAME, url, match=r"cifar-10-binary.tar.gz: SHA-256 .* does not match the published")
    assert not any((tmp_path / cifar.NAME).iterdir())


def test_a_verified_but_hostile_archive_writes_nothing(tmp_path, monkeypatch):
    """Even an archive that matches its checksum is unpacked member by member (defence in depth)."""
    served = tmp_path / "served"
    archive = published_archive(served / cifar.ARCHIVE, extra=[("../escaped", b"x")])
    folder = tmp_path / cifar.NAME
    folder.mkdir()
    (folder / cifar.ARCHIVE).write_bytes(archive.read_bytes())
    pinned = PublishedFile(hashlib.sha256(archive.read_bytes()).hexdigest(), archive.stat().st_size)
    monkeypatch.setitem(PUBLISHED, cifar.NAME, replace(PUBLISHED[cifar.NAME], files={cifar.ARCHIVE: pinned}))
    refused(fetch, tmp_path, cifar.NAME, match=r"entry '../escaped' has an unsafe path")
    assert unpacked(folder) == [cifar.ARCHIVE] and not (tmp_path / "escaped").exists()


def test_the_data_commands_treat_cifar_like_the_others(cifar_mirror, tmp_path):
    _, url = cifar_mirror
    runner, env = CliRunner(), {"COLUMNS": "200"}
    listing = runner.invoke(app, ["data", "list", "--data", str(tmp_path)], env=env)
    assert listing.exit_code == 0 and "cifar-10" in listing.output
    assert runner.invoke(app, ["data", "verify", "cifar-10", "--data", str(tmp_path)], env=env).exit_code == 1
    fetched = runner.invoke(app, ["data", "fetch", "cifar-10", "--data", str(tmp_path), "--url", url], env=env)
    assert fetched.exit_code == 0 and "cifar-10: 1 file(s) downloaded and verified" in fetched.output
    assert runner.invoke(app, ["data", "verify", "cifar-10", "--data", str(tmp_path)], env=env).exit_code == 0


def test_a_cli_error_on_a_damaged_batch_is_one_line(tmp_path):
    root = damaged(tmp_path, BATCH1, b"\0" * 5)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": {"dataset": "cifar-10"}, "network": {"layers": [
        {"units": 10, "activation": "softmax"}]}, "training": {"epochs": 1}}))
    result = CliRunner().invoke(app, ["train", str(config), "--data", str(root), "--out", str(tmp_path / "run")],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "data_batch_1.bin: 5 bytes, not a whole number of records" in result.output


# 5. The example: a small CNN on CIFAR-10 builds and trains a step on a few records.

def test_the_cifar_cnn_example_trains_on_a_few_records(tmp_path):
    root = write_folder(tmp_path).parent
    run = snn.train(EXAMPLES / "cifar10-cnn.yaml", data_root=root, save=False,
                    **{"training.epochs": 1, "data.validation_split": 0.2, "training.batch_size": 4})
    assert run.model.spec.input_shape == (3, 32, 32) and run.model.preprocessing.channels_first
    assert [layer.kind for layer in run.model.spec.layers] == [
        "conv2d", "maxpool2d", "conv2d", "maxpool2d", "flatten", "dense", "dense"]
    assert len(run.history) == 1 and np.isfinite(run.history[0]["cost"])
    assert run.summary["test_accuracy"] is not None
