"""Convolution, pooling and flatten: against slow references written with loops, against
finite differences, over shapes, strides and paddings; and a conv network end to end."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.core.gradcheck import check_gradients, numerical_gradient
from snn.core.layers import AvgPool2D, Conv2D, Flatten, MaxPool2D
from snn.core.network import Network, NetworkSpec, Params, targets


def slow_conv(A, W, b, stride, pad):
    """The definition, one output at a time: sum over channels and the window, plus the bias."""
    m, C, H, Wd = A.shape
    F, _, k, _ = W.shape
    Ap = np.pad(A, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (Wd + 2 * pad - k) // stride + 1
    Z = np.zeros((m, F, Ho, Wo))
    for n, f, i, j in itertools.product(range(m), range(F), range(Ho), range(Wo)):
        Z[n, f, i, j] = np.sum(Ap[n, :, i * stride : i * stride + k, j * stride : j * stride + k] * W[f]) + b[f, 0]
    return Z


def slow_pool(A, k, stride, how):
    m, C, H, W = A.shape
    Ho, Wo = (H - k) // stride + 1, (W - k) // stride + 1
    Z = np.zeros((m, C, Ho, Wo))
    for n, c, i, j in itertools.product(range(m), range(C), range(Ho), range(Wo)):
        window = A[n, c, i * stride : i * stride + k, j * stride : j * stride + k]
        Z[n, c, i, j] = window.max() if how == "max" else window.mean()
    return Z


def numeric(f, x, eps=1e-6):
    """Centred finite differences of the scalar ``f()`` with respect to every entry of ``x``."""
    flat = x.reshape(-1)  # a view: x is contiguous
    return np.array([numerical_gradient(f, flat, i, eps) for i in range(flat.size)]).reshape(x.shape)


convs = st.tuples(st.integers(1, 3), st.integers(3, 7), st.integers(3, 7), st.integers(1, 3), st.integers(1, 3),
                  st.integers(1, 2), st.sampled_from(["valid", "same", 0, 1, 2]))


@settings(max_examples=25, deadline=None)
@given(shape=convs, seed=st.integers(0, 999))
def test_conv2d_is_the_definition_and_its_gradients_are_the_derivatives(shape, seed):
    C, H, W, F, k, s, padding = shape
    if padding == "same" and (k % 2 == 0 or s != 1):
        with pytest.raises(ValueError, match="padding 'same' needs an odd kernel and stride 1"):
            Conv2D(F, k, "relu", s, padding).build((C, H, W))
        return
    pad = {"valid": 0, "same": k // 2}.get(padding, padding)
    if H + 2 * pad < k or W + 2 * pad < k:
        with pytest.raises(ValueError, match="does not fit"):
            Conv2D(F, k, "relu", s, padding).build((C, H, W))
        return
    layer = Conv2D(F, k, "relu", s, padding).build((C, H, W))
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(2, C, H, W))
    p = {"W": rng.normal(size=layer.param_shapes["W"]), "b": rng.normal(size=(F, 1))}
    Z = layer.forward(p, A)
    assert Z.shape == (2, *layer.out_shape)
    np.testing.assert_allclose(Z, slow_conv(A, p["W"], p["b"], s, pad), rtol=1e-10, atol=1e-10)
    G = rng.normal(size=Z.shape)  # the cost sum(Z * G) has dZ = G
    g = {name: np.empty_like(t) for name, t in p.items()}
    layer.backward(p, A, G, g)
    dA = layer.input_grad(p, G, A)
    for name, x, analytic in (("W", p["W"], g["W"]), ("b", p["b"], g["b"]), ("A", A, dA)):
        np.testing.assert_allclose(analytic, numeric(lambda: float(np.sum(layer.forward(p, A) * G)), x),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    # One neuron is one filter: a unit's filters give its channels of Z, and the units' dA shares add up.
    share = np.zeros_like(A)
    for r0, r1 in ((0, F // 2), (F // 2, F)) if F > 1 else ((0, 1),):
        own = {"W": p["W"][r0:r1], "b": p["b"][r0:r1]}
        np.testing.assert_allclose(layer.forward(own, A), Z[:, r0:r1], rtol=1e-12, atol=1e-12)
        share += layer.input_grad(own, G[:, r0:r1], A)
    np.testing.assert_allclose(share, dA, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["max", "avg"]), C=st.integers(1, 3), H=st.integers(2, 7), W=st.integers(2, 7),
       k=st.integers(1, 3), stride=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 999))
def test_pooling_is_the_definition_and_its_gradient_the_derivative(kind, C, H, W, k, stride, seed):
    spec = (MaxPool2D if kind == "max" else AvgPool2D)(k, stride)
    if H < k or W < k:
        with pytest.raises(ValueError, match="does not fit"):
            spec.build((C, H, W))
        return
    layer = spec.build((C, H, W))
    A = np.random.default_rng(seed).normal(size=(2, C, H, W))  # continuous values: no ties in a window
    Z = layer.forward({}, A)
    np.testing.assert_allclose(Z, slow_pool(A, k, stride or k, kind), rtol=1e-12, atol=1e-12)
    G = np.random.default_rng(seed + 1).normal(size=Z.shape)
    np.testing.assert_allclose(layer.input_grad({}, G, A), numeric(lambda: float(np.sum(layer.forward({}, A) * G)), A),
                               rtol=1e-5, atol=1e-6)
    assert layer.param_shapes == {} and layer.n_params == 0


def slow_first_max_grad(A, dZ, k, stride):
    """Each window's gradient to its first maximum in row-major order, one window at a time."""
    dA = np.zeros_like(A)
    for n, c, i, j in itertools.product(*(range(d) for d in dZ.shape)):
        window = A[n, c, i * stride : i * stride + k, j * stride : j * stride + k]
        r, q = np.unravel_index(np.argmax(window), window.shape)  # argmax: the first maximum
        dA[n, c, i * stride + r, j * stride + q] += dZ[n, c, i, j]
    return dA


