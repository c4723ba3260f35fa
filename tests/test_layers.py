"""The layer interface: specs, the registry, the flat layout, and what a runtime unit owns."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snn
from snn.core.initializers import initial_weights
from snn.core.layers import LAYERS, Dense, layer_from_json
from snn.core.network import Network, NetworkSpec, Params, targets
from snn.runtime.plan import row_ranges


def test_a_layer_entry_without_a_type_is_dense():
    assert layer_from_json({"units": 3, "activation": "relu"}) == Dense(3, "relu")
    assert layer_from_json({"type": "dense", "units": 3, "activation": "relu"}) == Dense(3, "relu")
    assert "dense" in LAYERS
    with pytest.raises(ValueError, match="unknown layer type 'conv9d'; allowed: dense"):
        layer_from_json({"type": "conv9d"})


def test_a_spec_reads_its_short_forms_and_round_trips_through_json():
    short = NetworkSpec(4, ((8, "relu"), (3, "softmax")), "cce")
    assert short.input_shape == (4,) and short.layers == (Dense(8, "relu"), Dense(3, "softmax"))
    assert short.sizes == [4, 8, 3] and short.n_out == 3 and short.n_params == 8 * 5 + 3 * 9
    again = NetworkSpec.from_json(json.loads(json.dumps(short.to_json())))
    assert again == short and again.layout == short.layout


def test_a_dense_layer_needs_a_vector():
    with pytest.raises(ValueError, match="put a flatten layer before it"):
        NetworkSpec((3, 8, 8), ((2, "sigmoid"),), "bce").built


def test_initial_weights_from_layers_are_those_from_sizes():
    spec = NetworkSpec(5, ((4, "relu"), (3, "relu"), (1, "sigmoid")), "bce")
    for a, b in zip(initial_weights(spec.built, "he", 3, "legacy"), initial_weights(spec.sizes, "he", 3, "legacy")):
        np.testing.assert_array_equal(a, b)


sizes = st.lists(st.integers(1, 6), min_size=2, max_size=4)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes, block=st.integers(0, 4), data=st.data())
def test_every_unit_owns_its_rows_of_each_tensor(sizes, block, data):
    """unit_indices and views(rows) cut the same rows the whole-network views hold."""
    spec = NetworkSpec(sizes[0], tuple((n, "tanh") for n in sizes[1:]), "mse")
    params = Params(spec, np.arange(spec.n_params, dtype=np.float64))
    seen = []
    for l, layer in enumerate(spec.built):
        for r0, r1 in row_ranges(layer.units, block):
            idx = spec.layout.unit_indices(l, r0, r1)
            seen.append(idx)
            own = spec.layout.views(params.flat[idx], l, (r0, r1))
            for name, view in params.layers[l].items():
                np.testing.assert_array_equal(own[name], view[r0:r1])
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(spec.n_params))  # every value, once


@settings(max_examples=40, deadline=None)
@given(sizes=sizes, block=st.integers(1, 3), m=st.integers(1, 5), seed=st.integers(0, 99))
def test_the_units_shares_add_up_to_the_layer(sizes, block, m, seed):
    """A layer's Z stacked from its units, its gradient and its dA (summed) are the whole layer's."""
    rng = np.random.default_rng(seed)
    spec = NetworkSpec(sizes[0], tuple((n, "tanh") for n in sizes[1:]), "mse")
    params = Params(spec, rng.normal(size=spec.n_params))
    for l, layer in enumerate(spec.built):
        A = rng.normal(size=(layer.fan_in, m))
        dZ = rng.normal(size=(layer.units, m))
        whole_g = Params.zeros(spec).layers[l]
        layer.backward(params.layers[l], A, dZ, whole_g)
        Z, dA = [], np.zeros_like(A)
        for r0, r1 in row_ranges(layer.units, block):
            idx = spec.layout.unit_indices(l, r0, r1)
            own = spec.layout.views(params.flat[idx], l, (r0, r1))
            g = spec.layout.views(np.empty(idx.size), l, (r0, r1))
            Z.append(layer.forward(own, A))
            layer.backward(own, A, dZ[r0:r1], g)
            for name in g:
                np.testing.assert_allclose(g[name], whole_g[name][r0:r1], rtol=1e-12, atol=1e-12)
            dA += layer.input_grad(own, dZ[r0:r1], A)
        np.testing.assert_allclose(np.concatenate(Z, axis=layer.unit_axis), layer.forward(params.layers[l], A),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dA, layer.input_grad(params.layers[l], dZ, A), rtol=1e-12, atol=1e-12)


def test_params_keep_the_dense_views_by_layer():
    spec = NetworkSpec(3, ((4, "relu"), (2, "softmax")), "cce")
    p = Params(spec, np.arange(spec.n_params, dtype=float))
    assert p.W[0].shape == (4, 3) and p.b[1].shape == (2, 1) and p.layers[1]["W"] is not None
    assert list(p.tensors()) == ["W1", "b1", "W2", "b2"]
    assert p.W[0].base is p.flat or p.W[0].base.base is p.flat  # views, not copies
    grads = Network(spec).gradients(p, np.ones((3, 2)), targets(np.array([0, 1]), 2))[1]
    assert grads.layout == p.layout


def test_the_runtime_does_not_import_the_layers_above_it():
    """config reads the runtime's registries; the runtime never imports config, run, tune or model
    (only their types, for annotations). Read from the source: importing snn imports everything."""
    above = {"snn.config", "snn.run", "snn.tune", "snn.model", "snn.cli", "snn.service"}
    runtime = Path(snn.__file__).parent / "runtime"
    found = []
    for path in runtime.rglob("*.py"):
        package = "snn." + ".".join(path.relative_to(runtime.parent).with_suffix("").parts[:-1])
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and id(node) not in typing_only:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                name = ".".join(base + ([node.module] if node.module else []))
                if any(name == m or name.startswith(m + ".") for m in above):
                    found.append(f"{path.name}: {name}")
            elif isinstance(node, ast.Import) and id(node) not in typing_only:
                found += [f"{path.name}: {a.name}" for a in node.names if a.name in above]
    assert found == []
