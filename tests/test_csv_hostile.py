"""CSV files as the csv module writes them, read back as records (issue 20): a quoted line break
never merges two numbers or two labels, row numbers count records, and the memory a large file
takes is that of its numbers. Row numbers are a spreadsheet's: the header is row 1, a blank line
is a row, and a record whose quoted cell spans lines is one row."""

import csv
import io
import json
import string
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from snn.cli import app
from snn.data import Preprocessing, load_dataset
from snn.data.tabular import MISSING, load_rows
from snn.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_csv_memory as bench  # noqa: E402

QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEATURES = tuple(f"f{j}" for j in range(bench.COLUMNS))


def refused(spec: str, match: str) -> str:
    with pytest.raises(DataError, match=match) as info:
        load_dataset(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


def write(path: Path, rows: list[list], quoting: int = csv.QUOTE_MINIMAL, lineterminator: str = "\r\n") -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f, quoting=quoting, lineterminator=lineterminator).writerows(rows)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A table model that knows its features' names, f0..f7 (the benchmark's)."""
    return bench.small_model(tmp_path_factory.mktemp("model"))


def predict(model: Path, path: Path):
    return CliRunner().invoke(app, ["predict", str(model), str(path), "--json"], env={"COLUMNS": "500"})


# --- 1. a line break in a quoted cell ---------------------------------------------------------------------------------

def test_a_number_with_a_quoted_line_break_is_refused_not_read_as_12(tmp_path):
    path = write(tmp_path / "t.csv", [["a", "b", "species"], [1, 2, "x"], ["1\n2", 3, "y"], [4, 5, "x"]])
    refused(f"csv:{path}?label=species", r"t.csv: row 3, column 1 \('a'\): '1\\n2' holds a line break, which no "
                                         r"number does; allowed: numbers in every column but the label")
    write(path, [["a", "b", "price"], [1, 2, 3], [4, "5\r\n", 6]])  # a line break around a number, too
    refused(f"csv:{path}?label=price&task=regression", r"row 3, column 2 \('b'\): '5\\r\\n' holds a line break")


def test_a_label_with_a_quoted_line_break_is_no_class(tmp_path):
    path = write(tmp_path / "t.csv", [["a", "species"], [1, "yes"], [2, "ye\ns"], [3, "no"]])
    refused(f"csv:{path}?label=species", r"row 3, column 2 \('species'\): class name 'ye\\ns'; allowed: 1..200 "
                                         r"printable characters")
    write(path, [["a", "species"], [1, "yes"], [2, "no\t"], [3, "n\x1bo"]])
    refused(f"csv:{path}?label=species", r"row 4, column 2 \('species'\): class name 'n\\x1bo'")


def test_a_numbers_only_csv_has_no_quoting_so_nothing_is_merged(tmp_path):
    path = write(tmp_path / "t.csv", [[1, 2, 0], ["1\n2", 3, 1]])  # read as lines: '"1' and '2"'
    refused(f"csv:{path}", r"row 2 has 1 fields; allowed: 3, as in row 1")


def test_snn_predict_refuses_a_quoted_line_break_and_counts_records(model, tmp_path):
    path = write(tmp_path / "rows.csv", [["notes", *FEATURES], ["a", *range(8)], ["1\n2", "1\n2", *range(7)]])
    result = predict(model, path)
    assert result.exit_code == 2 and "rows.csv: row 3, column 2 ('f0'): '1\\n2' holds a line break" in result.output
    # A cell the model does not read may hold line breaks: the rows after it keep their numbers.
    path.write_text('notes,' + ",".join(FEATURES) + '\n"one\nline\r\nmore",1,2,3,4,5,6,7,8\n\n"x",1,2,3,4,5,6,7,8\r\n'
                    '"y ""z""",1,2,3,4,5,6,7,8\n')
    result = predict(model, path)
    assert result.exit_code == 0, result.output
    assert [answer["row"] for answer in json.loads(result.output)] == [2, 4, 5]


