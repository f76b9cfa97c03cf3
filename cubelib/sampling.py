"""Low-discrepancy pose parameters: Roberts' R-sequence in 6 dimensions (section 3.4).

x_n = frac(1/2 + n * alpha), alpha_k = phi_6^-(k+1), where phi_6 is the real root of
x^7 = x + 1.  The 6 coordinates map to the pose of eq. (6): d in [-0.52, 0.52]^3,
phi in [-pi/8, pi/8], and the axis r from rho in [-1, 1], theta in [0, pi].
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import geometry

SHIFT_RANGE = 0.52
ANGLE_RANGE = math.pi / 8


def generalized_golden_ratio(d: int) -> float:
    """The real root > 1 of x^(d+1) = x + 1 (Newton from 2; phi_1 is the golden ratio)."""
    x = 2.0
    for _ in range(60):
        x -= (x ** (d + 1) - x - 1) / ((d + 1) * x**d - 1)
    return x


def r_sequence(n: int, dim: int = 6, start: int = 0) -> np.ndarray:
    """Points start .. start+n-1 of the R-sequence in [0, 1)^dim, float64 [n, dim].

    Computed in float64: for indices up to 10^6 each coordinate is exact to ~1e-10.
    """
    if n < 0 or start < 0:
        raise ValueError(f"r_sequence needs n >= 0 and start >= 0, got n={n}, start={start}")
    g = generalized_golden_ratio(dim)
    alpha = np.array([g ** -(k + 1) for k in range(dim)])
    idx = np.arange(start + 1, start + n + 1, dtype=np.float64)[:, None]
    return np.mod(0.5 + idx * alpha, 1.0)


def params_to_pose(p: np.ndarray | torch.Tensor):
    """Map unit-cube points [B, 6] to (axis [B, 3], angle [B], shift [B, 3]) as in section 3.4."""
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.ndim != 2 or p.shape[1] != 6:
        raise ValueError(f"pose parameters must have shape [B, 6], got {tuple(p.shape)}")
    shift = (2 * p[:, :3] - 1) * SHIFT_RANGE
    angle = (2 * p[:, 3] - 1) * ANGLE_RANGE
    rho = 2 * p[:, 4] - 1
    theta = math.pi * p[:, 5]
    s = torch.sqrt(torch.clamp(1 - rho**2, min=0.0))
    axis = torch.stack([s * torch.cos(theta), s * torch.sin(theta), rho], -1)
    return axis, angle, shift


def sample_vertices(n: int, start: int = 0) -> torch.Tensor:
    """Cube vertices [n, 8, 3] (float64) for R-sequence points start .. start+n-1."""
    axis, angle, shift = params_to_pose(r_sequence(n, 6, start))
    return geometry.pose_vertices(axis, angle, shift)
