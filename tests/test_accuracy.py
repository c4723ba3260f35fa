"""The published results, reached by full-length trainings on the real datasets.

These are the slowest tests (about a minute and a half on 2 cores) and they run in
`make test`: the accuracy targets are the point of the math core.
"""

import pytest

import snn
from conftest import EXAMPLES

pytestmark = pytest.mark.slow


def train(name, data_root):
    return snn.train(EXAMPLES / name, data_root=data_root, save=False)


def test_cat_two_layer_reaches_the_course_result(data_root):
    run = train("catvnoncat-2layer.json", data_root)
    costs = [r["cost"] for r in run.history]
    # "Cost after iteration i" of the course notebook is our epoch i + 1.
    assert costs[0] == pytest.approx(0.6930497356599888, abs=1e-12)
    assert costs[100] == pytest.approx(0.6464320953428849, abs=1e-9)
    assert costs[2400] == pytest.approx(0.048554785628770226, abs=1e-9)
    assert run.summary["train_accuracy"] == 1.0
    assert run.summary["test_accuracy"] == 0.72


def test_cat_four_layer_reaches_the_course_result(data_root):
    run = train("catvnoncat-4layer.json", data_root)
    costs = [r["cost"] for r in run.history]
    assert costs[0] == pytest.approx(0.771749, abs=1e-6)
    assert costs[2400] == pytest.approx(0.092878, abs=1e-6)
    assert run.summary["train_accuracy"] >= 0.98
    assert run.summary["test_accuracy"] >= 0.80


@pytest.mark.parametrize("name, target", [("mnist-16-16.json", 0.955), ("mnist-256-128.json", 0.980),
                                          ("fashion-256-128.json", 0.885)])
def test_mnist_family_targets(data_root, name, target):
    run = train(name, data_root)
    assert run.summary["epochs"] <= 40
    assert run.summary["test_accuracy"] >= target, run.summary