def test_a_broken_record_is_named_by_its_record_number(model, tmp_path):
    (tmp_path / "t.csv").write_text('a,b,species\n"1\n2",3,x\n4,5,"y\n')  # the quote is never closed
    refused(f"csv:{tmp_path / 't.csv'}?label=species", r"row 3: not a CSV row \(unexpected end of data\)")
    (tmp_path / "rows.csv").write_text(",".join(FEATURES) + "\n" + "1," * 7 + '1\n"\n' + "1," * 7 + "\n")
    result = predict(model, tmp_path / "rows.csv")  # the quote opens on line 3 and is never closed either
    assert result.exit_code == 2 and "rows.csv: row 3: not a CSV row (unexpected end of data)" in result.output


# --- 2. memory: that of the numbers, not of the text ------------------------------------------------------------------

SLACK = 8 << 20  # a chunk of 4096 records' text and fields, and what the allocator keeps of it


@pytest.mark.parametrize("kind", bench.KINDS)
def test_a_16_mib_csv_takes_at_most_3x_its_numbers_memory(tmp_path, model, kind):
    """Before the fix, about 6x (16 MiB of 4-decimal numbers: 18 MB of numbers, 115 MB above the baseline)."""
    result = bench.measure(kind, 16, tmp_path, model)
    assert result["peak_rss_bytes"] <= result["baseline_rss_bytes"] + 3 * result["numbers_bytes"] + SLACK, result


# --- 3. any table csv.writer writes reads back as it was --------------------------------------------------------------

QUOTING = st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC])
LABEL = st.text(string.ascii_letters + string.digits + ' ,"\'.;-', min_size=1, max_size=12).map(str.strip).filter(
    lambda label: label and label.lower() not in MISSING)
NUMBER = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6).map(float)


@st.composite
def tables(draw, width: int = 3):
    m = draw(st.integers(2, 12))
    x = draw(st.lists(st.lists(NUMBER, min_size=width, max_size=width), min_size=m, max_size=m))
    labels = draw(st.lists(LABEL, min_size=m, max_size=m))
    assume(len(set(labels)) >= 2)
    return x, labels


@QUICK
@given(table=tables(), quoting=QUOTING, ending=st.sampled_from(["\r\n", "\n"]))
def test_what_csv_writer_writes_reads_back_the_same(tmp_path, table, quoting, ending):
    x, labels = table
    path = write(tmp_path / "t.csv", [["a", "b, c", 'd "e"', "species"], *([*r, y] for r, y in zip(x, labels))],
                 quoting, ending)
    ds = load_dataset(f"csv:{path}?label=species")
    assert ds.x_train.tolist() == x and [ds.classes[i] for i in ds.y_train] == labels
    assert ds.preprocessing.features == ("a", "b, c", 'd "e"')
    rows, got = load_rows(path, ds.preprocessing)
    assert rows.tolist() == list(range(2, len(x) + 2)) and got.tolist() == x


BREAKS = st.sampled_from(["1\n2", "\n3", "4\r", "5\r\n", "\r\n", '6\n"'])


@QUICK
@given(table=tables(), quoting=QUOTING, at=st.tuples(st.integers(0, 11), st.integers(0, 3)), cell=BREAKS)
def test_a_quoted_line_break_anywhere_is_refused_at_its_record(tmp_path, table, quoting, at, cell):
    x, labels = table
    i, j = at[0] % len(x), at[1]
    rows = [[*r, y] for r, y in zip(x, labels)]
    rows[i][j] = cell
    path = write(tmp_path / "t.csv", [["a", "b", "c", "species"], *rows], quoting)
    column = "class name" if j == 3 else "holds a line break"
    refused(f"csv:{path}?label=species", rf"t.csv: row {i + 2}, column {j + 1} \('{'abcs'[j]}\w*'\): .*{column}")
    with pytest.raises(DataError, match=rf"row {i + 2}, column {j + 1}") if j < 3 else nullcontext():
        load_rows(path, Preprocessing("table", (3,), features=("a", "b", "c")))  # the label is no feature: not read


@QUICK
@given(table=tables(), quoting=QUOTING)
def test_a_numbers_only_csv_refuses_quotes_it_would_have_to_merge(tmp_path, table, quoting):
    x, labels = table
    rows = [[*r, k % 2] for k, r in enumerate(x)]
    rows[0][0] = "1\n2"
    buffer = io.StringIO()
    csv.writer(buffer, quoting=quoting).writerows(rows)
    (tmp_path / "t.csv").write_text(buffer.getvalue())
    refused(f"csv:{tmp_path / 't.csv'}", r"t\.csv: row [12]")  # records are lines: '"1' and '2"', no number
