"""The tangents chapter (§4.1-4.2, §5.1): the local transform's derivatives, image derivatives
of first and second order checked against finite differences, how far the expansions reach,
and the derivative norms that set the scales of E1 and E2."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import checks, geometry, paper, plots, presets, render, sampling
from ..claims import Claim
from ..geometry import NU_NAMES, PAIRS

# the paper's reach of the linear expansion (§4.2): 10 degrees for rotations, 0.04 for x/y
# shifts, 0.3 along z
PAPER_REACH = {0: math.radians(10), 1: math.radians(10), 2: math.radians(10), 3: 0.04, 4: 0.04, 5: 0.3}
REACH_THRESHOLD = 0.1  # a pixel error of 0.1 ends the expansion's reach


@dataclass
class Tangents:
    preset: presets.Preset
    cubes: torch.Tensor  # [n, 8, 3] the checked poses
    result: render.RenderResult  # their images with d1 and d2


def study(preset) -> Tangents:
    """The preset's check poses, rendered with first and second derivatives."""
    p = presets.get(preset)
    cubes = sampling.sample_vertices(p.derivative_checks, start=500)
    return Tangents(preset=p, cubes=cubes, result=render.render(cubes, order=2))


def closed_form_vs_autograd(cube: torch.Tensor) -> tuple[float, float]:
    """Largest |difference| of dC/dnu and d2C/dnu2 in closed form against autograd of eq. (13)."""
    nu0 = torch.zeros(6, dtype=torch.float64)

    def moved(nu):
        return geometry.transform(cube, nu)

    def jacobian(nu):
        return torch.autograd.functional.jacobian(moved, nu, create_graph=True)

    jac = torch.autograd.functional.jacobian(moved, nu0).permute(2, 0, 1)
    hess = torch.autograd.functional.jacobian(jacobian, nu0)
    d2 = torch.stack([hess[..., i, j] for i, j in PAIRS])
    return (geometry.vertex_d1(cube) - jac).abs().max().item(), (geometry.vertex_d2(cube) - d2).abs().max().item()


def first_order(s: Tangents, eps_list=(1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6)) -> dict:
    """Central differences of exact images against the analytic dI/dnu: error and its slope."""
    err = checks.fd_d1_errors(s.cubes, s.result.d1, list(eps_list))
    return {"eps": list(eps_list), "errors": err, "slope": float(np.polyfit(np.log(eps_list), np.log(err), 1)[0])}


TAYLOR_DIRECTION = (0.3, -0.2, 0.25, 0.04, -0.03, 0.2)
TAYLOR_STEPS = (0.4, 0.2, 0.1, 0.05, 0.025)


def second_order(s: Tangents) -> dict:
    """d2I/dnu2 of eq. (45) against second differences (per pair), and the orders of the linear
    and quadratic expansions along a fixed nu."""
    steps = list(TAYLOR_STEPS)
    lin, quad = checks.taylor_errors(s.cubes, s.result, torch.tensor(TAYLOR_DIRECTION, dtype=torch.float64), steps)
    return {"d2_errors": checks.d2_errors(s.cubes, s.result.d2), "steps": steps, "linear": lin, "quadratic": quad,
            "p_lin": float(np.polyfit(np.log(steps[-3:]), np.log(lin[-3:]), 1)[0]),
            "p_quad": float(np.polyfit(np.log(steps[-3:]), np.log(quad[-3:]), 1)[0])}


def plot_first_derivatives(s: Tangents, shown=(3, 5, 0, 2)):
    """The first check cube's image and four of its first derivatives (like Fig. 3 of the paper)."""
    fig, axes = plots.figure(1, len(shown) + 1, height=plots.WIDTH / (len(shown) + 1) + 0.3)
    plots.show_image(axes[0], s.result.image[0], "image")
    for ax, i in zip(axes[1:], shown):
        plots.show_signed(ax, s.result.d1[0, i], rf"$\partial I/\partial\nu_{i + 1}$ ({NU_NAMES[i]})")
    for ax in axes:
        plots.zoom(ax, s.cubes[0])
    return fig


def plot_first_order(fd: dict):
    """Relative error of central differences of exact images against the analytic dI/dnu."""
    eps = np.array(fd["eps"])
    fig, ax = plots.figure(1, 1, height=3.0)
    ax.loglog(eps, fd["errors"], "o-", label="central difference\nvs analytic")
    ax.loglog(eps, fd["errors"][0] * (eps / eps[0]) ** 2, "k--", lw=0.8, label=r"$\propto\varepsilon^2$")
    ax.set_xlabel(r"$\varepsilon$")
    ax.set_ylabel("relative error")
    plots.log_ticks(ax)
    plots.legend_outside(ax, "right")
    return fig


def plot_second_derivatives(s: Tangents, pairs=((3, 3), (5, 5), (0, 4), (2, 2))):
    """Four second derivatives of the first check cube's image (like Fig. 8 of the paper)."""
    fig, axes = plots.figure(1, len(pairs), height=plots.WIDTH / len(pairs) + 0.3)
    for ax, (i, j) in zip(axes, pairs):
        title = rf"$\partial^2 I/\partial\nu_{i + 1}\partial\nu_{j + 1}$"
        plots.show_signed(ax, s.result.d2[0, geometry.PAIR_INDEX[(i, j)]], title)
        ax.set_xlabel(f"{NU_NAMES[i]}, {NU_NAMES[j]}", fontsize=9)
        plots.zoom(ax, s.cubes[0])
    return fig


