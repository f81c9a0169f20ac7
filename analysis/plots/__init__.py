"""Figures for the book, one module per topic.

``common`` holds the shared pieces (the data-source footer every figure carries,
learning curves with a mean ± std band over seeds, image grids); the other
modules hold the figures of one topic each. Plot functions take a result (or
arrays from one) and return a matplotlib Figure; a chapter cell displays it.
"""
