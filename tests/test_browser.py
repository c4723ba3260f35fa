"""The web page in a real browser: Debian's Chromium driven by Playwright, on loopback."""

import csv
import json
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

import snn
from conftest import REPO
from snn.service import create_app
from test_telemetry import dead_unit_run
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
    assert "invocations of steps 0 to 299 on 1 worker," in page.inner_text("#run-facts")
    page.wait_for_selector("#telemetry .multiples")
    curves = page.locator("#cost-chart canvas").evaluate(f"(c) => ({PIXELS})(c).data.filter(v => v > 0).length")
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


# --- the run's dashboard: axes and values, every neuron during training, the timeline of a full neuron run ---------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_root):
    """The original project's job: examples/catvnoncat-4layer.json neuron by neuron, all 2,500 epochs (67
    invocations a step, 167,500 in all, and the hedges' copies), as `snn train --granularity neuron` runs it."""
    folder = tmp_path_factory.mktemp("full") / "cat4"
    started = time.perf_counter()
    snn.train(REPO / "examples" / "catvnoncat-4layer.json", data_root=data_root, run_dir=folder,
              **{"runtime.granularity": "neuron"})
    print(f"\nfull neuron run: {time.perf_counter() - started:.1f} s")
    return folder


@pytest.fixture(scope="module")
def full_server(full_run):
    yield from serving(full_run)


@pytest.fixture(scope="module")
def dead_server(tmp_path_factory, data_root):
    yield from serving(dead_unit_run(tmp_path_factory.mktemp("dead") / "run", data_root))


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    """Save a screenshot of a page or an element under the test's temporary folder, and in $SNN_SCREENSHOTS."""
    folder = tmp_path_factory.mktemp("screenshots")
    extra = Path(os.environ["SNN_SCREENSHOTS"]) if os.environ.get("SNN_SCREENSHOTS") else None

    def shoot(target, name):
        path = folder / name
        target.screenshot(path=str(path), **({"full_page": True} if hasattr(target, "goto") else {}))
        if extra:
            extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, extra / name)
        return path

    return shoot


@contextmanager
def watched_page(browser, url):
    """A page opened at ``url``; closed after, and no script error allowed on it."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url)
        yield page
        assert errors == []
    finally:
        page.close()


@contextmanager
def run_page(browser, server):
    """A page on a run's dashboard, its charts drawn."""
    with watched_page(browser, server + "/") as page:
        page.wait_for_selector("#telemetry .multiples")
        page.wait_for_selector("#timeline[data-steps]")  # drawn, or none to draw
        yield page


def hover_middle(page, selector):
    box = page.locator(selector).first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_the_charts_have_axes_and_say_the_value_under_the_mouse(full_server, full_run, browser, shoot):
    with run_page(browser, full_server) as page:
        assert page.inner_text("#cost-chart .x-label") == "epoch" and page.inner_text("#cost-chart .y-label") == "cost"
        assert page.inner_text("#accuracy-chart .y-label") == "accuracy"
        history = {int(r["epoch"]): float(r["cost"]) for r in csv.DictReader(open(full_run / "history.csv"))}
        hover_middle(page, "#cost-chart canvas")
        tip = page.locator("#cost-chart .tooltip")
        tip.wait_for(state="visible")
        epoch, value = int(tip.get_attribute("data-x")), float(tip.get_attribute("data-value"))
        assert 1000 < epoch < 1500 and value == history[epoch]  # the middle of 2,500 epochs, as history.csv says
        text = tip.inner_text()
        assert text.startswith(f"epoch {epoch}: cost ") and float(text.split()[-1]) == pytest.approx(value, rel=1e-5)
        shoot(page.locator("#run .charts").first, "charts-with-axes.png")

        linear = page.locator("#cost-chart canvas").evaluate(PIXELS)["data"]
        page.check("#cost-log")
        assert page.locator("#cost-chart canvas").evaluate(PIXELS)["data"] != linear
        page.mouse.move(0, 0)
        hover_middle(page, "#cost-chart canvas")
        tip.wait_for(state="visible")
        assert float(tip.get_attribute("data-value")) == history[int(tip.get_attribute("data-x"))]
        shoot(page.locator("#run .charts").first, "charts-log-scale.png")


