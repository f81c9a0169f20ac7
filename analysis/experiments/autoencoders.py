"""Experiments of the autoencoder half of chapters/transfer-autoencoders.qmd.

* :data:`denoising` trains the original exercise's dense autoencoder
  784-128-96-128-784 (ReLU, sigmoid output, binary cross-entropy, pixels in
  [0, 1]) and a small convolutional one to undo salt-and-pepper noise of
  level 0.4, then scores both, and a 3 × 3 median filter, by PSNR and SSIM
  (``skimage.metrics``) against the clean test digits at every noise level
  of the profile;
* :data:`judge` trains a small MNIST CNN on training digits only; it scores
  generated digits ("is this confidently the digit it should be?");
* :data:`generation` trains a plain autoencoder and a variational one on
  clean digits, decodes random noise (the original exercise's attempt),
  measures why that fails, and generates by decoding samples of a per-class
  Gaussian fitted to the codes and of the VAE's prior N(0, I).

Noise always comes from a seeded ``numpy.random.Generator``; the test set is
only scored, never used to choose anything.
"""

from __future__ import annotations

import keras
import numpy as np
from scipy import ndimage

from analysis import data, training
from analysis.models import small_cnn_features
from analysis.runner import experiment

#: The original exercise's noise level and dense architecture.
TRAINING_NOISE = 0.4
DENSE_UNITS = (128, 96, 128)
BATCH_SIZE = 128
#: The median filter's window: the classic remedy for salt-and-pepper noise.
MEDIAN_SIZE = 3
#: A generated digit counts as good when the judge gives its class at least this probability.
CONFIDENCE = 0.9
#: How many digits the grids show per row.
GRID_COLUMNS = 10
DENOISERS = ("noisy", "median", "dense", "conv")
#: The VAE's hidden layer (encoder and decoder alike).
VAE_HIDDEN = 256


# --------------------------------------------------------------------------
# Noise and the quality measures


def salt_and_pepper(images: np.ndarray, level: float, generator: np.random.Generator) -> np.ndarray:
    """Each pixel, with probability ``level``, replaced by 0 or 1 (equally likely).

    ``images`` are floats in [0, 1]; a new array is returned.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"the noise level is a probability; got {level}")
    hit = generator.random(images.shape) < level
    salt = generator.random(images.shape) < 0.5
    return np.where(hit, salt.astype(images.dtype), images).astype(images.dtype)


def psnr(clean: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio for images in [0, 1]: 10·log10(1 / MSE); inf when identical."""
    from skimage.metrics import peak_signal_noise_ratio

    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(np.asarray(clean, np.float64), np.asarray(test, np.float64),
                                             data_range=1.0))


def ssim(clean: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity of two single-channel images in [0, 1]."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(clean, np.float64), np.asarray(test, np.float64),
                                       data_range=1.0))


def median_denoise(images: np.ndarray) -> np.ndarray:
    """A MEDIAN_SIZE × MEDIAN_SIZE median filter on each image (N, 28, 28)."""
    return ndimage.median_filter(images, size=(1, MEDIAN_SIZE, MEDIAN_SIZE))


# --------------------------------------------------------------------------
# Models


def dense_autoencoder(code_units: int = DENSE_UNITS[1]) -> keras.Model:
    """The original exercise's 784-128-96-128-784 network (the code layer is named ``code``)."""
    first, _, last = DENSE_UNITS
    inputs = keras.Input((28 * 28,))
    hidden = keras.layers.Dense(first, activation="relu")(inputs)
    code = keras.layers.Dense(code_units, activation="relu", name="code")(hidden)
    hidden = keras.layers.Dense(last, activation="relu", name="decoder_hidden")(code)
    outputs = keras.layers.Dense(28 * 28, activation="sigmoid", name="decoder_output")(hidden)
    return keras.Model(inputs, outputs, name="dense_autoencoder")


