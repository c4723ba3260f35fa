"""The web page in a real browser: Debian's Chromium driven by Playwright, on loopback."""

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

import snn
from conftest import REPO
from snn.service import create_app
from tiny_cnn import tiny_cnn_run

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(cat_run_dir):
    yield from serving(cat_run_dir)


@pytest.fixture(scope="module")
def mnist_server(tmp_path_factory, data_root):
    import snn

    folder = tmp_path_factory.mktemp("mnist") / "run"
    snn.train(REPO / "examples" / "mnist-16-16.json", data_root=data_root, run_dir=folder,
              **{"training.epochs": 1, "data.subset": 20000})
    yield from serving(folder)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory, data_root):
    return tiny_cnn_run(tmp_path_factory, data_root)


@pytest.fixture(scope="module")
def cnn_server(cnn_run):
    yield from serving(cnn_run)


def serving(folder):
    """uvicorn on 127.0.0.1, in a thread, stopped after the module."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(folder), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser):
    return browser.new_page(viewport={"width": 1200, "height": 900})


def test_upload_a_cat_open_a_neuron_and_see_the_run(server, page, cat, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    image = tmp_path / "cat.png"
    Image.fromarray(cat.x_test[1]).save(image)  # test image 1 is a cat
    page.goto(server + "/")
    page.wait_for_selector("text=classes: non-cat, cat")
    page.set_input_files("#upload", str(image))
    page.wait_for_selector("#bars .bar")
    label = page.inner_text("#label")
    assert label.split(" ")[0] in ("cat", "non-cat") and "%" in label
    assert page.locator("#layers .layer").count() == 2 and page.locator("#layers .cell").count() == 8
    page.screenshot(path=str(ARTIFACTS / "predict.png"), full_page=True)

    page.locator("#layers .cell").nth(2).click()
    page.wait_for_selector("#neuron:not([hidden])")
    assert "Layer 1, neuron 2 (relu)" in page.inner_text("#neuron-title")
    assert "12288 incoming weights" in page.inner_text("#neuron-facts")
    drawn = page.evaluate("() => { const c = document.getElementById('weights').getContext('2d');"
                          " return Array.from(c.getImageData(0, 0, 192, 192).data).some(v => v > 0); }")
    assert drawn
    page.screenshot(path=str(ARTIFACTS / "neuron.png"), full_page=True)

    page.wait_for_selector("#run:not([hidden])")
    page.wait_for_function("() => document.getElementById('run-facts').textContent.includes('invocations')")
    assert "invocations on" in page.inner_text("#run-facts")
    curves = page.evaluate("() => { const c = document.getElementById('curves').getContext('2d');"
                           " return Array.from(c.getImageData(0, 0, 640, 220).data).filter(v => v > 0).length; }")
    assert curves > 1000
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def draw_a_one(page):
    """A vertical stroke on the drawing canvas, then Predict: the page shows the answer."""
    page.wait_for_selector("#draw-box:not([hidden])")
    box = page.locator("#draw").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + 40
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 20):
        page.mouse.move(x, y + step * 10)
    page.mouse.up()
    page.click("#draw-predict")
    page.wait_for_selector("#bars .bar")


def test_draw_a_digit_on_the_canvas(mnist_server, page):
    page.goto(mnist_server + "/")
    draw_a_one(page)
    assert page.locator("#bars .bar").count() == 10
    assert page.inner_text("#label").split(" ")[0] in [str(d) for d in range(10)]
    assert page.locator("#layers .cell").count() == 16 + 16 + 10
    page.screenshot(path=str(ARTIFACTS / "draw.png"), full_page=True)


# Every pixel of a canvas as [r, g, b, a] values, and its intrinsic size.
PIXELS = """(c) => ({width: c.width, height: c.height,
                    data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)})"""


def test_a_conv_network_shows_its_feature_maps_and_a_filter_its_kernel(cnn_server, cnn_run, page):
    page.goto(cnn_server + "/")
    page.wait_for_function("() => document.getElementById('model-name').textContent.includes('classes:')")
    assert "1x28x28 → conv2d 4x26x26 → maxpool2d 4x13x13 → flatten 676 → 10" in page.inner_text("#model-name")
    draw_a_one(page)
    page.wait_for_selector("#layers canvas.map")
    maps = [page.locator(f"#layers canvas.map[data-layer='{n}']").evaluate_all(f"(cs) => cs.map({PIXELS})")
            for n in (1, 2)]
    assert [[(m["width"], m["height"]) for m in row] for row in maps] == [[(26, 26)] * 4, [(13, 13)] * 4]
    assert any(max(m["data"][0::4]) > 0 for m in maps[0])  # some filter answers the stroke
    assert page.locator("#layers canvas.map").first.bounding_box()["width"] >= 40  # shown larger than its pixels
    assert "flatten" in page.locator("#layers .layer").nth(2).inner_text()
    assert page.locator("#layers .layer").nth(3).locator(".cell").count() == 10

    page.locator("#layers canvas.map[data-layer='1'][data-unit='2']").click()
    page.wait_for_selector("#kernels canvas.kernel")
    assert page.inner_text("#neuron-title") == "Layer 1, filter 2 (relu)"
    (kernel,) = page.locator("#kernels canvas.kernel").evaluate_all(f"(cs) => cs.map({PIXELS})")
    W = snn.load_model(cnn_run).params.layers[0]["W"][2, 0]  # the filter's one kernel: grey from its least to its most
    assert (kernel["width"], kernel["height"]) == (3, 3)
    assert kernel["data"][0::4] == np.rint(255 * ((W - W.min()) / (W.max() - W.min()))).ravel().astype(int).tolist()
    large = page.locator("#map").evaluate(PIXELS)
    assert large["width"] == 192 and max(large["data"][0::4]) > 0
    assert page.locator("#weights").is_hidden() and page.locator("#map").is_visible()
    page.screenshot(path=str(ARTIFACTS / "conv-filter.png"), full_page=True)

    page.locator("#layers canvas.map[data-layer='2'][data-unit='0']").click()
    page.wait_for_function("() => document.getElementById('neuron-title').textContent.startsWith('Layer 2')")
    assert page.inner_text("#neuron-title") == "Layer 2, channel 0 (maxpool2d)"
    assert page.locator("#kernels canvas").count() == 0
    page.locator("#layers .layer").nth(3).locator(".cell").nth(3).click()
    page.wait_for_selector("#weights:not([hidden])")
    assert "676 incoming weights" in page.inner_text("#neuron-facts") and page.locator("#map").is_hidden()


# Class names as an attacker would write them into model.json: markup, an event handler, a script.
HOSTILE = ['<img src=x onerror="window.__pwned=1;alert(1)">', "<script>window.__pwned=2;alert(2)</script>"]


@pytest.fixture(scope="module")
def hostile_server(cat_run_dir, tmp_path_factory):
    """The cat model, copied, with HTML and script for class names."""
    folder = tmp_path_factory.mktemp("hostile") / "model"
    folder.mkdir()
    for name in ("model.json", "model.safetensors"):
        shutil.copy(cat_run_dir / name, folder / name)
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "classes": HOSTILE}))
    yield from serving(folder)


def test_class_names_holding_html_and_script_are_shown_as_text(hostile_server, browser, cat, tmp_path):
    image = tmp_path / "cat.png"
    Image.fromarray(cat.x_test[1]).save(image)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    # Anything the policy blocks is recorded: an injected handler would be, and so would inline code of ours.
    page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation',"
                         " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));")
    try:
        response = page.goto(hostile_server + "/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_function("() => document.getElementById('model-name').textContent.includes('classes:')")
        page.set_input_files("#upload", str(image))
        page.wait_for_selector("#bars .bar")
        page.screenshot(path=str(ARTIFACTS / "hostile-classes.png"), full_page=True)

        assert page.locator("#bars .bar span:first-child").all_inner_texts() == HOSTILE
        assert page.inner_text("#label").split(" (")[0] in HOSTILE
        assert all(name in page.inner_text("#model-name") for name in HOSTILE)
        widths = [bar.bounding_box()["width"] for bar in page.locator("#bars .bar div").all()]
        assert max(widths) >= 99  # the likelier class's bar, 200 px * p, styled through the DOM under the policy
        assert page.evaluate("() => document.querySelectorAll('body img, body script:not([src])').length") == 0
        assert page.evaluate("() => window.__pwned") is None
        assert page.evaluate("() => window.__violations") == []
        assert dialogs == []
    finally:
        page.close()