@settings(max_examples=25, deadline=None)
@given(H=st.integers(2, 7), W=st.integers(2, 7), k=st.integers(2, 3), stride=st.sampled_from([None, 1, 2]),
       seed=st.integers(0, 999))
def test_max_pooling_sends_a_tied_window_its_gradient_at_its_first_maximum(H, W, k, stride, seed):
    """ReLU maps are full of tied zeros; side-by-side windows (found separably) and overlapping ones agree."""
    if H < k or W < k:
        return
    layer = MaxPool2D(k, stride).build((2, H, W))
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 2, size=(3, 2, H, W)).astype(float)  # zeros and ones: ties everywhere
    dZ = rng.normal(size=(3, *layer.out_shape))
    np.testing.assert_allclose(layer.input_grad({}, dZ, A), slow_first_max_grad(A, dZ, k, stride or k), atol=1e-12)


def test_flatten_is_the_seam_between_images_and_columns():
    layer = Flatten().build((2, 3, 4))
    A = np.arange(5 * 24.0).reshape(5, 2, 3, 4)
    Z = layer.forward({}, A)
    assert layer.out_shape == (24,) and Z.shape == (24, 5)
    np.testing.assert_array_equal(Z[:, 1], A[1].ravel())  # example 1's features in (C, H, W) order
    np.testing.assert_array_equal(layer.input_grad({}, Z, A), A)


CNN = NetworkSpec((2, 6, 6), (Conv2D(3, 3, "tanh", padding="same"), MaxPool2D(2), Conv2D(2, 2, "relu"),
                              AvgPool2D(2, 1), Flatten(), (4, "tanh"), (3, "softmax")), "cce")


def test_a_conv_network_has_the_gradients_of_its_cost():
    rng = np.random.default_rng(0)
    params = Params(CNN, rng.normal(0, 0.5, CNN.n_params))
    X = rng.normal(size=(72, 5))  # columns, features in (C, H, W) order
    Y = targets(np.array([0, 1, 2, 1, 0]), 3)
    checks = check_gradients(Network(CNN), params, X, Y, l2=0.1, max_entries=400)
    assert [c.name for c in checks] == ["W1", "b1", "W3", "b3", "W6", "b6", "W7", "b7"]
    assert max(c.relative_error for c in checks) < 1e-6, checks


def test_dropout_masks_images_as_the_columns_of_their_features():
    from snn.core.network import dropout_mask

    key = (3, 1, 0, 6)
    columns = dropout_mask(key, 0, (2 * 3 * 3,), 0.5, np.float64)
    images = dropout_mask(key, 0, (2, 3, 3), 0.5, np.float64)
    assert images.shape == (6, 2, 3, 3)
    np.testing.assert_array_equal(images.reshape(6, -1).T, columns)  # the same draws, as images
    shard = dropout_mask(key, 0, (2, 3, 3), 0.5, np.float64, slice(2, 5))
    np.testing.assert_array_equal(shard, images[2:5])  # a data shard takes its examples' masks