def conv_autoencoder() -> keras.Model:
    """Two convolution + pooling stages down to 7 × 7 × 16, two up-sampling stages back."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu", padding="same"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu", padding="same"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu", padding="same"), layers.UpSampling2D(2),
        layers.Conv2D(32, 3, activation="relu", padding="same"), layers.UpSampling2D(2),
        layers.Conv2D(1, 3, activation="sigmoid", padding="same"),
    ], name="conv_autoencoder")


def decoder_of(autoencoder: keras.Model) -> keras.Model:
    """The dense autoencoder's layers after the code, as a model of their own."""
    code = keras.Input((autoencoder.get_layer("code").units,))
    hidden = autoencoder.get_layer("decoder_hidden")(code)
    return keras.Model(code, autoencoder.get_layer("decoder_output")(hidden), name="decoder")


def encoder_of(autoencoder: keras.Model) -> keras.Model:
    return keras.Model(autoencoder.inputs, autoencoder.get_layer("code").output, name="encoder")


def judge_cnn() -> keras.Model:
    """The transfer sections' convolutions (small_cnn_features), then dropout, Dense(128) and softmax."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)), *small_cnn_features(),
        layers.Dropout(0.3), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax"),
    ], name="judge")


def predict(model, x) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=training.EVALUATION_BATCH_SIZE, verbose=0), dtype=np.float64)


def _digits(run, budget_config: dict, seed: int = 0):
    """MNIST split by the profile's budget, scaled to [0, 1], shape (N, 28, 28).

    Nothing in this chapter is chosen on validation data (every setting is
    fixed in advance), so the budgets hold no images out for it and no fit
    evaluates on it: each validation pass would cost a compilation for a
    number no one reads.
    """
    from analysis.profiles import DataBudget

    parts = data.split(run.data("mnist"), DataBudget(**budget_config), seed=seed)
    return parts, tuple(data.scale01(x)[..., 0] for x in (parts.x_train, parts.x_test))


def _config(profile) -> dict:
    budget = profile.transfer
    return {"data": budget.mnist, "epochs": budget.autoencoder_epochs, "seed": 0,
            "noise_levels": list(budget.noise_levels), "quality_images": budget.quality_images,
            "training_noise": TRAINING_NOISE, "batch_size": BATCH_SIZE}


# --------------------------------------------------------------------------
# Denoising


def train_denoiser(model, kind: str, x_train, generator, epochs: int, seed: int) -> dict:
    """Noisy digits in, clean digits out, binary cross-entropy, Adam."""
    shape = (-1, 28 * 28) if kind == "dense" else (-1, 28, 28, 1)
    noisy_train = salt_and_pepper(x_train, TRAINING_NOISE, generator).reshape(shape)
    training.compile_model(model, keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=())
    training.set_seed(seed)
    return training.fit(model, noisy_train, x_train.reshape(shape), epochs=epochs, batch_size=BATCH_SIZE)


def denoise(model, kind: str, noisy: np.ndarray) -> np.ndarray:
    shape = (-1, 28 * 28) if kind == "dense" else (-1, 28, 28, 1)
    return predict(model, noisy.reshape(shape)).reshape(-1, 28, 28)


def scores(clean: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Per image PSNR and SSIM of every output against the clean digit."""
    return {name: {"psnr": [psnr(c, o) for c, o in zip(clean, images)],
                   "ssim": [ssim(c, o) for c, o in zip(clean, images)]}
            for name, images in outputs.items()}


