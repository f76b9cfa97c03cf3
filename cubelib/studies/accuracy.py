"""The accuracy chapter (§3.5, §4.3): conventional against first-derivative training at the
preset's widths, Tables 1 and 2 beside the paper's, the learning curves, and the norm of the
input gradient that derivative training leaves as it was."""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt

from .. import experiments, paper, presets, store
from ..report import Table, row

METHODS = ("conventional", "first")


@dataclass
class Accuracy:
    preset: presets.Preset
    experiments: dict  # (method, width) -> store.Experiment
    results: dict  # (method, width) -> store.Result: metrics, learning curves, provenance
    best: int  # the largest width
    gains: dict  # width -> test e of conventional / test e of first-derivative training
    grad_norms: dict  # width -> (conventional, first): mean ||grad N_1|| over the test images
    table1: Table  # Table 1: conventional training
    table2: Table  # Table 2: first-derivative training, with the gain
    numbers: dict


def crossover_epoch(conv: dict, first: dict) -> int:
    """The epoch from which first-derivative training stays ahead on the test set for good
    (learning curves of both); -1 if it is behind at the end."""
    better = [f < c for c, f in zip(conv["e_test"], first["e_test"])]
    k = len(better)
    while k > 0 and better[k - 1]:
        k -= 1
    return first["epoch"][k] if k < len(better) else -1


def low_lr_gain(curves: dict, switch: int) -> float:
    """How much the test error falls after epoch `switch` (the drop to lr 1e-4)."""
    before = [e for ep, e in zip(curves["epoch"], curves["e_test"]) if ep <= switch]
    return (before[-1] if before else curves["e_test"][0]) / curves["e_test"][-1]


def _tables(p: presets.Preset, results: dict, gains: dict) -> tuple[Table, Table]:
    t1 = Table("Table 1", subtitle=", conventional training (E0)", columns=
               ["L", "weights", "e train", "e test", "paper: test", "minutes", "paper: minutes"],
               formats={2: ".3f", 3: ".3f", 4: ".3g", 5: ".1f", 6: ".3g"})
    t2 = Table("Table 2", subtitle=", first-derivative training (E0 + E1)", columns=
               ["L", "e train", "e test", "paper: test", "minutes", "gain (test)", "paper: gain"],
               formats={1: ".3f", 2: ".3f", 3: ".3g", 4: ".1f", 5: ".2f", 6: ".1f"})
    for w in p.widths:
        c, f = results["conventional", w].metrics, results["first", w].metrics
        p1, p2 = paper.TABLE1.get(w), paper.TABLE2.get(w)  # None: not a width of the paper
        t1.add(w, f"{c['n_weights'] / 1e6:.2f}M", c["e_train"], c["e_test"], p1[1] if p1 else None,
               results["conventional", w].minutes, p1[2] if p1 else None)
        t2.add(w, f["e_train"], f["e_test"], p2[1] if p2 else None, results["first", w].minutes, gains[w],
               p1[1] / p2[1] if p1 else None)
    prov = results["first", max(p.widths)].provenance
    t2.note = (f"Errors e in %; minutes of training on {prov['device']} (the paper's: an A10 with TF32); "
               f"code {prov['git_commit'][:12]}, torch {prov['torch']}, {prov['date'][:10]}.")
    return t1, t2


def study(preset, device="cpu") -> Accuracy:
    """Both methods at every width of the preset, from the store (trained unless stored)."""
    p = presets.get(preset)
    exps = {(m, w): experiments.accuracy(p, m, w) for w in p.widths for m in METHODS}
    results = {k: store.run(exp, device=device) for k, exp in exps.items()}
    gains = {w: results["conventional", w].e_test / results["first", w].e_test for w in p.widths}
    grads = {w: tuple(results[m, w].metrics["grad_norm_N1"] for m in METHODS) for w in p.widths}
    table1, table2 = _tables(p, results, gains)
    best = max(p.widths)
    conv, first = results["conventional", best], results["first", best]
    numbers = {
        "gain_best": float(gains[best]), "gain_min": float(min(gains.values())), "width_best": int(best),
        "e_conv_best": float(conv.e_test), "e_first_best": float(first.e_test),
        "crossover": int(crossover_epoch(conv.curves, first.curves)),
        "low_lr_gain_first": float(low_lr_gain(first.curves, p.high_lr_epochs)),
        "low_lr_gain_conv": float(low_lr_gain(conv.curves, p.high_lr_epochs)),
        "grad_conv": float(grads[best][0]), "grad_first": float(grads[best][1]),
        "grad_ratio": float(grads[best][1] / grads[best][0]),
    }
    return Accuracy(preset=p, experiments=exps, results=results, best=best, gains=gains, grad_norms=grads,
                    table1=table1, table2=table2, numbers=numbers)


def plot_curves(s: Accuracy):
    """Test (solid) and training (dotted) error per epoch, one panel per width, with the
    paper's test errors where it has the width."""
    widths = s.preset.widths
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3), squeeze=False)
    for ax, w in zip(axes[0], widths):
        for method in METHODS:
            cur = s.results[method, w].curves
            ax.semilogy(cur["epoch"], cur["e_test"], "-", label=f"{method}: test")
            ax.semilogy(cur["epoch"], cur["e_train"], ":", color=ax.lines[-1].get_color(), label=f"{method}: train")
        if w in paper.TABLE1:
            ax.axhline(paper.TABLE1[w][1], color="C0", lw=0.7, ls="--", label="paper, conventional test")
            ax.axhline(paper.TABLE2[w][1], color="C1", lw=0.7, ls="--", label="paper, first-derivative test")
        ax.set_title(f"L = {w}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("e (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def rows(s: Accuracy) -> list[dict]:
    """The intro table's rows of this chapter (summary.accuracy_rows), from the study."""
    out = []
    name = s.preset.name
    for w in s.preset.widths:
        t1, t2 = paper.TABLE1.get(w), paper.TABLE2.get(w)
        conv, first = s.results["conventional", w].e_test, s.results["first", w].e_test
        out += [
            row(f"test e (%), conventional, L = {w}", t1[1] if t1 else None, round(conv, 3), name, "accuracy"),
            row(f"test e (%), first derivatives, L = {w}", t2[1] if t2 else None, round(first, 3), name, "accuracy"),
            row(f"accuracy gain of first-derivative training, L = {w}", round(t1[1] / t2[1], 1) if t1 else "5-6",
                round(s.gains[w], 2), name, "accuracy"),
            row(f"mean norm of grad N_1 over test images, conventional, L = {w}",
                paper.GRAD_NORM_N1 if w == 2048 else None, round(s.grad_norms[w][0], 3), name, "accuracy, oracle"),
        ]
    return out
