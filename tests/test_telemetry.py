"""Training seen from inside: the probe against a direct computation, the file, hostile files, the schedule,
a dead unit flagged, the timeline's lanes, and no training number changed by any of it."""

import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

import snn
from conftest import EXAMPLES
from snn.core.layers import layer_from_json
from snn.core.network import Network, NetworkSpec, Params
from snn.errors import RunFolderError
from snn.run import target_rows
from snn.telemetry import (FILE, MAX_SNAPSHOTS, Recorder, Telemetry, as_json, interval, probe, read_telemetry,
                           sample_columns, write_telemetry)
from snn.timeline import busy_until, lanes_json, read_invocations
from test_runtime_parity import small
from tiny_cnn import TINY_CNN

CAT_2LAYER = EXAMPLES / "catvnoncat-2layer.json"


def random_params(spec: NetworkSpec, seed=0) -> Params:
    params = Params.zeros(spec)
    params.flat[...] = np.random.default_rng(seed).normal(0, 0.5, params.flat.size)
    return params


def direct(spec: NetworkSpec, params: Params, X, Y) -> dict[str, np.ndarray]:
    """The metrics of every layer with neurons, written out: the core network's forward pass and gradients,
    each neuron's row or filter taken one at a time."""
    net = Network(spec)
    cache = net.forward(params, X)
    _, grads, _ = net.gradients(params, X, Y)
    out = {}
    for l, layer in enumerate(spec.built, start=1):
        if not layer.weights:
            continue
        Z, A = cache.Z[l - 1], cache.G[l - 1]
        for u in range(layer.units):
            # Per example, the unit's outputs: one for a dense unit, a map for a filter.
            z, a = (Z[u][:, None], A[u][:, None]) if Z.ndim == 2 else (Z[:, u].reshape(len(Z), -1),
                                                                        A[:, u].reshape(len(A), -1))
            off = np.array([np.all(z[e] <= 0) for e in range(len(z))])
            near = np.array([np.mean((a[e] <= 0.01) | (a[e] >= 0.99)) > 0.5 for e in range(len(a))])
            values = {"weight_norm": np.sqrt(np.sum(params.layers[l - 1]["W"][u] ** 2)),
                      "grad_norm": np.sqrt(np.sum(grads.layers[l - 1]["W"][u] ** 2)), "mean_activation": a.mean(),
                      "inactive": off.mean() if layer.activation.name == "relu" else 0.0,
                      "saturated": near.mean() if layer.activation.name in ("sigmoid", "softmax") else 0.0}
            for metric, v in values.items():
                out.setdefault(f"L{l}.{metric}", []).append(v)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("spec", [
    NetworkSpec(12, ((9, "relu"), (4, "relu"), (1, "sigmoid")), "bce"),
    NetworkSpec((1, 28, 28), tuple(layer_from_json(l) for l in TINY_CNN["network"]["layers"]), "cce"),
], ids=["dense", "conv"])
def test_the_probe_equals_a_direct_computation(spec):
    rng = np.random.default_rng(1)
    m = 40
    X = rng.normal(0, 1, (spec.n_input, m))
    Y = np.eye(spec.n_out)[:, rng.integers(0, spec.n_out, m)] if spec.n_out > 1 else (rng.random((1, m)) > 0.5) * 1.0
    params = random_params(spec)
    params.layers[0]["b"][2] = -100.0  # a unit that no example turns on
    before = params.flat.copy()
    got, want = probe(Network(spec), params, X, Y), direct(spec, params, X, Y)
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == np.float32 and got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-7, err_msg=name)
    assert got["L1.inactive"][2] == 1.0
    assert np.array_equal(params.flat, before)  # read, never written


@pytest.fixture(scope="module")
def cat_run(tmp_path_factory, data_root):
    folder = tmp_path_factory.mktemp("telemetry") / "cat"
    snn.train(CAT_2LAYER, data_root=data_root, run_dir=folder, **{"training.epochs": 120})
    return folder


def test_a_run_records_its_epochs_from_its_own_parameters(cat_run, cat):
    model = snn.load_model(cat_run)
    t = read_telemetry(cat_run, model.spec, images=True)
    every = interval(None, 120)
    assert every == 3 and t.epochs.tolist() == [1] + list(range(3, 121, 3))
    assert t.examples == 105 and 2 <= len(t.snapshot_epochs) <= MAX_SNAPSHOTS
    assert t.snapshot_epochs[0] == 1 and t.snapshot_epochs[-1] == 120 and t.snapshots.shape[1:] == (7, 12288)
    np.testing.assert_array_equal(t.snapshots[-1], model.params.layers[0]["W"].astype(np.float16))
    # The last sample is the final model's, on the run's own fixed sample of training examples.
    columns = sample_columns(len(cat.y_train), 1)
    X = model.preprocessing.columns(cat.x_train)[:, columns]
    want = direct(model.spec, model.params, X, target_rows(cat, cat.y_train, 1, X.dtype)[:, columns])
    for name, values in want.items():
        np.testing.assert_allclose(t.metrics[name][-1], values, rtol=1e-6, atol=1e-7, err_msg=name)


