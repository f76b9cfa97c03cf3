"""Random smooth image directions (section 4.6.1).

U(r): white noise of size (41 + 2r)^2 convolved ("valid") with the Gaussian matrix
G_ij(r) = exp(-2/r^2 [(i - r - 1)^2 + (j - r - 1)^2]) / sum, i, j in [1, 2r + 1], then
normalised to unit norm; U(0) is plain white noise.  The paper's families:
    D_low  = U(15) + U(8) + 0.4 U(2) + 0.2 U(1), normalised
    D_mid  = U(2) + U(1), normalised
    D_high = U(0)
All are drawn in batches on any device from a torch.Generator, so a run is reproducible.
"""
from __future__ import annotations

import torch

SIZE = 41


def gaussian_matrix(r: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """G(r) of section 4.6.1, (2r + 1) x (2r + 1), normalised to sum 1."""
    if not isinstance(r, int) or r < 0:
        raise ValueError(f"r must be a non-negative integer, got {r!r}")
    if r == 0:
        return torch.ones(1, 1, dtype=dtype, device=device)
    i = torch.arange(1, 2 * r + 2, dtype=dtype, device=device)
    d2 = (i[:, None] - r - 1) ** 2 + (i[None, :] - r - 1) ** 2
    G = torch.exp(-2.0 / r**2 * d2)
    return G / G.sum()


# Directions are drawn in blocks of BLOCK images, so that a block's noise (5 MB at r = 15 in
# float32) stays in cache: D_low and D_mid of 97 020 images take 1.37x less time than in one
# draw on one thread (1.14x with huge pages; bench/directions.py), and no longer need the
# 2 GB of one draw's noise.  A CPU randn fills uniforms one by one and turns
# them into normals in groups of 16, so blocks of a multiple of 16 numbers continue the stream
# exactly (each image has an odd number of pixels, hence a multiple of 16 images): the same
# bits as one draw, checked by the tests.
BLOCK = 256


def smooth(n: int, r: int, generator: torch.Generator | None = None, dtype=torch.float64, device=None):
    """n unit-norm directions U(r): [n, 41, 41]."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    where = generator.device if generator is not None else device  # draw where the generator lives
    # G(r) is the outer product of a 1D Gaussian g with itself, so the "valid" convolution is
    # T N T^T with the banded 41 x (41 + 2r) matrix T[i, i:i + 2r + 1] = g: two batched
    # matmuls instead of a (2r + 1)^2 stencil
    g = gaussian_matrix(r, dtype, device).sum(0)
    T = torch.zeros(SIZE, SIZE + 2 * r, dtype=dtype, device=device)
    for i in range(SIZE):
        T[i, i:i + 2 * r + 1] = g
    on_cpu = torch.device(where if where is not None else "cpu").type == "cpu"
    block = BLOCK if on_cpu else max(n, 1)  # a CUDA generator's stream does not split like that
    U = torch.empty(n, SIZE, SIZE, dtype=dtype, device=device)
    for start in range(0, n, block):
        k = min(block, n - start)
        noise = torch.randn(k, SIZE + 2 * r, SIZE + 2 * r, generator=generator, dtype=dtype, device=where)
        u = T @ noise.to(device) @ T.T
        U[start:start + k] = u / u.flatten(1).norm(dim=1)[:, None, None]
    return U


def _unit(x):
    return x / x.flatten(1).norm(dim=1)[:, None, None]


def low(n, generator=None, dtype=torch.float64, device=None):
    """D_low = U(15) + U(8) + 0.4 U(2) + 0.2 U(1), normalised (Fig. 4a)."""
    s = lambda r: smooth(n, r, generator, dtype, device)
    return _unit(s(15) + s(8) + 0.4 * s(2) + 0.2 * s(1))


def mid(n, generator=None, dtype=torch.float64, device=None):
    """D_mid = U(2) + U(1), normalised (Fig. 4b)."""
    return _unit(smooth(n, 2, generator, dtype, device) + smooth(n, 1, generator, dtype, device))


def high(n, generator=None, dtype=torch.float64, device=None):
    """D_high = U(0): white noise, normalised (Fig. 4c)."""
    return smooth(n, 0, generator, dtype, device)


def radial_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power of images [..., 41, 41] per radial frequency: (k, power), k = 0..20 in cycles
    per image width (|f| rounded to the nearest integer), power the sum of |FFT|^2 / 41^2 over
    that ring, so the rings add up to the mean squared norm (Parseval)."""
    x = images.reshape(-1, images.shape[-2], images.shape[-1]).to(torch.float64)
    n = x.shape[-1]
    power = torch.fft.fft2(x).abs().pow(2).mean(0) / (n * n)
    f = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    ring = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2).round().long().clamp(max=n // 2)
    k = torch.arange(n // 2 + 1)
    return k, torch.zeros(len(k), dtype=torch.float64).index_add_(0, ring.flatten(), power.flatten())
