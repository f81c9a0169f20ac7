"""The NumPy networks: the classic two-layer net, the L-layer MLP, gradient checks."""

import numpy as np
import pytest

from analysis import scratch, symbolic


def toy_problem():
    """The assignment's toy problem: 5 samples, 4 features, 10 hidden, 3 classes."""
    np.random.seed(0)
    net = scratch.TwoLayerNet(4, 10, 3, std=1e-1)
    np.random.seed(1)
    X = 10 * np.random.randn(5, 4)
    y = np.array([0, 1, 2, 2, 1])
    return net, X, y


# --- TwoLayerNet -----------------------------------------------------------


def test_initialisation_uses_the_global_generator_in_order():
    np.random.seed(7)
    net = scratch.TwoLayerNet(6, 4, 3, std=0.5)
    np.random.seed(7)
    W1 = 0.5 * np.random.randn(6, 4)
    W2 = 0.5 * np.random.randn(4, 3)
    np.testing.assert_array_equal(net.params["W1"], W1)
    np.testing.assert_array_equal(net.params["W2"], W2)
    assert set(net.params) == {"W1", "b1", "W2", "b2"}
    assert net.params["b1"].shape == (4,) and not net.params["b1"].any()
    assert net.params["b2"].shape == (3,) and not net.params["b2"].any()


def test_toy_scores_and_loss_match_the_assignment():
    net, X, y = toy_problem()
    scores = net.loss(X)
    assert scores.shape == (5, 3)
    correct_scores = np.array(
        [
            [-0.81233741, -1.27654624, -0.70335995],
            [-0.17129677, -1.18803311, -0.47310444],
            [-0.51590475, -1.01354314, -0.8504215],
            [-0.15419291, -0.48629638, -0.52901952],
            [-0.00618733, -0.12435261, -0.15226949],
        ]
    )
    np.testing.assert_allclose(scores, correct_scores, atol=1e-7)
    loss, grads = net.loss(X, y, reg=0.05)
    assert abs(loss - 1.30378789133) < 1e-10
    assert {name: g.shape for name, g in grads.items()} == {
        name: p.shape for name, p in net.params.items()
    }


def test_regularisation_has_no_half():
    net, X, y = toy_problem()
    plain, _ = net.loss(X, y, reg=0.0)
    regularised, _ = net.loss(X, y, reg=0.3)
    penalty = np.sum(net.params["W1"] ** 2) + np.sum(net.params["W2"] ** 2)
    assert regularised - plain == pytest.approx(0.3 * penalty, rel=1e-12)


def test_two_layer_gradients_match_finite_differences():
    net, X, y = toy_problem()
    errors = scratch.gradient_check(net, X, y, reg=0.05)
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    assert max(errors.values()) < 1e-8, errors


def test_a_broken_gradient_fails_the_check():
    class ForgetsTheTwo(scratch.TwoLayerNet):
        """Differentiates reg·‖W2‖² as reg·W2: the classic mistake."""

        def loss(self, X, y=None, reg=0.0):
            result = super().loss(X, y, reg)
            if y is None:
                return result
            loss, grads = result
            grads["W2"] = grads["W2"] - reg * self.params["W2"]
            return loss, grads

    net, X, y = toy_problem()
    broken = ForgetsTheTwo(4, 10, 3)
    broken.params = net.params
    errors = scratch.gradient_check(broken, X, y, reg=0.05)
    assert errors["W2"] > 1e-4
    assert errors["W1"] < 1e-8


def test_toy_training_reaches_low_loss():
    net, X, y = toy_problem()
    stats = net.train(X, y, X, y, learning_rate=1e-1, reg=5e-6, num_iters=100, verbose=False)
    assert len(stats["loss_history"]) == 100
    assert stats["loss_history"][-1] < 0.02
    # One epoch is max(5 / 200, 1) = 1 iteration: accuracies every iteration.
    assert len(stats["train_acc_history"]) == len(stats["val_acc_history"]) == 100
    assert net.predict(X).tolist() == y.tolist()


@pytest.mark.parametrize("num_train, iterations, epochs", [(1000, 12, 3), (500, 10, 4)])
def test_epochs_are_counted_in_iterations(num_train, iterations, epochs):
    # 1000/200 = 5 iterations per epoch: epochs start at 0, 5, 10.
    # 500/200 = 2.5: epochs start at iterations 0, 3, 5, 8.
    np.random.seed(3)
    X = np.random.randn(num_train, 6)
    y = np.random.randint(0, 3, num_train)
    net = scratch.TwoLayerNet(6, 5, 3)
    stats = net.train(X, y, X[:50], y[:50], num_iters=iterations, batch_size=200)
    assert len(stats["val_acc_history"]) == epochs
    assert len(stats["loss_history"]) == iterations


