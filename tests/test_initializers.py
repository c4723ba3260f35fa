import numpy as np
import pytest

from snn.core.initializers import INITIALIZERS, initial_weights


def test_legacy_mode_reproduces_the_course_draws():
    sizes = [5, 4, 3, 1]
    legacy = initial_weights(sizes, "xavier", seed=1, mode="legacy")
    np.random.seed(1)  # the course notebook, verbatim
    course = [np.random.randn(sizes[l], sizes[l - 1]) / np.sqrt(sizes[l - 1]) for l in range(1, len(sizes))]
    for ours, theirs in zip(legacy, course):
        np.testing.assert_array_equal(ours, theirs)


def test_legacy_scaled_matches_the_two_layer_notebook():
    W1, W2 = initial_weights([3, 2, 1], "scaled", seed=1, mode="legacy")
    np.random.seed(1)
    np.testing.assert_array_equal(W1, np.random.randn(2, 3) * 0.01)
    np.testing.assert_array_equal(W2, np.random.randn(1, 2) * 0.01)
    assert W1[0, 0] == pytest.approx(0.01624345363663242)


@pytest.mark.parametrize("name, std", [("scaled", lambda n: 0.01), ("xavier", lambda n: 1 / np.sqrt(n)),
                                       ("he", lambda n: np.sqrt(2 / n))])
def test_normal_initializers_have_their_scale(name, std):
    (W,) = initial_weights([400, 300], name, seed=3)
    assert W.shape == (300, 400)
    assert W.std() == pytest.approx(std(400), rel=0.02)


def test_glorot_uniform_bounds():
    (W,) = initial_weights([100, 50], "glorot_uniform", seed=0)
    r = np.sqrt(6 / 150)
    assert W.min() >= -r and W.max() <= r and W.max() > 0.9 * r


def test_seeded_and_distinct():
    a = initial_weights([10, 5], "he", seed=7)[0]
    assert np.array_equal(a, initial_weights([10, 5], "he", seed=7)[0])
    assert not np.array_equal(a, initial_weights([10, 5], "he", seed=8)[0])


def test_every_registered_initializer_draws():
    for name in INITIALIZERS:
        assert initial_weights([3, 2], name, 0)[0].shape == (2, 3)
    with pytest.raises(ValueError, match="allowed: scaled, xavier, he, glorot_uniform"):
        initial_weights([3, 2], "lecun", 0)