@experiment(datasets=("mnist",), config=_config)
def denoising(run, config):
    """Both denoisers trained at level 0.4, then scored with the median filter at every level."""
    parts, (x_train, x_test) = _digits(run, config["data"], config["seed"])
    generator = np.random.default_rng(config["seed"])
    training.set_seed(config["seed"])
    models = {"dense": dense_autoencoder(), "conv": conv_autoencoder()}
    histories = {kind: train_denoiser(model, kind, x_train, generator, config["epochs"], config["seed"])
                 for kind, model in models.items()}
    clean = x_test[: config["quality_images"]]
    per_level, grids = [], {}
    for index, level in enumerate(config["noise_levels"]):
        # Each level its own stream, so adding a level leaves the others' noise unchanged.
        noisy = salt_and_pepper(clean, level, np.random.default_rng([config["seed"], index]))
        outputs = {"noisy": noisy, "median": median_denoise(noisy),
                   **{kind: denoise(model, kind, noisy) for kind, model in models.items()}}
        per_level.append(scores(clean, outputs))
        if np.isclose(level, TRAINING_NOISE):
            grids = {f"grid_{name}": images[:GRID_COLUMNS].astype(np.float32) for name, images in outputs.items()}
    return {
        "levels": config["noise_levels"],
        "methods": list(DENOISERS),
        "scores": per_level,
        "histories": histories,
        "sizes": parts.sizes(),
        "grid_clean": clean[:GRID_COLUMNS].astype(np.float32),
        **grids,
    }


# --------------------------------------------------------------------------
# The judge


@experiment(datasets=("mnist",), config=lambda profile: {"data": profile.transfer.mnist,
                                                          "epochs": profile.transfer.judge_epochs, "seed": 0})
def judge(run, config):
    """A small CNN trained on the training digits; chosen by nothing, scored once on the test digits."""
    parts, (x_train, x_test) = _digits(run, config["data"], config["seed"])
    training.set_seed(config["seed"])
    model = judge_cnn()
    training.compile_model(model, keras.optimizers.Adam(1e-3))
    history = training.fit(model, x_train[..., None], parts.y_train, epochs=config["epochs"],
                           batch_size=BATCH_SIZE)
    run.save_model("judge", model)
    test_accuracy = float(np.mean(predict(model, x_test[..., None]).argmax(axis=1) == parts.y_test))
    return {"history": history, "test_accuracy": test_accuracy, "sizes": parts.sizes()}


def judge_verdict(probabilities: np.ndarray, intended: np.ndarray | None = None) -> dict:
    """What the judge says about generated digits.

    ``good`` is the share it classifies with probability ≥ CONFIDENCE as the
    intended class (as any class when ``intended`` is None); ``counts`` how
    often it picks each class; ``entropy`` that distribution's entropy in bits
    (log2 10 ≈ 3.32 when every class is equally common, 0 for a single class).
    """
    predicted = probabilities.argmax(axis=1)
    confident = probabilities.max(axis=1) >= CONFIDENCE
    good = confident if intended is None else confident & (predicted == intended)
    counts = np.bincount(predicted, minlength=10)
    shares = counts[counts > 0] / counts.sum()
    return {"good": float(good.mean()), "counts": counts.tolist(),
            "entropy": float(abs(-(shares * np.log2(shares)).sum())), "classes": int((counts > 0).sum())}


