"""The autoencoder chapter's pieces: noise, quality measures, the code Gaussians, the judge's verdict."""

import math

import numpy as np
import pytest

from analysis import data
from analysis.experiments import autoencoders as ae
from analysis.tables import autoencoders as ae_tables


# --- salt-and-pepper noise ------------------------------------------------------


@pytest.mark.parametrize("level", [0.1, 0.4, 0.9])
def test_salt_and_pepper_replaces_the_expected_share_of_pixels(level):
    # Grey images: every replaced pixel changes (to 0 or 1), so the changed share is the replaced share.
    images = np.full((200, 28, 28), 0.5, dtype=np.float32)
    noisy = ae.salt_and_pepper(images, level, np.random.default_rng(7))
    pixels = images.size
    changed = noisy != images
    # Binomial(n, p): the share's standard deviation is sqrt(p(1 - p)/n); 5 of them
    # leave a correct implementation a false-alarm chance below 1e-6.
    assert abs(changed.mean() - level) < 5 * math.sqrt(level * (1 - level) / pixels)
    hits = int(changed.sum())
    salt = float((noisy[changed] == 1.0).mean())
    assert abs(salt - 0.5) < 5 * math.sqrt(0.25 / hits)
    assert set(np.unique(noisy[changed])) <= {0.0, 1.0}
    assert np.all(noisy[~changed] == 0.5)


def test_salt_and_pepper_is_reproducible_and_checks_its_level():
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    first = ae.salt_and_pepper(images, 0.4, np.random.default_rng(3))
    again = ae.salt_and_pepper(images, 0.4, np.random.default_rng(3))
    other = ae.salt_and_pepper(images, 0.4, np.random.default_rng(4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(ae.salt_and_pepper(images, 0.0, np.random.default_rng(3)), images)
    with pytest.raises(ValueError, match="probability"):
        ae.salt_and_pepper(images, 1.5, np.random.default_rng(3))


# --- PSNR, SSIM and the median filter ----------------------------------------------


def test_psnr_of_identical_images_is_infinite():
    image = np.random.default_rng(1).random((28, 28))
    assert ae.psnr(image, image) == math.inf
    assert ae.ssim(image, image) == pytest.approx(1.0)


def test_psnr_of_a_known_perturbation_matches_the_formula():
    clean = np.random.default_rng(2).random((28, 28)) * 0.8
    assert ae.psnr(clean, clean + 0.1) == pytest.approx(20.0)          # MSE 0.01 → 10 log10(1/0.01)
    perturbed = np.clip(clean + np.random.default_rng(3).normal(0, 0.05, clean.shape), 0, 1)
    mse = np.mean((clean - perturbed) ** 2)
    assert ae.psnr(clean, perturbed) == pytest.approx(10 * math.log10(1 / mse))
    assert ae.ssim(clean, perturbed) < 1.0


def test_the_median_filter_removes_isolated_salt_and_pepper():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 5:20, 10:14] = 1.0                   # a stroke
    noisy = image.copy()
    noisy[0, 2, 2] = 1.0                          # salt on the background
    noisy[0, 12, 11] = 0.0                        # pepper inside the stroke
    assert np.array_equal(ae.median_denoise(noisy)[0, 2, 2], 0.0)
    assert ae.median_denoise(noisy)[0, 12, 11] == 1.0


# --- the judge's verdict and the spread -----------------------------------------------


def test_judge_verdict_counts_confident_intended_digits_and_their_spread():
    probabilities = np.full((4, 10), 0.01)
    probabilities[[0, 1, 2, 3], [3, 3, 5, 5]] = [0.91, 0.5, 0.95, 0.95]
    verdict = ae.judge_verdict(probabilities, intended=np.array([3, 3, 5, 1]))
    assert verdict["good"] == pytest.approx(0.5)          # rows 0 and 2
    assert verdict["classes"] == 2 and verdict["entropy"] == pytest.approx(1.0)
    assert ae.judge_verdict(probabilities)["good"] == pytest.approx(0.75)
    uniform = np.eye(10)
    assert ae.judge_verdict(uniform)["entropy"] == pytest.approx(math.log2(10))
    assert ae.judge_verdict(uniform[[2, 2, 2]])["entropy"] == 0.0


def test_spread_is_the_mean_distance_between_two_different_images():
    images = np.zeros((3, 2, 2))
    images[1, 0, 0] = 3.0
    images[2, 0, 0], images[2, 0, 1] = 3.0, 4.0
    # Distances 3, 5 and 4: their mean.
    assert ae.spread(images) == pytest.approx(4.0)
    assert math.isnan(ae.spread(images[:1]))


def test_code_statistics_find_dead_units_and_distances():
    codes = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 4.0, 1.0]])
    statistics = ae.code_statistics(codes, {"far": np.array([[10.0, 10.0, 10.0]])})
    assert statistics["dead_units"] == 1 and statistics["units"] == 3
    assert statistics["real_nearest"] == pytest.approx(math.sqrt(2))
    assert statistics["noise_nearest"]["far"] == pytest.approx(math.sqrt(100 + 36 + 81))
    with pytest.raises(ValueError, match="uniform or normal"):
        ae.noise_codes("cauchy", 2, 3, np.random.default_rng(0))


