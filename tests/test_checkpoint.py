"""Checkpoints: what they hold, the files they may name and delete, and one-line errors for everything else."""

import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

import snn
from snn.errors import CheckpointError
from snn.runtime import checkpoint as checkpoint_module
from snn.runtime.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "model-v1-xor"
RECORD = {"epoch": 1, "cost": 0.5, "train_accuracy": 0.75, "val_accuracy": 0.5, "seconds": 0.01, "val_cost": 0.6,
          "learning_rate": 0.05}


def history(epochs: int) -> list[dict]:
    return [{**RECORD, "epoch": e} for e in range(1, epochs + 1)]


@pytest.fixture
def run(tmp_path):
    """A run folder with a real checkpoint of epoch 2 (a model's parameters and Adam state), and a victim outside it."""
    model = snn.load_model(FIXTURE)
    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "victim.txt").write_text("precious")
    save_checkpoint(folder, model.params.flat, model.optimizer_state, 2, history(2), {"retries": 3, "failed": 1})
    return folder, model.params.flat, model.optimizer_state


def pointer(folder: Path) -> dict:
    return json.loads((folder / "checkpoint.json").read_text())


def test_round_trip_is_a_typed_checkpoint_with_counters(run):
    folder, flat, state = run
    loaded = load_checkpoint(folder, np.zeros_like(flat), {k: np.zeros_like(v) for k, v in state.items()})
    assert isinstance(loaded, Checkpoint) and loaded.epoch == 2 and loaded.history == history(2)
    assert loaded.counters == {"retries": 3, "failed": 1}
    np.testing.assert_array_equal(loaded.flat, flat)
    assert set(loaded.state) == {"m", "v", "t"} and all(np.array_equal(loaded.state[k], state[k]) for k in state)


def test_a_new_checkpoint_replaces_the_old_tensors_and_nothing_else(run):
    folder, flat, state = run
    keep = [folder / "checkpoint-notes.txt", folder / "checkpoint-2.safetensors.bak", folder / "model.safetensors"]
    for path in keep:
        path.write_text("mine")
    (folder / "checkpoint-7.safetensors").mkdir()  # a folder of that name is not a tensor file
    (folder / "checkpoint-1.safetensors").write_text("left by a crash")  # an orphan of the same pattern goes
    save_checkpoint(folder, flat, state, 3, history(3))
    assert sorted(p.name for p in folder.glob("checkpoint-*.safetensors")) == ["checkpoint-3.safetensors",
                                                                               "checkpoint-7.safetensors"]
    assert all(p.read_text() == "mine" for p in keep)
    assert load_checkpoint(folder, flat, state).counters == {}


@pytest.mark.parametrize("name", ["../victim.txt", "VICTIM", "checkpoint-1.safetensors", "sub/checkpoint-2.safetensors",
                                  "checkpoint-02.safetensors", "checkpoint-2.safetensors\x00",
                                  "./checkpoint-2.safetensors"])
def test_a_pointer_may_name_only_its_own_tensor_file(run, name):
    folder, flat, state = run
    victim = folder.parent / "victim.txt"
    doc = {**pointer(folder), "tensors": name.replace("VICTIM", str(victim))}
    (folder / "checkpoint.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"checkpoint.json: tensors: must be 'checkpoint-2\.safetensors'") as e:
        load_checkpoint(folder, flat, state)
    assert "\n" not in str(e.value) and "help:" in str(e.value)
    save_checkpoint(folder, flat, state, 3, history(3))  # the old pointer named the victim: it is never deleted
    assert victim.read_text() == "precious"


def test_a_pointer_is_bounded_in_size(run, monkeypatch):
    folder, flat, state = run
    monkeypatch.setattr(checkpoint_module, "MAX_POINTER_BYTES", 100)
    with pytest.raises(CheckpointError, match="larger than 100 bytes"):
        load_checkpoint(folder, flat, state)


def test_tensors_must_be_the_runs_own(run):
    folder, flat, state = run
    with pytest.raises(CheckpointError, match=r"tensor params is float32\[17\]; expected float64\[17\]"):
        load_checkpoint(folder, flat.astype(np.float64), state)
    with pytest.raises(CheckpointError, match=r"tensors not expected: \['state.m', 'state.t', 'state.v'\]"):
        load_checkpoint(folder, flat, {})
    with pytest.raises(CheckpointError, match=r"tensor params is float32\[17\]; expected float32\[18\]"):
        load_checkpoint(folder, np.zeros(18, np.float32), state)


def test_no_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint.json; help: only runs with checkpoints"):
        load_checkpoint(tmp_path, np.zeros(3), {})


def test_a_missing_tensor_file_is_named(run):
    folder, flat, state = run
    (folder / "checkpoint-2.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint-2\.safetensors: file not found"):
        load_checkpoint(folder, flat, state)


@pytest.mark.parametrize("name", ["checkpoint.json", "checkpoint-2.safetensors"])
def test_a_fifo_is_refused_not_waited_on(run, name):
    folder, flat, state = run
    (folder / name).unlink()
    os.mkfifo(folder / name)
    outcome = []

    def load():
        try:
            load_checkpoint(folder, flat, state)
        except CheckpointError as e:
            outcome.append(str(e))

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=30)  # a bound for the test only: the answer comes at once, or never
    assert not reader.is_alive() and outcome and "not a regular file" in outcome[0]


def test_checkpoint_files_get_the_mode_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path, np.zeros(3), {}, 1, history(1))
    finally:
        os.umask(old)
    for name in ("checkpoint.json", "checkpoint-1.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


XOR = {"name": "x", "data": {"dataset": "xor"},
       "network": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
       "training": {"epochs": 6, "batch_size": 64, "optimizer": {"name": "adam", "learning_rate": 0.05}}}


def test_a_real_run_with_a_crafted_pointer_neither_resumes_nor_deletes(tmp_path):
    run_dir, victim = tmp_path / "run", tmp_path / "victim.txt"
    victim.write_text("precious")

    def stop_at_two(record):
        if record["epoch"] == 2:
            (run_dir / "STOP").write_text("")

    assert snn.train(XOR, run_dir=run_dir, on_epoch=stop_at_two).summary["stopped"]
    assert pointer(run_dir)["epoch"] == 2
    (run_dir / "checkpoint.json").write_text(json.dumps({**pointer(run_dir), "tensors": str(victim)}))
    with pytest.raises(CheckpointError, match=r"checkpoint.json: tensors: must be 'checkpoint-2\.safetensors'"):
        snn.train(XOR, run_dir=run_dir, resume=True)
    (run_dir / "checkpoint.json").write_text(json.dumps({**pointer(run_dir), "tensors": "checkpoint-2.safetensors"}))
    resumed = snn.train(XOR, run_dir=run_dir, resume=True)  # restored, the same folder resumes to the end
    assert resumed.summary["epochs"] == 6 and victim.read_text() == "precious"
