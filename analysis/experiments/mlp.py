"""Experiments of the mlp chapter (chapters/mlp.qmd)."""
