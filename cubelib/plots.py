"""Figure helpers shared by chapters: image panels with the paper's orientation."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

EXTENT = (-1, 1, -1, 1)


def show_image(ax, image, title=None, vmin=0.0, vmax=1.0):
    """A rendered image: row = v, column = u, both from -1 to 1 (origin lower-left)."""
    im = ax.imshow(np.asarray(image), origin="lower", extent=EXTENT, cmap="gray", vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def show_signed(ax, image, title=None, scale=None):
    """A derivative image on a symmetric diverging colour scale (white = 0)."""
    image = np.asarray(image)
    scale = scale or float(np.abs(image).max()) or 1.0
    im = ax.imshow(image, origin="lower", extent=EXTENT, cmap="RdBu_r", vmin=-scale, vmax=scale)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def panel_grid(n, ncols, size=1.9):
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def zoom(ax, vertices, half=0.45):
    """Frame an image panel on one cube [8, 3]: +-half around its projected centre."""
    from .geometry import DEFAULT_CAMERA

    u, v = DEFAULT_CAMERA.project(vertices).mean(0).tolist()
    ax.set_xlim(u - half, u + half)
    ax.set_ylim(v - half, v + half)


def plain_log_ticks(*axes):
    """Log axes over a few decades above 1 labelled 20, 30, 50 instead of 2 x 10^1, ...;
    axes reaching below 1 or over many decades keep matplotlib's powers of ten."""
    import math

    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            if axis.get_scale() != "log" or lo < 1 or math.log10(hi / lo) > 2.5:
                continue
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
            few = math.log10(hi / lo) <= 1.3
            axis.set_minor_formatter(ScalarFormatter() if few else NullFormatter())
