"""Experiments of the depth chapter (chapters/depth.qmd)."""
