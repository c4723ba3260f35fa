import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.core.network import NetworkSpec, Params
from snn.data import Preprocessing
from snn.errors import DataError, RunFolderError
from snn.model import Model
from snn.report import SECTIONS, mislabeled_section, write_report
from tiny_cnn import tiny_cnn_run

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_report_on_a_real_cat_run(cat_run_dir, data_root):
    result = CliRunner().invoke(app, ["report", str(cat_run_dir), "--data", str(data_root)])
    assert result.exit_code == 0, result.output
    page = (cat_run_dir / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "specificity" in page and "sensitivity" in page and "invocations" in page and "modelled_lambda_usd" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    embedded = re.findall(r'src="data:image/png;base64,', page)
    assert len(embedded) == 7  # no convolution: no filters drawn; the telemetry and the first layer's weights
    assert "<td>dense</td><td>7</td><td>relu</td><td>86023</td>" in page
    telemetry = re.search(r'<section id="telemetry">(.*?)</section>', page, re.DOTALL).group(1)
    assert "samples from epoch 1 to 300, each on the same 105 training examples" in telemetry
    assert 'alt="telemetry per layer"' in telemetry and 'alt="first-layer weights"' in telemetry
    for name in ("cost", "accuracy", "confusion", "mislabeled", "telemetry", "weights", "timeline"):
        with Image.open(cat_run_dir / "report" / f"{name}.png") as img:
            assert img.format == "PNG" and img.width > 200 and img.height > 100
            pixels = np.asarray(img.convert("L"))
            assert pixels.std() > 5, f"{name}.png is blank"
    mislabeled = int(re.search(r"Mislabeled test images \((\d+)\)", page).group(1))
    assert 0 < mislabeled < 50


def test_report_on_a_conv_run_shows_its_layers_and_first_filters(tmp_path_factory, tmp_path, data_root):
    folder = copy_run(tiny_cnn_run(tmp_path_factory, data_root), tmp_path)  # the shared run is not written to
    result = CliRunner().invoke(app, ["report", str(folder), "--data", str(data_root)])
    assert result.exit_code == 0, result.output
    page = (folder / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    architecture = re.search(r'<section id="architecture">(.*?)</section>', page, re.DOTALL).group(1)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(<td>.*?)</tr>", architecture)]
    assert rows == [["input", "", "1x28x28", "", ""], ["1", "conv2d", "4x26x26", "relu", "40"],
                    ["2", "maxpool2d", "4x13x13", "linear", "0"], ["3", "flatten", "676", "linear", "0"],
                    ["4", "dense", "10", "softmax", "6770"]]
    assert "6810 parameters" in architecture and 'alt="first filters"' in architecture
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 7  # the telemetry; no dense first layer to replay
    with Image.open(folder / "report" / "filters.png") as img:
        assert img.width > 200 and np.asarray(img.convert("L")).std() > 5
    assert re.search(r"Mislabeled test images \((\d+)\)", page)


@pytest.fixture(scope="module")
def spiral_run_dir(tmp_path_factory):
    """The README's own spiral run (examples/spiral.yaml), shortened: a table model with 2-D inputs."""
    folder = tmp_path_factory.mktemp("report") / "spiral"
    snn.train(EXAMPLES / "spiral.yaml", run_dir=folder, **{"training.epochs": 20})
    return folder


def test_report_on_the_readme_spiral_run_draws_its_mislabeled_points(spiral_run_dir):
    result = CliRunner().invoke(app, ["report", str(spiral_run_dir)])
    assert result.exit_code == 0, result.output
    page = (spiral_run_dir / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 6  # with the telemetry, no weights to replay
    wrong = int(re.search(r"Mislabeled test points \((\d+)\)", page).group(1))
    summary = json.loads((spiral_run_dir / "summary.json").read_text())
    assert wrong == round((1 - summary["test_accuracy"]) * summary["n_test"])
    with Image.open(spiral_run_dir / "report" / "mislabeled.png") as img:
        assert np.asarray(img.convert("L")).std() > 5


def test_inputs_that_are_neither_images_nor_points_get_no_figure(tmp_path):
    spec = NetworkSpec(3, ((2, "softmax"),), "cce")
    model = Model(spec, Params.zeros(spec.sizes), Preprocessing("table", (3,)), ("a", "b"))
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    assert mislabeled_section(model, x, y, model.predict_raw(x), tmp_path / "m.png") == (None, "examples")
    assert not (tmp_path / "m.png").exists()


def test_a_folder_without_history_is_one_clear_error(tmp_path):
    with pytest.raises(RunFolderError, match="no history.csv, so not a run folder") as e:
        write_report(tmp_path)
    assert "\n" not in str(e.value) and "help:" in str(e.value)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert not (tmp_path / "report").exists()
    with pytest.raises(RunFolderError, match="nothing: no such folder"):
        write_report(tmp_path / "nothing")


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(run_dir, folder)
    return folder


@pytest.mark.parametrize("change, error, message", [
    (lambda f: (f / "summary.json").unlink(), RunFolderError, "no summary.json"),
    (lambda f: (f / "summary.json").write_text("{"), RunFolderError, "summary.json: not valid JSON"),
    (lambda f: edit_json(f / "summary.json", dataset=7), RunFolderError, "dataset: Input should be a valid string"),
    (lambda f: edit_json(f / "summary.json", dataset="npz:/nonexistent/x.npz"), DataError,
     "the run's dataset cannot be used to report on"),
    (lambda f: edit_json(f / "summary.json", dataset="catvnoncat"), DataError,
     r"the run's dataset cannot be used to report on: .*12288.*2"),
    (lambda f: (f / "history.csv").write_text("epoch,cost\n1,abc\n"), RunFolderError, "history.csv: "),
    (lambda f: (f / "history.csv").write_text("epoch,cost\n"), RunFolderError, "history.csv: no epochs"),
    (lambda f: (f / "telemetry.safetensors").write_bytes(b"junk"), RunFolderError,
     "telemetry.safetensors: not a readable safetensors file"),
])
def test_a_tampered_run_folder_is_one_clear_error(spiral_run_dir, tmp_path, data_root, change, error, message):
    folder = copy_run(spiral_run_dir, tmp_path)
    change(folder)
    with pytest.raises(error, match=message) as e:
        write_report(folder, data_root)
    assert "\n" not in str(e.value)


def test_a_run_without_telemetry_says_so(spiral_run_dir, tmp_path):
    folder = copy_run(spiral_run_dir, tmp_path)
    (folder / "telemetry.safetensors").unlink()
    page = write_report(folder).read_text()
    assert "No telemetry in this run" in page and len(re.findall(r'src="data:image/png;base64,', page)) == 5


def edit_json(path: Path, **fields) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_a_tune_report_reads_only_its_own_plots(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    folder = tmp_path / "tune"
    folder.mkdir()
    (folder / "tune.json").write_text(json.dumps({"study": "<b>s</b>", "plots": {
        "history": str(secret), "importances": "../secret.png", "parallel": "not drawn: too few trials"}}))
    (folder / "trials.csv").write_text("number,state\n0,complete\n")
    page = (write_report(folder)).read_text()
    assert "base64" not in page and "<b>s</b>" not in page and "&lt;b&gt;s&lt;/b&gt;" in page
    (folder / "trials.csv").unlink()
    with pytest.raises(RunFolderError, match="trials.csv: file not found"):
        write_report(folder)


@pytest.mark.parametrize("ledger, message", [
    ("status,end\nok,yesterday\n", "row 2: phase: Field required"),  # checked by the ledger's own reader
    ("start,end,sent\n1,2,1\n", "row 2: phase: Field required"),  # read, but not what a ledger holds
])
def test_a_tampered_ledger_is_one_clear_error(cat_run_dir, tmp_path, data_root, ledger, message):
    folder = copy_run(cat_run_dir, tmp_path)
    (folder / "invocations.csv").write_text(ledger)
    with pytest.raises(RunFolderError, match=f"invocations.csv: {message}") as e:
        write_report(folder, data_root)
    assert "\n" not in str(e.value)


def write_table(path: Path, x, last, header) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(repr, [*row, t])) + "\n"
                                                      for row, t in zip(x.tolist(), last)))
    return path


def reported(tmp_path, dataset: str, layer: dict, epochs: int):
    """A run on a quarter held out for validation, and the page `snn report` writes for it."""
    run = snn.train({"data": {"dataset": dataset, "validation_split": 0.25}, "network": {"layers": [layer]},
                     "training": {"epochs": epochs, "optimizer": {"name": "adam", "learning_rate": 0.05}}},
                    run_dir=tmp_path / "run")
    result = CliRunner().invoke(app, ["report", str(run.run_dir)])
    assert result.exit_code == 0, result.output
    return run, (run.run_dir / "report.html").read_text()


def test_report_on_a_csv_regression_shows_the_fit_and_each_targets_errors(tmp_path):
    from snn.metrics import regression_scores
    from snn.report import REGRESSION_SECTIONS

    x = np.random.default_rng(0).normal(size=(200, 2)) * [1.0, 100.0]
    path = write_table(tmp_path / "r.csv", x, (3 * x[:, 0] - x[:, 1] / 50).tolist(), ["a", "b", "price"])
    run, page = reported(tmp_path, f"csv:{path}?label=price&task=regression", {"units": 1, "activation": "linear"}, 40)
    assert re.findall(r'<section id="(\w+)">', page) == list(REGRESSION_SECTIONS)
    ds = snn.load_dataset(run.summary["dataset"]).with_validation(0.25, run.summary["split"]["seed"])
    values = run.model.predict_proba(run.model.preprocessing.columns(ds.x_val)).T
    r2 = regression_scores(ds.y_val, values)["r2"][0]
    assert f"validation R^2 price {r2:.4f} on 50 examples" in page and r2 > 0.5
    with Image.open(run.run_dir / "report" / "fit.png") as img:
        assert np.asarray(img.convert("L")).std() > 5


def test_report_on_a_csv_classifier_scores_the_rows_its_run_held_out(tmp_path):
    x = np.random.default_rng(1).normal(size=(120, 3))
    path = write_table(tmp_path / "c.csv", x, np.where(x[:, 0] > 0, 1, 0).tolist(), ["u", "v", "w", "label"])
    run, page = reported(tmp_path, f"csv:{path}", {"units": 1, "activation": "sigmoid"}, 20)
    assert f"validation accuracy {run.summary['val_accuracy']:.4f} on 30 examples" in page
    assert "Confusion matrix (validation)" in page and "Mislabeled validation examples" in page
