"""The rendering chapter (§3.3-3.4): the camera and the cube, exact anti-aliasing, the
effective resolution, the pose sequence and the data set of a preset."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import qmc

from .. import data, geometry, paper, plots, presets, render, report, sampling
from ..claims import Claim
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


# The author's generator (img-gen.m, github Avrutskiy/cube) lists the cube as six faces of
# four corners (its pek1 ... pek6), turned as row vectors by pi/2 about z, pi/4 about x and
# 0.6154797 about y; transcribed here as an independent construction of the same cube.
AUTHOR_FACES = 0.2 * torch.tensor([
    [[1, -1, -1], [1, 1, -1], [1, 1, 1], [1, -1, 1]],
    [[-1, -1, 1], [-1, 1, 1], [-1, 1, -1], [-1, -1, -1]],
    [[-1, -1, -1], [-1, 1, -1], [1, 1, -1], [1, -1, -1]],
    [[1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]],
    [[1, -1, 1], [-1, -1, 1], [-1, -1, -1], [1, -1, -1]],
    [[-1, 1, 1], [1, 1, 1], [1, 1, -1], [-1, 1, -1]]], dtype=torch.float64)
AUTHOR_TURNS = ((math.pi / 2, 2), (math.pi / 4, 0), (0.6154797, 1))  # (angle, axis), applied in order


def author_corners() -> torch.Tensor:
    """The generator's 24 face corners at rest, [6, 4, 3]: rows times each turn's matrix, as
    Mathematica's `PEK . RotationMatrix[a, axis]` does."""
    out = AUTHOR_FACES
    for angle, axis in AUTHOR_TURNS:
        out = out @ geometry.basis_rotation(axis, torch.tensor(angle, dtype=torch.float64))
    return out


# The paper's printed C0 (section 3.4), its columns as vertices
PRINTED_C0 = 0.4 * torch.tensor([[-1 / 6**0.5, 0, 1 / 6**0.5], [-1 / 2**0.5, 0, 1 / 2**0.5],
                                 [-1 / (2 * 3**0.5), 3**0.5 / 2, -1 / (2 * 3**0.5)]], dtype=torch.float64).T

# Target vertices: ours, and the two readings of the printed C0 (its third column is no vertex;
# it is one sign away from vertex 2 (z) and from vertex 6 (x))
TARGET_CHOICES = {"ours (0, 1, 2)": (0, 1, 2), "printed, column 3 = v2 (4, 1, 2)": (4, 1, 2),
                  "printed, column 3 = v6 (4, 1, 6)": (4, 1, 6)}


def author_cube(n: int) -> dict:
    """Our C0 against the generator's cube and the printed columns, and the output spreads D_i
    (eq. 8) of each choice of target vertices over the first `n` poses of the sequence."""
    corners = author_corners().reshape(-1, 3)
    gap = torch.cdist(corners, C0).min(1).values.max().item()  # every corner is one of our vertices
    cover = torch.cdist(C0, corners).min(1).values.max().item()  # and every vertex is a corner
    col = torch.cdist(PRINTED_C0, C0)  # [3 columns, 8 vertices]
    poses = sampling.sample_vertices(n)
    spreads = {name: poses[:, list(idx)].reshape(n, 9).std(0) for name, idx in TARGET_CHOICES.items()}
    return {"corner_gap": gap, "vertex_gap": cover, "first_face": corners[0].tolist(),
            "column_vertex": [int(k) for k in col.argmin(1)], "column_gap": [float(g) for g in col.min(1).values],
            "spreads": spreads, "poses": n}


def author_cube_numbers(cube: dict) -> dict:
    spreads = torch.stack(list(cube["spreads"].values()))  # [choices, 9]
    return {"corner_gap": max(cube["corner_gap"], cube["vertex_gap"]), "col1_vertex": cube["column_vertex"][0],
            "col2_vertex": cube["column_vertex"][1], "cube_poses": cube["poses"],
            "D_choice_gap": (spreads.max(0).values - spreads.min(0).values).max().item()}


def target_table(cube: dict) -> report.Table:
    """D_i of each output under each choice of the three target vertices."""
    t = report.Table("", columns=["target vertices", *[f"$D_{{{i + 1}}}$" for i in range(9)]],
                     formats={i: ".4f" for i in range(1, 10)},
                     note=f"Standard deviation of each output over the first {cube['poses']} poses of the "
                          "sequence (eq. 8's $D_i$), for our target vertices and for the two readings of the "
                          "paper's printed $C_0$.")
    for name, d in cube["spreads"].items():
        t.add(name, *d.tolist())
    return t


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


