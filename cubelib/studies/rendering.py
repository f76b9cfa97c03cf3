"""The rendering chapter (§3.3-3.4): the camera and the cube, exact anti-aliasing, the
effective resolution, the pose sequence and the data set of a preset."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import qmc

from .. import data, geometry, paper, presets, render, report, sampling
from ..geometry import C0


@dataclass
class Rendering:
    preset: presets.Preset
    dataset: data.Dataset
    load_seconds: float
    lines: int  # effective resolution, continuous pattern
    lines_px: int  # on the 41 pixel centres
    numbers: dict


def study(preset, device="cpu") -> Rendering:
    """The data set of the preset (rendered on `device` if not cached) and the stripe test."""
    p = presets.get(preset)
    t0 = time.perf_counter()
    ds = data.load(data.dataset_config(p, order=1), device=device)
    seconds = time.perf_counter() - t0
    lines, lines_px = render.effective_resolution(), render.effective_resolution(on_pixels=True)
    D = ds.norms.D_i
    numbers = {"n_train": int(len(ds.train)), "n_test": int(len(ds.test)), "D_mean": D.mean().item(),
               "D_min": D.min().item(), "D_max": D.max().item(), "lines_continuous": int(lines),
               "lines_pixels": int(lines_px), "contrast_29": float(render.stripe_contrast(29)),
               "contrast_29_px": float(render.stripe_contrast(29, on_pixels=True))}
    return Rendering(preset=p, dataset=ds, load_seconds=seconds, lines=lines, lines_px=lines_px, numbers=numbers)


def pose_coverage() -> dict:
    """Over every pose of the paper's training and test sets: poses showing a hidden face,
    poses with fewer than three faces, and how far a vertex reaches towards the frame."""
    p = presets.get("paper")
    poses = sampling.sample_vertices(p.n_train + p.n_test)
    visible = render.visible_faces(poses)
    return {"poses": len(poses), "hidden_shown": int(visible[:, 1::2].any(1).sum()),
            "fewer_than_three": int((visible.sum(1) < 3).sum()),
            "frame_reach": float(geometry.DEFAULT_CAMERA.project(poses).abs().max().item())}


def silhouette_width(z: float) -> tuple[float, float]:
    """Width of the rest cube's silhouette at depth shift z, across flats and across corners, in pixels."""
    uv = geometry.DEFAULT_CAMERA.project(C0 + torch.tensor([0.0, 0.0, z], dtype=torch.float64))
    angles = torch.linspace(0, math.pi, 721, dtype=torch.float64)
    proj = uv @ torch.stack([torch.cos(angles), torch.sin(angles)])
    extent = proj.max(0).values - proj.min(0).values
    return extent.min().item() / 0.05, extent.max().item() / 0.05


DEPTHS = {"nearest (z = +0.52)": 0.52, "middle (z = 0)": 0.0, "farthest (z = -0.52)": -0.52}


def silhouette_widths() -> dict:
    """name -> (across flats, across corners) in pixels at the nearest, middle, farthest depth."""
    return {name: silhouette_width(z) for name, z in DEPTHS.items()}


@dataclass
class Supersampling:
    sharp: torch.Tensor  # [41, 41] the colour function at pixel centres
    exact: torch.Tensor  # [41, 41] the exact Gaussian integral
    pixel: torch.Tensor  # (u, v) of the pixel next to a corner
    samples: list  # m, samples per side
    errors: list  # |midpoint rule on m x m - exact| at that pixel


def supersampling(start: int = 3, ms=(8, 16, 32, 64, 128, 256, 512, 1024)) -> Supersampling:
    """The exact pixel next to a corner against the midpoint rule on m x m samples over +-8 sigma."""
    cube = sampling.sample_vertices(1, start=start)
    sharp = render.point_sample(cube, render.pixel_grid()).reshape(41, 41)
    exact = render.render(cube).image[0]
    corner_uv = geometry.DEFAULT_CAMERA.project(cube[0])[1]
    pixel = torch.round(corner_uv / 0.05) * 0.05
    k = int(round((pixel[1].item() + 1) / 0.05)), int(round((pixel[0].item() + 1) / 0.05))
    errors = []
    for m in ms:
        offs = (torch.arange(m, dtype=torch.float64) + 0.5) / m * 16 - 8  # sigma units
        du, dv = torch.meshgrid(offs, offs, indexing="xy")
        pts = torch.stack([du.reshape(-1), dv.reshape(-1)], -1) * render.SIGMA + pixel
        colour = render.point_sample(cube, pts)[0]
        weight = torch.exp(-0.5 * ((pts - pixel) ** 2).sum(-1) / render.SIGMA**2) / (2 * math.pi * render.SIGMA**2)
        value = (colour * weight).sum() * (16 * render.SIGMA / m) ** 2
        errors.append(abs(value.item() - exact[k].item()))
    return Supersampling(sharp=sharp, exact=exact, pixel=pixel, samples=list(ms), errors=errors)


def stripe_contrasts(ns=range(10, 41)) -> dict:
    """Contrast of n blurred stripes read at the stripe centres and at the 41 pixel centres."""
    ns = np.asarray(list(ns))
    return {"n": ns, "centres": [render.stripe_contrast(int(n)) for n in ns],
            "pixels": [render.stripe_contrast(int(n), on_pixels=True) for n in ns],
            "paper": paper.EFFECTIVE_RESOLUTION_LINES}


def discrepancies(n_grid=(64, 128, 256, 512, 1024, 2048), seeds: int = 5) -> dict:
    """Centred L2 discrepancy of the R-sequence and of uniform random points (mean of `seeds`)."""
    r = [qmc.discrepancy(sampling.r_sequence(n), method="CD") for n in n_grid]
    rand = [np.mean([qmc.discrepancy(np.random.default_rng(s).random((n, 6)), method="CD") for s in range(seeds)])
            for n in n_grid]
    return {"n": list(n_grid), "r_sequence": r, "random": rand, "ratio": float(rand[-1] / r[-1]),
            "points": sampling.r_sequence(2000), "random_points": np.random.default_rng(0).random((2000, 6))}


def rows(s: Rendering) -> list[dict]:
    """The intro's rows of this chapter."""
    D = s.dataset.norms.D_i
    return [report.row("effective resolution of sigma = 0.03 on the 41-pixel grid (lines)",
                       paper.EFFECTIVE_RESOLUTION_LINES, s.lines_px, "any", "rendering"),
            report.row("output spread D_i (min - max)", paper.OUTPUT_STD,
                       f"{D.min().item():.3f} - {D.max().item():.3f}", s.preset.name, "rendering")]
