"""ONNX export: the graph, run in onnxruntime on real MNIST test images, gives snn's own probabilities.

The oracle is snn itself: ``Model.class_probabilities``, the path ``snn predict`` and the service use.
float32 models must agree within 1e-5 (the issue's bound); the measured gap is about 1e-6.
"""

import json
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.core.activations import ACTIVATIONS
from snn.core.layers import LAYERS, layer_from_json
from snn.core.network import NetworkSpec, Params
from snn.data.dataset import Preprocessing
from snn.errors import ExportError
from snn.model import Model
from snn.onnxfile import ACTIVATION_OPS, LAYER_OPS, OPSET, onnx_input, to_onnx, write_onnx

TOLERANCE = 1e-5
N_IMAGES = 1000  # real test images per comparison

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def trained(tmp_path_factory, data_root, name, layers):
    """The run folder of a float32 network trained briefly (4 epochs) on 1000 MNIST images."""
    folder = tmp_path_factory.mktemp(name) / "run"
    snn.train({"name": name, "data": {"dataset": "mnist", "subset": 1000},
               "network": {"layers": layers, "dtype": "float32"},
               "training": {"epochs": 4, "batch_size": 50, "seed": 1,
                            "optimizer": {"name": "adam", "learning_rate": 0.02}}},
              data_root=data_root, run_dir=folder)
    return folder


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, data_root):
    return trained(tmp_path_factory, data_root, "mlp", [{"units": 32, "activation": "relu"},
                                                        {"units": 10, "activation": "softmax"}])


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, data_root):
    """Every image layer kind and option: padding same and in pixels, stride 2, overlapping windows."""
    return trained(tmp_path_factory, data_root, "conv", [
        {"type": "conv2d", "filters": 4, "kernel": 3, "activation": "relu", "padding": "same"},  # 4x28x28
        {"type": "maxpool2d", "size": 2},  # 4x14x14
        {"type": "conv2d", "filters": 8, "kernel": 3, "activation": "relu", "stride": 2, "padding": 1},  # 8x7x7
        {"type": "avgpool2d", "size": 3, "stride": 2},  # 8x3x3
        {"type": "flatten"},
        {"units": 10, "activation": "softmax"}])


@pytest.fixture(scope="module")
def images(data_root):
    return snn.load_dataset("mnist", data_root).x_test[:N_IMAGES]


