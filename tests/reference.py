"""Independent references for the renderer (numpy/scipy only, no cubelib maths).

Pixel values by vertical slicing: for a convex polygon and a pixel centre c (sigma units),
    int_Q phi(x - c) dA = int dx phi(x - c_x) [Phi(y_top(x) - c_y) - Phi(y_bot(x) - c_y)],
integrated by Gauss-Legendre on pieces between the polygon's vertex abscissae, each cut to
length <= 0.5 sigma / max(1, |slope|) of the edges over it (a steep edge makes y_top(x) fast).  No Owen's T, no Green's theorem: a different route to the same number.
"""
import numpy as np
from scipy.special import ndtr

_X, _W = np.polynomial.legendre.leggauss(16)


def convex_polygon_integral(poly, points, sigma):
    """poly [K, 2] convex (either orientation), points [P, 2] -> [P]."""
    poly = np.asarray(poly, float) / sigma
    pts = np.asarray(points, float) / sigma
    xs = np.unique(poly[:, 0])
    A, B = poly, np.roll(poly, -1, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.abs((B[:, 1] - A[:, 1]) / (B[:, 0] - A[:, 0]))
    nodes, weights = [], []
    for a, b in zip(xs[:-1], xs[1:]):
        mid = (a + b) / 2
        over = (np.minimum(A[:, 0], B[:, 0]) < mid) & (np.maximum(A[:, 0], B[:, 0]) > mid)
        steep = max(1.0, slope[over].max())
        m = max(1, int(np.ceil((b - a) * steep / 0.5)))
        edges = np.linspace(a, b, m + 1)
        for lo, hi in zip(edges[:-1], edges[1:]):
            nodes.append((hi - lo) / 2 * _X + (hi + lo) / 2)
            weights.append((hi - lo) / 2 * _W)
    x = np.concatenate(nodes)
    w = np.concatenate(weights)
    # vertical extent of the polygon at each node: intersect with every edge
    lo_x, hi_x = np.minimum(A[:, 0], B[:, 0]), np.maximum(A[:, 0], B[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (x[:, None] - A[None, :, 0]) / (B[None, :, 0] - A[None, :, 0])
    y = A[None, :, 1] + t * (B[None, :, 1] - A[None, :, 1])
    inside = (x[:, None] >= lo_x[None]) & (x[:, None] <= hi_x[None]) & (hi_x > lo_x)[None]
    y_top = np.where(inside, y, -np.inf).max(1)
    y_bot = np.where(inside, y, np.inf).min(1)
    phi = np.exp(-0.5 * (x[None, :] - pts[:, :1]) ** 2) / np.sqrt(2 * np.pi)
    band = ndtr(y_top[None, :] - pts[:, 1:]) - ndtr(y_bot[None, :] - pts[:, 1:])
    return (phi * band * w[None, :]).sum(1)


def rectangle_integral(x0, x1, y0, y1, points, sigma):
    """Axis-aligned rectangle: exact product of 1D normal probabilities."""
    p = np.asarray(points, float)
    fx = ndtr((x1 - p[:, 0]) / sigma) - ndtr((x0 - p[:, 0]) / sigma)
    fy = ndtr((y1 - p[:, 1]) / sigma) - ndtr((y0 - p[:, 1]) / sigma)
    return fx * fy


def cube_image(vertices, faces, colors, camera_centre, project, points, sigma):
    """Image of one cube [8, 3] by slicing every face turned towards the camera."""
    v = np.asarray(vertices, float)
    out = np.zeros(len(points))
    for f, col in zip(faces, colors):
        q = v[f]
        normal = np.cross(q[2] - q[0], q[3] - q[1])
        if np.dot(camera_centre - q.mean(0), normal) > 0:
            out += col * convex_polygon_integral(project(q), points, sigma)
    return out
