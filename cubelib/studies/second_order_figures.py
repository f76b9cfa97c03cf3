"""The second-order chapter's figures, from the study (`second_order.study`) and its analyses,
and the decomposition of the networks' second derivatives along the manifold."""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from .. import curvature, experiments, paper, report, store
from ..geometry import PAIRS
from .second_order import (
    METHODS,
    MOTIONS,
    PAIR_LABELS,
    PairNorms,
    SecondOrder,
    TermValues,
    _dataset,
)

DECOMPOSITION_IMAGES = 512  # test images of the decomposition
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
    table = report.Table(
        "rms over test images of ||.|| per pair", columns=[
            "pair", "d2C (target)", "tau", "d2C - tau", "first: tangential", "normal", "curvature", "error",
            "second: tangential", "normal", "curvature", "error"],
        formats={i: ".2f" for i in range(1, 12)},
        note=f"L = {w}; tau = the tangential part of a network with exact first derivatives; error = d2N - d2C.")
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


def plot_pair_norms(n: PairNorms):
    """Per pair: the training images' average ||H_ij|| and the weight 1/n_ij^2 of E2 under both rules."""
    fig, ax = plt.subplots(figsize=(8.5, 2.8))
    x = np.arange(21)
    ax.bar(x - 0.27, n.image.numpy(), 0.27, label="avg ||H_ij||", color="0.6")
    ax.bar(x, 1 / n.scaled.numpy() ** 2, 0.27, label="weight 1/n_ij², scaled (ours)", color="C0")
    ax.bar(x + 0.27, 1 / n.printed.numpy() ** 2, 0.27, label="weight 1/n_ij², as printed", color="C3")
    ax.set_yscale("log")
    ax.set_xticks(x, PAIR_LABELS, rotation=60, fontsize=7)
    ax.legend(fontsize=7, ncols=3)
    ax.set_title("Second-order image derivatives and the weight of each pair in E2", fontsize=9)
    fig.tight_layout()
    return fig


def plot_curves(s: SecondOrder):
    """Test error per epoch of the three methods at each width, the printed-n_ij network and
    the paper's Table 6 where it has the width."""
    widths, pw = s.preset.widths, s.preset.printed_width
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3), squeeze=False)
    for ax, w in zip(axes[0], widths):
        for m in METHODS:
            cur = s.accuracy[m, w].curves
            ax.semilogy(cur["epoch"], cur["e_test"], label=m)
        if s.printed and w == pw:
            cur = s.printed.curves
            ax.semilogy(cur["epoch"], cur["e_test"], ":", color="C2", label="second, n_ij as printed")
        if w in paper.TABLE6:
            ax.axhline(paper.TABLE6[w][1], color="C2", lw=0.7, ls="--", label="paper, second (Table 6)")
        ax.set_title(f"L = {w}: test error", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("e (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_terms(t: TermValues):
    """E0 and E1 per motion (left), E2 per pair (right) of both networks."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 2.8), gridspec_kw={"width_ratios": [1, 3]})
    for k, m in enumerate(("first", "second")):
        tv = t.terms[m]
        axes[0].bar(np.arange(7) + 0.4 * k - 0.2, [tv["E0"], *tv["E1"]], 0.4, label=f"{m}-derivative network")
        axes[1].bar(np.arange(21) + 0.4 * k - 0.2, tv["E2"], 0.4, label=f"{m}-derivative network")
    axes[0].set_xticks(np.arange(7), ["E0", *[f"E1 {n}" for n in MOTIONS]], rotation=60, fontsize=7)
    axes[1].set_xticks(np.arange(21), PAIR_LABELS, rotation=60, fontsize=7)
    for ax, title in zip(axes, ("E0 and E1 per motion", "E2 per pair (scaled n_ij)")):
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_long(s: SecondOrder):
    """Test error of first- and second-derivative training with the long schedule (solid) and
    the preset's (dotted) at the largest width; None when the preset has no long run."""
    if not s.long:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for k, m in enumerate(("first", "second")):
        cur = s.long[m].curves
        ax.semilogy(cur["epoch"], cur["e_test"], color=f"C{k + 1}", label=f"{m}, {s.preset.second_long_epochs} epochs")
        cur = s.accuracy[m, s.best].curves
        ax.semilogy(cur["epoch"], cur["e_test"], ":", color=f"C{k + 1}", label=f"{m}, {s.preset.epochs} epochs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test e (%)")
    ax.set_title(f"L = {s.best}: a longer schedule", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
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
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for label, rows in s.sweep["networks"].items():
        axes[0].plot(sig, [r["e_corrected"] for r in rows], label=label, **styles[label])
        axes[0].plot(sig, [r["e_uncorrected"] for r in rows], lw=0.8, alpha=0.5, color=styles[label]["color"], ls=":")
        axes[1].plot(sig, [r["v_max_corrected"] for r in rows], label=label, **styles[label])
    axes[0].set_title("Fig. 9: test error under noise\n(dotted: against the clean cube, no correction)", fontsize=9)
    axes[0].set_ylabel("e (%)")
    axes[1].set_title("Fig. 10: v_max under noise", fontsize=9)
    axes[1].set_ylabel("v_max (%)")
    for ax in axes:
        ax.set_xlabel("σ of the noise")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
