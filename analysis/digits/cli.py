"""``python -m analysis digits train`` and ``python -m analysis predict-digit``.

Both check every argument before a Keras backend is imported (seconds), so a
mistake costs a fraction of a second and ends in one line on stderr, exit
status 2, with nothing written: ``predict-digit`` reads and preprocesses every
image and loads the model before it prints or writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis import config, import_tensorflow_quietly, profiles
from analysis.errors import UserError

#: File types ``--show`` can write (matplotlib picks the format by suffix).
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def add_commands(commands) -> None:
    digits = commands.add_parser("digits", help="the digit recognizer: train and export it")
    actions = digits.add_subparsers(dest="action", required=True, parser_class=type(digits))
    train = actions.add_parser("train", help="train (or read from the cache) and export .keras and .h5")
    train.add_argument("--profile", help="smoke, default or full (default: the active one)")
    train.add_argument("--output", help=f"directory for the model files (default: {config.models_dir()})")
    train.set_defaults(handler=train_and_export)

    predict = commands.add_parser("predict-digit", help="read photos of handwritten digits")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG of one digit each")
    predict.add_argument("--model", help="a .keras or .h5 file (default: the one `digits train` exported)")
    predict.add_argument("--show", metavar="OUT.png", help="write a figure of each step and the probabilities")
    predict.set_defaults(handler=predict_digits)


def _output_directory(value: str | None) -> Path:
    directory = Path(value) if value else config.models_dir()
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--output {directory}: exists and is not a directory; give a directory")
    existing = next(parent for parent in (directory, *directory.parents) if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(f"--output {directory}: cannot create it ({existing} is not a writable directory)")
    return directory


def train_and_export(args) -> int:
    from analysis.digits import export

    profile = profiles.get(args.profile) if args.profile else profiles.current()
    directory = _output_directory(args.output)
    import_tensorflow_quietly()
    from analysis.experiments import digits

    result = digits.recognizer(profile)
    model = result.model("digit_cnn")
    where = "cache" if result.from_cache else f"trained in {result.provenance['wall_seconds']:.0f} s"
    accuracy = float((result["mnist_probabilities"].argmax(axis=1) == result["mnist_labels"]).mean())
    for path in export.export(model, directory):
        print(f"wrote {path}")
    print(f"profile {profile.name} ({where}); MNIST test accuracy {accuracy:.1%} on "
          f"{len(result['mnist_labels']):,} digits ({result.data_source('mnist')})")
    return 0


def default_model() -> Path:
    from analysis.digits.export import KERAS_NAME

    return config.models_dir() / KERAS_NAME


def _figure_path(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise UserError(f"--show {path}: the figure's name must end in {', '.join(FIGURE_SUFFIXES)}")
    if not path.parent.is_dir():
        raise UserError(f"--show {path}: directory {path.parent} does not exist; create it first")
    if path.is_dir():
        raise UserError(f"--show {path}: is a directory; give a file name such as steps.png")
    return path


def _model_path(value: str | None) -> Path:
    from analysis.digits import export

    if value is not None:
        return export.check_path(value)
    path = default_model()
    if not path.is_file():
        raise UserError(f"no digit model at {path}; make one with `python -m analysis digits train` "
                        "(or pass --model PATH)")
    return path


def predict_digits(args) -> int:
    from analysis.digits import export, preprocess

    figure_path = _figure_path(args.show)
    read = preprocess.load(args.images)                    # every image, before Keras loads
    model_path = _model_path(args.model)
    import_tensorflow_quietly()
    from analysis.digits import model as digit_model

    model = export.load(model_path)
    probabilities = digit_model.predict(model, [steps.digit for _, steps in read])
    if figure_path is not None:
        _write_figure(figure_path, read, probabilities)
    for (path, _), row in zip(read, probabilities):
        shown = " ".join(f"{digit}:{value:.3f}" for digit, value in enumerate(row))
        print(f"{path}: {int(row.argmax())}  (probabilities {shown})")
    if figure_path is not None:
        print(f"wrote {figure_path}")
    return 0


def _write_figure(path: Path, read, probabilities) -> None:
    """The figure to a temporary name, then renamed: never half a file."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis.digits import export
    from analysis.plots import digits as figures

    figure = figures.pipeline([steps for _, steps in read], probabilities,
                              names=[p.name for p, _ in read])
    export.write_atomically(path, lambda scratch: figure.savefig(scratch, bbox_inches="tight"))