def plot_supersampling(ss: Supersampling):
    """The colour function at pixel centres, the exact image (the checked pixel marked) and
    the midpoint rule's error at that pixel against the samples per side."""
    fig, axes = plots.figure(1, 3, height=2.8)
    plots.show_image(axes[0], ss.sharp, "colour at pixel centres")
    plots.show_image(axes[1], ss.exact, "exact Gaussian integral")
    axes[1].plot(*ss.pixel.tolist(), "r+", ms=10, mew=2)
    ms, err = np.array(ss.samples), np.array(ss.errors)
    axes[2].loglog(ms, err, "o-", label="supersampling")
    axes[2].loglog(ms, err[0] * ms[0] / ms, "k--", lw=0.8, label="$1/m$")
    axes[2].set_xlabel("samples per side $m$")
    axes[2].set_ylabel("|error| at the marked pixel")
    axes[2].legend(loc="lower left")
    plots.log_ticks(axes[2])
    return fig


def plot_stripes(stripes: dict):
    """Contrast of n blurred stripes at the stripe centres and at the 41 pixel centres, with
    the 50 % line and the paper's 28 lines."""
    fig, ax = plots.figure(1, 1, height=3.0)
    ax.plot(stripes["n"], stripes["centres"], "o-", ms=3, label="at the stripe centres")
    ax.plot(stripes["n"], stripes["pixels"], "s-", ms=3, label="at the image's 41 pixel centres")
    ax.axhline(0.5, color="k", lw=0.8, label="50 % contrast")
    ax.axvline(stripes["paper"], color="gray", ls="--", lw=0.8, label=f"paper: {stripes['paper']} lines")
    ax.set_xlabel("lines across the image")
    ax.set_ylabel("contrast")
    plots.legend_outside(ax, "right")
    return fig


def plot_discrepancies(disc: dict, n: int = 600):
    """The first `n` points of the R-sequence and of uniform random points in the (d_x, phi)
    plane, and the centred L2 discrepancy of both against the number of points."""
    fig, axes = plots.figure(1, 3, height=2.8)
    for ax, pts, colour, title in ((axes[0], disc["points"], "C0", "$R$-sequence"),
                                   (axes[1], disc["random_points"], "C1", "uniform random")):
        ax.plot(*pts[:n, [0, 3]].T, ".", ms=2, color=colour)
        ax.set(title=title, xlabel="$d_x$ (scaled to [0, 1])", ylabel=r"$\phi$ (scaled to [0, 1])", aspect="equal")
    axes[2].loglog(disc["n"], disc["r_sequence"], "o-", label="$R$-sequence")
    axes[2].loglog(disc["n"], disc["random"], "s-", label="random")
    axes[2].set_xlabel("points")
    axes[2].set_ylabel("centred $L_2$ discrepancy")
    axes[2].legend(loc="lower left")
    plots.log_ticks(axes[2])
    return fig


def plot_examples(n: int = 12, start: int = 20, ncols: int = 6):
    """`n` images of the pose sequence from index `start` (like Fig. 1 of the paper)."""
    images = render.render(sampling.sample_vertices(n, start=start)).image
    fig, axes = plots.figure(math.ceil(n / ncols), ncols, height=plots.WIDTH / ncols, squeeze=False)
    for ax, img in zip(axes.flat, images):
        plots.show_image(ax, img)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig


def rows(preset) -> list[Claim]:
    """The intro's claims of this chapter.  Nothing is rendered but the stripe test: the
    outputs' spread D_i (data.compute_norms) follows from the training poses alone, so the
    intro of a preset whose data set is not cached costs seconds."""
    p = presets.get(preset)
    cfg = data.dataset_config(p)
    D = geometry.target(sampling.sample_vertices(cfg.n_train, cfg.start)).std(0)
    return [Claim("resolution", "effective resolution of the blur $\\sigma$ = 0.03 on the 41-pixel grid (lines)",
                  paper.EFFECTIVE_RESOLUTION_LINES, "", render.effective_resolution(on_pixels=True), "", "any",
                  "sec-rendering-resolution", smaller=False),
            Claim("output-spread", f"spread $D_i$ of the nine outputs, mean (ours {D.min().item():.2f}-"
                  f"{D.max().item():.2f})", paper.OUTPUT_STD, "", round(D.mean().item(), 3), "", p.name,
                  "sec-rendering-data", smaller=False, digits=2)]
