import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def optimized(opt, p0, grads, lr):
    """``p0`` after one ``opt.step`` per gradient, from a fresh state."""
    p, state = p0.copy(), opt.init_state(p0.size, p0.dtype)
    for g in grads:
        opt.step(p, g, state, lr)
    return p


def problem(seed, n, steps):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), [rng.standard_normal(n) for _ in range(steps)]


@pytest.mark.parametrize("name", list(OPTS))
def test_rule_matches_textbook(name):
    p0, grads = problem(0, 50, 7)
    np.testing.assert_allclose(optimized(OPTS[name], p0, grads, 0.01), textbook(name, p0, grads, 0.01),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(OPTS))
def test_slices_update_like_the_whole(name):
    """Elementwise rules: a neuron's row can be updated on its own."""
    p0, grads = problem(1, 40, 3)
    opt = OPTS[name]
    head = optimized(opt, p0[:15], [g[:15] for g in grads], 0.05)
    tail = optimized(opt, p0[15:], [g[15:] for g in grads], 0.05)
    np.testing.assert_allclose(np.concatenate([head, tail]), optimized(opt, p0, grads, 0.05), rtol=1e-13)


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


@pytest.mark.parametrize("name", list(OPTS))
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), steps=st.integers(1, 4),
       lr=st.floats(1e-4, 1.0))
@settings(max_examples=25, deadline=None)
def test_out_of_place_step_equals_in_place_and_leaves_inputs(name, seed, n, steps, lr):
    # The runtime's functions update into fresh buffers: the version they read must not change.
    opt = OPTS[name]
    p0, grads = problem(seed, n, steps)
    p, state = p0.copy(), opt.init_state(n, p0.dtype)
    q, other = p0.copy(), opt.init_state(n, p0.dtype)
    for g in grads:
        opt.step(p, g, state, lr)
        before = (q.copy(), {k: v.copy() for k, v in other.items()})
        q_new, other_new = np.empty_like(q), {k: np.empty_like(v) for k, v in other.items()}
        opt.step(q, g, other, lr, out=(q_new, other_new))
        assert np.array_equal(q, before[0]) and all(np.array_equal(other[k], before[1][k]) for k in other)
        q, other = q_new, other_new
    assert np.array_equal(p, q)
    assert all(np.array_equal(state[k], other[k]) for k in state)