def test_the_file_round_trips_and_the_page_gets_it_bounded(cat_run, tmp_path):
    model = snn.load_model(cat_run)
    t = read_telemetry(cat_run, model.spec, True)
    write_telemetry(tmp_path, t)
    back = read_telemetry(tmp_path, model.spec, True)
    for name, values in t.tensors().items():
        np.testing.assert_array_equal(back.tensors()[name], values)
    page = as_json(back.until(60), model.spec)
    assert page["epochs"][-1] == 60 and page["snapshots"]["epochs"][-1] <= 60
    assert [l["layer"] for l in page["layers"]] == [1, 2] and len(page["layers"][0]["metrics"]["grad_norm"][0]) == 7


def test_a_long_run_is_sampled_evenly_and_stays_bounded(monkeypatch):
    spec = NetworkSpec(4, ((3, "relu"), (1, "sigmoid")), "bce")
    monkeypatch.setattr("snn.telemetry.MAX_SAMPLES", 10)
    X, Y = np.ones((4, 8)), np.ones((1, 8))
    r = Recorder(Network(spec), X, Y, interval(1, 100), 100, 0, images=False)
    params = random_params(spec)
    for epoch in range(1, 101):
        if r.due(epoch):
            r.record(epoch, params)
    r.record(100, params, last=True)
    t = r.telemetry()
    assert len(t.epochs) <= 10 and t.epochs[0] == 1 and t.epochs[-1] == 100 and (np.diff(t.epochs) > 0).all()
    assert t.snapshots is None  # not a dense layer on images
    assert interval(0, 100) == 0 and interval(None, 2500) == 50 and interval(None, 10) == 1


def dead_unit_run(folder, data_root, epochs=30):
    """The cat 2-layer network, its first layer's unit 3 killed (a bias no image overcomes), trained on."""
    start = snn.train(CAT_2LAYER, data_root=data_root, save=False, **{"training.epochs": 1}).model
    start.params.layers[0]["b"][3] = -1000.0
    snn.train(CAT_2LAYER, data_root=data_root, run_dir=folder, start=start, **{"training.epochs": epochs})
    return folder


def test_a_dead_unit_is_flagged(tmp_path, data_root):
    folder = dead_unit_run(tmp_path / "dead", data_root)
    model = snn.load_model(folder)
    t = read_telemetry(folder, model.spec, True)
    assert t.flags(model.spec) == {1: {"dead": [3], "saturated": []}, 2: {"dead": [], "saturated": []}}
    assert (t.metric(1, "inactive")[:, 3] == 1).all() and (t.metric(1, "grad_norm")[:, 3] == 0).all()


@pytest.mark.parametrize("granularity", ["network", "neuron"])
def test_telemetry_changes_no_training_number(tmp_path, granularity):
    runs = [snn.train({**small(epochs=6, batch_size=20), "runtime": {"granularity": granularity}},
                      run_dir=tmp_path / f"every-{every}", **{"training.telemetry_every": every})
            for every in (1, 0)]
    assert np.array_equal(runs[0].model.params.flat, runs[1].model.params.flat)
    assert [r["cost"] for r in runs[0].history] == [r["cost"] for r in runs[1].history]
    assert (tmp_path / "every-1" / FILE).exists() and not (tmp_path / "every-0" / FILE).exists()


def test_a_stopped_run_resumes_with_its_samples(tmp_path):
    folder = tmp_path / "run"
    cfg = {**small(epochs=7), "runtime": {"checkpoint_every": 1}}
    snn.train(cfg, run_dir=folder, on_epoch=lambda r: r["epoch"] == 3 and (folder / "STOP").touch(),
              **{"training.telemetry_every": 1})
    spec = snn.load_model(folder).spec
    assert read_telemetry(folder, spec, False).epochs.tolist() == [1, 2, 3]
    snn.train(snn.load_config(folder / "config.json"), run_dir=folder, resume=True)
    assert read_telemetry(folder, spec, False).epochs.tolist() == list(range(1, 8))


# --- hostile files: each refused with one line --------------------------------------------------------------------


def hostile(cat_run, tmp_path, change):
    folder = tmp_path / "hostile"
    folder.mkdir()
    model = snn.load_model(cat_run)
    tensors = read_telemetry(cat_run, model.spec, True).tensors()
    change(folder, tensors)
    return folder, model.spec


def rewrite(**changes):
    def change(folder, tensors):
        tensors.update(changes)
        save_file({k: v for k, v in tensors.items() if v is not None}, str(folder / FILE))
    return change


def raw(data: bytes):
    return lambda folder, tensors: (folder / FILE).write_bytes(data)


