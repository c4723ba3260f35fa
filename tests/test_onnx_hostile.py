"""ONNX export of weights a float32 graph cannot hold: refused, naming the tensor, with no file written."""

import numpy as np
import pytest
from typer.testing import CliRunner

from snn.cli import app
from snn.core.layers import layer_from_json
from snn.core.network import NetworkSpec, Params
from snn.data.dataset import Preprocessing
from snn.errors import ExportError
from snn.model import Model
from snn.onnxfile import FLOAT32_MAX, to_onnx, write_onnx

LAYERS = [{"units": 3, "activation": "tanh"}, {"units": 2, "activation": "softmax"}]


def model_with(layer: int, name: str, value: float) -> Model:
    """A float64 table model of small weights but one value of ``layer``'s (1-based) tensor ``name``."""
    spec = NetworkSpec((4,), tuple(layer_from_json(l) for l in LAYERS), "cce")
    params = Params.zeros(spec, np.float64)
    params.flat[...] = np.random.default_rng(0).normal(0, 0.5, params.flat.shape)
    params.layers[layer - 1][name].flat[0] = value
    return Model(spec, params, Preprocessing("table", (4,)), ("a", "b"))


@pytest.mark.parametrize(("layer", "name", "value"), [(2, "W", 1e300), (1, "b", -1e39), (2, "b", np.inf),
                                                      (1, "W", np.nan)])
def test_a_weight_past_float32_is_refused_naming_its_tensor(layer, name, value, tmp_path):
    model = model_with(layer, name, value)
    with pytest.raises(ExportError, match=rf"^tensor layer{layer}\.{name} holds .*past float32's largest"):
        to_onnx(model)
    with pytest.raises(ExportError, match=rf"layer{layer}\.{name}"):
        write_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_float32s_largest_value_still_exports():
    to_onnx(model_with(2, "W", -FLOAT32_MAX))


def test_the_export_command_refuses_in_one_line_and_writes_nothing(tmp_path):
    folder = model_with(2, "W", 1e300).save(tmp_path / "m")
    before = sorted(p.name for p in folder.iterdir())
    result = CliRunner().invoke(app, ["export", str(folder), "--format", "onnx"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: tensor layer2.W holds values up to 1e+300")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert sorted(p.name for p in folder.iterdir()) == before  # no model.onnx, no part file
