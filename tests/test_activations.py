import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from snn.core.activations import ACTIVATIONS, get_activation

shapes = st.tuples(st.integers(1, 6), st.integers(1, 5))


def finite_difference(f, Z, dA, eps=1e-6):
    """d/dZ of sum(dA * f(Z)), one entry at a time."""
    grad = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[idx] += eps
        Zm[idx] -= eps
        grad[idx] = ((dA * f(Zp)).sum() - (dA * f(Zm)).sum()) / (2 * eps)
    return grad


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_derivative_matches_finite_differences(name, data):
    shape = data.draw(shapes)
    values = st.floats(-5, 5).filter(lambda z: abs(z) > 1e-3)  # away from relu's kink
    Z = data.draw(arrays(np.float64, shape, elements=values))
    dA = data.draw(arrays(np.float64, shape, elements=st.floats(-2, 2)))
    g = get_activation(name)
    A = g.forward(Z)
    np.testing.assert_allclose(g.backward(dA, Z, A), finite_difference(g.forward, Z, dA), atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_saturated_inputs_stay_finite(name):
    Z = np.array([[-1e4, -800.0, 0.0, 800.0, 1e4]]).T @ np.ones((1, 3))
    g = get_activation(name)
    A = g.forward(Z)
    assert np.isfinite(A).all()
    assert np.isfinite(g.backward(np.ones_like(Z), Z, A)).all()


def test_known_values():
    Z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["relu"].forward(Z), [[0, 0, 3]])
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"].forward(Z), [[-0.02, 0, 3]])
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"].forward(Z), 1 / (1 + np.exp(-Z)), rtol=1e-15)
    S = ACTIVATIONS["softmax"].forward(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(S.sum(axis=0), 1)
    np.testing.assert_allclose(S[:, 0], np.exp([1, 3]) / np.exp([1, 3]).sum())


def test_float32_stays_float32():
    Z = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    for g in ACTIVATIONS.values():
        A = g.forward(Z)
        assert A.dtype == np.float32, g.name
        assert g.backward(np.ones_like(Z), Z, A).dtype == np.float32, g.name


def test_unknown_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: relu, leaky_relu"):
        get_activation("swish")
