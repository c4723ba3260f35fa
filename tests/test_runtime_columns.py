"""A batch's columns on threads give the batch's cost, output and gradients."""

import numpy as np
import pytest

from snn.core.layers import Conv2D, Dense, Flatten, MaxPool2D
from snn.core.network import Network, NetworkSpec, Params, targets
from snn.core.training import whole_batch
from snn.runtime.columns import ColumnThreads, batch_gradients, column_threads

CNN = NetworkSpec((2, 9, 9), (Conv2D(3, 3, "relu"), MaxPool2D(2), Flatten(), Dense(5, "tanh"), Dense(4, "softmax")),
                  "cce")


@pytest.mark.parametrize("threads, m", [(2, 17), (3, 30), (4, 3), (2, 1)])
def test_columns_on_threads_are_the_whole_batch(threads, m):
    """With dropout and L2: the parts use the batch's masks, and L2 is added once."""
    rng = np.random.default_rng(m)
    net = Network(CNN)
    params = Params(CNN, rng.normal(scale=0.3, size=CNN.n_params))
    X, Y = rng.normal(size=(2 * 81, m)), targets(rng.integers(0, 4, m), 4)
    key = (1, 2, 3, m)
    want, got = Params.zeros(CNN), Params.zeros(CNN)
    cost, A_L = whole_batch(net, params, X, Y, want, 0.3, 0.7, key)
    pool = ColumnThreads(threads)
    try:
        for _ in range(2):  # the second batch reuses the parts' buffers
            got.flat[:] = np.nan
            cost2, A_L2 = pool(net, params, X, Y, got, 0.3, 0.7, key)
            np.testing.assert_allclose(got.flat, want.flat, rtol=1e-12, atol=1e-14)
            assert cost2 == pytest.approx(cost, rel=1e-13)
            np.testing.assert_allclose(A_L2, A_L, rtol=1e-13)
    finally:
        pool.close()


def test_only_batches_with_many_activations_go_on_threads(monkeypatch):
    mlp = Network(NetworkSpec(784, ((256, "relu"), (128, "relu"), (10, "softmax")), "cce"))
    cnn = Network(NetworkSpec((1, 28, 28), (Conv2D(32, 3, "relu"), MaxPool2D(2), Flatten(), Dense(10, "softmax")),
                              "cce"))
    monkeypatch.setattr("snn.runtime.columns.cores", lambda: 2)
    assert column_threads(mlp, 128) == 1 and column_threads(cnn, 128) == 2 and column_threads(cnn, 1) == 1
    monkeypatch.setattr("snn.runtime.columns.cores", lambda: 1)
    assert column_threads(cnn, 128) == 1
    with batch_gradients(cnn, 128) as gradients:
        assert gradients is whole_batch


def test_evaluation_chunks_on_threads_are_the_whole_set(monkeypatch):
    import snn.core.network as network
    from snn.runtime.columns import chunk_map

    rng = np.random.default_rng(8)
    net = Network(CNN)
    params = Params(CNN, rng.normal(scale=0.3, size=CNN.n_params))
    X, Y = rng.normal(size=(2 * 81, 41)), targets(rng.integers(0, 4, 41), 4)
    whole_cost, whole_out = net.evaluate(params, X, Y, 0.1)
    with chunk_map(net, 41) as one:
        assert one is map  # a small network takes the set in one piece
    monkeypatch.setattr(network, "INFERENCE_NUMBERS", 6 * sum(np.prod(layer.out_shape) for layer in net.layers))
    monkeypatch.setattr("snn.runtime.columns.cores", lambda: 2)
    with chunk_map(net, 41) as pool_map:
        assert pool_map is not map
        cost, out = net.evaluate(params, X, Y, 0.1, pool_map)
    assert cost == pytest.approx(whole_cost, rel=1e-13)
    np.testing.assert_allclose(out, whole_out, rtol=1e-13)