# Per lane of LANE pixels: how many of its pixels are drawn in a phase's colour, not the lane's grey background.
LANES = """(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, out = [];
  for (let top = 0; top + 24 <= c.height - 28; top += 24) {
    let n = 0;
    for (let y = top; y < top + 24; y++) for (let x = 0; x < c.width; x++) {
      const i = 4 * (y * c.width + x), rgb = [d[i], d[i + 1], d[i + 2]];
      if (d[i + 3] > 0 && Math.max(...rgb) - Math.min(...rgb) > 40) n++;
    }
    out.push(n / (24 * c.width));
  }
  return out; }"""


def test_every_layer_shows_its_neurons_during_training(full_server, browser, shoot):
    with run_page(browser, full_server) as page:
        rows = page.locator("#telemetry .multiples")
        assert rows.count() == 4
        for l, fourth in zip((1, 2, 3, 4), ("inactive", "inactive", "inactive", "saturated")):
            row = page.locator(f"#telemetry .multiples[data-layer='{l}']")
            metrics = row.locator(".chart").evaluate_all("(cs) => cs.map((c) => c.dataset.metric)")
            assert metrics == ["weight_norm", "grad_norm", "mean_activation", fourth]
            assert row.locator(".x-label").first.inner_text() == "epoch"
            canvas = row.locator(".chart canvas").first
            assert canvas.evaluate(f"(c) => ({PIXELS})(c).data.filter((v) => v > 0).length") > 1000
        assert "51 samples, from epoch 1 to 2500" in page.inner_text("#telemetry-facts")
        hover_middle(page, "#telemetry .multiples[data-layer='1'] .chart canvas")
        assert page.locator("#telemetry .multiples[data-layer='1'] .tooltip").first.inner_text().startswith("epoch ")
        shoot(page.locator("#telemetry"), "telemetry-multiples.png")

        page.wait_for_function("() => document.getElementById('replay-label').textContent.includes('epoch 2500')")
        page.locator("#replay-epoch").fill("0")
        page.wait_for_function("() => document.getElementById('replay-label').textContent.startsWith('epoch 1 ')")
        first = page.locator("#replay-canvas").evaluate(PIXELS)
        page.check("#replay-change")
        page.locator("#replay-epoch").fill(page.locator("#replay-epoch").get_attribute("max"))
        page.wait_for_function("() => document.getElementById('replay-label').textContent.includes('change since')")
        assert page.locator("#replay-canvas").evaluate(PIXELS)["data"] != first["data"]
        assert len(set(first["data"][0::4])) > 100  # 20 units' weights as images, not a blank
        shoot(page.locator("#replay"), "first-layer-weights.png")


def test_the_timeline_of_a_full_neuron_run_is_readable_and_zooms(full_server, browser, shoot):
    with run_page(browser, full_server) as page:
        facts = page.inner_text("#run-facts")
        assert "invocations of steps 0 to 2499 on" in facts and int(facts.split()[0]) >= 167_500
        labels = page.locator("#lane-labels .lane-label").all_inner_texts()
        assert [t.split(" ", 3)[:3] for t in labels[:2]] == [["forward", "·", "layer"]] * 2 and len(labels) == 9
        assert labels[4].startswith("loss") and labels[-1].startswith("backward · layer 1")
        canvas = page.locator("#timeline-canvas")
        whole = canvas.evaluate(LANES)
        # Nine lanes, each drawn, none a solid bar: columns where a lane ran little stay low.
        assert len(whole) == 9 and all(0.02 < share < 0.9 for share in whole), whole
        shoot(page, "dashboard-full-neuron-run.png")
        shoot(page.locator("#timeline"), "timeline-167500-invocations.png")
        before = canvas.evaluate(PIXELS)["data"]

        page.fill("#step-from", "1000")
        page.fill("#step-to", "1002")
        page.click("#zoom")
        page.wait_for_selector("#timeline[data-steps='1000-1002']")
        zoomed = canvas.evaluate(LANES)
        assert canvas.evaluate(PIXELS)["data"] != before and len(zoomed) == 9
        # Three steps: each lane runs in a few short stretches, in the order of the stages.
        assert all(0 < share < 0.9 for share in zoomed), zoomed
        hover_middle(page, "#timeline-canvas")
        assert " s: " in page.inner_text("#timeline-tip") and "running on average" in page.inner_text("#timeline-tip")
        shoot(page.locator("#timeline"), "timeline-steps-1000-1002.png")
        page.click("#zoom-all")
        page.wait_for_selector("#timeline[data-steps='0-2499']")


