"""The notebooks in examples/notebooks/, executed top to bottom on a kernel of this interpreter (nbclient).

Each must run without an error, draw its figures into the executed copy (checked cell by cell, by
tag), and be committed with its outputs stripped. The executed copies are kept in the test's
tmp folder for inspection.
"""

from __future__ import annotations

import ast
import json
import sys

import nbclient
import nbformat
import pytest
from conftest import EXAMPLES

NOTEBOOKS = EXAMPLES / "notebooks"
KERNEL = "snn-test-venv"  # a kernelspec of our own, so no other Python's "python3" is ever picked
CELL_TIMEOUT = 300  # seconds a cell may run

# Per notebook: the tags of the cells that must draw a figure (an image/png output each).
FIGURES = {
    "inside-the-cat-network.ipynb": ("pictures", "cost", "accuracy", "confusion", "mislabeled", "weights",
                                     "activations", "neuron", "neuron-norms"),
    "serverless-neuron-by-neuron.ipynb": ("timeline", "critical-path", "cost"),
}


@pytest.fixture
def kernel(tmp_path, monkeypatch, data_root):
    """A kernelspec whose argv is this interpreter (the project's venv), found first through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "snn (test venv)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("SNN_DATA_DIR", str(data_root))  # the kernel inherits it: the notebooks find data as snn does
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks ask for the inline backend themselves
    return KERNEL


def tagged(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_and_draws_its_figures(name, kernel, tmp_path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    work = tmp_path / "cwd"
    work.mkdir()
    nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=kernel,
                            resources={"metadata": {"path": str(work)}}).execute()
    nbformat.write(nb, tmp_path / name)  # the executed copy, for inspection

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    for tag in FIGURES[name]:
        cells = tagged(nb, f"figure:{tag}")
        assert len(cells) == 1, f"{name}: {len(cells)} cells tagged figure:{tag}"
        assert pngs(cells[0]) >= 1, f"{name}: the {tag} cell drew no figure"
    assert sum(map(pngs, nb.cells)) == len(FIGURES[name])  # every figure is one of those checked
    assert not any(work.iterdir()), "the notebook wrote into its working folder"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_is_committed_stripped_and_trains_the_published_network(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"{name}: outputs not stripped"
    (config,) = tagged(nb, "config")
    written = ast.literal_eval(config.source.split("=", 1)[1].strip())
    assert written == json.loads((EXAMPLES / "catvnoncat-4layer.json").read_text())


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(FIGURES)
