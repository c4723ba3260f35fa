import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import snn
from snn.errors import ModelFileError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = {"name": "xor", "data": {"dataset": "xor"},
           "network": {"layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
                       "dtype": "float32"},
           "training": {"epochs": 40, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.05}}}
    return snn.train(cfg, run_dir=tmp_path_factory.mktemp("run") / "xor")


def test_round_trip_predicts_the_same(run):
    model = snn.load_model(run.run_dir)
    X = np.random.default_rng(0).uniform(-1, 1, (2, 50)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_proba(X), run.model.predict_proba(X))
    np.testing.assert_array_equal(model.params.flat, run.model.params.flat)
    assert model.dtype == np.float32 and model.classes == ("0", "1")
    assert model.optimizer == {"name": "adam", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    assert set(model.optimizer_state) == {"m", "v", "t"} and int(model.optimizer_state["t"][0]) == 40 * 10
    assert model.summary["epochs"] == 40
    assert model.predict(X[:, 0]).shape == (1,)
    for path in (run.run_dir / "model.json", run.run_dir / "model.safetensors"):
        np.testing.assert_array_equal(snn.load_model(path).params.flat, model.params.flat)


def test_files_are_plain_tensors_and_json(run):
    tensors = load_file(str(run.run_dir / "model.safetensors"))
    assert sorted(tensors) == ["W1", "W2", "b1", "b2", "optimizer.m", "optimizer.t", "optimizer.v"]
    meta = json.loads((run.run_dir / "model.json").read_text())
    # Version 2: the input shape, and each layer's type (version 1 had n_input and untyped layers).
    assert meta["version"] == 2 and meta["architecture"]["input_shape"] == [2]
    assert meta["architecture"]["layers"] == [{"type": "dense", "units": 6, "activation": "tanh"},
                                              {"type": "dense", "units": 1, "activation": "sigmoid"}]
    assert meta["preprocessing"] == {"kind": "table", "shape": [2], "scale": 1.0}
    assert not list(run.run_dir.glob("*.part"))


def test_bad_input_shape(run):
    with pytest.raises(ValueError, match=r"input of shape \(3, 4\): expected \(2, m\)"):
        run.model.predict(np.zeros((3, 4)))


def test_corrupt_files_give_clear_errors(run, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(run.run_dir, folder)
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match=r"7 bytes; its tensors take 100 to \d+: it does not hold the tensors"):
        snn.load_model(folder)
    (folder / "model.safetensors").write_bytes(b"garbage" * 100)
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        snn.load_model(folder)
    shutil.copy(run.run_dir / "model.safetensors", folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["architecture"]["layers"][0]["units"] = 7
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"tensor W1 is float32\[6, 2\]; expected float32\[7, 2\]"):
        snn.load_model(folder)
    (folder / "model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelFileError, match="not an snn-model sidecar"):
        snn.load_model(folder)
    (folder / "model.json").write_text("{")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        snn.load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(ModelFileError, match="model.json: file not found"):
        snn.load_model(folder)
    with pytest.raises(ModelFileError, match="not a model"):
        snn.load_model(folder / "history.csv")


def test_failed_save_leaves_the_old_files(run, tmp_path, monkeypatch):
    import shutil

    import snn.tensorfile as tensorfile

    folder = tmp_path / "keep"
    shutil.copytree(run.run_dir, folder)
    before = (folder / "model.safetensors").read_bytes()

    def broken(tensors, path):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tensorfile, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        run.model.save(folder)
    assert (folder / "model.safetensors").read_bytes() == before
    assert not list(folder.glob(".*part"))


FIXTURE = Path(__file__).parent / "fixtures" / "model-v1-xor"


def test_a_version_1_model_from_an_earlier_snn_loads_and_predicts():
    """tests/fixtures/model-v1-xor was written by the first format's writer; every later snn reads it."""
    from snn.data import load_dataset

    model = snn.load_model(FIXTURE)
    assert json.loads((FIXTURE / "model.json").read_text())["version"] == 1
    assert model.classes == ("0", "1") and model.dtype == np.float32
    assert model.spec.layers == ((4, "tanh"), (1, "sigmoid"))
    # An independent oracle: the forward pass written out from the raw tensors.
    t = load_file(str(FIXTURE / "model.safetensors"))
    X = np.random.default_rng(1).uniform(-1, 1, (2, 64)).astype(np.float32)
    expected = 1 / (1 + np.exp(-(t["W2"] @ np.tanh(t["W1"] @ X + t["b1"]) + t["b2"])))
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-4, atol=1e-6)  # float32
    xor = load_dataset("xor")
    assert (model.predict_raw(xor.x_test) == xor.y_test).mean() >= 0.95  # it learned XOR, as its summary says
    assert model.summary["test_accuracy"] >= 0.95


def test_model_files_get_the_mode_of_any_new_file(run, tmp_path):
    old = os.umask(0o027)
    try:
        run.model.save(tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("model.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == 0o640, name  # 0666 less the umask, not 0600
