"""The baselines chapter's figures, from its study (cubelib.studies.baselines) and analyses,
and the input-space surfaces of 004 with their check against the nonlinear oracle."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.colors import LogNorm

from .. import data, experiments, geometry, inputspace, oracle, plots, render, robustness, store
from .baselines import Baselines, Projection, TangentBP

GROUPS = {"accuracy": "accuracy-", "robustness": "robustness-", "baselines": "baseline-"}  # by name prefix


VMAX = r"$\bar v_{\max}$"


def plot_projection(p: Projection):
    """Relative error of 003's estimate against n_proj, per image and over the batch, with
    slope -1/2 from the first point (dotted)."""
    k = np.array(p.errors["n_proj"])
    fig, ax = plots.figure(1, 1, height=3.0)
    ax.loglog(k, 100 * np.array(p.errors["per_image"]), "o-", label="one image")
    ax.loglog(k, 100 * np.array(p.errors["batch"]), "s-", label=f"mean over {p.images} images")
    for i, series in enumerate((p.errors["per_image"], p.errors["batch"])):
        ax.loglog(k, 100 * series[0] * k**-0.5, "k:", lw=0.8, label="slope $-1/2$" if i == 0 else None)
    ax.set_xlabel(r"$n_{\mathrm{proj}}$")
    ax.set_ylabel(r"relative error of $\|J\|_F^2$ (%)")
    plots.legend_outside(ax, "right")
    plots.log_ticks(ax)
    return fig


def _typeset(label: str) -> str:
    return (label.replace("sigma", r"$\sigma$").replace("c^2", "$c^2$")
            .replace("R_high", r"$R^{\mathrm{I}}_{\mathrm{high}}$"))


def plot_sweeps(s: Baselines):
    """Test e against test v_max for every strength of every method (filled: the picks), the
    universal robust networks (stars), the robustness chapter's sweeps (grey) and the
    conventional network (cross); every mark named in the legend beside the axes."""
    table = s.comparison
    markers = dict(zip(experiments.BASELINE_METHODS, "osD^v<>pPX"))
    fig, ax = plots.figure(1, 1, height=4.6)
    for method, sweep in table["sweeps"].items():
        e = [r["e_test"] for r in sweep]
        v = [r["v_max_test"] for r in sweep]
        line, = ax.plot(v, e, marker=markers[method], mfc="none", lw=0.9, ms=5, label=method)
        pick = table["picks"][method]
        ax.plot(pick["v_max_test"], pick["e_test"], marker=markers[method], color=line.get_color(), ms=6)
    for (label, sweep), style in zip(table["literature_sweeps"].items(), ("-", "--")):
        ax.plot([r["v_max_test"] for r in sweep], [r["e_test"] for r in sweep], style, color="0.55", lw=2, alpha=0.6,
                label=f"{label}, robustness chapter")
    for (label, r), color in zip(table["robust"].items(), ("k", "r")):
        ax.plot(r["v_max_test"], r["e_test"], "*", color=color, ms=11, ls="none", label=f"universal {_typeset(label)}")
    conv_m = table["conventional"]
    ax.plot(conv_m["v_max_test"], conv_m["e_test"], "kx", ms=8, ls="none", label="conventional")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{VMAX} (%), test")
    ax.set_ylabel("e (%), clean test images")
    plots.legend_outside(ax, "right")
    plots.log_ticks(ax)
    return fig


def plot_tangent_bp(t: TangentBP):
    """The derivative ratio along each motion, per strength of Tangent BP and conventional (dashed)."""
    fig, ax = plots.figure(1, 1, height=3.0)
    ax.plot(range(6), t.conventional, "k--", label="conventional")
    for strength, ratio in t.ratios.items():
        ax.plot(range(6), ratio, "o-", label=rf"Tangent BP, $\beta$ = {strength:g}")
    ax.set_xticks(range(6), [rf"$\nu_{i}$" for i in range(1, 7)])
    ax.set_yscale("log")
    ax.set_xlabel("motion of the cube")
    ax.set_ylabel(r"$\overline{\|\partial N/\partial\nu_i\|}\;/\;\overline{\|\partial C/\partial\nu_i\|}$")
    plots.legend_outside(ax, "right")
    plots.log_ticks(ax)
    return fig


def plot_indicator(s: Baselines):
    """004's indicator (mean |J|, top |Hessian eigenvalue| of the outputs) against the test
    v_max of every network of the book, by chapter."""
    nets = s.indicator["networks"]
    names = sorted(nets)
    fig, axes = plots.figure(1, 2, height=3.2, sharey=True)
    for ax, key, label in ((axes[0], "J_out", r"mean $|J|_{\mathrm{out}}$"),
                           (axes[1], "H_out", r"mean top $|\lambda|_{\mathrm{out}}$")):
        for group, prefix in GROUPS.items():
            pts = [(nets[k][key], nets[k]["v_max_test"]) for k in names if k.startswith(prefix)]
            if pts:
                ax.scatter(*zip(*pts), s=14, label=f"{group} chapter")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_title(rf"Spearman $\rho$ = {s.rho[key]:.2f}")
    axes[0].set_ylabel(f"{VMAX} (%), test")
    plots.legend_outside(axes[1], "right")
    plots.log_ticks(*axes)
    return fig


def plot_surfaces(surf: Surfaces):
    """The error planes: one column per network, the attack plane above the white-noise one;
    a shared log colour scale and the contour e = 10 %."""
    es = [p["e"] for pair in surf.panels.values() for p in pair]
    lo, hi = min(e.min().item() for e in es), max(e.max().item() for e in es)
    fig, axes = plots.figure(2, 3, height=2.7, sharex=True, sharey=True)
    for col, (label, pair) in enumerate(surf.panels.items()):
        for row, p in enumerate(pair):
            ax = axes[row, col]
            a = p["a"].numpy()
            im = ax.pcolormesh(a, a, p["e"].numpy(), norm=LogNorm(max(lo, 1e-2), hi), shading="auto", cmap="viridis")
            ax.contour(a, a, p["e"].numpy(), levels=[10.0], colors="w", linewidths=0.8)
            ax.plot(0, 0, "r+")
            if row == 0:
                ax.set_title(label.replace("universal robust, ", "universal robust,\n"), fontsize=9)
            if col == 0:
                ax.set_ylabel("b along " + ("the attack" if row == 0 else "white noise 2"))
            if row == 1:
                ax.set_xlabel("a along white noise 1")
    cb = fig.colorbar(im, ax=axes, shrink=0.8, label="e (%)")
    plots.log_ticks(cb.ax)
    return fig


@dataclass
class Surfaces:
    radius: float
    panels: dict  # label -> (surface along the attack, along white noise): inputspace.surface
    numbers: dict


def surfaces(s: Baselines, radius: float = 2.0) -> Surfaces:
    """004's Figs. 6-7: the error against the oracle's answer on planes through the first test
    image, spanned by white noise and each network's optimal attack D_max (or a second white
    noise), for the best and worst picks and universal robust training; and the oracle's
    expansion checked against the nonlinear oracle at the attack planes' far edges."""
    ds, n, steps = s.dataset, s.numbers, s.preset.surface_steps
    white = torch.randn(2, 41 * 41, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    white = white / white.norm(dim=-1, keepdim=True)
    vertices = ds.test.vertices[0]
    ref = s.comparison["reference_label"]
    labels = {"best: " + n["best_label"]: n["best_label"], "worst: " + n["worst_label"]: n["worst_label"], ref: ref}
    grad_O1 = data.oracle_gradients(ds.test, 1)
    panels, attacks = {}, {}
    for label, key in labels.items():
        model = store.model(s.comparison["networks"][key], device="cpu")
        gN = robustness.network_gradients(model.double(), ds.test.image[:1].double())
        attacks[label] = robustness.vulnerabilities(gN, grad_O1).d_max[0]
        model = model.float()
        panels[label] = [inputspace.surface(model, vertices, white[0], w, radius, steps, ds.norms.D_i)
                         for w in (attacks[label], white[1])]
    edge = {label: [float(p["e"][[0, -1], steps // 2].max()) for p in pair] for label, pair in panels.items()}
    ratio = [a / w for a, w in edge.values()]  # at the same distance R: the attack against white noise 2
    numbers = {"surf_radius": radius, "surf_best_edge": edge["best: " + n["best_label"]][0],
               "surf_worst_edge": edge["worst: " + n["worst_label"]][0], "surf_ref_edge": edge[ref][0],
               "surf_oracle_gap": _oracle_gap(vertices, attacks.values(), radius, ds.norms.D_i),
               "flat_text": f"At the same distance along white noise the error is {min(ratio):.1f} to "
               f"{max(ratio):.1f} times smaller than along the attack" +
               (": 004's observation that random directions hardly show a network's weakness."
                if min(ratio) > 2 else "; here random directions show the weakness nearly as well as the attack.")}
    return Surfaces(radius=radius, panels=panels, numbers=numbers)


def _oracle_gap(vertices, attacks, radius: float, D: torch.Tensor) -> float:
    """The largest error (%) of the oracle's second-order expansion (eq. 52) against the
    nonlinear oracle (eq. 9) at I +- radius d over the attack directions d."""
    V1 = vertices.reshape(1, 8, 3).double()
    r2 = render.render(V1, order=2)
    t1 = oracle.tangent(V1, r2.d1, r2.d2)
    gaps = []
    for d in attacks:
        delta = torch.stack([radius * d, -radius * d])  # [2, P]
        ex = oracle.along(t1, delta[None], order=2)
        eq52 = geometry.target(V1) + ex.dO[0] + 0.5 * ex.d2O[0]
        start = geometry.transform(V1.expand(2, 8, 3), ex.dnu[0] + 0.5 * ex.d2nu[0])
        sol = oracle.nonlinear((r2.image.reshape(1, -1) + delta).reshape(2, 41, 41), start)
        if not bool(sol.converged.all()):
            raise RuntimeError(f"the nonlinear oracle did not converge: {sol.status}")
        gaps.append((100 * (eq52 - geometry.target(sol.vertices)).abs() / D.double()).mean(-1).max().item())
    return max(gaps)
