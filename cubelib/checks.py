"""Numerical checks of the image derivatives that the tangents chapter shows.

Everything here compares the analytic derivatives of `render` with images of displaced cubes
T(nu) C (eq. 13), rendered exactly: central differences, Taylor remainders, and how far the
linear (eq. 19) and quadratic (eq. 46) expansions carry before they visibly fail.
"""
from __future__ import annotations

import torch

from . import geometry, render
from .geometry import PAIRS


def _image(vertices, nu):
    return render.render(geometry.transform(vertices, nu)).image


def _unit(i, value, dtype=torch.float64):
    nu = torch.zeros(6, dtype=dtype)
    nu[i] = value
    return nu


def fd_d1_errors(vertices, d1, eps_list):
    """Relative error ||FD - d1|| / ||d1|| of central differences of images, one per eps."""
    errors = []
    for eps in eps_list:
        fd = torch.stack([(_image(vertices, _unit(i, eps)) - _image(vertices, _unit(i, -eps))) / (2 * eps)
                          for i in range(6)], 1)
        errors.append(((fd - d1).norm() / d1.norm()).item())
    return errors


def second_difference(vertices, i, j, h):
    """d2 I / dnu_i dnu_j from images of T(nu) C: the 3-point (i = j) or 4-point (i != j) stencil."""
    if i == j:
        return (_image(vertices, _unit(i, h)) - 2 * _image(vertices, _unit(i, 0.0))
                + _image(vertices, _unit(i, -h))) / h**2
    img = lambda a, b: _image(vertices, _unit(i, a) + _unit(j, b))
    return (img(h, h) - img(h, -h) - img(-h, h) + img(-h, -h)) / (4 * h * h)


def d2_errors(vertices, d2, h=2e-3):
    """Relative error of eq. (45) against Richardson-extrapolated second differences, per pair."""
    out = []
    for k, (i, j) in enumerate(PAIRS):
        ref = (4 * second_difference(vertices, i, j, h / 2) - second_difference(vertices, i, j, h)) / 3
        out.append(((d2[:, k] - ref).norm() / ref.norm()).item())
    return out


def expand(result, nu, order):
    """The image of T(nu) C predicted by the linear (order 1) or quadratic (order 2) expansion."""
    out = result.image + torch.einsum("i,bixy->bxy", nu, result.d1)
    if order == 2:
        out = out + 0.5 * torch.einsum("i,j,bijxy->bxy", nu, nu, result.d2[:, geometry.SYMMETRIC])
    return out


def taylor_errors(vertices, result, direction, steps):
    """||I(T(t nu) C) - expansion|| for the linear and quadratic expansions, for each t."""
    lin, quad = [], []
    for t in steps:
        exact = _image(vertices, t * direction)
        lin.append((exact - expand(result, t * direction, 1)).norm().item())
        quad.append((exact - expand(result, t * direction, 2)).norm().item())
    return lin, quad


def expansion_errors(vertices, result, i, order, steps):
    """Largest pixel error of the order-1 or order-2 expansion along nu_i, the worse of +-step:
    [len(steps), B].  Steps that push a cube out of the frame give inf."""
    out = []
    for step in steps:
        worst = torch.zeros(vertices.shape[0], dtype=torch.float64)
        for sign in (1.0, -1.0):
            nu = _unit(i, sign * float(step))
            moved = geometry.transform(vertices, nu)
            inside = geometry.DEFAULT_CAMERA.project(moved).abs().amax(dim=(-1, -2)) < render.EXTENT
            img = torch.zeros_like(result.image)
            if inside.any():
                img[inside] = render.render(moved[inside]).image
            err = (img - expand(result, nu, order)).abs().amax(dim=(-1, -2))
            worst = torch.maximum(worst, torch.where(inside, err, torch.full_like(err, float("inf"))))
        out.append(worst)
    return torch.stack(out)


def crossing(steps, values, level):
    """First step at which `values` [len(steps)] reaches `level`, linearly interpolated (nan if never)."""
    steps = torch.as_tensor(steps, dtype=torch.float64)
    above = (values >= level).nonzero()
    if len(above) == 0:
        return float("nan")
    k = int(above[0])
    if k == 0:
        return float(steps[0])
    v0, v1 = float(values[k - 1]), float(values[k])
    return float(steps[k - 1] + (level - v0) / (v1 - v0) * (steps[k] - steps[k - 1]))


def derivative_norms(result):
    """Average image norms: ||dI/dnu_i|| [6] and ||d2I/dnu_i dnu_j|| [21] over the batch."""
    n1 = result.d1.flatten(2).norm(dim=-1).mean(0)
    n2 = result.d2.flatten(2).norm(dim=-1).mean(0) if result.d2 is not None else None
    return n1, n2