def test_the_vae_loss_is_cross_entropy_plus_the_kl_divergence():
    import keras

    targets = np.array([[1.0] * 784], dtype=np.float32)
    reconstruction = np.full((1, 784), 0.5, dtype=np.float32)
    mean, log_variance = np.array([[1.0, 0.0]], np.float32), np.array([[0.0, math.log(2.0)]], np.float32)
    outputs = np.concatenate([reconstruction, mean, log_variance], axis=1)
    loss = float(keras.ops.convert_to_numpy(ae.vae_loss(targets, outputs))[0])
    kl = 0.5 * (1.0 + 0.0) + 0.5 * (2.0 - 1.0 - math.log(2.0))      # ½(μ² + σ² − 1 − log σ²) per dimension
    assert loss == pytest.approx(784 * math.log(2.0) + kl, rel=1e-5)


# --- generating from the codes' Gaussians ---------------------------------------------


def test_decoding_samples_of_the_fitted_gaussians_gives_different_digits():
    digits = data.load("mnist")
    x = data.scale01(digits.x_train[:400])[..., 0]
    autoencoder, _ = ae.train_plain_autoencoder(x[:300], epochs=2, seed=0)
    encoder, decoder = ae.encoder_of(autoencoder), ae.decoder_of(autoencoder)
    codes = ae.predict(encoder, x[:300].reshape(-1, 784))
    gaussians = ae.ClassGaussians(codes, digits.y_train[:300])
    sampled, intended = gaussians.sample(2, np.random.default_rng(0))
    assert sampled.shape == (2 * len(gaussians.classes), 96)
    assert list(intended[:4]) == [gaussians.classes[0]] * 2 + [gaussians.classes[1]] * 2
    images = ae.predict(decoder, sampled).reshape(-1, 28, 28)
    flat = images.reshape(len(images), -1)
    distances = np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1))
    off_diagonal = distances[~np.eye(len(flat), dtype=bool)]
    # Every pair of generated digits differs, the two samples of one class included.
    assert off_diagonal.min() > 0.05
    assert np.all(np.abs(images[0::2] - images[1::2]).max(axis=(1, 2)) > 0.01)
    # Each class's Gaussian sits at that class's mean code.
    assert np.allclose(gaussians.means[0], codes[digits.y_train[:300] == gaussians.classes[0]].mean(axis=0))


# --- sentences for every outcome --------------------------------------------------------


def test_sentences_cover_reversed_and_degenerate_outcomes():
    varied = {"real_pixel_std": 0.1, "noise_pixel_std": {"uniform": 0.2, "normal": 0.15}}
    assert "does not reproduce the failure" in ae_tables.variation(varied)
    same = {"real_pixel_std": 0.2, "noise_pixel_std": {"uniform": 0.01, "normal": 0.02}}
    assert "far less" in ae_tables.variation(same)
    codes = {"zero_share": 0.1, "noise_nearest": {"uniform": 1.0}, "real_nearest": 1.0}
    assert "does not explain" in ae_tables.sparsity(codes)
    assert "sparse, so most directions" in ae_tables.sparsity({"zero_share": 0.7})
    assert "about as close" in ae_tables.distance(codes)
    lengths = {"real_norm": 10.0, "noise_norm": {"uniform": 1.0, "normal": 2.0}}
    assert "far shorter" in ae_tables.scale(lengths)
    assert "far longer" in ae_tables.scale({"real_norm": 1.0, "noise_norm": {"uniform": 3.0, "normal": 4.0}})
    assert "does not set" in ae_tables.scale({"real_norm": 1.0, "noise_norm": {"uniform": 0.9, "normal": 3.0}})
    assert ae_tables.times(float("inf")) == "an undefined multiple"
    assert ae_tables.top_share({"counts": [1, 0, 3]}) == "75% to the digit 2"
