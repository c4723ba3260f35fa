"""Model and checkpoint files as hostile input: every field mutated, every tensor file tampered with.

Whatever the files hold, the answer is the file's own error (ModelFileError,
CheckpointError) on one line, or success; never another exception, and never a file
touched outside the run folder.
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save, save_file

import snn
from snn.errors import CheckpointError, ModelFileError
from snn.runtime.checkpoint import load_checkpoint, save_checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "model-v1-xor"
SIDECAR = json.loads((FIXTURE / "model.json").read_text())
TENSORS = load_file(str(FIXTURE / "model.safetensors"))
VICTIM = "VICTIM"  # stands for the absolute path of a file outside the run folder

RECORD = {"epoch": 1, "cost": 0.5, "train_accuracy": 0.75, "val_accuracy": None, "seconds": 0.01, "val_cost": None,
          "learning_rate": 0.05}
POINTER = {"epoch": 2, "tensors": "checkpoint-2.safetensors", "history": [RECORD, {**RECORD, "epoch": 2}],
           "counters": {"retries": 1, "failed": 0}}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.just("x" * 100_000),
    st.sampled_from(["relu", "softmax", "sigmoid", "float32", "float64", "int8", "image", "table", "adam", "gd",
                     "bce", "snn-model", "../victim.txt", "/etc/passwd", VICTIM, "checkpoint-1.safetensors",
                     "checkpoint-2.safetensors", "model.safetensors", "<img src=x onerror=alert(1)>", "\x00",
                     "\x1b[2J"]),
    st.sampled_from([0, 1, 2, 3, -1, 2**63, 10**100, 1e308, 1e-320, 0.5, 255.0]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def paths(doc, prefix=()):
    """Every place in a JSON document, as a tuple of keys and indexes."""
    found = [prefix]
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


def mutated(doc, victim: str):
    """A strategy of ``doc`` with one place dropped, replaced, or given an extra field."""
    def apply(args):
        op, path, value, extra_key = args
        out = json.loads(json.dumps(doc))
        if not path:
            return value if op == "set" else out
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        if op == "drop":
            del parent[path[-1]]
        elif op == "set":
            parent[path[-1]] = value
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][extra_key] = value
        return json.loads(json.dumps(out).replace(json.dumps(VICTIM), json.dumps(victim)))

    return st.tuples(st.sampled_from(["drop", "set", "add"]), st.sampled_from(paths(doc)), values,
                     st.sampled_from(["x", "tensors", "path", "loss"])).map(apply)


def tampered(good: bytes, tensors: dict):
    """A strategy of safetensors bytes: garbage, truncated, a byte changed, or valid with a tensor wrong."""
    names = sorted(tensors)

    def rewritten(args):
        name, how, dtype = args
        out = dict(tensors)
        if how == "drop":
            del out[name]
        elif how == "extra":
            out["extra"] = np.zeros(3, np.float32)
        elif how == "dtype":
            out[name] = tensors[name].astype(dtype)
        elif how == "shape":
            out[name] = np.concatenate([tensors[name].ravel(), tensors[name].ravel()[:1]])
        elif how == "scalar":
            out[name] = np.asarray(tensors[name].ravel()[0])
        else:
            kind = tensors[name].dtype if tensors[name].dtype.kind == "f" and how != "huge" else np.float64
            bad = tensors[name].astype(kind)
            bad.flat[0] = {"nan": np.nan, "inf": np.inf, "huge": 1e300}[how]
            out[name] = bad
        return save(out)

    return st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),
        st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(
            lambda a: good[:a[0]] + bytes([a[1]]) + good[a[0] + 1:]),
        st.tuples(st.sampled_from(names), st.sampled_from(["drop", "extra", "dtype", "shape", "scalar", "nan", "inf",
                                                           "huge"]),
                  st.sampled_from([np.float64, np.float16, np.int32, np.uint8, np.bool_])).map(rewritten),
    )


def one_line(error: Exception, folder: Path) -> None:
    """One short line that names the file (in ``folder``) it is about."""
    text = str(error)
    assert "\n" not in text and text.startswith(str(folder)) and len(text) < 1000, text


def model_folder(root: Path) -> Path:
    folder = root / "model"
    shutil.copytree(FIXTURE, folder)
    return folder


def usable(model) -> None:
    """A model that loads predicts a class of its own for any input."""
    with np.errstate(all="ignore"):
        x = np.zeros((3, *model.preprocessing.shape))
        assert set(model.predict_raw(x).tolist()) <= set(range(len(model.classes)))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mutated(SIDECAR, "/nonexistent"), st.booleans())
def test_every_field_of_model_json_mutated_is_a_model_file_error_or_a_model(doc, whole):
    with tempfile.TemporaryDirectory() as root:
        folder = model_folder(Path(root))
        (folder / "model.json").write_text(json.dumps(doc) if whole else json.dumps(doc)[:-2])
        try:
            usable(snn.load_model(folder))
        except ModelFileError as e:
            one_line(e, folder)


@SETTINGS
@given(tampered((FIXTURE / "model.safetensors").read_bytes(), TENSORS))
def test_a_tampered_model_safetensors_is_a_model_file_error_or_a_model(raw):
    with tempfile.TemporaryDirectory() as root:
        folder = model_folder(Path(root))
        (folder / "model.safetensors").write_bytes(raw)
        try:
            model = snn.load_model(folder)
        except ModelFileError as e:
            one_line(e, folder)
            return
        assert np.isfinite(model.params.flat).all()
        usable(model)


def checkpoint_folder(root: Path) -> tuple[Path, np.ndarray, dict]:
    """A run folder with a real checkpoint of epoch 2, and a file beside it that must survive."""
    model = snn.load_model(FIXTURE)
    run = root / "run"
    run.mkdir()
    (run / "model.json").write_text("{}")
    save_checkpoint(run, model.params.flat, model.optimizer_state, 2, POINTER["history"], POINTER["counters"])
    return run, model.params.flat, model.optimizer_state


def untouched(root: Path, run: Path) -> None:
    assert (root / "victim.txt").read_text() == "precious"
    assert (run / "model.json").exists()


@SETTINGS
@given(st.data())
def test_every_field_of_checkpoint_json_mutated_is_a_checkpoint_error_and_deletes_nothing(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "victim.txt").write_text("precious")
        run, flat, state = checkpoint_folder(root)
        doc = data.draw(mutated(POINTER, str(root / "victim.txt")))
        (run / "checkpoint.json").write_text(json.dumps(doc))
        try:
            loaded = load_checkpoint(run, flat, state)
            np.testing.assert_array_equal(loaded.flat, flat)
        except CheckpointError as e:
            one_line(e, run)
        save_checkpoint(run, flat, state, 3, [{**RECORD, "epoch": 3}])  # a tampered pointer never blocks a new one
        untouched(root, run)
        assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3.safetensors"]
        assert load_checkpoint(run, flat, state).epoch == 3


@SETTINGS
@given(st.data())
def test_a_tampered_checkpoint_safetensors_is_a_checkpoint_error_or_the_checkpoint(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "victim.txt").write_text("precious")
        run, flat, state = checkpoint_folder(root)
        path = run / "checkpoint-2.safetensors"
        raw = data.draw(tampered(path.read_bytes(), load_file(str(path))))
        path.write_bytes(raw)
        try:
            loaded = load_checkpoint(run, flat, state)
        except CheckpointError as e:
            one_line(e, run)
        else:
            assert loaded.flat.shape == flat.shape and loaded.flat.dtype == flat.dtype
            assert all(np.isfinite(v).all() for v in (loaded.flat, *loaded.state.values()))
        untouched(root, run)


def test_the_mutations_reach_every_field():
    """The strategies above are only as good as the places they reach."""
    assert {("architecture", "layers", 0, "activation"), ("preprocessing", "scale"), ("classes", 1),
            ("optimizer", "beta1"), ("training", "dataset")} <= set(paths(SIDECAR))
    assert {("tensors",), ("history", 1, "cost"), ("counters", "retries")} <= set(paths(POINTER))


def edited(**changes):
    """SIDECAR with dotted fields changed, e.g. ``edited(**{"architecture.dtype": "float16"})``."""
    doc = json.loads(json.dumps(SIDECAR))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(leaf) if isinstance(node, list) else leaf] = value
    return doc


@pytest.mark.parametrize("doc, message", [
    (edited(classes=[]), r"classes: List should have at least 1 item"),
    (edited(classes=["a", "a"]), "classes must be distinct"),
    (edited(classes=["a", "b", "c"]), "3 classes for 1 output unit"),
    (edited(classes=["a", 1]), r"classes.1: Input should be a valid string \(got 1\)"),
    (edited(**{"architecture.layers.0.activation": "swish"}), "activation: Input should be 'relu'"),
    (edited(**{"architecture.layers.1.activation": "softmax"}), "a softmax output needs at least 2 units"),
    (edited(**{"architecture.layers.0.units": 1e9}), r"units: Input should be a valid integer"),
    (edited(**{"architecture.layers.0.units": 10**9}), r"units: Input should be less than or equal to 65536"),
    (edited(**{"architecture.n_input": 0}), "n_input: Input should be greater than 0"),
    (edited(**{"architecture.dtype": "float16"}), "dtype: Input should be 'float32' or 'float64'"),
    (edited(**{"architecture.loss": "hinge"}), "loss: Input should be 'bce', 'cce' or 'mse'"),
    (edited(**{"preprocessing.shape": [3]}), r"gives 3 inputs; architecture.n_input is 2"),
    (edited(**{"preprocessing.scale": 0}), "scale: Input should be greater than 0"),
    (edited(**{"preprocessing.kind": "image"}), "an image's shape is"),
    (edited(**{"optimizer.beta": 0.5}), "adam has no hyperparameter beta"),
    (edited(**{"optimizer.beta1": 1.5}), "beta1: Input should be less than 1"),
    (edited(**{"training.dataset": 3}), "training.dataset must be a dataset name"),
    (edited(training=[]), "training: Input should be a valid dictionary"),
    (edited(version=3), "version 3; this snn reads versions 1, 2"),
    (edited(version=True), "version True; this snn reads versions 1, 2"),
    (edited(extra=1), "extra: Extra inputs are not permitted"),
])
def test_every_field_of_model_json_has_its_rule(tmp_path, doc, message):
    folder = model_folder(tmp_path)
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=message) as e:
        snn.load_model(folder)
    one_line(e.value, folder)


def test_a_claim_of_a_huge_network_allocates_nothing(tmp_path):
    folder = model_folder(tmp_path)
    layers = [{"units": 65536, "activation": "relu"}] * 63 + [{"units": 1, "activation": "sigmoid"}]
    (folder / "model.json").write_text(json.dumps(edited(**{"architecture.layers": layers})))
    with pytest.raises(ModelFileError, match=r"652 bytes; its tensors take \d+ to \d+: it does not hold"):
        snn.load_model(folder)


def test_weights_that_are_not_finite_are_refused(tmp_path):
    folder = model_folder(tmp_path)
    W1 = TENSORS["W1"].copy()
    W1[0, 0] = np.nan
    save_file({**TENSORS, "W1": W1}, str(folder / "model.safetensors"))
    with pytest.raises(ModelFileError, match="tensor W1 holds NaN or infinite values"):
        snn.load_model(folder)


V2 = {**SIDECAR, "version": 2, "architecture": {
    "input_shape": [2], "layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                                   {"type": "dense", "units": 1, "activation": "sigmoid"}],
    "loss": "bce", "dtype": "float32"}}


def v2(**arch) -> dict:
    return {**V2, "architecture": {**V2["architecture"], **arch}}


def test_the_v1_fixture_written_as_v2_loads_the_same(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "model.json").write_text(json.dumps(V2))
    model, old = snn.load_model(folder), snn.load_model(FIXTURE)
    assert model.spec == old.spec
    np.testing.assert_array_equal(model.params.flat, old.params.flat)


@pytest.mark.parametrize("doc, message", [
    (v2(layers=[{"type": "conv9d", "units": 4, "activation": "tanh"}, V2["architecture"]["layers"][1]]),
     "type: Input should be 'dense'"),
    (v2(input_shape=[3]), r"gives 2 inputs; architecture.n_input is 3"),
    (v2(input_shape=[1, 1, 2]), "a dense layer takes a vector, not an input of shape"),
    (v2(input_shape=[0]), "input_shape.0: Input should be greater than 0"),
    (v2(input_shape=[4096, 4096, 4096]), "input_shape.*more than"),
    (v2(n_input=2), "n_input: Extra inputs are not permitted"),
    ({**V2, "version": 1}, "n_input: required, but missing|n_input: Field required"),
])
def test_every_field_of_a_v2_architecture_has_its_rule(tmp_path, doc, message):
    test_every_field_of_model_json_has_its_rule(tmp_path, doc, message)
