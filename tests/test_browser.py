"""The web page in a real browser: Debian's Chromium driven by Playwright, on loopback."""

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

from conftest import REPO
from snn.service import create_app

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


def test_draw_a_digit_on_the_canvas(mnist_server, page):
    page.goto(mnist_server + "/")
    page.wait_for_selector("#draw-box:not([hidden])")
    box = page.locator("#draw").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + 40
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 20):  # a vertical stroke: a one
        page.mouse.move(x, y + step * 10)
    page.mouse.up()
    page.click("#draw-predict")
    page.wait_for_selector("#bars .bar")
    assert page.locator("#bars .bar").count() == 10
    assert page.inner_text("#label").split(" ")[0] in [str(d) for d in range(10)]
    assert page.locator("#layers .cell").count() == 16 + 16 + 10
    page.screenshot(path=str(ARTIFACTS / "draw.png"), full_page=True)


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
