import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.core.activations import ACTIVATIONS
from snn.core.losses import LOSSES, bce, bce_from_logits, cce, cce_from_logits, output_cost, output_delta


def random_problem(seed, k, m, loss):
    rng = np.random.default_rng(seed)
    if loss == "cce":
        Y = np.eye(k)[:, rng.integers(0, k, m)]
    elif loss == "bce":
        Y = rng.integers(0, 2, (k, m)).astype(float)
    else:
        Y = rng.standard_normal((k, m))
    return rng.uniform(0.05, 0.95, (k, m)), Y


@pytest.mark.parametrize("name", list(LOSSES))
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), m=st.integers(1, 6))
def test_gradient_matches_finite_differences(name, seed, k, m):
    loss = LOSSES[name]
    A, Y = random_problem(seed, k, m, name)
    grad = loss.gradient(A, Y)
    eps = 1e-7
    for idx in np.ndindex(A.shape):
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += eps
        Am[idx] -= eps
        numeric = (loss.cost(Ap, Y) - loss.cost(Am, Y)) / (2 * eps)
        assert grad[idx] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("name", ["bce", "cce"])
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 6))
def test_fused_output_equals_chain_rule(name, seed, m):
    """Through the logits, cost and delta equal the loss applied to the activation."""
    loss = LOSSES[name]
    k = 1 if name == "bce" else 3
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((k, m)) * 3
    _, Y = random_problem(seed, k, m, name)
    g = ACTIVATIONS[loss.partner]
    A = g.forward(Z)
    assert output_cost(loss, g.name, Z, A, Y) == pytest.approx(loss.cost(A, Y), rel=1e-10)
    chain = g.backward(loss.gradient(A, Y), Z, A)
    np.testing.assert_allclose(output_delta(loss, g, Z, A, Y), chain, rtol=1e-7, atol=1e-12)


def test_saturated_sigmoid_and_softmax_give_finite_cost_and_gradient():
    Z = np.array([[800.0, -800.0, 40.0, -40.0]])
    Y = np.array([[0.0, 1.0, 0.0, 1.0]])
    cost = bce_from_logits(Z, Y)
    assert np.isfinite(cost) and cost == pytest.approx((800 + 800 + 40 + 40) / 4)
    A = ACTIVATIONS["sigmoid"].forward(Z)
    assert np.isfinite(bce(A, Y))
    assert np.isfinite(output_delta(LOSSES["bce"], ACTIVATIONS["sigmoid"], Z, A, Y)).all()
    Zs = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    Ys = np.eye(2)[:, [1, 0]]
    assert cce_from_logits(Zs, Ys) == pytest.approx(2000.0)
    assert np.isfinite(cce(ACTIVATIONS["softmax"].forward(Zs), Ys))


def test_bce_matches_the_course_formula():
    A = np.array([[0.8, 0.9, 0.4]])
    Y = np.array([[1, 1, 0]])
    expected = -np.mean(Y * np.log(A) + (1 - Y) * np.log(1 - A))
    assert bce(A, Y) == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(0.2797765635793422)  # the course's compute_cost test