def test_a_dead_unit_is_flagged_in_red(dead_server, browser, shoot):
    with run_page(browser, dead_server) as page:
        row = page.locator("#telemetry .multiples[data-layer='1']")
        assert row.get_attribute("data-dead") == "3"
        assert "dead (off on every sampled example): units 3" in row.locator(".flags").inner_text()
        assert page.locator("#telemetry .multiples[data-layer='2']").get_attribute("data-dead") == ""
        dead = row.locator(".chart[data-metric='inactive'] canvas").evaluate(PIXELS)["data"]
        red = sum(1 for i in range(0, len(dead), 4) if dead[i] > 180 and dead[i + 1] < 60 and dead[i + 2] < 60)
        assert red > 100  # unit 3's line, at 1 all along
        assert page.get_attribute("#timeline", "data-steps") == "none"  # trained in process: no ledger
        shoot(page.locator("#telemetry"), "dead-unit-flagged.png")


# --- a table model: a row typed into the page -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iris") / "run"
    snn.train(REPO / "examples" / "iris.yaml", run_dir=folder)
    yield from serving(folder)


def test_a_table_model_takes_a_row_typed_into_its_fields(iris_server, browser, shoot):
    with watched_page(browser, iris_server + "/") as page:
        page.wait_for_selector("#row-box:not([hidden])")
        assert page.locator("#upload").is_hidden()
        names = page.locator("#row-fields .feature span").all_inner_texts()
        assert names == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
        for j, value in enumerate([6.9, 3.1, 5.4, 2.1]):  # a virginica of the iris table
            page.fill(f"#feature-{j}", str(value))
        page.click("#row-predict")
        page.wait_for_selector("#bars .bar")
        assert page.inner_text("#label").startswith("virginica (")
        assert page.locator("#layers .cell").count() == 16 + 3
        shoot(page, "table-row.png")


@pytest.fixture(scope="module")
def price_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("price")
    x = np.random.default_rng(0).normal(size=(200, 2))
    (folder / "p.csv").write_text("rooms,age,price\n" + "".join(f"{a!r},{b!r},{3 * a - b!r}\n" for a, b in x.tolist()))
    snn.train({"data": {"dataset": f"csv:{folder / 'p.csv'}?label=price&task=regression"},
               "network": {"layers": [{"units": 1, "activation": "linear"}]},
               "training": {"epochs": 30, "optimizer": {"name": "adam", "learning_rate": 0.05}}}, run_dir=folder / "run")
    return folder / "run"


@pytest.fixture(scope="module")
def price_server(price_run):
    yield from serving(price_run)


def test_a_regression_model_shows_its_value(price_run, price_server, browser):
    with watched_page(browser, price_server + "/") as page:
        page.wait_for_selector("#row-box:not([hidden])")
        page.fill("#feature-0", "1")
        page.fill("#feature-1", "0")
        page.click("#row-predict")
        page.wait_for_function("() => document.getElementById('label').textContent.startsWith('price: ')")
        expected = snn.load_model(price_run).outputs(np.array([[1.0, 0.0]]))[0, 0]
        assert float(page.inner_text("#label").split(": ")[1]) == pytest.approx(expected, rel=1e-5)  # 6 digits
        assert page.locator("#bars .bar").count() == 0 and page.locator("#layers .cell").count() == 1
