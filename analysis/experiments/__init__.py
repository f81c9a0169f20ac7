"""One module per chapter; each defines that chapter's cached experiments.

``CHAPTERS`` lists them in reading order (the command line imports them all to
find every experiment). A module's name is the chapter's id on the command
line: ``python -m analysis run backprop``.
"""

CHAPTERS: tuple[str, ...] = ("backprop", "mlp", "depth", "generalization", "hpo", "cnn",
                             "autoencoders", "transfer", "digits")
