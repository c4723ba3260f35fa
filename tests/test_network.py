import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snn.core.gradcheck import check_gradients
from snn.core.initializers import initial_weights
from snn.core.network import Network, NetworkSpec, Params, predictions, targets
from snn.core.schedules import SCHEDULES

HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "linear"]
OUTPUTS = [("sigmoid", "bce", 1), ("softmax", "cce", 3), ("linear", "mse", 2), ("tanh", "mse", 2),
           ("sigmoid", "mse", 1)]


def problem(seed, n_x, hidden, out, m):
    act, loss, k = out
    spec = NetworkSpec(n_x, tuple(hidden) + ((k, act),), loss)
    rng = np.random.default_rng(seed)
    params = Params.from_weights(initial_weights(spec.sizes, "xavier", seed), [rng.normal(0, 0.1, n) for n in spec.sizes[1:]])
    X = rng.standard_normal((n_x, m))
    Y = targets(rng.integers(0, k if k > 1 else 2, m), k) if loss != "mse" else rng.standard_normal((k, m))
    return Network(spec), params, X, Y


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    n_x=st.integers(1, 5),
    hidden=st.lists(st.tuples(st.integers(1, 5), st.sampled_from(HIDDEN)), max_size=3),
    out=st.sampled_from(OUTPUTS),
    m=st.integers(1, 7),
    l2=st.sampled_from([0.0, 0.7]),
)
def test_backprop_matches_finite_differences(seed, n_x, hidden, out, m, l2):
    net, params, X, Y = problem(seed, n_x, hidden, out, m)
    for check in check_gradients(net, params, X, Y, l2=l2, eps=1e-6):
        # Finite differences carry ~1e-10 of noise: a vanishing gradient can have a
        # large relative error made of nothing but that noise.
        assert check.relative_error < 1e-5 or check.max_abs_error < 1e-8, check


def test_dropout_gradient_with_its_mask():
    """With a fixed mask, backprop is the derivative of the masked network."""
    net, params, X, Y = problem(3, 4, [(6, "tanh"), (5, "relu")], ("sigmoid", "bce", 1), 9)

    def cost():
        return net.cost(params, net.forward(params, X, 0.6, (42, 0, 0, 9)), Y)

    cache = net.forward(params, X, 0.6, (42, 0, 0, 9))
    grads = Params.zeros(params.sizes)
    net.backward(params, cache, Y, grads)
    assert len(cache.masks) == 2 and 0 < (cache.masks[0] == 0).mean() < 1
    for name, tensor in params.tensors().items():
        flat, g = tensor.reshape(-1), grads.tensors()[name].reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + 1e-6
            plus = cost()
            flat[i] = saved - 1e-6
            minus = cost()
            flat[i] = saved
            assert g[i] == pytest.approx((plus - minus) / 2e-6, rel=1e-5, abs=1e-9)


def test_l2_adds_its_cost_and_gradient():
    net, params, X, Y = problem(0, 3, [(4, "relu")], ("sigmoid", "bce", 1), 5)
    plain, g0, _ = net.gradients(params, X, Y)
    reg, g1, _ = net.gradients(params, X, Y, l2=0.3)
    assert reg - plain == pytest.approx(0.3 / (2 * 5) * sum((W**2).sum() for W in params.W))
    for l, W in enumerate(params.W):
        np.testing.assert_allclose(g1.W[l] - g0.W[l], 0.3 / 5 * W, atol=1e-15)
        np.testing.assert_array_equal(g1.b[l], g0.b[l])


def test_params_are_views_of_one_buffer():
    p = Params.zeros([3, 4, 2])
    assert p.flat.size == 4 * 3 + 4 + 2 * 4 + 2
    p.W[1][0, 0] = 5
    assert p.flat[16] == 5
    assert list(p.tensors()) == ["W1", "b1", "W2", "b2"]
    with pytest.raises(ValueError, match="need 26"):
        Params([3, 4, 2], np.zeros(3))


def test_float32_forward_and_backward_stay_float32():
    net, params, X, Y = problem(1, 4, [(3, "relu")], ("softmax", "cce", 3), 6)
    p32 = Params(params.sizes, params.flat.astype(np.float32))
    cost, grads, A = net.gradients(p32, X.astype(np.float32), Y.astype(np.float32))
    assert A.dtype == np.float32 and grads.flat.dtype == np.float32
    assert cost == pytest.approx(net.gradients(params, X, Y)[0], rel=1e-5)


def test_targets_and_predictions():
    np.testing.assert_array_equal(targets([0, 2, 1], 3), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(targets([0, 1], 1), [[0, 1]])
    np.testing.assert_array_equal(predictions(np.array([[0.2, 0.7, 0.5]])), [0, 1, 0])
    np.testing.assert_array_equal(predictions(np.array([[0.2, 0.7], [0.8, 0.3]])), [1, 0])


def test_schedules():
    assert SCHEDULES["constant"](0.1, 50) == 0.1
    assert SCHEDULES["inverse_time"](0.1, 10, 1.0, 5) == pytest.approx(0.1 / 3)
    assert SCHEDULES["exponential"](0.1, 2, 0.5) == pytest.approx(0.025)
    assert SCHEDULES["step"](0.1, 25, 0.5, 10) == pytest.approx(0.025)
