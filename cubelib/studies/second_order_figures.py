"""The second-order chapter's figures, from the study (`second_order.study`) and its analyses,
and the decomposition of the networks' second derivatives along the manifold."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.lines import Line2D

from .. import curvature, experiments, paper, plots, report, store
from ..geometry import PAIRS
from .accuracy import COLORS, LABELS, plot_learning_curves
from .second_order import (
    METHODS,
    MOTIONS,
    PAIR_LABELS,
    PairNorms,
    SecondOrder,
    TermValues,
    _dataset,
    network_label,
)

DECOMPOSITION_IMAGES = 512  # test images of the decomposition
WEIGHTED_COLOR = "C4"  # second-derivative training with E2 x w
ROTATION_PAIRS = [k for k, (i, j) in enumerate(PAIRS) if j < 3]


@dataclass
class Parts:
    """The decomposition (cubelib.curvature) for the first- and second-derivative networks."""
    networks: dict  # method -> curvature.Decomposition
    table: report.Table
    numbers: dict


def curvature_parts(s: SecondOrder) -> Parts:
    """d2N along each rotation pair (and tz-tz) split into its tangential, normal and curvature
    parts, for the first- and second-derivative networks of the largest width, on test images."""
    p, w = s.preset, max(s.preset.widths)
    test = _dataset(p).test
    nets = {m: curvature.decompose(store.model(experiments.accuracy(p, m, w)), test, DECOMPOSITION_IMAGES)
            for m in ("first", "second")}
    d = nets["first"]
    d2c = "$\\partial^2 C$"
    table = report.Table(
        "", columns=[
            "pair", f"{d2c} (target)", "$\\tau$", f"{d2c} $- \\tau$", "first: tangential", "normal", "curvature",
            "error", "second: tangential", "normal", "curvature", "error"],
        formats={i: ".2f" for i in range(1, 12)},
        note=f"Root mean square over the test images of the norm of each part, per pair, for the first- and "
             f"second-derivative networks of width L = {w}. $\\tau$: the tangential part of a network with exact "
             f"first derivatives; error: $\\partial^2 N - \\partial^2 C$.")
    for k in ROTATION_PAIRS + [PAIRS.index((5, 5))]:
        cells = [PAIR_LABELS[k], d.target[k].item(), d.tau[k].item(), d.needed[k].item()]
        for m in ("first", "second"):
            n = nets[m]
            cells += [n.tangential[k].item(), n.normal[k].item(), n.curvature[k].item(), n.error[k].item()]
        table.add(*cells)
    rot = ROTATION_PAIRS
    ratio = d.tau[rot] / d.target[rot]
    depth = d.tau_by_motion[rot, 5] / d.tau_by_motion[rot].sum(-1)
    first, second = nets["first"], nets["second"]
    numbers = {"dec_images": min(DECOMPOSITION_IMAGES, len(test)), "tau_ratio_lo": ratio.min().item(),
               "tau_ratio_hi": ratio.max().item(), "tau_depth_share": 100 * depth.mean().item(),
               "first_tang_ratio": (first.tangential[rot] / d.tau[rot]).mean().item(),
               "second_tang_ratio": (second.tangential[rot] / d.tau[rot]).mean().item(),
               "first_err_ratio": (first.error[rot] / d.target[rot]).mean().item(),
               "second_err_ratio": (second.error[rot] / d.target[rot]).mean().item()}
    return Parts(networks=nets, table=table, numbers=numbers)


def _pair_ticks(ax, labels):
    ax.set_xticks(np.arange(len(labels)), labels, rotation=60, fontsize=8)


def plot_pair_norms(n: PairNorms):
    """Per pair: the training images' average ||H_ij|| and the weight 1/n_ij^2 of E2 under both rules."""
    fig, ax = plots.figure(1, 1, height=3.0)
    x = np.arange(21)
    ax.bar(x - 0.27, n.image.numpy(), 0.27, label=r"avg $\|\mathcal{H}_{ij}\|$", color="0.6")
    ax.bar(x, 1 / n.scaled.numpy() ** 2, 0.27, label=r"weight $1/n_{ij}^2$, scaled (ours)", color="C0")
    ax.bar(x + 0.27, 1 / n.printed.numpy() ** 2, 0.27, label=r"weight $1/n_{ij}^2$, as printed", color="C3")
    ax.set_yscale("log")
    _pair_ticks(ax, PAIR_LABELS)
    ax.set_xlabel("pair $(i, j)$ of motions")
    plots.log_ticks(ax)
    plots.legend_outside(ax, "right")
    return fig