def test_learning_rate_decays_once_per_epoch():
    class ConstantGradient(scratch.TwoLayerNet):
        """Every gradient is 1, so each step moves b2 by exactly -learning rate."""

        def loss(self, X, y=None, reg=0.0):
            if y is None:
                return super().loss(X)
            return 0.0, {name: np.ones_like(p) for name, p in self.params.items()}

    np.random.seed(0)
    X = np.random.randn(400, 4)
    y = np.random.randint(0, 3, 400)
    net = ConstantGradient(4, 5, 3)
    net.train(X, y, X, y, learning_rate=1.0, learning_rate_decay=0.5, num_iters=4, batch_size=200)
    # 400 / 200 = 2 iterations per epoch. The rate decays after iterations
    # 0 and 2 (the first of each epoch): steps of 1, 0.5, 0.5, 0.25.
    np.testing.assert_allclose(net.params["b2"], -2.25)


def test_fully_vectorised_on_cifar_sized_input():
    generator = np.random.default_rng(0)
    X = generator.standard_normal((10_000, 3_072), dtype=np.float32)
    y = generator.integers(0, 10, 10_000)
    net = scratch.TwoLayerNet(3_072, 50, 10)
    assert net.loss(X).shape == (10_000, 10)
    loss, grads = net.loss(X, y, reg=0.1)
    assert np.isfinite(loss) and grads["W1"].shape == (3_072, 50)
    assert net.predict(X).shape == (10_000,)


def test_labels_are_validated():
    net, X, _ = toy_problem()
    with pytest.raises(ValueError, match="labels"):
        net.loss(X, np.array([0, 1, 2, 3, 1]))


# --- MLP -------------------------------------------------------------------


@pytest.mark.parametrize("activation", symbolic.ACTIVATION_NAMES)
def test_mlp_gradients_match_finite_differences(activation):
    result = scratch.mlp_gradient_check(activation, seed=0)
    assert result.activation == activation
    assert set(result.errors) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert result.max_error < 1e-7, result


@pytest.mark.parametrize("activation", symbolic.ACTIVATION_NAMES)
def test_mlp_gradients_on_a_fixed_problem(activation):
    net = scratch.MLP([3, 4, 3], activation, seed=5)
    X = np.array([[0.7, -1.2, 0.4], [-0.3, 0.8, 1.5]])
    y = np.array([2, 0])
    loss, grads = net.loss_and_gradients(X, y)
    assert np.isfinite(loss) and set(grads) == set(net.params)
    errors = scratch.gradient_check(net, X, y, reg=0.01)
    assert max(errors.values()) < 1e-6, errors


def test_mlp_equals_two_layer_net_with_relu():
    net, X, y = toy_problem()
    mlp = scratch.MLP([4, 10, 3], "relu")
    mlp.params = {
        "W1": net.params["W1"].T.copy(),
        "b1": net.params["b1"].copy(),
        "W2": net.params["W2"].T.copy(),
        "b2": net.params["b2"].copy(),
    }
    np.testing.assert_allclose(mlp.loss(X), net.loss(X), atol=1e-12)
    loss, grads = net.loss(X, y, reg=0.05)
    mlp_loss, mlp_grads = mlp.loss(X, y, reg=0.05)
    assert mlp_loss == pytest.approx(loss, rel=1e-12)
    for name in ("W1", "W2"):
        np.testing.assert_allclose(mlp_grads[name], grads[name].T, atol=1e-12)
    for name in ("b1", "b2"):
        np.testing.assert_allclose(mlp_grads[name], grads[name], atol=1e-12)
    np.testing.assert_array_equal(mlp.predict(X), net.predict(X))


