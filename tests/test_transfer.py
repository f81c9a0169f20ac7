"""The pretrained-network chapter's pieces: VGG16's counts, preprocessing, photographs, weights, transfer runs."""

import numpy as np
import pytest
from PIL import Image

from analysis import photographs, stats
from analysis.data import registry
from analysis.data import weights as pretrained
from analysis.errors import UserError
from analysis.experiments import transfer
from analysis.tables import transfer as transfer_tables

VGG16_PARAMETERS = 138_357_544     # as published with keras.applications.VGG16


def test_vgg16_parameter_count_from_a_weights_free_model_and_every_layer_against_the_formulas():
    import keras

    model = keras.applications.VGG16(weights=None)
    result = {"layers": transfer.layer_rows(model), "total": int(model.count_params())}
    checks = transfer_tables.layer_checks(result)
    assert result["total"] == VGG16_PARAMETERS
    assert checks["layer_sum"] == VGG16_PARAMETERS == checks["formula_sum"]
    assert checks["weighted"] == 16 and checks["matching"] == 16           # 13 Conv2D + 3 Dense
    first = result["layers"][1]
    assert first["kernel"] == [3, 3] and first["channels_in"] == 3 and first["parameters"] == 1792
    table = transfer_tables.layer_table(result).data
    assert "✗" not in table and "138,357,544" in table


def _photo(path, size=(300, 200), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_preprocessing_one_image_step_by_step(tmp_path):
    path = tmp_path / "photo.png"
    _photo(path)
    steps = photographs.preprocessing_steps(path)
    # 1. Loaded at 224 × 224, RGB, resized the way load_img does (nearest neighbour).
    assert steps["image"].size == (224, 224) and steps["image"].mode == "RGB"
    expected = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.NEAREST), dtype=np.float32)
    # 2. To an array: the same pixels as float32, height × width × channels.
    assert steps["array"].shape == (224, 224, 3) and steps["array"].dtype == np.float32
    assert np.array_equal(steps["array"], expected)
    # 3. The batch axis.
    assert steps["batch"].shape == (1, 224, 224, 3) and np.array_equal(steps["batch"][0], expected)
    # 4. preprocess_input: RGB → BGR, ImageNet's channel means subtracted; the batch is left unchanged.
    means = np.array([103.939, 116.779, 123.68], dtype=np.float32)
    assert np.allclose(steps["ready"], expected[None, ..., ::-1] - means, atol=1e-4)
    assert np.array_equal(steps["batch"][0], expected)


def test_user_photos_skip_non_images_and_report_a_missing_directory(tmp_path, monkeypatch):
    _photo(tmp_path / "dog.jpg")
    (tmp_path / "notes.txt").write_text("not a photograph")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    monkeypatch.setenv("NNSTUDY_IMAGES", str(tmp_path))
    photos, problems = photographs.user_photos()
    assert [p.title for p in photos] == ["dog.jpg"]
    assert len(problems) == 2 and all("\n" not in line for line in problems)
    assert any("notes.txt" in line for line in problems) and any("broken.png" in line for line in problems)
    monkeypatch.setenv("NNSTUDY_IMAGES", str(tmp_path / "nowhere"))
    photos, problems = photographs.user_photos()
    assert photos == [] and len(problems) == 1 and "not a directory" in problems[0]


def test_the_package_photographs_are_there():
    titles = [photo.title for photo in photographs.package_photos()]
    assert "cat (scikit-image)" in titles and "flower (scikit-learn)" in titles