def plot_curves(s: SecondOrder):
    """Test error per epoch of the three methods at each width, the network with n_ij as printed
    and the paper's Table 6 where it has the width (accuracy.plot_learning_curves)."""
    pw = s.preset.printed_width
    panels = {}
    for w in s.preset.widths:
        lines = [(LABELS[m], s.accuracy[m, w].curves, COLORS[m], "-") for m in METHODS]
        if s.printed and w == pw:
            lines.append((r"second-derivative, $n_{ij}$ as printed", s.printed.curves, COLORS["second"], "-."))
        panels[f"$L$ = {w}"] = lines
    references = {f"$L$ = {w}": [("paper, second-derivative (Table 6)", paper.TABLE6[w][1], COLORS["second"])]
                  for w in s.preset.widths if w in paper.TABLE6}
    return plot_learning_curves(panels, references, ylabel="test e (%)")


def plot_terms(t: TermValues, weight: float | None = None):
    """E0 and E1 per motion (left), E2 per pair (right) of each network (E2 x `weight` too, if
    measured)."""
    fig, axes = plots.figure(1, 2, height=3.0, gridspec_kw={"width_ratios": [1, 3]})
    nets = list(t.terms)
    bar = 0.8 / len(nets)
    colors = {**COLORS, "weighted": WEIGHTED_COLOR}
    labels = {m: f"{LABELS[m]} network" for m in METHODS}
    if weight is not None:
        labels["weighted"] = f"$E_2 \\times$ {weight:g} network"
    for k, m in enumerate(nets):
        tv, dx = t.terms[m], bar * (k - (len(nets) - 1) / 2)
        axes[0].bar(np.arange(7) + dx, [tv["E0"], *tv["E1"]], bar, color=colors[m])
        axes[1].bar(np.arange(21) + dx, tv["E2"], bar, color=colors[m], label=labels[m])
    _pair_ticks(axes[0], ["$E_0$", *[f"$E_1$ {n}" for n in MOTIONS]])
    _pair_ticks(axes[1], PAIR_LABELS)
    for ax, title in zip(axes, ("$E_0$, and $E_1$ per motion", "$E_2$ per pair (scaled $n_{ij}$)")):
        ax.set_yscale("log")
        ax.set_title(title)
    plots.log_ticks(*axes)
    plots.legend_outside(axes[1], "right")
    return fig


def plot_long(s: SecondOrder):
    """Test error of first- and second-derivative training with the long schedule (solid) and
    the preset's (dotted) at the largest width; at a preset without a long run, the preset's alone."""
    fig, ax = plots.figure(1, 1, height=3.0)
    n = s.preset.second_long_epochs
    for m in ("first", "second"):
        if s.long:
            cur = s.long[m].curves
            ax.semilogy(cur["epoch"], cur["e_test"], color=COLORS[m], label=f"{LABELS[m]}, {n} epochs")
        cur = s.accuracy[m, s.best].curves
        ax.semilogy(cur["epoch"], cur["e_test"], ":", color=COLORS[m], label=f"{LABELS[m]}, {s.preset.epochs} epochs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test e (%)")
    ax.set_title(f"$L$ = {s.best}" + ("" if s.long else ": no longer schedule at this preset"))
    plots.log_ticks(ax)
    plots.legend_outside(ax, "right")
    return fig


