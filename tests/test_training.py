import numpy as np
import pytest

from snn.core.initializers import initial_weights
from snn.core.network import Network, NetworkSpec, Params, targets
from snn.core.optimizers import Adam, GradientDescent
from snn.core.training import Plan, batches, epoch_rng, train_epochs
from snn.data.toy import spiral


def setup(seed=0, dtype=np.float64):
    ds = spiral(n_per_class=30)
    X = ds.preprocessing.columns(ds.x_train, dtype)
    Y = targets(ds.y_train, 3, dtype)
    spec = NetworkSpec(2, ((8, "relu"), (3, "softmax")), "cce")
    params = Params.from_weights(initial_weights(spec.sizes, "he", seed), dtype=dtype)
    return Network(spec), params, X, Y


def test_full_batch_cost_is_the_cost_before_the_update():
    net, params, X, Y = setup()
    before = net.cost(params, net.forward(params, X), Y)
    first = next(train_epochs(net, params, GradientDescent(), {}, X, Y, Plan(3, 0.5)))
    assert first.epoch == 1 and first.cost == before


def test_minibatch_epoch_cost_is_the_example_weighted_mean():
    net, params, X, Y = setup()
    plan = Plan(1, 0.1, batch_size=25, seed=4)
    replay = params.copy()
    (result,) = train_epochs(net, params, GradientDescent(), {}, X, Y, plan)
    # Replay the same batches by hand: cost before each batch's own update.
    labels = Y.argmax(axis=0)
    total, grads = 0.0, Params.zeros(replay.sizes)
    for Xb, Yb, _ in batches(X, Y, labels, 25, epoch_rng(4, 1, 0)):
        cache = net.forward(replay, Xb)
        total += net.cost(replay, cache, Yb) * Yb.shape[1]
        net.backward(replay, cache, Yb, grads)
        replay.flat -= 0.1 * grads.flat
    assert X.shape[1] % 25 != 0  # a short last batch is part of the test
    assert result.cost == pytest.approx(total / X.shape[1], rel=1e-14)
    np.testing.assert_array_equal(params.flat, replay.flat)


def test_batches_cover_every_example_once():
    X = np.arange(20.0).reshape(2, 10)
    Y = X[:1]
    seen = np.concatenate([Yb[0] for _, Yb, _ in batches(X, Y, np.arange(10), 3, np.random.default_rng(0))])
    assert sorted(seen) == list(range(10))


def test_seeded_training_is_reproducible_and_resumable():
    plan = Plan(6, 0.01, batch_size=16, seed=3, dropout=0.2)
    net, a, X, Y = setup()
    sa = Adam().init_state(a.flat.size, np.float64)
    full = [r.cost for r in train_epochs(net, a, Adam(), sa, X, Y, plan)]
    _, b, _, _ = setup()
    sb = Adam().init_state(b.flat.size, np.float64)
    first = [r.cost for r in train_epochs(net, b, Adam(), sb, X, Y, Plan(3, 0.01, 16, seed=3, dropout=0.2))]
    rest = [r.cost for r in train_epochs(net, b, Adam(), sb, X, Y, plan, start_epoch=3)]
    assert first + rest == full
    np.testing.assert_array_equal(a.flat, b.flat)


def test_training_learns_in_float32_too():
    net, params, X, Y = setup(dtype=np.float32)
    state = Adam().init_state(params.flat.size, np.float32)
    costs = [r.cost for r in train_epochs(net, params, Adam(), state, X, Y, Plan(200, 0.02, 16))]
    assert params.flat.dtype == np.float32
    assert costs[-1] < 0.5 * costs[0]
