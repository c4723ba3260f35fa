import numpy as np
import pytest

from snn.core.optimizers import OPTIMIZERS, Adam, GradientDescent, Momentum, RMSProp, make_optimizer


def textbook(name, p, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Each rule written out plainly, for comparison."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        if name == "gd":
            p = p - lr * g
        elif name == "momentum":
            v = b1 * v + (1 - b1) * g
            p = p - lr * v
        elif name == "rmsprop":
            v = b2 * v + (1 - b2) * g * g
            p = p - lr * g / (np.sqrt(v) + eps)
        else:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


OPTS = {"gd": GradientDescent(), "momentum": Momentum(0.9), "rmsprop": RMSProp(0.999), "adam": Adam()}


@pytest.mark.parametrize("name", list(OPTS))
def test_rule_matches_textbook(name):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(50)
    grads = [rng.standard_normal(50) for _ in range(7)]
    opt = OPTS[name]
    p, state = p0.copy(), opt.init_state(50, np.float64)
    for g in grads:
        opt.step(p, g, state, 0.01)
    np.testing.assert_allclose(p, textbook(name, p0, grads, 0.01), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(OPTS))
def test_slices_update_like_the_whole(name):
    """Elementwise rules: a neuron's row can be updated on its own."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal(40)
    grads = [rng.standard_normal(40) for _ in range(3)]
    opt = OPTS[name]
    whole, sw = p.copy(), opt.init_state(40, np.float64)
    parts = [p[:15].copy(), p[15:].copy()]
    states = [opt.init_state(15, np.float64), opt.init_state(25, np.float64)]
    for g in grads:
        opt.step(whole, g, sw, 0.05)
        opt.step(parts[0], g[:15], states[0], 0.05)
        opt.step(parts[1], g[15:], states[1], 0.05)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-13)


def test_adam_state_carries_across_calls_and_counts_steps():
    opt = Adam()
    state = opt.init_state(3, np.float64)
    p = np.zeros(3)
    for _ in range(4):
        opt.step(p, np.ones(3), state, 0.1)
    assert int(state["t"][0]) == 4
    # First Adam step with bias correction moves every weight by ~lr.
    q, s2 = np.zeros(3), opt.init_state(3, np.float64)
    opt.step(q, np.array([5.0, -0.1, 1e-3]), s2, 0.1)
    np.testing.assert_allclose(q, [-0.1, 0.1, -0.1], rtol=1e-4)


def test_float32_buffers_stay_float32():
    for opt in OPTS.values():
        p = np.ones(8, np.float32)
        state = opt.init_state(8, np.float32)
        opt.step(p, np.ones(8, np.float32), state, 0.01)
        assert p.dtype == np.float32


def test_registry():
    assert set(OPTIMIZERS) == {"gd", "momentum", "rmsprop", "adam"}
    assert make_optimizer("adam", beta1=0.8).beta1 == 0.8
    with pytest.raises(ValueError, match="allowed: gd, momentum, rmsprop, adam"):
        make_optimizer("sgd")