def test_a_broken_mlp_gradient_fails_the_check():
    class SkipsTheDerivative(scratch.MLP):
        """Backpropagates as if f' were 1 everywhere."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._f_prime = np.ones_like

    X = np.array([[0.7, -1.2, 0.4], [-0.3, 0.8, 1.5]])
    y = np.array([2, 0])
    errors = scratch.gradient_check(SkipsTheDerivative([3, 4, 3], "tanh", seed=5), X, y)
    assert errors["W1"] > 1e-3
    assert errors["W2"] < 1e-7


def test_mlp_shapes_and_arguments():
    net = scratch.MLP([5, 7, 6, 4], "sigmoid")
    assert net.num_layers == 3
    assert {name: p.shape for name, p in net.params.items()} == {
        "W1": (7, 5), "b1": (7,), "W2": (6, 7), "b2": (6,), "W3": (4, 6), "b3": (4,),
    }
    assert net.loss(np.zeros((9, 5))).shape == (9, 4)
    with pytest.raises(ValueError):
        scratch.MLP([5], "tanh")
    with pytest.raises(ValueError, match="unknown activation"):
        scratch.MLP([5, 3], "swish")


# --- gradient-check helpers ------------------------------------------------


def test_numerical_gradient_of_a_cubic_and_restores_x():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    original = x.copy()
    gradient = scratch.numerical_gradient(lambda v: np.sum(v**3), x)
    np.testing.assert_allclose(gradient, 3 * original**2, rtol=1e-9)
    np.testing.assert_array_equal(x, original)
    with pytest.raises(ValueError):
        scratch.numerical_gradient(lambda v: 0.0, np.array([1, 2]))


def test_relative_error_definition():
    assert scratch.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert scratch.relative_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    # Both zero-ish: the 1e-8 floor in the denominator.
    assert scratch.relative_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2)
    with pytest.raises(ValueError):
        scratch.relative_error(np.zeros(2), np.zeros(3))


# --- layer normalization ---------------------------------------------------


def test_layer_norm_backward_matches_finite_differences():
    generator = np.random.default_rng(0)
    a = generator.standard_normal((4, 5))
    gain, bias = generator.standard_normal(5), generator.standard_normal(5)
    upstream = generator.standard_normal((4, 5))
    y, cache = scratch.layer_norm_forward(a, gain, bias, epsilon=1e-3)
    np.testing.assert_allclose(((y - bias) / gain).mean(axis=1), 0.0, atol=1e-12)
    d_input, d_gain, d_bias = scratch.layer_norm_backward(upstream, cache)

    def objective(_):
        return np.sum(upstream * scratch.layer_norm_forward(a, gain, bias, epsilon=1e-3)[0])

    assert scratch.relative_error(d_input, scratch.numerical_gradient(objective, a)) < 1e-7
    assert scratch.relative_error(d_gain, scratch.numerical_gradient(objective, gain)) < 1e-7
    assert scratch.relative_error(d_bias, scratch.numerical_gradient(objective, bias)) < 1e-7
    # The same numbers as the SymPy-checked formula, row by row.
    normalized, sigma, _ = cache
    for row in range(4):
        formula = symbolic.layernorm_backward_formula(
            normalized[row], gain * upstream[row], sigma[row, 0]
        )
        np.testing.assert_allclose(d_input[row], formula, rtol=1e-12)


# --- weights as images -----------------------------------------------------


def test_weights_as_images():
    generator = np.random.default_rng(0)
    W1 = generator.standard_normal((32 * 32 * 3, 6))
    W1[:, 5] = 2.0
    images = scratch.weights_as_images(W1)
    assert images.shape == (6, 32, 32, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0
    for unit in range(5):
        assert images[unit].min() == 0.0 and images[unit].max() == 1.0
        template = W1[:, unit].reshape(32, 32, 3)
        scaled = (template - template.min()) / (template.max() - template.min())
        np.testing.assert_allclose(images[unit], scaled)
    np.testing.assert_array_equal(images[5], 0.5)
    with pytest.raises(ValueError):
        scratch.weights_as_images(W1[:100])
    grid = scratch.image_grid(images, padding=1)
    assert grid.shape == (2 * 33 - 1, 3 * 33 - 1, 3)  # 6 tiles: 2 rows of 3
    np.testing.assert_array_equal(grid[:32, :32], images[0])


# --- staged training (the sweep over iterations) ----------------------------


def _staged_problem():
    generator = np.random.default_rng(5)
    X = generator.standard_normal((1000, 8))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    return X, y


def test_staged_training_is_one_long_run_bit_for_bit():
    X, y = _staged_problem()
    options = dict(learning_rate=0.05, learning_rate_decay=0.9, reg=1e-3, batch_size=200)
    np.random.seed(11)
    single = scratch.TwoLayerNet(8, 6, 3, std=0.1)
    long_run = single.train(X, y, X[:100], y[:100], num_iters=23, **options)

    np.random.seed(11)
    staged = scratch.TwoLayerNet(8, 6, 3, std=0.1)
    seen = []
    history = scratch.train_in_stages(
        staged, X, y, X[:100], y[:100], checkpoints=[5, 15, 23],
        on_checkpoint=lambda done, net: seen.append((done, net.params["b2"].copy())), **options,
    )
    assert [done for done, _ in seen] == [5, 15, 23]
    assert history == long_run
    for name in single.params:
        np.testing.assert_array_equal(staged.params[name], single.params[name])
    np.testing.assert_array_equal(seen[-1][1], single.params["b2"])


def test_staged_training_refuses_checkpoints_inside_an_epoch():
    X, y = _staged_problem()  # 1000 / 200 = 5 iterations per epoch
    net = scratch.TwoLayerNet(8, 6, 3)
    with pytest.raises(ValueError, match="do not end an epoch"):
        scratch.train_in_stages(net, X, y, X[:10], y[:10], checkpoints=[7, 10])
    with pytest.raises(ValueError, match="increasing"):
        scratch.train_in_stages(net, X, y, X[:10], y[:10], checkpoints=[10, 5])
    # The last checkpoint may end anywhere.
    history = scratch.train_in_stages(net, X, y, X[:10], y[:10], checkpoints=[5, 7])
    assert len(history["loss_history"]) == 7
