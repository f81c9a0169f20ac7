"""Neural networks written from scratch in NumPy, for the backpropagation chapter.

* :class:`TwoLayerNet`: the classic two-layer assignment network (ReLU hidden
  layer, softmax output), with its exact API, initialisation order and
  training loop, so results are comparable with the assignment's.
* :class:`MLP`: an L-layer perceptron in float64 with any activation of
  :mod:`analysis.symbolic`, whose backward pass is a line-by-line transcription
  of the chapter's equations (eq-forward … eq-batch-mean).
* :func:`train_in_stages`: one training run of a :class:`TwoLayerNet`,
  paused at checkpoints (a sweep over the number of iterations for free).
* :func:`numerical_gradient`, :func:`relative_error`, :func:`gradient_check`:
  central finite differences and the comparison with analytic gradients.
* :func:`layer_norm_forward`, :func:`layer_norm_backward`: layer
  normalization (eq-layernorm-…) for the MNIST chapter's numerical check.
* :func:`weights_as_images`, :func:`image_grid`: first-layer weights as
  pictures (the plotting itself lives in ``analysis.plots``).

Everything is vectorised over the examples: no Python loop runs over samples.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from analysis import symbolic

# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------


def _log_softmax(scores: np.ndarray, axis: int) -> np.ndarray:
    """log softmax along ``axis``, stable for any scores: subtracting the
    maximum first keeps every exponential at most 1."""
    shifted = scores - scores.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _check_labels(y: np.ndarray, num_examples: int, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (num_examples,):
        raise ValueError(f"labels must have shape ({num_examples},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if num_examples and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {y.min()}..{y.max()}")
    return y


# ---------------------------------------------------------------------------
# The classic two-layer network
# ---------------------------------------------------------------------------


class TwoLayerNet:
    """Input → fully connected → ReLU → fully connected → softmax.

    The loss is L = (1/N) Σᵢ −log softmax(zᵢ)[yᵢ] + reg·(‖W1‖²_F + ‖W2‖²_F),
    with no ½ in front of the regularisation (so its gradient is 2·reg·W).

    Parameters live in ``self.params`` under ``W1`` (D, H), ``b1`` (H,),
    ``W2`` (H, C), ``b2`` (C,). The constructor draws them from NumPy's
    *global* random generator, in the order W1, b1, W2, b2, exactly as the
    assignment does, so ``np.random.seed`` before construction reproduces its
    numbers.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, std: float = 1e-4):
        self.params = {}
        self.params["W1"] = std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

    def loss(self, X: np.ndarray, y: np.ndarray | None = None, reg: float = 0.0):
        """Scores, or the loss and its gradients.

        Args:
            X: inputs, shape (N, D).
            y: integer labels in [0, C), shape (N,); ``None`` to get scores.
            reg: regularisation strength.

        Returns:
            the scores, shape (N, C), when ``y`` is None; otherwise
            ``(loss, grads)`` with ``grads`` keyed like ``params``.
        """
        W1, b1, W2, b2 = (self.params[key] for key in ("W1", "b1", "W2", "b2"))
        num_examples = X.shape[0]

        hidden = np.maximum(0.0, X @ W1 + b1)
        scores = hidden @ W2 + b2
        if y is None:
            return scores
        y = _check_labels(y, num_examples, scores.shape[1])

        log_probabilities = _log_softmax(scores, axis=1)
        rows = np.arange(num_examples)
        data_loss = -log_probabilities[rows, y].mean()
        loss = data_loss + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

        # Backward pass: softmax with cross-entropy gives (p − y)/N for the
        # scores; the ReLU lets the gradient through where it was active.
        dscores = np.exp(log_probabilities)
        dscores[rows, y] -= 1.0
        dscores /= num_examples
        grads = {
            "W2": hidden.T @ dscores + 2.0 * reg * W2,
            "b2": dscores.sum(axis=0),
        }
        dhidden = dscores @ W2.T
        dhidden[hidden <= 0] = 0.0
        grads["W1"] = X.T @ dhidden + 2.0 * reg * W1
        grads["b1"] = dhidden.sum(axis=0)
        return loss, grads

    def train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        learning_rate: float = 1e-3,
        learning_rate_decay: float = 0.95,
        reg: float = 5e-6,
        num_iters: int = 100,
        batch_size: int = 200,
        verbose: bool = False,
    ) -> dict[str, list[float]]:
        """Mini-batch stochastic gradient descent.

        Each iteration draws ``batch_size`` examples *with replacement* from
        NumPy's global generator and takes one step. An epoch is
        ``max(num_train / batch_size, 1)`` iterations; at the first iteration
        of every epoch (iteration 0 included, as in the assignment) the
        accuracies are recorded — training accuracy on the current mini-batch,
        validation accuracy on all of ``X_val`` — and the learning rate is
        multiplied by ``learning_rate_decay``.

        Returns:
            ``{"loss_history": [...], "train_acc_history": [...],
            "val_acc_history": [...]}``: the loss of every iteration and the
            accuracies of every epoch.
        """
        num_train = X.shape[0]
        iterations_per_epoch = max(num_train / batch_size, 1)
        loss_history, train_acc_history, val_acc_history = [], [], []

        for iteration in range(num_iters):
            batch = np.random.choice(num_train, batch_size, replace=True)
            X_batch, y_batch = X[batch], y[batch]
            loss, grads = self.loss(X_batch, y=y_batch, reg=reg)
            loss_history.append(float(loss))
            for name in self.params:
                self.params[name] -= learning_rate * grads[name]

            if verbose and iteration % 100 == 0:
                print(f"iteration {iteration} / {num_iters}: loss {loss:.6f}")

            # Integer division of floats marks the first iteration of each
            # epoch; for a whole number of iterations per epoch this is the
            # assignment's `iteration % iterations_per_epoch == 0`.
            starts_epoch = iteration == 0 or (
                iteration // iterations_per_epoch != (iteration - 1) // iterations_per_epoch
            )
            if starts_epoch:
                train_acc_history.append(float((self.predict(X_batch) == y_batch).mean()))
                val_acc_history.append(float((self.predict(X_val) == y_val).mean()))
                learning_rate *= learning_rate_decay

        return {
            "loss_history": loss_history,
            "train_acc_history": train_acc_history,
            "val_acc_history": val_acc_history,
        }

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class with the highest score for each row of ``X``, shape (N,)."""
        return np.argmax(self.loss(X), axis=1)


# ---------------------------------------------------------------------------
# An L-layer perceptron that transcribes the chapter's equations
# ---------------------------------------------------------------------------


class MLP:
    """An L-layer perceptron in float64 with a softmax output.

    Written in the chapter's column convention: an example is a column
    vector, W^l has shape (n_l, n_{l-1}) and b^l shape (n_l,), and a batch is
    the matrix whose N columns are the examples (``X.T``). Hidden layers apply
    the activation ``activation`` (one of ``analysis.symbolic``'s names, with
    its lambdified f and f'); the last layer is affine, followed by softmax
    and cross-entropy.

    Args:
        layer_sizes: (n_0, n_1, …, n_L): inputs, hidden widths, classes.
        activation: "relu", "tanh", "sigmoid" or "lecun".
        weight_scale: standard deviation of the initial weights; ``None``
            means 1/√n_{l-1} for each layer.
        seed: seed of the private generator that draws the weights (the
            global NumPy generator is not touched).

    ``params`` holds ``W1``, ``b1``, …, ``WL``, ``bL`` (biases start at 0).
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str = "tanh",
        weight_scale: float | None = None,
        seed: int = 0,
    ):
        layer_sizes = [int(size) for size in layer_sizes]
        if len(layer_sizes) < 2 or min(layer_sizes) < 1:
            raise ValueError(
                f"layer_sizes needs at least an input and an output size, all positive; got {layer_sizes}"
            )
        self.layer_sizes = tuple(layer_sizes)
        self.activation = symbolic.canonical_activation_name(activation)
        self._f, self._f_prime = symbolic.numeric_activation(self.activation)
        generator = np.random.default_rng(seed)
        self.params = {}
        for layer, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
            scale = 1.0 / np.sqrt(fan_in) if weight_scale is None else weight_scale
            self.params[f"W{layer}"] = scale * generator.standard_normal((fan_out, fan_in))
            self.params[f"b{layer}"] = np.zeros(fan_out)

    @property
    def num_layers(self) -> int:
        """L, the number of affine layers."""
        return len(self.layer_sizes) - 1

    def _forward(self, X: np.ndarray):
        """Pre-activations z^l and activations a^l for l = 0 … L (eq-forward);
        a^0 is the input batch as columns and z^L the output scores."""
        activations = [np.asarray(X, dtype=np.float64).T]
        pre_activations = [None]
        for layer in range(1, self.num_layers + 1):
            z = self.params[f"W{layer}"] @ activations[-1] + self.params[f"b{layer}"][:, None]
            pre_activations.append(z)
            activations.append(self._f(z) if layer < self.num_layers else z)
        return pre_activations, activations

    def loss(self, X: np.ndarray, y: np.ndarray | None = None, reg: float = 0.0):
        """Scores (N, C) when ``y`` is None, else ``(loss, grads)``.

        The loss is the mean cross-entropy (eq-loss, eq-batch-mean) plus
        reg·Σ_l ‖W^l‖²_F, the same convention as :class:`TwoLayerNet`.
        Gradients follow the equations one by one:

        * δ^L = p − y per example (eq-output-delta);
        * δ^l = ((W^{l+1})ᵀ δ^{l+1}) ⊙ f'(z^l) (eq-hidden-delta);
        * ∂L/∂W^l = (1/N) Σ_n δ^{l,(n)} (a^{l−1,(n)})ᵀ, a matrix product over
          the batch columns (eq-weight-grad, eq-batch-mean);
        * ∂L/∂b^l = (1/N) Σ_n δ^{l,(n)} (eq-bias-grad, eq-batch-mean).
        """
        pre_activations, activations = self._forward(X)
        scores = activations[-1]
        if y is None:
            return scores.T.copy()
        num_examples = scores.shape[1]
        y = _check_labels(y, num_examples, scores.shape[0])

        log_probabilities = _log_softmax(scores, axis=0)
        columns = np.arange(num_examples)
        weights = [self.params[f"W{layer}"] for layer in range(1, self.num_layers + 1)]
        loss = -log_probabilities[y, columns].mean() + reg * sum(np.sum(W * W) for W in weights)

        one_hot = np.zeros_like(scores)
        one_hot[y, columns] = 1.0
        delta = np.exp(log_probabilities) - one_hot  # eq-output-delta, one column per example
        grads = {}
        for layer in range(self.num_layers, 0, -1):
            W = self.params[f"W{layer}"]
            grads[f"W{layer}"] = delta @ activations[layer - 1].T / num_examples + 2.0 * reg * W
            grads[f"b{layer}"] = delta.sum(axis=1) / num_examples
            if layer > 1:
                delta = (W.T @ delta) * self._f_prime(pre_activations[layer - 1])  # eq-hidden-delta
        return float(loss), {name: grads[name] for name in self.params}

    def loss_and_gradients(self, X: np.ndarray, y: np.ndarray):
        """The unregularised loss and its gradients, ``(loss, grads)``."""
        return self.loss(X, y, reg=0.0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class with the highest score for each row of ``X``, shape (N,)."""
        return np.argmax(self.loss(X), axis=1)


def train_in_stages(
    net: TwoLayerNet,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    checkpoints: Sequence[int],
    on_checkpoint: Callable[[int, TwoLayerNet], None] | None = None,
    learning_rate: float = 1e-3,
    learning_rate_decay: float = 0.95,
    reg: float = 5e-6,
    batch_size: int = 200,
) -> dict[str, list[float]]:
    """:meth:`TwoLayerNet.train` for ``checkpoints[-1]`` iterations, pausing at
    each checkpoint to call ``on_checkpoint(iterations_done, net)``.

    This is how a hyper-parameter sweep gets the network after 1,000, 2,000
    and 3,000 iterations from one run instead of three. It calls ``net.train``
    once per stage, and the result is *bit for bit* the single long run: the
    mini-batches come from NumPy's global generator in the same order, and
    the learning rate handed to the next stage is decayed by the same
    sequence of multiplications that ``train`` performs. That holds only if
    every stage but the last ends on an epoch boundary, because ``train``
    starts counting epochs afresh at each call; other checkpoints raise
    ``ValueError``.

    Returns the concatenated histories, as ``train`` does.
    """
    checkpoints = [int(c) for c in checkpoints]
    if not checkpoints or checkpoints[0] <= 0 or any(b <= a for a, b in zip(checkpoints, checkpoints[1:])):
        raise ValueError(f"checkpoints must be positive and increasing, got {checkpoints}")
    iterations_per_epoch = max(X.shape[0] / batch_size, 1)
    misaligned = [c for c in checkpoints[:-1] if not float(c / iterations_per_epoch).is_integer()]
    if misaligned:
        raise ValueError(
            f"checkpoints {misaligned} do not end an epoch of {iterations_per_epoch:g} iterations; "
            "staged training would then differ from one long run"
        )
    history = {"loss_history": [], "train_acc_history": [], "val_acc_history": []}
    done = 0
    for checkpoint in checkpoints:
        stage = checkpoint - done
        stats = net.train(
            X, y, X_val, y_val,
            learning_rate=learning_rate, learning_rate_decay=learning_rate_decay,
            reg=reg, num_iters=stage, batch_size=batch_size,
        )
        for key in history:
            history[key] += stats[key]
        # Replay train's decay rule over the stage, multiplication by
        # multiplication, so the next stage starts from the identical rate.
        for iteration in range(stage):
            if iteration == 0 or iteration // iterations_per_epoch != (iteration - 1) // iterations_per_epoch:
                learning_rate *= learning_rate_decay
        done = checkpoint
        if on_checkpoint is not None:
            on_checkpoint(checkpoint, net)
    return history


# ---------------------------------------------------------------------------
# Gradient checking
# ---------------------------------------------------------------------------


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central finite differences of a scalar function, over every entry of x.

    ``grad[i] = (f(x + h·e_i) − f(x − h·e_i)) / (2h)``. ``x`` must be a float
    array; it is perturbed *in place* (so ``f`` may ignore its argument and
    read a network's parameters instead) and restored exactly afterwards.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError("numerical_gradient needs a float NumPy array to perturb in place")
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        above = f(x)
        x[index] = original - h
        below = f(x)
        x[index] = original
        gradient[index] = (above - below) / (2.0 * h)
    return gradient


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """The largest entry-wise relative error, the assignments' standard form:
    ``max(|a − b| / max(1e-8, |a| + |b|))``.

    The 1e-8 floor keeps entries where both gradients are (nearly) zero from
    dividing by zero; such entries then count with their absolute error / 1e-8.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def gradient_check(net, X: np.ndarray, y: np.ndarray, reg: float = 0.0, h: float = 1e-5) -> dict[str, float]:
    """Compare a network's analytic gradients with central finite differences.

    ``net`` is any object with a ``params`` dict of float arrays and a
    ``loss(X, y, reg)`` method returning ``(loss, grads)``: a
    :class:`TwoLayerNet` or an :class:`MLP`. Returns
    ``{parameter name: relative_error(analytic, numerical)}``.
    """
    _, analytic = net.loss(X, y, reg=reg)
    errors = {}
    for name, parameter in net.params.items():
        numerical = numerical_gradient(lambda _: net.loss(X, y, reg=reg)[0], parameter, h=h)
        errors[name] = relative_error(analytic[name], numerical)
    return errors


class MLPGradientCheck(NamedTuple):
    """One row of the chapter's table "analytic vs finite differences"."""

    activation: str
    errors: dict  # parameter name -> relative_error(analytic, numerical)
    max_error: float
    draws: int  # problems drawn until one was well conditioned (see below)


def mlp_gradient_check(
    activation: str,
    layer_sizes: Sequence[int] = (4, 5, 5, 3),
    num_examples: int = 3,
    seed: int = 0,
    h: float = 1e-5,
    min_gradient: float = 1e-3,
    kink_margin: float = 1e-3,
    max_draws: int = 1000,
) -> MLPGradientCheck:
    """Gradient check of a small random :class:`MLP` with one activation.

    Central differences in float64 carry an absolute error of about
    1e-11 (rounding in the loss divided by 2h), so an entry of the gradient
    near 0 has a large *relative* error however right the analytic gradient
    is; and ReLU's derivative jumps at 0, so a pre-activation within h of 0
    makes the finite difference straddle the kink. We therefore draw random
    problems (weights, inputs, labels from ``seed``) until one is well
    conditioned — every analytic gradient entry is exactly 0 or at least
    ``min_gradient`` in size, and (for ReLU) every hidden pre-activation is
    at least ``kink_margin`` from 0 — judged from the forward pass and the
    analytic gradients only, never from the comparison itself. Then every
    parameter is compared with :func:`gradient_check`.
    """
    generator = np.random.default_rng(seed)
    for draw in range(1, max_draws + 1):
        net = MLP(layer_sizes, activation, seed=int(generator.integers(2**31)))
        X = generator.standard_normal((num_examples, net.layer_sizes[0]))
        y = generator.integers(0, net.layer_sizes[-1], num_examples)
        pre_activations, _ = net._forward(X)
        near_kink = net.activation == "relu" and any(
            np.min(np.abs(z)) < kink_margin for z in pre_activations[1:-1]
        )
        _, analytic = net.loss(X, y)
        tiny = any(np.any((np.abs(g) < min_gradient) & (g != 0)) for g in analytic.values())
        if not (near_kink or tiny):
            errors = gradient_check(net, X, y, reg=0.0, h=h)
            return MLPGradientCheck(net.activation, errors, max(errors.values()), draw)
    raise RuntimeError(
        f"no well-conditioned problem in {max_draws} draws; lower min_gradient or use fewer layers"
    )


# ---------------------------------------------------------------------------
# Layer normalization
# ---------------------------------------------------------------------------


def layer_norm_forward(a: np.ndarray, gain: np.ndarray, bias: np.ndarray, epsilon: float = 1e-3):
    """Layer normalization over the last axis (eq-layernorm-mean … -affine).

    μ and σ = √(population variance + ε) are taken per example over the units;
    ``epsilon`` defaults to Keras' ``LayerNormalization`` default. Returns
    ``(y, cache)``; ``cache`` feeds :func:`layer_norm_backward`.
    """
    a = np.asarray(a, dtype=np.float64)
    mean = a.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(a.var(axis=-1, keepdims=True) + epsilon)
    normalized = (a - mean) / sigma
    return gain * normalized + bias, (normalized, sigma, np.asarray(gain, dtype=np.float64))


def layer_norm_backward(upstream: np.ndarray, cache):
    """Gradients of layer normalization, from eq-layernorm-backward:
    ∂L/∂a = (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)) / σ with ĝ = g ⊙ ∂L/∂y.

    Returns ``(d_input, d_gain, d_bias)``; the gain and bias gradients are
    summed over all leading (example) axes.
    """
    normalized, sigma, gain = cache
    upstream = np.asarray(upstream, dtype=np.float64)
    scaled = gain * upstream
    d_input = (
        scaled
        - scaled.mean(axis=-1, keepdims=True)
        - normalized * (scaled * normalized).mean(axis=-1, keepdims=True)
    ) / sigma
    leading = tuple(range(upstream.ndim - 1))
    return d_input, (upstream * normalized).sum(axis=leading), upstream.sum(axis=leading)


# ---------------------------------------------------------------------------
# First-layer weights as pictures
# ---------------------------------------------------------------------------


def weights_as_images(W1: np.ndarray, image_shape: Sequence[int] = (32, 32, 3)) -> np.ndarray:
    """First-layer weights as one image per hidden unit, each scaled to [0, 1].

    ``W1`` has shape (D, H) with D = prod(image_shape), the inputs flattened
    row-major from images of ``image_shape`` (as ``X.reshape(N, -1)`` does).
    Each unit's weights are min-max scaled on their own, so every template
    uses the full grey/colour range; a constant template becomes 0.5.
    Returns shape (H, *image_shape); :func:`image_grid` tiles it.
    """
    W1 = np.asarray(W1, dtype=np.float64)
    image_shape = tuple(int(size) for size in image_shape)
    if W1.ndim != 2 or W1.shape[0] != int(np.prod(image_shape)):
        raise ValueError(
            f"W1 must have shape (prod{image_shape} = {int(np.prod(image_shape))}, hidden); got {W1.shape}"
        )
    images = W1.T.reshape((W1.shape[1], *image_shape))
    axes = tuple(range(1, images.ndim))
    low = images.min(axis=axes, keepdims=True)
    span = images.max(axis=axes, keepdims=True) - low
    scaled = np.divide(images - low, span, out=np.full_like(images, 0.5), where=span > 0)
    return scaled


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 1, fill: float = 1.0) -> np.ndarray:
    """Tile images of shape (K, h, w[, c]) into one picture, row by row.

    ``columns`` defaults to ⌈√K⌉; ``padding`` pixels of value ``fill``
    separate the tiles. Returns shape (rows·(h+p)−p, columns·(w+p)−p[, c]),
    ready for ``imshow``.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        raise ValueError(f"images must have shape (K, h, w) or (K, h, w, c) with K > 0; got {images.shape}")
    count, height, width = images.shape[:3]
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.full(
        (rows * (height + padding) - padding, columns * (width + padding) - padding, *images.shape[3:]),
        fill,
        dtype=np.result_type(images.dtype, np.float64),
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top : top + height, left : left + width] = images[index]
    return grid
