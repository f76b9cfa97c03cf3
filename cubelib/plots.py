"""The book's one figure style, and helpers shared by chapters: image panels with the paper's
orientation, legends outside the data, readable log ticks, widths that fill the page."""
from __future__ import annotations

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

EXTENT = (-1, 1, -1, 1)
# the book's text column is ~820 px wide; figures are drawn at 100 dpi (inline backend) and
# scaled to the column, so a figure of WIDTH inches keeps its fonts at about the text's size
WIDTH = 8.4
STYLE = {
    "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False, "figure.constrained_layout.use": True,
    "lines.linewidth": 1.5, "lines.markersize": 5,
}
mpl.rcParams.update(STYLE)


def figure(nrows: int = 1, ncols: int = 1, height: float = 3.2, width: float = WIDTH, **kw):
    """A figure of `nrows` x `ncols` axes, the page's width, each row `height` inches tall."""
    return plt.subplots(nrows, ncols, figsize=(width, height * nrows), **kw)


def legend_outside(ax, where: str = "right", **kw):
    """The legend beside (`right`) or below (`below`) the axes, never over the data."""
    if where == "right":
        return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)
    if where == "below":
        kw.setdefault("ncols", 3)
        return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), borderaxespad=0.0, **kw)
    raise ValueError(f"where must be 'right' or 'below', got {where!r}")


def log_ticks(*axes):
    """Log axes labelled with plain numbers (0.2, 0.5, 1, 2, 5, 20 ...) at 1-2-5 steps when
    they span at most three decades, at powers of ten otherwise: never a single label."""
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(axis.get_view_interval())
            decades = math.log10(hi / lo) if lo > 0 else 99
            subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
            axis.set_major_locator(LogLocator(base=10, subs=subs))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10))))
            axis.set_minor_formatter(NullFormatter())


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