def test_a_spec_with_conv_layers_round_trips_and_lays_out_filters_as_rows():
    import json

    again = NetworkSpec.from_json(json.loads(json.dumps(CNN.to_json())))
    assert again == CNN and [l.out_shape for l in again.built][-4:] == [(2, 1, 1), (2,), (4,), (3,)]
    conv = CNN.built[0]
    assert conv.param_shapes == {"W": (3, 2, 3, 3), "b": (3, 1)} and conv.units == 3 and conv.fan_in == 18
    idx = CNN.layout.unit_indices(0, 1, 2)  # filter 1: its 18 weights, then its bias
    params = Params(CNN, np.arange(CNN.n_params, dtype=float))
    np.testing.assert_array_equal(params.flat[idx], np.concatenate([params.W[0][1].ravel(), params.b[0][1]]))


def tiny_cnn(**training):
    """MNIST as (1, 28, 28) images through a small float64 conv net, with dropout and L2."""
    return {
        "name": "tiny-cnn", "data": {"dataset": "mnist", "subset": 96},
        "network": {"layers": [{"type": "conv2d", "filters": 3, "kernel": 3, "activation": "relu", "stride": 2},
                               {"type": "maxpool2d", "size": 2},
                               {"type": "conv2d", "filters": 4, "kernel": 3, "activation": "tanh", "padding": "same"},
                               {"type": "avgpool2d", "size": 2}, {"type": "flatten"},
                               {"units": 8, "activation": "relu"}, {"units": 10, "activation": "softmax"}]},
        "training": {"epochs": 2, "batch_size": 40, "seed": 5, "l2": 0.01, "dropout": 0.2,
                     "optimizer": {"name": "adam", "learning_rate": 0.01}, **training},
    }


def test_a_conv_model_saves_loads_and_predicts_raw_images(data_root, tmp_path):
    import snn
    from snn.data import load_dataset

    run = snn.train(tiny_cnn(epochs=1), data_root=data_root, save=False)
    run.model.save(tmp_path / "m")
    model = snn.load_model(tmp_path / "m")
    assert model.spec == run.model.spec and model.preprocessing == run.model.preprocessing
    assert model.spec.input_shape == (1, 28, 28) and model.preprocessing.channels_first
    x = load_dataset("mnist", data_root).x_test[:20]
    np.testing.assert_array_equal(model.predict_raw(x), run.model.predict_raw(x))


def test_channels_first_reorders_colour_images_for_convolutions():
    from snn.data.dataset import Preprocessing

    x = np.arange(2 * 4 * 5 * 3).reshape(2, 4, 5, 3)  # (m, H, W, C), as image files hold them
    p = Preprocessing("image", (4, 5, 3), 1.0, channels_first=True)
    assert p.image_shape == (3, 4, 5)
    np.testing.assert_array_equal(p.columns(x)[:, 1], x[1].transpose(2, 0, 1).ravel())
    assert Preprocessing.from_json(p.to_json()) == p


def test_inference_goes_through_a_conv_network_in_bounded_chunks(monkeypatch):
    """A test set is evaluated a few hundred images at a time; the numbers are the whole set's."""
    import snn.core.network as network

    rng = np.random.default_rng(4)
    net = Network(CNN)
    params = Params(CNN, rng.normal(scale=0.3, size=CNN.n_params))
    X = rng.normal(size=(CNN.n_input, 23))
    Y = targets(rng.integers(0, 3, 23), 3)
    whole = net.forward(params, X)
    cost = net.cost(params, whole, Y, 0.2)
    monkeypatch.setattr(network, "INFERENCE_NUMBERS", 5 * sum(np.prod(layer.out_shape) for layer in net.layers))
    assert net.chunks(23) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    np.testing.assert_allclose(net.output(params, X), whole.A[-1], rtol=1e-13)
    chunked_cost, A_L = net.evaluate(params, X, Y, 0.2)
    assert chunked_cost == pytest.approx(cost, rel=1e-13)
    np.testing.assert_allclose(A_L, whole.A[-1], rtol=1e-13)