def spread(images: np.ndarray) -> float:
    """Mean Euclidean distance between two different images of a set (pixels in [0, 1])."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    squared = (flat**2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * flat @ flat.T, 0.0))
    count = len(flat)
    return float(distances.sum() / (count * (count - 1))) if count > 1 else float("nan")


# --------------------------------------------------------------------------
# Generating digits


class ClassGaussians:
    """One full-covariance Gaussian per class, fitted to that class's codes.

    ``ridge`` is added to each covariance's diagonal: codes of dead ReLU units
    are all zero, which makes the covariance singular.
    """

    def __init__(self, codes: np.ndarray, labels: np.ndarray, ridge: float = 1e-6):
        self.classes = np.unique(labels)
        self.means = np.stack([codes[labels == c].mean(axis=0) for c in self.classes])
        self.covariances = np.stack([np.cov(codes[labels == c], rowvar=False) + ridge * np.eye(codes.shape[1])
                                     for c in self.classes])

    def sample(self, per_class: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        codes = [generator.multivariate_normal(mean, covariance, size=per_class, method="eigh")
                 for mean, covariance in zip(self.means, self.covariances)]
        return np.concatenate(codes).astype(np.float32), np.repeat(self.classes, per_class)


class Sampling(keras.layers.Layer):
    """z = μ + exp(½ log σ²)·ε with ε ~ N(0, I) (the reparameterisation trick)."""

    def __init__(self, seed: int = 0, **options):
        super().__init__(**options)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mean, log_variance = inputs
        noise = keras.random.normal(keras.ops.shape(mean), seed=self.seed_generator)
        return mean + keras.ops.exp(0.5 * log_variance) * noise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def vae(latent: int, seed: int = 0, hidden: int = VAE_HIDDEN) -> tuple[keras.Model, keras.Model]:
    """A dense VAE; the model outputs [reconstruction, μ, log σ²] side by side for :func:`vae_loss`."""
    inputs = keras.Input((28 * 28,))
    h = keras.layers.Dense(hidden, activation="relu")(inputs)
    mean = keras.layers.Dense(latent, name="mean")(h)
    log_variance = keras.layers.Dense(latent, name="log_variance")(h)
    z = Sampling(seed)([mean, log_variance])
    decoder = keras.Sequential([keras.Input((latent,)), keras.layers.Dense(hidden, activation="relu"),
                                keras.layers.Dense(28 * 28, activation="sigmoid")], name="vae_decoder")
    outputs = keras.layers.Concatenate()([decoder(z), mean, log_variance])
    return keras.Model(inputs, outputs, name="vae"), decoder


def vae_loss(targets, outputs):
    """Binary cross-entropy summed over the pixels plus KL(N(μ, σ²) ‖ N(0, I))."""
    ops = keras.ops
    pixels = 28 * 28
    latent = (ops.shape(outputs)[-1] - pixels) // 2
    reconstruction = ops.clip(outputs[:, :pixels], 1e-7, 1 - 1e-7)
    mean, log_variance = outputs[:, pixels:pixels + latent], outputs[:, pixels + latent:]
    cross_entropy = -ops.sum(targets * ops.log(reconstruction) + (1 - targets) * ops.log(1 - reconstruction),
                             axis=-1)
    divergence = -0.5 * ops.sum(1 + log_variance - mean**2 - ops.exp(log_variance), axis=-1)
    return cross_entropy + divergence


def noise_codes(kind: str, count: int, units: int, generator: np.random.Generator) -> np.ndarray:
    """The original attempt's random codes: uniform on [0, 1) or standard normal."""
    if kind == "uniform":
        return generator.random((count, units)).astype(np.float32)
    if kind == "normal":
        return generator.standard_normal((count, units)).astype(np.float32)
    raise ValueError(f"unknown noise {kind!r}; choose uniform or normal")