def plot_noise(s: SecondOrder):
    """Figs. 9 and 10: test error (against eq. 52, and dotted against the clean cube) and v_max
    of the figure networks over the noise's sigma."""
    colors = {"I": "C0", "II": "C3"}
    styles = {}
    for label in s.sweep["networks"]:
        tradeoff = " + " in label
        styles[label] = {"color": colors.get(label.split(" + ")[0], "C2"), "ls": "--" if tradeoff else "-",
                         "marker": "s" if tradeoff else "o", "ms": 3}
    sig = np.array(s.sweep["sigmas"])
    fig, axes = plots.figure(1, 2, height=3.2)
    for label, rows in s.sweep["networks"].items():
        axes[0].plot(sig, [r["e_corrected"] for r in rows], label=network_label(label), **styles[label])
        axes[0].plot(sig, [r["e_uncorrected"] for r in rows], lw=0.8, alpha=0.5, color=styles[label]["color"], ls=":")
        axes[1].plot(sig, [r["v_max_corrected"] for r in rows], **styles[label])
    axes[0].set_title("test error (the paper's Fig. 9)")
    axes[0].set_ylabel("e (%)")
    axes[1].set_title(r"$\bar v_{\max}$ (the paper's Fig. 10)")
    axes[1].set_ylabel(r"$\bar v_{\max}$ (%)")
    for ax in axes:
        ax.set_xlabel(r"$\sigma$ of the noise")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.5", lw=0.8, ls=":"))
    labels.append("e against the clean cube\n(no correction)")
    plots.legend_outside(axes[1], "right", handles=handles, labels=labels)
    return fig


def plot_weighted(s: SecondOrder):
    """Left: test error per epoch of first-derivative training and of E2 x w at the largest
    width, every seed. Right: E2 as the paper defines it (the training curve over w) of those
    runs and of the paper's method, against the first-derivative network's."""
    w, seeds = s.preset.e2_weight, f"seeds 0-{s.preset.seeds - 1}"
    fig, axes = plots.figure(1, 2, height=3.0)
    for k in range(s.preset.seeds):
        for m, color, label in (("first", COLORS["first"], f"first-derivative, {seeds}: test e"),
                                ("weighted", WEIGHTED_COLOR, f"$E_2 \\times$ {w:g}, {seeds}: test e")):
            cur = s.seeds[m, k].curves
            axes[0].semilogy(cur["epoch"], cur["e_test"], color=color, lw=1, alpha=0.9, label=label if k == 0 else None)
        cur = s.seeds["weighted", k].curves
        ep = [e for e, v in zip(cur["epoch"], cur["E2"]) if v is not None]
        axes[1].semilogy(ep, [v / w for v in cur["E2"] if v is not None], color=WEIGHTED_COLOR, lw=1, ls="--",
                         label=f"$E_2 \\times$ {w:g}, {seeds}: $E_2$" if k == 0 else None)
    cur = s.accuracy["second", s.best].curves
    ep = [e for e, v in zip(cur["epoch"], cur["E2"]) if v is not None]
    axes[1].semilogy(ep, [v for v in cur["E2"] if v is not None], color=COLORS["second"], lw=1, ls="--",
                     label="$E_2 \\times$ 1 (the paper's): $E_2$")
    axes[0].set_ylabel("test e (%)")
    axes[1].set_ylabel("$E_2$ (weight 1), training")
    axes[0].set_title(f"$L$ = {s.best}: test error")
    axes[1].set_title("$E_2$ during training")
    for ax in axes:
        ax.set_xlabel("epoch")
    plots.log_ticks(*axes)
    handles, labels = [], []
    for ax in axes:
        h, l = ax.get_legend_handles_labels()
        handles += h
        labels += l
    plots.legend_outside(axes[1], "right", handles=handles, labels=labels)
    return fig
