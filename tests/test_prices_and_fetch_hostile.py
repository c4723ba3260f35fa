"""A price table, a verified archive, whatever stands in a dataset's place, and a SIGTERM during a fetch:
each is one SnnError on one line (or a clean exit), never a traceback, a hang, a huge allocation or a
partial file left behind (issue 20)."""

import copy
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from snn.cli import app
from snn.cost import DEFAULT_PRICES, lambda_cost, load_prices
from snn.data import load_dataset
from snn.data.catalog import PUBLISHED, Unpack
from snn.data.fetch import ensure, fetch, terminated_as_interrupted, unpack, verify, verify_presence
from snn.errors import DataError, SnnError
from test_data_hostile import hostile_mirror  # noqa: F401 - the fixture: a loopback server that trickles

runner = CliRunner()
NOWHERE = "http://127.0.0.1:9/"  # the discard port: a download that should never start would fail here
SHIPPED = load_prices()


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# 1. The price table: a regular file, bounded, through a strict schema.

@pytest.mark.parametrize("make", [
    lambda tmp: Path("/dev/zero"),  # read 2.7 GB before a MemoryError
    lambda tmp: (os.mkfifo(tmp / "p.json"), tmp / "p.json")[1],  # opening it blocks until a writer comes
    lambda tmp: tmp,
    lambda tmp: (os.symlink("/dev/zero", tmp / "p.json"), tmp / "p.json")[1],
], ids=["device", "fifo", "folder", "link-to-device"])
def test_a_price_table_that_is_not_a_regular_file_is_not_read(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(SnnError) as e:
        load_prices(path)
    assert one_line(e).startswith(f"price table {path}: not a regular file; help:")
    result = runner.invoke(app, ["cost", str(tmp_path), "--prices", str(path)])
    assert result.exit_code == 2 and "not a regular file" in result.output


def test_a_price_table_past_its_bound_is_refused_unread(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({**SHIPPED, "source": "x" * (64 << 10)}))
    with pytest.raises(SnnError, match=r"larger than 65536 bytes, more than a price table takes"):
        load_prices(tmp_path / "p.json")


@pytest.mark.parametrize("change, problem", [
    (lambda t: t.update({"lambda": "x"}), r"lambda: Input should be a valid dictionary \(got 'x'\)"),
    (lambda t: t["lambda"].update(billing_granularity_ms=0), r"billing_granularity_ms: .*greater than or equal to 1"),
    (lambda t: t["lambda"].update(mb_per_vcpu=-1), r"lambda.mb_per_vcpu: Input should be greater than 0 \(got -1\)"),
    (lambda t: t["lambda"]["gb_second"].update(x86="0.0000166667"), r"gb_second.x86: Input should be a valid number"),
    (lambda t: t["lambda"]["memory_mb"].update(min=20000), r"lambda.memory_mb: min \(20000\) is above max \(10240\)"),
    (lambda t: t["store_per_hour"].update(usd=True), r"store_per_hour.usd: Input should be a valid number"),
    (lambda t: t.update(extra=1), r"extra: Extra inputs are not permitted"),
    (lambda t: t.update(currency="EUR"), r"currency: Input should be 'USD'"),
    (lambda t: t["lambda"].pop("mb_per_vcpu"), r"missing 'lambda.mb_per_vcpu'"),
])
def test_a_bad_field_is_one_line_naming_it(tmp_path, change, problem):
    table = copy.deepcopy(SHIPPED)
    change(table)
    (tmp_path / "p.json").write_text(json.dumps(table))
    with pytest.raises(SnnError, match=problem) as e:
        load_prices(tmp_path / "p.json")
    assert one_line(e).endswith(f"help: see snn/prices/{DEFAULT_PRICES} for the fields and what each allows")


def test_a_table_that_is_not_an_object_is_one_line(tmp_path):
    (tmp_path / "p.json").write_text("[1, 2]")
    with pytest.raises(SnnError, match=r"\(top level\): Input should be a valid dictionary"):
        load_prices(tmp_path / "p.json")
    result = runner.invoke(app, ["cost", str(tmp_path), "--prices", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "(top level)" in result.output and "Traceback" not in result.output


def test_the_shipped_table_validates_read_as_a_file_too():
    shipped = resources.files("snn.prices").joinpath(DEFAULT_PRICES)
    with resources.as_file(shipped) as path:
        assert load_prices(path) == SHIPPED
    assert SHIPPED["lambda"]["gb_second"]["arm"] == 0.0000133334 and SHIPPED["lambda"]["mb_per_vcpu"] == 1769


def field_paths(table: dict, prefix: tuple = ()) -> list[tuple]:
    """Every field of the table, mappings included, by its path of keys."""
    paths = []
    for key, value in table.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += field_paths(value, (*prefix, key))
    return paths


ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, -1, 10**400, 1e308, -0.0, 1e-300, 2**63]),
    st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=12),
    st.lists(st.integers(0, 9), max_size=3), st.dictionaries(st.sampled_from(["min", "max", "usd", "x86"]),
                                                              st.integers(-5, 20000), max_size=3))
