"""An snn model as an ONNX graph: every layer kind and activation as standard ONNX ops.

snn keeps a batch as columns (``X`` of shape ``(n_x, m)``; image layers see ``(m, C, H, W)``),
while ONNX graphs take the batch first. The exported graph reads the network's input batch
first, in float32, whatever the model's own dtype:

    input          float32 [N, *input_shape]: [N, n_x] for a dense network, [N, C, H, W] for a conv one
    probabilities  float32 [N, n_classes]: ``Model.class_probabilities`` transposed, one column per class;
                   one sigmoid unit gives [1 - p, p], as ``snn predict`` and the service show it

How raw examples become that input (snn's ``Preprocessing``: divide by the scale, channels
first for conv networks, and for a standardised table subtract each feature's mean and divide
by its std) is not a node of the graph but is recorded in its metadata, with the classes, the
input layout and the snn version (``metadata``). ``onnx_input`` does it in NumPy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import __version__
from .core.activations import LEAKY_SLOPE
from .core.layers import Layer
from .errors import ExportError
from .files import atomic_path
from .model import WEIGHTS, Model, model_folder

# Opset 17 with IR version 8: what onnxruntime has read since 1.12, so any recent runtime loads the file.
OPSET, IR_VERSION = 17, 8
INPUT = "input"
OUTPUTS = {"classification": "probabilities", "regression": "values"}  # what the output's columns are
MAX_BYTES = (2 << 30) - (1 << 20)  # one protobuf message holds at most 2 GiB: the weights and room for the graph
LAYOUTS = {1: "NC", 2: "NHW", 3: "NCHW"}  # by the length of the network's input shape
FLOAT32_MAX = float(np.finfo(np.float32).max)


class _Graph:
    """Nodes and initializers in the order they are made; a node's one output carries the node's name."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.tensors: list[onnx.TensorProto] = []

    def tensor(self, name: str, array) -> str:
        self.tensors.append(numpy_helper.from_array(_float32(name, np.asarray(array)), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attributes) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name


def _float32(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` in float32, the graph's type. A value past float32's range would become infinity: refused."""
    biggest = float(np.abs(array).max(initial=0.0))
    if not biggest <= FLOAT32_MAX:  # NaN fails this too
        what = "NaN" if np.isnan(biggest) else f"values up to {biggest:.3g}"
        raise ExportError(f"tensor {name} holds {what}, past float32's largest "
                          f"({FLOAT32_MAX:.3g}), the type of an ONNX graph's weights; help: retrain the model "
                          "with smaller weights (e.g. with training.l2), or keep it in snn's own format")
    return array.astype(np.float32)


# --- each layer kind: (graph, layer, its tensors, input name, node name) -> output name -------------------------------


def _dense(g: _Graph, layer: Layer, p, x: str, name: str) -> str:
    # Z = W A + b on columns is X W^T + b batch first: one Gemm on W as snn stores it, (units, inputs).
    return g.op("Gemm", [x, g.tensor(f"{name}.W", p["W"]), g.tensor(f"{name}.b", p["b"].ravel())], name, transB=1)


def _conv2d(g: _Graph, layer: Layer, p, x: str, name: str) -> str:
    # snn's filters (F, C, k, k) are ONNX's OIHW; both cross-correlate, pad every side alike and round sizes down.
    k, s = layer.spec.kernel, layer.spec.stride
    return g.op("Conv", [x, g.tensor(f"{name}.W", p["W"]), g.tensor(f"{name}.b", p["b"].ravel())], name,
                kernel_shape=[k, k], strides=[s, s], pads=[layer.pad] * 4)


def _pool(g: _Graph, layer: Layer, p, x: str, name: str) -> str:
    # No padding and only whole windows (ceil_mode 0): ONNX's defaults are snn's pooling.
    op = {"max": "MaxPool", "avg": "AveragePool"}[layer.how]
    return g.op(op, [x], name, kernel_shape=[layer.k] * 2, strides=[layer.s] * 2)


def _flatten(g: _Graph, layer: Layer, p, x: str, name: str) -> str:
    # snn's columns hold an image's values in (C, H, W) order, which is the order Flatten keeps.
    return g.op("Flatten", [x], name, axis=1)


LAYER_OPS = {"dense": _dense, "conv2d": _conv2d, "maxpool2d": _pool, "avgpool2d": _pool, "flatten": _flatten}

# snn's activations as (op, attributes); linear needs no node. Softmax runs over a unit's axis, 1 batch first.
ACTIVATION_OPS = {"relu": ("Relu", {}), "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_SLOPE}), "tanh": ("Tanh", {}),
                  "sigmoid": ("Sigmoid", {}), "softmax": ("Softmax", {"axis": 1}), "linear": None}


def _layer(g: _Graph, layer: Layer, p, x: str, name: str) -> str:
    kind, act = layer.spec.kind, layer.activation.name
    if kind not in LAYER_OPS:
        raise ExportError(f"{name} is a {kind} layer, which has no ONNX export; exported: {', '.join(LAYER_OPS)}")
    if act not in ACTIVATION_OPS:
        raise ExportError(f"{name} ends in {act}, which has no ONNX export; exported: {', '.join(ACTIVATION_OPS)}")
    if act == "softmax" and len(layer.out_shape) > 1:
        # snn's softmax runs over axis 0, which for feature maps (m, F, H, W) is the batch: no per-example function.
        raise ExportError(f"{name} is a {kind} layer ending in softmax, which snn takes across the examples of a "
                          "batch, so it has no per-example ONNX form; help: use softmax on dense layers only")
    z = LAYER_OPS[kind](g, layer, p, x, name)
    if ACTIVATION_OPS[act] is None:
        return z
    op, attributes = ACTIVATION_OPS[act]
    return g.op(op, [z], f"{name}.{act}", **attributes)


# --- the model -------------------------------------------------------------------------------------------------------


def to_onnx(model: Model) -> onnx.ModelProto:
    """The model as a checked ONNX model (float32, batch first); ``ExportError`` for what has no ONNX form."""
    spec = model.spec
    if spec.n_params * 4 > MAX_BYTES:
        raise ExportError(f"{spec.n_params} parameters take more than the 2 GiB one ONNX file holds")
    g, x = _Graph(), INPUT
    for l, (layer, p) in enumerate(zip(spec.built, model.params.layers), start=1):
        x = _layer(g, layer, p, x, f"layer{l}")
    if spec.n_out == 1 and model.task == "classification":  # one sigmoid unit: [1 - p, p], as class_probabilities
        x = g.op("Concat", [g.op("Sub", [g.tensor("one", 1.0), x], "not_" + x), x], "classes", axis=1)
    output = OUTPUTS[model.task]
    g.op("Identity", [x], output)
    graph = helper.make_graph(
        g.nodes, "snn", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", *spec.input_shape])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", len(model.classes)])], initializer=g.tensors)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="snn", producer_version=__version__,
                              doc_string="An snn model; metadata_props say how raw examples become its input.")
    helper.set_model_props(proto, metadata(model))
    onnx.checker.check_model(proto, full_check=True)  # with shape inference: every node fits the one before it
    return proto


def metadata(model: Model) -> dict[str, str]:
    """What a user of the file needs besides the graph: how raw examples become its input, what its columns are."""
    pre, shape = model.preprocessing, model.spec.input_shape
    moved = pre.channels_first and len(pre.shape) == 3  # as Preprocessing.columns moves them
    columns = "class j of snn.classes" if model.task == "classification" else "target j, named in snn.classes"
    one_unit = model.spec.n_out == 1 and model.task == "classification"
    sigmoid = " ([1 - p, p] from the network's one output unit)" if one_unit else ""
    return {
        "snn.version": __version__,
        "snn.preprocessing": json.dumps(pre.to_json()),
        "snn.classes": json.dumps(list(model.classes)),
        "snn.input_layout": LAYOUTS[len(shape)],
        "snn.input": f"raw examples [N, {_dims(pre.shape)}]" + (" moved to channels first" if moved else "")
                     + f", divided by {pre.scale:g}"
                     + (", minus snn.preprocessing's mean, over its std (per feature)" if pre.mean is not None else "")
                     + f", as float32 [N, {_dims(shape)}]",
        "snn.output": f"{OUTPUTS[model.task]}: float32 [N, {len(model.classes)}], column j for {columns}{sigmoid}",
        "snn.task": model.task,
        "snn.dtype": str(model.dtype),  # the model's own; the graph computes in float32
        "snn.architecture": json.dumps(model.spec.to_json()),
        "snn.dataset": str(model.summary.get("dataset", "")),
    }


def _dims(shape) -> str:
    return ", ".join(map(str, shape))


def onnx_input(model: Model, x) -> np.ndarray:
    """Raw examples ``(m, *preprocessing.shape)`` as the graph takes them: float32 ``(m, *input_shape)``."""
    return np.ascontiguousarray(model.preprocessing.columns(x, np.float32).T).reshape(-1, *model.spec.input_shape)


def default_path(model_path: str | Path) -> Path:
    """``model.onnx`` beside the model's own files (in its run folder or model folder)."""
    return model_folder(Path(model_path)) / Path(WEIGHTS).with_suffix(".onnx").name


def write_onnx(model: Model, path: str | Path, force: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically; an existing file only with ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise ExportError(f"{path}: exists; help: pass --force to overwrite it, or --out to write another file")
    proto = to_onnx(model)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return path