def test_a_truncated_weights_file_is_a_one_line_error_and_the_chapter_is_told(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSTUDY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    name = pretrained.VGG16_FILES[0]
    assert pretrained.find(name) is None
    assert pretrained.resolve(allow_download=False) is None
    status = transfer.weights_status()
    assert status["available"] is False and "offline" in status["reason"]
    (tmp_path / name).write_bytes(b"\x89HDF\r\n" + b"\0" * 100)
    with pytest.raises(UserError, match="truncated") as error:
        pretrained.find(name)
    assert "\n" not in str(error.value)
    status = transfer.weights_status()
    assert status["available"] is False and "truncated" in status["reason"]


def test_a_file_matching_its_pin_is_accepted(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("NNSTUDY_DATA_DIR", str(tmp_path))
    payload = b'{"0": ["n01440764", "tench"]}'
    (tmp_path / "imagenet_class_index.json").write_bytes(payload)
    monkeypatch.setitem(registry.MODEL_PINS, "imagenet_class_index.json",
                        registry.Pin(md5=hashlib.md5(payload).hexdigest()))
    found = pretrained.find("imagenet_class_index.json")
    assert found.source == "data_dir" and found.path == tmp_path / "imagenet_class_index.json"


def test_vgg16_photographs_name_skipped_files_and_never_predict_without_weights(tmp_path, monkeypatch, cache_dir):
    images = tmp_path / "images"
    images.mkdir()
    _photo(images / "mine.png")
    (images / "readme.md").write_text("# not an image")
    monkeypatch.setenv("NNSTUDY_IMAGES", str(images))
    monkeypatch.setenv("NNSTUDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    result = transfer.vgg16_photographs("smoke")
    assert "mine.png" in result["titles"] and result["titles"][0] == "cat (scikit-image)"
    assert result["problems"] == ["skipped readme.md in NNSTUDY_IMAGES: not an image Pillow can read"]
    assert result["predictions"] is None and result["weights_reason"]
    assert result["images"].shape == (len(result["titles"]), 224, 224, 3)


def test_top_classes_are_the_most_probable_in_order():
    probabilities = np.array([0.1, 0.5, 0.05, 0.3, 0.05])
    index = {str(i): [f"n{i}", f"class {i}"] for i in range(5)}
    top = transfer.top_classes(probabilities, index, k=3)
    assert [t["name"] for t in top] == ["class 1", "class 3", "class 0"]
    assert top[0]["probability"] == pytest.approx(0.5)


# --- transfer learning ----------------------------------------------------------------


def test_a_task_keeps_its_classes_and_renumbers_them():
    images = np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2, 1)
    labels = np.array([5, 0, 9, 7, 4, 5])
    x, y = transfer.task(images, labels, transfer.TARGET_CLASSES)
    assert list(y) == [0, 4, 2, 0] and x.dtype == np.float32 and x.shape == (4, 2, 2, 1)


def test_step_batches_give_exactly_the_steps_in_shuffled_passes():
    order = transfer.step_batches(10, 7, np.random.default_rng(0))
    assert len(order) == 7 * transfer.BATCH_SIZE
    for start in range(0, len(order) - 10, 10):
        assert sorted(order[start:start + 10]) == list(range(10))


def test_transfer_verdicts_handle_a_single_seed_and_ties():
    result = {"sizes": [50], "labelled": {"50": 50},
              "test_accuracy": {"scratch": {"50": [0.5]}, "frozen": {"50": [0.7]}, "fine_tune": {"50": [0.5]}}}
    assert "single seed" in transfer_tables.verdicts(result, "frozen", "scratch")[0]
    result["test_accuracy"] = {m: {"50": [0.6, 0.7]} for m in ("scratch", "frozen", "fine_tune")}
    assert "same test accuracy" in transfer_tables.verdicts(result, "fine_tune", "scratch")[0]
    assert stats.compare([0.6, 0.7], [0.6, 0.7]).outcome == "tie"


def test_best_by_size_names_one_winner_or_each_size():
    result = {"sizes": [50, 200], "labelled": {"50": 50, "200": 200}, "methods": ["scratch", "frozen"],
              "test_accuracy": {"scratch": {"50": [0.5, 0.6], "200": [0.9, 0.9]},
                                "frozen": {"50": [0.7, 0.7], "200": [0.8, 0.8]}}}
    text = transfer_tables.best_by_size(result)
    assert "frozen features with 50" in text and "training from scratch with 200" in text
    result["test_accuracy"]["frozen"]["50"] = [0.1, 0.1]
    assert "at every labelled-set size" in transfer_tables.best_by_size(result)


# --- VGG16 features on CIFAR-10 --------------------------------------------------------


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory):
    """VGG16's convolutional base with random weights (standing in for ImageNet's), saved in
    the pinned file's format, with a one-class index: the files pretrained.resolve would return.

    The pinned file also holds the top (fc1, fc2, predictions), which the copy never reads;
    leaving it out keeps the stand-in at 59 MB instead of 528 MB."""
    import keras

    directory = tmp_path_factory.mktemp("weights")
    source = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    # The pinned file's format: Keras's legacy .h5 (layer groups by name).
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(directory / pretrained.VGG16_FILES[0], "w") as stream:
        legacy_h5_format.save_weights_to_hdf5_group(stream, source)
    (directory / pretrained.VGG16_FILES[1]).write_text('{"0": ["n01440764", "tench"]}')
    files = {name: pretrained.WeightsFile(name, directory / name, f"stand-in {name}", "data_dir")
             for name in pretrained.VGG16_FILES}
    return source, files


def _tiny_vgg_profile():
    import dataclasses

    from analysis.profiles import DataBudget, get

    smoke = get("smoke")
    budget = dataclasses.replace(smoke.transfer, cifar=DataBudget(train=60, validation=0, test=20),
                                 vgg_sizes=(20,), vgg_seeds=1, vgg_input_size=32, vgg_steps=1)
    return dataclasses.replace(smoke, name="tiny", transfer=budget)


def test_the_base_gets_exactly_the_weights_files_convolutions(stand_in_weights):
    import keras

    source, files = stand_in_weights
    base = transfer.vgg16_base(files[pretrained.VGG16_FILES[0]].path, 224)
    convolutions = [layer for layer in base.layers if layer.weights]
    assert len(convolutions) == 13 and not any(isinstance(layer, keras.layers.Dense) for layer in base.layers)
    for layer in convolutions:
        for copied, original in zip(layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(copied, original)
    # Same weights, same image at 224 × 224: the same block-5 features as the source model's.
    image = np.random.default_rng(0).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(base.predict(image, verbose=0)),
                                  np.asarray(source.predict(image, verbose=0)))


def test_vgg16_on_cifar_runs_end_to_end_with_stand_in_weights(stand_in_weights, cache_dir, monkeypatch):
    _, files = stand_in_weights
    monkeypatch.setattr(pretrained, "resolve", lambda names=pretrained.VGG16_FILES, allow_download=True: files)
    monkeypatch.setenv("NNSTUDY_JOBS", "1")          # the runs in this process, where resolve is patched
    profile = _tiny_vgg_profile()
    assert transfer.vgg16_cifar_plan(profile)["reason"] is None
    result = transfer.vgg16_cifar(profile)
    assert result["available"] is True and result["reason"] is None
    assert result["methods"] == list(transfer.METHODS) and result["labelled"] == {"20": 20}
    assert result["test_images"] == 20 and result["classes"] == 10 and result["input_size"] == 32
    for method in transfer.METHODS:
        (accuracy,) = result["test_accuracy"][method]["20"]
        assert 0.0 <= accuracy <= 1.0
    assert transfer.vgg16_imagenet_base(profile)["parameters"] == 14_714_688    # VGG16 without its top
    assert "CIFAR-10" in transfer_tables.transfer_table(result).data
    text = transfer_tables.vgg_cifar_text(result)
    assert "callout" not in text and "single seed" in text and "32 × 32" in text
    assert len(transfer_tables.verdicts(result, "fine_tune", "scratch")) == 1
    from analysis.plots import transfer as transfer_figures
    transfer_figures.transfer_curves(result)


def test_vgg16_on_cifar_without_weights_or_budget_says_why_and_trains_nothing(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("NNSTUDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    profile = _tiny_vgg_profile()
    result = transfer.vgg16_cifar(profile)
    assert result["available"] is False and "offline" in result["reason"] and "\n" not in result["reason"]
    assert transfer.vgg16_cifar.runs(profile) == [] and transfer.vgg16_imagenet_base.cached(profile) is None
    # Run on its own (as `python -m analysis run transfer` does), the base is not built either.
    assert transfer.vgg16_imagenet_base(profile)["available"] is False
    # The smoke profile does not ask for it: the plan says so without looking for weights.
    plan = transfer.vgg16_cifar_plan("smoke")
    assert plan["available"] is False and "smoke profile leaves it out" in plan["reason"]
    text = transfer_tables.vgg_cifar_text(result)
    assert "callout-note" in text and result["reason"] in text


def test_a_weights_file_without_vgg16s_convolutions_is_a_one_line_error(tmp_path):
    import h5py

    path = tmp_path / pretrained.VGG16_FILES[0]
    with h5py.File(path, "w") as stream:
        stream.attrs["layer_names"] = [b"block1_conv1", b"fc1"]
        stream.create_group("block1_conv1")
    with pytest.raises(UserError, match="block5_conv3") as error:
        transfer.vgg16_base(path, 32)
    assert "\n" not in str(error.value) and "not VGG16's with-top ImageNet file" in str(error.value)