@pytest.mark.parametrize("change, message", [
    (rewrite(**{"L1.grad_norm": np.zeros((41, 6), np.float32)}), "tensor L1.grad_norm is float32[41, 6]; expected"),
    (rewrite(**{"L2.inactive": np.zeros((41, 1), np.float64)}), "tensor L2.inactive is float64[41, 1]"),
    (rewrite(extra=np.zeros(1, np.float32)), "not expected: ['extra']"),
    (rewrite(**{"L1.saturated": None}), "missing: ['L1.saturated']"),
    (rewrite(epochs=np.arange(41, 0, -1)), "tensor epochs is not increasing epochs"),
    (rewrite(epochs=np.arange(1, 42, dtype=np.int32)), "tensor epochs is int32[41]"),
    (rewrite(**{"L1.inactive": np.full((41, 7), 2, np.float32)}), "tensor L1.inactive holds values outside [0, 1]"),
    (rewrite(**{"L2.weight_norm": np.full((41, 1), np.nan, np.float32)}), "holds NaN or infinite values"),
    (rewrite(snapshots=np.zeros((14, 7, 12288), np.float16)), "tensor snapshots is float16[14, 7, 12288]"),
    (rewrite(examples=np.array([10**6])), "a sample of 1000000 examples"),
    (raw(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"), "not a readable safetensors file"),
    (raw(b""), "not a readable safetensors file"),
    (lambda folder, tensors: os.symlink("/etc/passwd", folder / FILE), "it must be a plain file, not a link"),
    (lambda folder, tensors: os.mkfifo(folder / FILE), "not a regular file"),
])
def test_hostile_telemetry_files_are_refused_with_one_line(cat_run, tmp_path, change, message):
    folder, spec = hostile(cat_run, tmp_path, change)
    with pytest.raises(RunFolderError) as e:
        read_telemetry(folder, spec, True)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_an_oversize_telemetry_file_is_not_read(cat_run, tmp_path, monkeypatch):
    folder, spec = hostile(cat_run, tmp_path, lambda folder, tensors: shutil.copy(cat_run / FILE, folder / FILE))
    monkeypatch.setattr("snn.telemetry.MAX_FILE_BYTES", 1 << 20)
    with pytest.raises(RunFolderError, match=r"bytes; at most 1048576 are read"):
        read_telemetry(folder, spec, True)


def test_a_file_of_another_network_is_refused(cat_run):
    other = NetworkSpec(12288, ((8, "relu"), (1, "sigmoid")), "bce")
    with pytest.raises(RunFolderError, match="L1.weight_norm is float32"):
        read_telemetry(cat_run, other, True)


# --- the timeline's lanes --------------------------------------------------------------------------------------------


def test_occupancy_is_the_time_run_in_each_bin():
    edges = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    busy = busy_until(edges, np.array([0.5, 1.0, 1.5]), np.array([2.5, 1.5, 3.5]))
    assert np.diff(busy).tolist() == [0.5, 2.0, 1.5, 0.5]  # [0.5, 2.5], [1, 1.5] and [1.5, 3.5] in unit bins


def test_lanes_per_layer_and_phase_over_a_step_range(tmp_path):
    rows = ["phase,layer,unit,step,attempt,duplicate,status,worker,sent,start,end"]
    for step in range(3):
        t = 10.0 * step
        rows += [f"forward,0,{u},{step},0,False,ok,w{u},{t},{t + u},{t + u + 1}" for u in range(2)]
        rows += [f"backward,0,0,{step},{step == 2:d},{step == 1},ok,w0,{t + 5},{t + 5},{t + 7}"]
    (tmp_path / "invocations.csv").write_text("\n".join(rows) + "\n")
    inv = read_invocations(tmp_path / "invocations.csv")
    assert inv.lanes == (("forward", 0), ("backward", 0)) and inv.workers == 2
    whole = lanes_json(inv, None, None, 27, 2)
    assert [l["label"] for l in whole["lanes"]] == ["forward · layer 1", "backward · layer 1"]
    assert whole["seconds"] == [0.0, 27.0] and whole["steps"] == [0, 2] and sum(whole["flagged"]) == 2
    assert whole["lanes"][0]["occupancy"][:3] == [1.0, 1.0, 0.0] and whole["lanes"][1]["busy_seconds"] == 6.0
    one = lanes_json(inv, 1, 1, 7, 2)
    assert one["seconds"] == [10.0, 17.0] and one["invocations"] == 3
    assert one["lanes"][1]["occupancy"] == [0, 0, 0, 0, 0, 1.0, 1.0]
    (tmp_path / "invocations.csv").write_text(rows[0] + "\nforward,x,0,0,0,False,ok,w,1,1,2\n")
    with pytest.raises(RunFolderError, match="row 2 is not an invocation snn wrote"):
        read_invocations(tmp_path / "invocations.csv")