def onnx_probabilities(proto_or_path, model, x) -> np.ndarray:
    source = proto_or_path.SerializeToString() if isinstance(proto_or_path, onnx.ModelProto) else str(proto_or_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": onnx_input(model, x)})
    return out


def gap(model, x, proto=None) -> float:
    """The largest difference between onnxruntime's probabilities and snn's, on raw examples ``x``."""
    expected = model.class_probabilities(model.preprocessing.columns(x, model.dtype)).T
    got = onnx_probabilities(proto or to_onnx(model), model, x)
    assert got.shape == expected.shape and got.dtype == np.float32
    return float(np.abs(got - expected).max())


@pytest.mark.parametrize("run", ["mlp_run", "conv_run"])
def test_trained_models_match_snn_in_onnxruntime(run, request, images):
    model = snn.load_model(request.getfixturevalue(run))
    assert model.dtype == np.float32
    probabilities = model.class_probabilities(model.preprocessing.columns(images, model.dtype))
    assert probabilities.max(axis=0).mean() > 0.7  # it learned: confident, far from uniform (0.1)
    difference = gap(model, images)
    print(f"{run}: max |p_onnx - p_snn| = {difference:.3g} on {len(images)} test images")
    assert difference <= TOLERANCE
    # and the graph is what it claims: the input snn's layout, batch first, under a fixed opset
    proto = to_onnx(model)
    shape = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert shape == ["N", *model.spec.input_shape] and proto.opset_import[0].version == OPSET


def test_a_float64_model_is_exported_in_float32(conv_run, images):
    model = snn.load_model(conv_run)
    wide = Model(model.spec, Params(model.spec, model.params.flat.astype(np.float64)), model.preprocessing,
                 model.classes)
    assert gap(wide, images) <= TOLERANCE


def test_every_layer_kind_and_activation_has_an_export():
    assert set(LAYER_OPS) == set(LAYERS) and set(ACTIVATION_OPS) == set(ACTIVATIONS)


def random_model(layers, input_shape, classes=tuple("0123456789"), pre=None, seed=0) -> Model:
    """A float32 model with random weights (1.5 / sqrt(fan-in)): activations well away from zero and saturation.
    Its preprocessing is MNIST's, unless ``pre`` is given."""
    spec = NetworkSpec(input_shape, tuple(layer_from_json(l) for l in layers), "mse")
    params, rng = Params.zeros(spec, np.float32), np.random.default_rng(seed)
    for layer, tensors in zip(spec.built, params.layers):
        for view in tensors.values():
            view[...] = rng.normal(0, 1.5 / np.sqrt(layer.fan_in), view.shape)
    pre = pre or Preprocessing("image", (28, 28), 255.0, channels_first=len(spec.input_shape) == 3)
    return Model(spec, params, pre, tuple(classes))


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_activation_in_each_place(activation, images):
    x = images[:200]
    hidden = random_model([{"units": 16, "activation": activation}, {"units": 10, "activation": "softmax"}], 784)
    output = random_model([{"units": 16, "activation": "relu"}, {"units": 10, "activation": activation}], 784)
    for model in (hidden, output):
        assert gap(model, x) <= TOLERANCE
    conv = random_model([{"type": "conv2d", "filters": 3, "kernel": 5, "stride": 2, "activation": activation},
                         {"type": "flatten"}, {"units": 10, "activation": "softmax"}], (1, 28, 28))
    if activation == "softmax":  # over feature maps snn's softmax spans the batch: refused, in one line
        with pytest.raises(ExportError, match="layer1 is a conv2d layer ending in softmax") as e:
            to_onnx(conv)
        assert "\n" not in str(e.value)
    else:
        assert gap(conv, x) <= TOLERANCE


@pytest.mark.parametrize("image_layers", [
    [{"type": "maxpool2d", "size": 3, "stride": 2}],  # overlapping windows
    [{"type": "maxpool2d", "size": 2, "stride": 3}],  # windows apart, with pixels between them
    [{"type": "avgpool2d", "size": 2}, {"type": "avgpool2d", "size": 3, "stride": 1}],
    [{"type": "conv2d", "filters": 3, "kernel": 4, "stride": 3, "padding": 2, "activation": "leaky_relu"}],
    [],  # flatten straight on the image
], ids=["maxpool-overlapping", "maxpool-apart", "avgpool", "conv-even-kernel", "flatten-only"])
def test_every_image_layer_option(image_layers, images):
    model = random_model([*image_layers, {"type": "flatten"}, {"units": 10, "activation": "softmax"}], (1, 28, 28))
    assert gap(model, images[:200]) <= TOLERANCE


def test_one_sigmoid_unit_gives_both_classes_probabilities(images):
    model = random_model([{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}], 784,
                         classes=("even", "odd"))
    x = images[:200]
    probabilities = onnx_probabilities(to_onnx(model), model, x)
    assert probabilities.shape == (200, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    assert gap(model, x) <= TOLERANCE


def test_colour_images_channels_first_or_not(cat):
    """Cat images (64, 64, 3): a conv network reads them channels first, a dense one as the flat HWC rows."""
    conv = random_model([{"type": "conv2d", "filters": 4, "kernel": 5, "stride": 2, "activation": "relu"},
                         {"type": "maxpool2d", "size": 2}, {"type": "flatten"}, {"units": 1, "activation": "sigmoid"}],
                        (3, 64, 64), cat.classes, replace(cat.preprocessing, channels_first=True))
    dense = random_model([{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}], 64 * 64 * 3,
                         cat.classes, cat.preprocessing)
    for model, recipe in ((conv, "raw examples [N, 64, 64, 3] moved to channels first, divided by 255, "
                                 "as float32 [N, 3, 64, 64]"),
                          (dense, "raw examples [N, 64, 64, 3], divided by 255, as float32 [N, 12288]")):
        assert gap(model, cat.x_test) <= TOLERANCE
        assert {p.key: p.value for p in to_onnx(model).metadata_props}["snn.input"] == recipe


def test_metadata_holds_preprocessing_classes_and_layout(conv_run, images, tmp_path):
    model = snn.load_model(conv_run)
    path = write_onnx(model, tmp_path / "digits.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta["snn.preprocessing"]) == model.preprocessing.to_json()
    assert json.loads(meta["snn.classes"]) == list(model.classes) == [str(d) for d in range(10)]
    assert meta["snn.version"] == snn.__version__ and meta["snn.input_layout"] == "NCHW"
    assert meta["snn.dataset"] == "mnist" and meta["snn.dtype"] == "float32"
    assert json.loads(meta["snn.architecture"]) == model.spec.to_json()
    # onnxruntime shows the same map, and the recorded preprocessing alone rebuilds the graph's input
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == meta
    pre = json.loads(meta["snn.preprocessing"])
    x = np.divide(images[:50], pre["scale"], dtype=np.float32).reshape(-1, 1, *pre["shape"])
    np.testing.assert_array_equal(x, onnx_input(model, images[:50]))
    expected = model.class_probabilities(model.preprocessing.columns(images[:50], model.dtype)).T
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=0, atol=TOLERANCE)


def test_mlp_metadata_says_vectors(mlp_run):
    meta = {p.key: p.value for p in to_onnx(snn.load_model(mlp_run)).metadata_props}
    assert meta["snn.input_layout"] == "NC"
    assert meta["snn.input"] == "raw examples [N, 28, 28], divided by 255, as float32 [N, 784]"


# --- the command ------------------------------------------------------------------------------------------------------


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    return result.stderr


def test_export_command_writes_beside_the_model_and_refuses_to_overwrite(mlp_run, tmp_path, images):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(mlp_run, folder)
    result = invoke("export", folder, "--format", "onnx", "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    target = folder / "model.onnx"
    assert written["path"] == str(target) and written["opset"] == OPSET and target.is_file()
    model = snn.load_model(folder)
    expected = model.class_probabilities(model.preprocessing.columns(images, model.dtype)).T
    assert np.abs(onnx_probabilities(target, model, images) - expected).max() <= TOLERANCE
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]  # written beside, then renamed

    before = target.read_bytes()
    assert "exists" in one_line_error(invoke("export", folder / "model.json"))  # the sidecar names the same model
    assert target.read_bytes() == before
    forced = invoke("export", folder, "--force")
    assert forced.exit_code == 0 and forced.stdout.startswith("Wrote "), forced.output
    elsewhere = invoke("export", folder, "--out", tmp_path / "out" / "digits.onnx")
    assert elsewhere.exit_code == 0 and (tmp_path / "out" / "digits.onnx").is_file()


def test_export_command_errors_are_one_line(tmp_path, mlp_run):
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert "model.json" in one_line_error(invoke("export", tmp_path))
    assert "not a model" in one_line_error(invoke("export", tmp_path / "nothing.bin"))
    assert "allowed: onnx" in one_line_error(invoke("export", mlp_run, "--format", "tflite"))
    unexportable = random_model([{"type": "conv2d", "filters": 2, "kernel": 3, "activation": "softmax"},
                                 {"type": "flatten"}, {"units": 10, "activation": "softmax"}], (1, 28, 28))
    unexportable.save(tmp_path / "conv-softmax")
    assert "softmax" in one_line_error(invoke("export", tmp_path / "conv-softmax"))
    assert not (tmp_path / "conv-softmax" / "model.onnx").exists()


def test_a_standardised_table_model_in_onnxruntime():
    """A table's mean and std are in the metadata, and onnx_input applies them, as snn's columns do."""
    rng = np.random.default_rng(0)
    x = rng.normal(5, 2, (300, 6)) * np.logspace(-3, 4, 6)  # features from thousandths to tens of thousands
    pre = Preprocessing("table", (6,)).standardized(x[:200])
    model = random_model([{"units": 16, "activation": "tanh"}, {"units": 3, "activation": "softmax"}], 6,
                         classes=("a", "b", "c"), pre=pre)
    assert gap(model, x) <= TOLERANCE
    meta = {p.key: p.value for p in to_onnx(model).metadata_props}
    assert json.loads(meta["snn.preprocessing"])["std"] == list(pre.std)
    assert meta["snn.input"] == ("raw examples [N, 6], divided by 1, minus snn.preprocessing's mean, over its std "
                                 "(per feature), as float32 [N, 6]")
    by_hand = ((x - np.array(pre.mean)) / np.array(pre.std)).astype(np.float32)
    np.testing.assert_allclose(onnx_input(model, x), by_hand, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("targets", [1, 2])
def test_a_regression_model_exports_its_values(targets):
    """A regression model's output is its linear units' values, one column a target: never [1 - p, p]."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (200, 5))
    names = tuple(f"y{j}" for j in range(targets))
    spec_model = random_model([{"units": 8, "activation": "tanh"}, {"units": targets, "activation": "linear"}], 5,
                              classes=names, pre=Preprocessing("table", (5,)))
    model = replace(spec_model, task="regression")
    proto = to_onnx(model)
    assert [o.name for o in proto.graph.output] == ["values"]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": onnx_input(model, x)})
    expected = model.predict_proba(model.preprocessing.columns(x, model.dtype)).T
    assert got.shape == (200, targets)
    assert float(np.abs(got - expected).max()) <= TOLERANCE * max(1.0, float(np.abs(expected).max()))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["snn.task"] == "regression" and meta["snn.output"].startswith(f"values: float32 [N, {targets}]")
