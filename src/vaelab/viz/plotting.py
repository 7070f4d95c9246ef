"""Matplotlib without pyplot: figures rendered off-screen (Agg) to uint8 arrays, and the class colours that
every vaelab plot and frame shares."""

from __future__ import annotations

import colorsys

import numpy as np

# matplotlib's tab10, written out so per-epoch frames can colour points without importing matplotlib
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def class_colours(k: int) -> np.ndarray:
    """k distinct RGB colours (k, 3) in [0, 1]: tab10 up to 10 classes, evenly spaced hues beyond."""
    if k <= len(TAB10):
        return np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in TAB10[:k]])
    return np.array([colorsys.hsv_to_rgb(i / k, 0.75, 0.85) for i in range(k)])


def new_figure(width: float, height: float, dpi: int = 100):
    """A matplotlib Figure of width x height inches on an Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def figure_to_array(figure) -> np.ndarray:
    """The rendered figure as a uint8 RGB array (rows, cols, 3)."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