# A ledger of three billed invocations, as test_trace_and_cost's known run.
RECORDS = [{"phase": "forward", "layer": 0, "start": 0.001, "end": 0.0114},
           {"phase": "forward", "layer": 0, "start": 0.002, "end": 0.004},
           {"phase": "backward", "layer": 0, "start": 0.012, "end": 0.0125, "status": "failed"}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_any_field_is_a_finite_cost_or_one_snn_error(tmp_path, data):
    table = copy.deepcopy(SHIPPED)
    for _ in range(data.draw(st.integers(1, 3))):
        *parents, key = data.draw(st.sampled_from(field_paths(SHIPPED)))
        holder = table
        for p in parents:
            holder = holder.get(p) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            action = data.draw(st.sampled_from(["set", "set", "delete", "extra"]))
            if action == "delete":
                holder.pop(key, None)
            else:
                holder[key if action == "set" else f"{key}_extra"] = data.draw(ANY_VALUE)
    (tmp_path / "p.json").write_text(json.dumps(table))
    try:
        prices = load_prices(tmp_path / "p.json")
    except SnnError as e:
        assert "\n" not in str(e) and str(e).startswith("price table")
        return
    memory = prices["lambda"]["memory_mb"]
    for arch in prices["lambda"]["gb_second"]:
        for mb in (memory["min"], memory["max"]):
            c = lambda_cost(RECORDS, 3600.0, mb, arch, prices)
            for usd in (c.lambda_usd, c.store_usd, c.vm_usd, c.total_usd, c.gb_seconds):
                assert 0 <= usd < float("inf")


# 2. A verified archive: tarfile's extended headers are bounded before it reads them.

def header(name: bytes, typeflag: bytes, size: int, extra: dict[int, bytes] | None = None) -> bytes:
    """One 512-byte ustar header, written field by field, with a correct checksum."""
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    h[124:136], h[136:148] = b"%011o\0" % size, b"00000000000\0"
    h[156:157], h[257:265] = typeflag, b"ustar\x0000"
    for offset, value in (extra or {}).items():
        h[offset:offset + len(value)] = value
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


END = header(b"f", b"0", 0) + bytes(1024)  # the one member, then the end of the archive
BIG = 32 << 20


def refused_lightly(folder: Path, body: bytes, match: str) -> None:
    """``unpack`` of ``body`` gzipped is one DataError naming the archive, and never takes more than 4 MiB."""
    (folder / "a.tar.gz").write_bytes(gzip.compress(body, 1))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=match) as e:
            unpack(folder, Unpack("a.tar.gz", {"f": 10}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert one_line(e).startswith(f"{folder / 'a.tar.gz'}: cannot unpack it (")
    assert peak < 4 << 20, f"{peak} bytes"
    assert not (folder / "f").exists()


@pytest.mark.parametrize("typeflag", [b"L", b"K", b"x", b"g"])  # GNU long name and link name, PAX and global PAX
def test_an_extended_header_past_64_kib_is_refused_before_it_is_read(tmp_path, typeflag):
    data = b"a" * BIG if typeflag in b"LK" else b"9 a=bbbb\n" * (BIG // 9) + b"\n" * (BIG % 9)  # 32 MiB
    refused_lightly(tmp_path, header(b"././@LongLink", typeflag, BIG) + data + END,
                    r"an extended header of 33554432 bytes; allowed: at most 65536 bytes each")


def test_extended_headers_past_1_mib_in_all_are_refused(tmp_path):
    value = b"b" * ((60 << 10) - 10)  # one PAX record "61439 a=bbb...\n" of 60 KiB, then a padding newline
    entry = header(b"h", b"x", 60 << 10) + b"%d a=%s\n\n" % (len(value) + 9, value) + header(b"e", b"0", 0)
    refused_lightly(tmp_path, entry * 20 + END, r"65536 bytes each, 1048576 in all")


def test_a_chain_of_empty_extended_headers_is_refused_not_a_recursion_error(tmp_path):
    refused_lightly(tmp_path, header(b"h", b"x", 0) * 3000 + END, r"more than 8 extended headers in front of one entry")


def test_a_gnu_sparse_map_without_end_is_refused(tmp_path):
    # Each extension block holds 21 (offset, size) pairs and says another follows (byte 504).
    pairs = b"".join(b"%011o\0%011o\0" % (i + 1, 1) for i in range(21))
    block = pairs + bytes(504 - len(pairs)) + b"\1" + bytes(7)
    first = header(b"s", b"S", 0, {482: b"\1"})
    refused_lightly(tmp_path, first + block * 20000 + END, r"a sparse file; allowed: regular files and folders")


def test_a_pax_sparse_map_without_end_is_refused(tmp_path):
    records = b"22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n"
    pax = header(b"p", b"x", len(records)) + records.ljust(512, b"\0")
    refused_lightly(tmp_path, pax + header(b"s", b"0", 0) + b"99999999\n" + b"1\n" * 4_000_000 + END,
                    r"a sparse file")


def test_ordinary_long_names_and_pax_headers_still_unpack(tmp_path):
    import io
    import tarfile

    name = "d/" + "n" * 150  # past ustar's 100 characters: a long name or a PAX path
    for form in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        with tarfile.open(tmp_path / "a.tar.gz", "w:gz", format=form) as tar:
            info = tarfile.TarInfo(name)
            info.size, info.pax_headers = 3, {"comment": "x" * 1000}
            tar.addfile(info, io.BytesIO(b"abc"))
        assert unpack(tmp_path, Unpack("a.tar.gz", {name: 3})) == [tmp_path / name]
        assert (tmp_path / name).read_bytes() == b"abc"


# 3. What stands in a dataset file's place: a FIFO, a folder or a device is one line, never a download.

def stand_in(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    {"FIFO": os.mkfifo, "folder": os.mkdir, "character device": lambda p: os.symlink("/dev/null", p)}[kind](path)


def slots(name: str) -> list[str]:
    """Every file of a published dataset: the downloads, and the unpacked files its loader reads."""
    dataset = PUBLISHED[name]
    return sorted({*dataset.files, *dataset.needed})


@pytest.mark.parametrize("kind", ["FIFO", "folder", "character device"])
@pytest.mark.parametrize("name, file", [(name, file) for name in PUBLISHED for file in slots(name)])
def test_a_stand_in_for_a_dataset_file_is_one_line_and_never_a_download(tmp_path, name, file, kind):
    stand_in(tmp_path / name / file, kind)
    expected = (rf"{re.escape(str(tmp_path / name / file))} is a {kind}, not a regular file; "
                rf"help: remove it, then run `snn data fetch {re.escape(name)}`$")
    for attempt in (lambda: fetch(tmp_path, name, NOWHERE), lambda: ensure(tmp_path, name),
                    lambda: load_dataset(name, tmp_path, fetch_missing=True)):
        with pytest.raises(DataError, match=expected):
            attempt()
    if file in PUBLISHED[name].files:  # what `snn data list` and `snn data verify` look at
        for look in (verify, verify_presence):
            with pytest.raises(DataError, match=expected):
                look(tmp_path, name)


def test_a_fifo_in_place_of_a_folder_on_the_way_is_named(tmp_path):
    stand_in(tmp_path / "cifar-10" / "cifar-10-batches-bin", "FIFO")
    with pytest.raises(DataError, match=r"cifar-10-batches-bin is a FIFO, not a folder; help: remove it"):
        ensure(tmp_path, "cifar-10")


def test_the_cli_says_what_stands_in_the_files_place(tmp_path):
    stand_in(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", "FIFO")
    result = runner.invoke(app, ["data", "fetch", "mnist", "--data", str(tmp_path), "--url", NOWHERE])
    assert result.exit_code == 2 and "t10k-labels-idx1-ubyte.gz is a FIFO, not a regular file" in result.output


# 4. SIGTERM during a fetch ends it as Ctrl-C does: the partial file is removed.

def test_sigterm_raises_inside_and_the_previous_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as e, terminated_as_interrupted():
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)  # as `kill PID` would, to this thread
        time.sleep(30)  # the handler raises at the next bytecode; this is never reached
    assert e.value.code == 143 and signal.getsignal(signal.SIGTERM) is before


def test_sigterm_during_a_download_leaves_no_part_file(tmp_path, hostile_mirror):  # noqa: F811
    folder = tmp_path / "catvnoncat"
    env = {**os.environ, "SNN_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "snn", "data", "fetch", "catvnoncat", "--url",
                             f"{hostile_mirror}/trickle/"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(1200):  # the mirror sends a byte every 10 ms: the .part file appears, then grows
            if list(folder.glob(".*.part")) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None and list(folder.glob(".*.part")), proc.communicate()[0] if proc.poll() else ""
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, out
    assert b"Terminated (SIGTERM)" in out and b"Traceback" not in out
    assert not list(folder.iterdir())  # neither the partial file nor anything else
