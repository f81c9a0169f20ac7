"""Experiments of the backprop chapter (chapters/backprop.qmd)."""