def plot_second_order(so: dict):
    """Left: relative error of eq. (45) per pair; right: remainders of the linear and
    quadratic expansions along a fixed nu against the step."""
    fig, axes = plots.figure(1, 2, height=3.2, gridspec_kw={"width_ratios": [1.1, 1]})
    axes[0].semilogy(range(21), so["d2_errors"], "o")
    axes[0].set_xticks(range(21), [f"{i + 1}{j + 1}" for i, j in PAIRS], rotation=90, fontsize=8)
    axes[0].set_xlabel("pair $ij$")
    axes[0].set_ylabel("relative error of eq. (45)")
    axes[1].loglog(so["steps"], so["linear"], "o-", label=f"linear (eq. 19),\nslope {so['p_lin']:.2f}")
    axes[1].loglog(so["steps"], so["quadratic"], "s-", label=f"quadratic (eq. 46),\nslope {so['p_quad']:.2f}")
    axes[1].set_xlabel(r"step $t$ along a fixed $\nu$")
    axes[1].set_ylabel(r"$\|I(\hat T(t\nu)C) - \mathrm{expansion}\|$")
    plots.log_ticks(*axes)
    axes[1].set_xticks(so["steps"], [f"{t:g}" for t in so["steps"]])
    axes[1].legend(loc="lower right")
    return fig


def reach_grids(stride: int = 1) -> dict:
    """Steps along each motion at which the expansions are evaluated (every `stride`-th)."""
    grids = {i: np.linspace(0.005, 0.5, 100) for i in range(3)}  # radians
    grids.update({3: np.linspace(0.0025, 0.12, 48), 4: np.linspace(0.0025, 0.12, 48), 5: np.linspace(0.01, 0.8, 80)})
    return {i: g[::stride] for i, g in grids.items()}


def expansion_reach(s: Tangents) -> dict:
    """For each motion and order 1, 2: the median over poses of the largest pixel error of the
    expansion against exact images, and the step where it crosses REACH_THRESHOLD."""
    grids = reach_grids(s.preset.reach_stride)
    curves, reach = {}, {}
    for i in range(6):
        for order in (1, 2):
            curves[i, order] = checks.expansion_errors(s.cubes, s.result, i, order, grids[i]).median(1).values
            reach[i, order] = checks.crossing(grids[i], curves[i, order], REACH_THRESHOLD)
    rot = [reach[i, 1] for i in range(3)]
    numbers = {"reach_shift_x": float(reach[3, 1]), "reach_shift_z": float(reach[5, 1]),
               "reach_rot_deg": float(math.degrees(np.mean(rot))), "reach_z_over_x": float(reach[5, 1] / reach[3, 1]),
               "reach_gain": float(np.mean([reach[i, 2] / reach[i, 1] for i in range(6)]))}
    return {"grids": grids, "curves": curves, "reach": reach, "paper": PAPER_REACH, "numbers": numbers}


def plot_reach(r: dict):
    """Per motion: the median over poses of the largest pixel error of the linear and quadratic
    expansions against the step, the threshold (black) and the paper's reach (dotted)."""
    fig, axes = plots.figure(2, 3, height=2.5, sharey=True)
    for i, ax in enumerate(axes.flat):
        for order, style in ((1, "-"), (2, "--")):
            ax.semilogy(r["grids"][i], r["curves"][i, order].numpy(), style,
                        label=["", "linear expansion", "quadratic expansion"][order])
        ax.axhline(REACH_THRESHOLD, color="k", lw=0.7, label=f"threshold {REACH_THRESHOLD:g}")
        ax.axvline(r["paper"][i], color="gray", ls=":", lw=1.2, label="paper's reach (linear)")
        ax.set_title(NU_NAMES[i])
        ax.set_xlabel("step (rad)" if i < 3 else "step")
    for ax in axes[:, 0]:
        ax.set_ylabel("median max\npixel error")
    plots.log_ticks(*axes.flat)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return fig


def derivative_norms(n: int) -> dict:
    """avg ||dI/dnu_i|| and avg ||d2I/dnu_i dnu_j|| over n poses, and the rotation pairs' mean."""
    n1, n2 = checks.derivative_norms(render.render(sampling.sample_vertices(n, start=700), order=2))
    rot_rot = torch.stack([n2[k] for k, (i, j) in enumerate(PAIRS) if j < 3]).mean().item()
    return {"d1": n1, "d2": n2, "rot_rot": float(rot_rot), "n": n}


def rows(preset) -> list[Claim]:
    """The intro's claim of this chapter: the rotation pairs' average ||d2I|| (the paper's ~40)."""
    p = presets.get(preset)
    return [Claim("rotation-d2", "average norm of the rotation pairs' second image derivatives",
                  paper.ROTATION_D2_NORM, "", round(derivative_norms(p.norm_images)["rot_rot"], 1), "", p.name,
                  "sec-tangents-second", smaller=False)]
