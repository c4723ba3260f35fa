import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import EXAMPLES
from snn.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cat_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("cli") / "cat"
    result = invoke("train", EXAMPLES / "catvnoncat-2layer.json", "--data", data_root, "--out", out,
                    "--epochs", 60, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_train_writes_the_run_folder(cat_run):
    out, summary = cat_run
    assert summary["epochs"] == 60 and summary["run_dir"] == str(out)
    for key in ("final_cost", "train_accuracy", "test_accuracy", "wall_seconds"):
        assert key in summary
    # The last epoch is checkpointed too (crash-safe by default): --resume --epochs N goes further.
    # Telemetry is recorded by default (about 50 probes a run).
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-60.safetensors", "checkpoint.json", "config.json",
                                                      "history.csv", "model.json", "model.safetensors", "summary.json",
                                                      "telemetry.safetensors"]
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,cost,train_accuracy,val_accuracy,seconds") and len(lines) == 61
    assert float(lines[1].split(",")[1]) == pytest.approx(0.6930497356599888, abs=1e-14)  # the course's first cost
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["epochs"] == 60 and config["training"]["optimizer"]["beta1"] == 0.9


def test_train_shows_progress_and_summary(tmp_path):
    result = invoke("train", EXAMPLES / "spiral.yaml", "--epochs", 20, "--out", tmp_path / "s")
    assert result.exit_code == 0
    assert "What it learned" in result.output and "Run folder:" in result.output and "test_accuracy" in result.output


def test_evaluate(cat_run, data_root):
    out, summary = cat_run
    result = invoke("evaluate", out, "--data", data_root, "--json")
    report = json.loads(result.output)
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert np.array(report["confusion_matrix"]).sum() == 50
    text = invoke("evaluate", out, "--data", data_root).output
    assert "Confusion matrix" in text and "precision" in text and "non-cat" in text


def test_predict_images(cat_run, cat, tmp_path):
    out, _ = cat_run
    png, jpg = tmp_path / "cat.png", tmp_path / "cat.jpg"
    Image.fromarray(cat.x_test[1]).save(png)
    Image.fromarray(cat.x_test[1]).resize((128, 100)).save(jpg)
    result = invoke("predict", out, png, jpg, "--json")
    rows = json.loads(result.output)
    from snn import load_model

    model = load_model(out)
    expected = model.classes[model.predict_raw(cat.x_test[1:2])[0]]
    assert rows[0]["label"] == expected and 0.5 <= rows[0]["probability"] <= 1
    assert rows[1]["label"] in model.classes
    (tmp_path / "not.png").write_bytes(b"hello")
    bad = runner.invoke(app, ["predict", str(out), str(tmp_path / "not.png")])
    assert bad.exit_code == 2 and "not a readable PNG or JPEG image" in bad.output  # one line, no traceback


def test_info(cat_run):
    out, _ = cat_run
    result = invoke("info", out)
    assert "86031 parameters" in result.output and "relu" in result.output and "non-cat, cat" in result.output


def test_gradcheck_passes_on_the_deep_example(data_root):
    result = invoke("gradcheck", EXAMPLES / "catvnoncat-4layer.json", "--data", data_root, "--entries", 8)
    assert result.exit_code == 0, result.output
    assert "W1" in result.output and "b4" in result.output and "passed" in result.output


def test_gradcheck_fails_loudly_above_the_threshold(data_root):
    result = invoke("gradcheck", EXAMPLES / "catvnoncat-4layer.json", "--data", data_root, "--entries", 4,
                    "--threshold", 1e-14)
    assert result.exit_code == 1 and "FAIL" in result.output


def test_data_list_and_verify(data_root):
    listing = invoke("data", "list", "--data", data_root)
    assert "catvnoncat" in listing.output and "2/2" in listing.output and "4/4" in listing.output
    verified = invoke("data", "verify", "catvnoncat", "mnist", "fashion-mnist", "--data", data_root)  # no CIFAR-10 there
    assert verified.exit_code == 0 and verified.output.count("ok") >= 10


def test_errors_are_one_clear_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": {"dataset": "xor"}, "network": {"layers": []}, "training": {"epochs": 0}}))
    proc = subprocess.run([sys.executable, "-m", "snn", "train", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "network.layers: got []" in proc.stderr and "training.epochs: got 0" in proc.stderr


def test_data_fetch_from_a_mirror(mirror, tmp_path):
    _, url = mirror
    result = invoke("data", "fetch", "catvnoncat", "--data", tmp_path, "--url", url)
    assert result.exit_code == 0 and "2 file(s) downloaded and verified" in result.output
    assert invoke("data", "verify", "catvnoncat", "--data", tmp_path).exit_code == 0


def test_play_keeps_score(cat_run, data_root):
    out, _ = cat_run
    result = runner.invoke(app, ["play", str(out), "--data", str(data_root), "--seed", "3", "--rounds", "3"],
                           input="cat\nnothing\n0\n1\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("\u2580") > 1000  # the images, in half blocks
    assert "'nothing' is not a class" in result.output
    assert "Score after 3: you" in result.output and "Final score" in result.output
    quit_early = runner.invoke(app, ["play", str(out), "--data", str(data_root)], input="q\n")
    assert "out of 0" in quit_early.output
