"""A tampered ledger: every reader (trace, cost, report, resume) goes through one checked reader, and any value
in any field of a row is read as snn wrote it or refused in one line (round three)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.errors import RunFolderError
from snn.runtime.ledger import FIELDS, read_ledger
from test_runtime_parity import small

runner = CliRunner()
BAD_NUMBERS = ["abc", "inf", "-inf", "nan", "1e400", "-1", "1.5", "0x10", "", "True", "1" * 400]


@pytest.fixture(scope="module")
def layer_run(tmp_path_factory):
    """A run through the runtime, stopped after an epoch: it has a ledger and a checkpoint to resume from."""
    run_dir = tmp_path_factory.mktemp("ledger") / "run"
    snn.train({**small(epochs=3), "runtime": {"granularity": "layer", "checkpoint_every": 1}}, run_dir=run_dir,
              on_epoch=lambda r: r["epoch"] == 1 and (run_dir / "STOP").touch())
    return run_dir


def tampered(layer_run, tmp_path, field: str, value: str):
    run_dir = tmp_path / "run"
    shutil.copytree(layer_run, run_dir)
    rows = list(csv.DictReader(io.StringIO((run_dir / "invocations.csv").read_text())))
    rows[len(rows) // 2][field] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (run_dir / "invocations.csv").write_text(out.getvalue())
    return run_dir


@pytest.mark.parametrize("value", ["abc", "inf", "1e400"])
@pytest.mark.parametrize("command", ["trace", "cost", "report", "resume"])
def test_a_bad_layer_number_is_one_line_for_every_command(layer_run, tmp_path, command, value):
    run_dir = tampered(layer_run, tmp_path, "layer", value)
    args = ["train", "--resume", run_dir, "--quiet"] if command == "resume" else [command, run_dir]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error:") and "\n" not in line and "layer" in line and "row" in line, line
    assert "the ledger was changed after the run wrote it" in line


def test_the_untouched_ledger_reads_back_as_written_and_resumes(layer_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(layer_run, run_dir)
    before = read_ledger(run_dir / "invocations.csv")
    assert before and all(type(r["layer"]) is int and type(r["duplicate"]) is bool for r in before)
    resumed = snn.train(snn.load_config(run_dir / "config.json"), run_dir=run_dir, resume=True)
    assert resumed.summary["epochs"] == 3 and len(read_ledger(run_dir / "invocations.csv")) > len(before)


NUMERIC = ("layer", "unit", "step", "attempt", "sent", "start", "end", "wait", "load", "compute", "store_write",
           "merge")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=st.one_of(st.sampled_from(BAD_NUMBERS), st.text(max_size=50),
                                                      st.floats(allow_nan=True).map(repr),
                                                      st.integers(-(1 << 70), 1 << 70).map(str)))
def test_any_value_in_any_field_is_read_as_written_or_refused_in_one_line(layer_run, tmp_path_factory, field, value):
    run_dir = tampered(layer_run, tmp_path_factory.mktemp("t"), field, value)
    try:
        rows = read_ledger(run_dir / "invocations.csv")
    except RunFolderError as e:
        assert "\n" not in str(e) and f"{run_dir / 'invocations.csv'}: row" in str(e)
        return
    # Accepted: then every field has the type snn writes, in range, and the commands work on it.
    for r in rows:
        assert all(type(r[k]) is int and r[k] >= 0 for k in ("layer", "unit", "step", "attempt"))
        assert all(r[k] is None or (type(r[k]) in (int, float) and 0 <= r[k] < 1e13) for k in NUMERIC)
        assert all(type(r[k]) is int and 0 <= r[k] < 1 << 63 for k in ("bytes_in", "bytes_out"))
        assert type(r["duplicate"]) is bool and r["phase"].isidentifier()
    for command in ("trace", "cost"):
        result = runner.invoke(app, [command, str(run_dir), "--json"])
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 0:
            json.loads(result.output)
        else:
            assert result.output.strip().startswith("error:") and "Traceback" not in result.output


@pytest.mark.parametrize("cut", ["short", "long"])
def test_a_row_of_the_wrong_width_is_named(layer_run, tmp_path, cut):
    run_dir = tmp_path / "run"
    shutil.copytree(layer_run, run_dir)
    lines = (run_dir / "invocations.csv").read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:5]) if cut == "short" else lines[3] + ",1,2"
    (run_dir / "invocations.csv").write_text("\n".join(lines) + "\n")
    for command in ("trace", "cost", "report"):
        result = runner.invoke(app, [command, str(run_dir)])
        assert result.exit_code == 2 and "row 4 has" in result.output and "than its header" in result.output


@pytest.mark.parametrize("field, value", [("attempt", "1e3"), ("phase", "nonsense"), ("status", "happy"),
                                          ("step", "+3"), ("duplicate", "1")])
def test_what_snn_never_writes_is_refused_by_every_reader(layer_run, tmp_path, field, value):
    run_dir = tampered(layer_run, tmp_path, field, value)
    for command in ("trace", "cost", "report"):
        result = runner.invoke(app, [command, str(run_dir)])
        assert result.exit_code == 2 and field in result.output, (command, result.output)


@pytest.mark.parametrize("value", ["\r", "\n", "1\r", " 3", "٣"])
def test_a_cell_with_a_line_break_or_other_digits_is_refused_by_row(layer_run, tmp_path, value):
    run_dir = tampered(layer_run, tmp_path, "layer", value)
    # A bare \r, which the csv writer does not quote, splits the record: that row then has fewer fields.
    with pytest.raises(RunFolderError, match=r"invocations.csv: row \d+(: layer| has fewer fields)") as e:
        read_ledger(run_dir / "invocations.csv")
    assert str(e.value).isprintable()
