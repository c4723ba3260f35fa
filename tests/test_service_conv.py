"""The prediction service on a convolutional network: feature maps from /explain, filters from /neuron."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tiny_cnn import MAPS, tiny_cnn_run

import snn
from snn import service
from snn.service import create_app


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, data_root):
    return tiny_cnn_run(tmp_path_factory, data_root)


@pytest.fixture(scope="module")
def client(cnn_run):
    return TestClient(create_app(cnn_run), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def digit(data_root):
    return snn.load_dataset("mnist", data_root).x_test[0]


def explained(client, digit) -> dict:
    response = client.post("/explain", json={"input": digit.tolist()})
    assert response.status_code == 200, response.text
    return response.json()


def test_model_describes_every_layer_kind(client):
    layers = client.get("/model").json()["architecture"]["layers"]
    assert [l.get("type", "dense") for l in layers] == ["conv2d", "maxpool2d", "flatten", "dense"]
    assert [l.get("output_shape") for l in layers[:3]] == [[4, 26, 26], [4, 13, 13], [676]]


def test_explain_gives_each_image_layer_as_feature_maps_on_one_scale(client, digit, cnn_run):
    out = explained(client, digit)
    model = snn.load_model(cnn_run)
    cache = model.network.forward(model.params, model.preprocessing.columns(digit[None]))
    for number, shape in MAPS.items():
        layer, exact = out["layers"][number - 1], cache.A[number][0]
        assert layer["shape"] == list(shape) and layer["units"] == shape[0]
        maps = np.array(layer["maps"])
        assert maps.shape == shape and maps.dtype.kind == "i" and maps.min() == 0 and maps.max() == 255
        lo, hi = layer["range"]
        assert (lo, hi) == pytest.approx((exact.min(), exact.max()))
        # Each level stands for lo + q (hi - lo) / 255, to within half a level.
        assert np.abs(lo + maps * (hi - lo) / 255 - exact).max() <= (hi - lo) / 510 + 1e-12
        assert layer["a"] == pytest.approx(exact.mean(axis=(1, 2)).tolist())
    assert [l.get("type") for l in out["layers"]] == ["conv2d", "maxpool2d", "flatten", None]
    assert out["layers"][2] == {"units": 0, "activation": "linear", "type": "flatten", "shape": [676]}
    assert out["layers"][3]["a"] == pytest.approx(list(out["probabilities"].values()))
    assert out["label"] == str(int(model.predict_raw(digit[None])[0])) and len(out["input"]) == 28


def test_explain_of_an_upload_is_that_of_its_pixels(client, digit):
    png = io.BytesIO()
    Image.fromarray(digit).save(png, format="PNG")
    upload = client.post("/explain", files={"file": ("d.png", png.getvalue(), "image/png")}).json()
    assert upload["layers"][0]["maps"] == explained(client, digit)["layers"][0]["maps"]


@pytest.mark.parametrize("limit, sent", [(2 * 26 * 26 + 5, {1: 2, 2: 4}), (26 * 26 - 1, {1: None, 2: 3}),
                                         (100, {1: None, 2: None})])
def test_a_layer_sends_whole_maps_up_to_its_bound(client, digit, monkeypatch, limit, sent):
    monkeypatch.setattr(service, "MAX_MAP_VALUES", limit)
    layers = explained(client, digit)["layers"]
    for number, count in sent.items():
        maps = layers[number - 1]["maps"]
        assert (None if maps is None else len(maps)) == count
        assert layers[number - 1]["units"] == 4 and len(layers[number - 1]["a"]) == 4


def test_neuron_of_a_conv_layer_is_its_filter(client, cnn_run):
    model = snn.load_model(cnn_run)
    n = client.get("/neuron/1/2").json()
    W, b = model.params.layers[0]["W"], model.params.layers[0]["b"]
    assert n["type"] == "conv2d" and n["shape"] == [1, 3, 3] and n["activation"] == "relu"
    assert np.array_equal(np.array(n["kernels"]), W[2]) and n["bias"] == float(b[2, 0])
    dense = client.get("/neuron/4/9").json()
    assert dense["shape"] == [676] and len(dense["weights"]) == 676 and "type" not in dense


@pytest.mark.parametrize("url, message", [
    ("/neuron/2/0", "layer 2 (maxpool2d) has no neurons or weights; layers with neurons: 1, 4"),
    ("/neuron/3/0", "layer 3 (flatten) has no neurons or weights; layers with neurons: 1, 4"),
    ("/neuron/1/4", "unit 4: layer 1 has units 0..3"),
    ("/neuron/1/-1", "unit -1: layer 1 has units 0..3"),
    ("/neuron/5/0", "layer 5: this model has layers 1..4"),
    ("/neuron/0/0", "layer 0: this model has layers 1..4"),
])
def test_neuron_of_a_layer_without_one_is_a_clear_404(client, url, message):
    response = client.get(url)
    assert response.status_code == 404 and response.json() == {"error": message}
