"""Owen's T (what render uses) vs Gauss-Legendre on the edge integral, for pixel values.

Each pixel-edge pair needs  J = int_{s_A}^{s_B} exp(-s^2/2) / (h^2 + s^2) ds  (sigma units).
render gets it exactly from Owen's T (12-node quadrature of T's own integral, a <= 1).  The
alternative is n-node Gauss-Legendre on J directly, over the segment cut to |s| <= 9.5.  This
prints, in one run on the same pairs, the largest error of each and its time.

    python bench/edge_integral.py [--pairs 400000]
"""
import argparse
import math
import time

import numpy as np
import torch

from cubelib import render, sampling


def pairs_from_cubes(n_pairs):
    """Realistic (h, s_A, s_B): the near pixel-edge pairs of rendered cubes."""
    verts = sampling.sample_vertices(max(8, n_pairs // 5000))
    uv = render.geometry.DEFAULT_CAMERA.project(verts) / render.SIGMA
    table = render.EDGE_TABLES[0]  # the three faces visible in this pose range
    A, B = uv[:, table[:, 0]], uv[:, table[:, 1]]
    h, sA, sB, _, _ = render._edge_frame(A, B, torch.ones(A.shape[:2], dtype=torch.float64),
                                         render.pixel_grid() / render.SIGMA)
    near = render._near(h, sA, sB)
    return h.reshape(-1)[near][:n_pairs], sA.reshape(-1)[near][:n_pairs], sB.reshape(-1)[near][:n_pairs]


def by_owens_t(h, sA, sB):
    return render._edge_values(h, sA, sB, torch.arange(h.numel()))


def by_gauss_legendre(h, sA, sB, n):
    x, w = (torch.tensor(a) for a in np.polynomial.legendre.leggauss(n))
    lo, hi = sA.clamp(-9.5, 9.5), sB.clamp(-9.5, 9.5)
    s = (hi - lo)[:, None] / 2 * x + (hi + lo)[:, None] / 2
    J = ((hi - lo) / 2) * ((torch.exp(-0.5 * s * s) / (h[:, None] ** 2 + s * s)) * w).sum(1)
    angle = torch.atan2(h * (sB - sA), h * h + sA * sB)
    return angle / (2 * math.pi) - h / (2 * math.pi) * torch.exp(-0.5 * h * h) * J


def by_gauss_legendre_angle(h, sA, sB, n):
    """The same edge term in the angle theta = atan(s / h) seen from the pixel:
    (1 / 2 pi) int (1 - exp(-h^2 / (2 cos^2 theta))) d theta, n-node Gauss-Legendre."""
    x, w = (torch.tensor(a) for a in np.polynomial.legendre.leggauss(n))
    hs = torch.where(h.abs() < 1e-300, torch.full_like(h, 1e-300), h)
    ta, tb = torch.atan(sA / hs), torch.atan(sB / hs)
    th = (tb - ta)[:, None] / 2 * x + (tb + ta)[:, None] / 2
    f = 1 - torch.exp(-0.5 * hs[:, None] ** 2 / torch.cos(th) ** 2)
    return ((tb - ta) / 2) * (f * w).sum(1) / (2 * math.pi)


def timed(fn, *args):
    fn(*args)
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=400_000, help="pixel-edge pairs (>= 1000)")
    a = p.parse_args()
    if a.pairs < 1000:
        p.error("--pairs must be at least 1000")
    h, sA, sB = pairs_from_cubes(a.pairs)
    # reference: Owen's T route in float64, checked against scipy in the tests to 1e-16
    exact, t_owen = timed(by_owens_t, h, sA, sB)
    print(f"{h.numel()} near pixel-edge pairs; Owen's T route: {t_owen * 1e3:.1f} ms (reference)")
    print(f"{'GL nodes':>8s} {'in s: max |error|':>18s} {'time/Owen':>10s} {'in angle: max |error|':>22s} {'time/Owen':>10s}")
    for n in (12, 24, 48, 96, 192):
        val_s, t_s = timed(by_gauss_legendre, h, sA, sB, n)
        val_a, t_a = timed(by_gauss_legendre_angle, h, sA, sB, n)
        print(f"{n:8d} {(val_s - exact).abs().max().item():18.2e} {t_s / t_owen:10.2f}"
              f" {(val_a - exact).abs().max().item():22.2e} {t_a / t_owen:10.2f}")


if __name__ == "__main__":
    main()