def nearest_distance(points: np.ndarray, reference: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Each point's Euclidean distance to the nearest reference point."""
    squared = ((points**2).sum(axis=1)[:, None] + (reference**2).sum(axis=1)[None, :]
               - 2 * points.astype(np.float64) @ reference.T.astype(np.float64))
    if exclude_self:
        np.fill_diagonal(squared, np.inf)
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def code_statistics(codes: np.ndarray, noise: dict[str, np.ndarray]) -> dict:
    """Where real codes lie, and how far the noise codes are from them."""
    typical = nearest_distance(codes, codes, exclude_self=True)
    return {
        "dead_units": int((codes.max(axis=0) == 0).sum()),
        "units": int(codes.shape[1]),
        "zero_share": float((codes == 0).mean()),
        "real_norm": float(np.linalg.norm(codes, axis=1).mean()),
        "real_nearest": float(np.median(typical)),
        "noise_norm": {kind: float(np.linalg.norm(z, axis=1).mean()) for kind, z in noise.items()},
        "noise_nearest": {kind: float(np.median(nearest_distance(z, codes))) for kind, z in noise.items()},
    }


def _generation_config(profile) -> dict:
    budget = profile.transfer
    return {"data": budget.mnist, "epochs": budget.autoencoder_epochs, "vae_epochs": budget.vae_epochs,
            "latent": budget.vae_latent, "per_class": budget.samples_per_class, "seed": 0,
            "batch_size": BATCH_SIZE, "judge_key": judge.key(profile)}


def train_plain_autoencoder(x_train, epochs: int, seed: int):
    """The dense autoencoder on clean digits (input = target)."""
    training.set_seed(seed)
    model = dense_autoencoder()
    training.compile_model(model, keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=())
    flat = x_train.reshape(-1, 784)
    return model, training.fit(model, flat, flat, epochs=epochs, batch_size=BATCH_SIZE)


def train_vae(x_train, latent: int, epochs: int, seed: int):
    """The VAE on clean digits; returns its decoder."""
    training.set_seed(seed)
    model, decoder = vae(latent, seed)
    training.compile_model(model, keras.optimizers.Adam(1e-3), loss=vae_loss, metrics=())
    flat = x_train.reshape(-1, 784)
    return decoder, training.fit(model, flat, flat, epochs=epochs, batch_size=BATCH_SIZE)


@experiment(datasets=("mnist",), config=_generation_config)
def generation(run, config):
    """Decoding noise (the original failure), its cause, and two ways that work."""
    judge_model = judge(run.profile).model("judge")
    parts, (x_train, x_test) = _digits(run, config["data"], config["seed"])
    generator = np.random.default_rng(config["seed"])
    count = 10 * config["per_class"]

    autoencoder, history = train_plain_autoencoder(x_train, config["epochs"], config["seed"])
    encoder, decoder = encoder_of(autoencoder), decoder_of(autoencoder)
    train_codes = predict(encoder, x_train.reshape(-1, 784))
    test_codes = predict(encoder, x_test.reshape(-1, 784))
    units = train_codes.shape[1]

    def decode(model, codes):
        return predict(model, codes).reshape(-1, 28, 28)

    def verdict(images, intended=None):
        return {**judge_verdict(predict(judge_model, images[..., None]), intended), "spread": spread(images)}

    noise = {kind: noise_codes(kind, count, units, generator) for kind in ("uniform", "normal")}
    decoded_noise = {kind: decode(decoder, z) for kind, z in noise.items()}

    gaussians = ClassGaussians(train_codes, parts.y_train)
    sampled_codes, intended = gaussians.sample(config["per_class"], generator)
    from_gaussian = decode(decoder, sampled_codes)

    vae_decoder, vae_history = train_vae(x_train, config["latent"], config["vae_epochs"], config["seed"])
    from_vae = decode(vae_decoder, generator.standard_normal((count, config["latent"])).astype(np.float32))

    # The 2-D picture: a PCA fitted to the training codes, every set projected with it.
    from sklearn.decomposition import PCA

    pca = PCA(2).fit(train_codes)
    real = x_test[:count]
    return {
        "history": history, "vae_history": vae_history, "sizes": parts.sizes(),
        "codes": code_statistics(train_codes, noise),
        "verdicts": {"real": verdict(real, parts.y_test[:count]),
                     **{f"noise_{kind}": verdict(images) for kind, images in decoded_noise.items()},
                     "gaussian": verdict(from_gaussian, intended),
                     "vae": verdict(from_vae)},
        # The spread of decoded noise, pixel by pixel: how much the pictures differ at all.
        "noise_pixel_std": {kind: float(images.std(axis=0).mean()) for kind, images in decoded_noise.items()},
        "real_pixel_std": float(real.std(axis=0).mean()),
        "explained_variance": [float(v) for v in pca.explained_variance_ratio_],
        "projected_test": pca.transform(test_codes).astype(np.float32),
        "projected_labels": parts.y_test.astype(np.int64),
        "projected_uniform": pca.transform(noise["uniform"]).astype(np.float32),
        "projected_normal": pca.transform(noise["normal"]).astype(np.float32),
        "projected_gaussian": pca.transform(sampled_codes).astype(np.float32),
        "images_uniform": decoded_noise["uniform"].astype(np.float32),
        "images_normal": decoded_noise["normal"].astype(np.float32),
        "images_gaussian": from_gaussian.astype(np.float32),
        "intended": intended.astype(np.int64),
        "images_vae": from_vae.astype(np.float32),
        "per_class": config["per_class"], "latent": config["latent"], "confidence": CONFIDENCE,
    }
