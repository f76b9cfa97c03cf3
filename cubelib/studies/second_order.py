"""The second-order chapter (§5): second-derivative training against the accuracy chapter's
networks (Table 6) with its long run, second-order robust training (Tables 7-8), and the
networks of Figs. 9-10 under Gaussian noise (the stored noise sweep).

`study` only loads stored results and builds the tables and numbers.  The analyses that need
the order-2 data set (~2.3 GB at quick) or the networks' weights are separate functions the
chapter calls: `pair_norms` (n_ij of E2 and the average image Hessians) and `term_diagnosis`
(each cost term on the first- and second-derivative networks), and `second_share` (what
sets the second-order term's share of the oracle's answer under noise).  The figures are drawn by
`second_order_figures`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from .. import analyses, data, experiments, geometry, noise, oracle, paper, presets, render, report, sampling, store
from .. import terms as T
from .. import claims
from ..claims import NO_EFFECT, Claim, nearest, network, smaller
from ..experiments import Robust
from ..presets import Preset
from .accuracy import paper_number
from ..store import Result

METHODS = ("conventional", "first", "second")
MOTIONS = ["rx", "ry", "rz", "tx", "ty", "tz"]
PAIR_LABELS = [f"{MOTIONS[i]}-{MOTIONS[j]}" for i, j in geometry.PAIRS]
ROTATION = np.array([j < 3 for _, j in geometry.PAIRS])  # the six rotation-rotation pairs
DIAGNOSIS_IMAGES = 4096  # training images (every 4th) on which each cost term is measured
GRADIENT_IMAGES = 231  # the first of those on which each term's gradient is measured: a training batch


@dataclass(frozen=True)
class RobustNet:
    """A row of Tables 7-8: robust training of kind `base` (plain, + R_high, or the 20M network)
    at `width`; `paper_key` its column in the paper's tables (None: not a network of the paper)."""
    label: str
    base: Robust
    width: int
    paper_key: int | str | None

    def kind(self, second: bool, tradeoff: bool) -> Robust:
        return Robust(high=self.base.high, deep=self.base.deep, second=second, tradeoff=tradeoff)


@dataclass
class SecondOrder:
    preset: Preset
    accuracy: dict  # (method, width) -> Result: conventional, first (accuracy chapter) and second
    printed: Result | None  # second-derivative training with n_ij as printed, at printed_width
    long: dict  # "first" / "second" -> Result with second_long_epochs at the largest width ({}: not run)
    nets: list  # RobustNet: the rows of Tables 7-8, the last one the largest recipe
    robust: dict  # (label, second, tradeoff) -> Result of robust training of each RobustNet
    networks: dict  # label -> Experiment: the networks of Figs. 9-10 (analyses.figure_networks)
    sweep: dict  # the stored noise sweep of those networks (analyses.noise_sweep)
    best: int  # the largest width
    data_sizes: dict  # preset name -> (n_train, n_test, GiB of images + d1, GiB of images + d1 + d2)
    schedule: str  # the second-derivative recipe in words
    # the working method (a deviation): E2 x preset.e2_weight, at each width, and at the
    # largest width ("first" / "weighted", seed) -> Result over preset.seeds seeds ({}: not run)
    weighted: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    table6: report.Table | None = None
    table7: report.Table | None = None
    table8: report.Table | None = None
    readings: report.Table | None = None  # E2's normalisation read three ways, over the seeds
    oracle_table: report.Table | None = None  # the oracle's answer under noise (eq. 52 against eq. 9)
    noise_table: report.Table | None = None  # e and v_max of each network at sigma = 0 and the largest sigma
    numbers: dict = field(default_factory=dict)

    def e(self, method: str, width: int, split: str = "test") -> float:
        return self.accuracy[method, width].metrics[f"e_{split}"]


# --------------------------------------------------------------------------------------
# The study: stored results, tables, numbers

def study(preset, device="cpu") -> SecondOrder:
    """Every network of the chapter and the noise sweep, loaded; the tables and named numbers."""
    p = presets.get(preset)
    best = max(p.widths)
    acc = {(m, w): store.run(experiments.accuracy(p, m, w), device=device) for w in p.widths for m in METHODS}
    pw = p.printed_width
    printed = store.run(experiments.accuracy(p, "second-printed", pw), device=device) if pw else None
    long = {m: store.run(experiments.accuracy(p, m, best, epochs=p.second_long_epochs), device=device)
            for m in ("first", "second")} if p.second_long_epochs else {}
    nets = robust_nets(p)
    rob = {(n.label, second, t): store.run(experiments.robust(p, n.kind(second, t), n.width), device=device)
           for n in nets for second in (False, True) for t in (False, True)}
    weighted, seeds = {}, {}
    if p.e2_weight:
        weighted = {w: store.run(weighted_experiment(p, w), device=device) for w in p.widths}
        seeds = {(m, k): store.run(weighted_experiment(p, best, k) if m == "weighted" else
                                   experiments.accuracy(p, "first", best, seed=k), device=device)
                 for k in range(p.seeds) for m in ("first", "weighted")}
    if p.seeds > 1:  # the paper's E2 and the author's n_ij reading over the same seeds
        seeds.update({(m, k): store.run(experiments.accuracy(p, READING_METHOD[m], best, seed=k), device=device)
                      for k in range(p.seeds) for m in ("paper", "corners")})
    networks = analyses.figure_networks(p, device=device)
    sweep = analyses.noise_sweep(p, networks, device=device)
    s = SecondOrder(preset=p, accuracy=acc, printed=printed, long=long, nets=nets, robust=rob, networks=networks,
                    sweep=sweep, best=best, data_sizes=_data_sizes(), schedule=_schedule(p, best),
                    weighted=weighted, seeds=seeds)
    s.table6 = _table6(s)
    s.table7, s.table8 = _tables_7_8(s)
    s.oracle_table, s.noise_table = _noise_tables(s)
    s.numbers = {**_size_numbers(s), **_table6_numbers(s), **_long_numbers(s), **_robust_numbers(s),
                 **_oracle_numbers(s), **_noise_numbers(s), **_verdicts(s), **_weighted_numbers(s),
                 **_reading_numbers(s)}
    s.readings = readings_table(s) if ("corners", 0) in s.seeds else None
    # the verdicts of the chapter's claims, for the sentences that say whether one holds
    s.numbers.update({f"verdict_{c.id.replace('-', '_')}": claims.verdict(c) for c in rows(s)})
    return s


def weighted_experiment(p: Preset, width: int, seed: int = 0):
    """Second-derivative training with E2 x p.e2_weight: the paper's schedule, one deviation."""
    return experiments.accuracy(p, "second", width, seed=seed, e2_weight=p.e2_weight)


def weighted_label(s: "SecondOrder") -> str:
    return f"$E_2 \\times$ {s.preset.e2_weight:g}"


def robust_nets(p: Preset) -> list[RobustNet]:
    """The preset's widths with the plain recipe, then + R_high at high_width, then the 20M network."""
    nets = [RobustNet(f"{w}", Robust(), w, w) for w in p.widths]
    if p.high_width:
        nets.append(RobustNet(f"{p.high_width} + R_high", Robust(high=True), p.high_width, None))
    if p.deep_width:
        nets.append(RobustNet(f"{p.deep_width} (20M)", Robust(deep=True), p.deep_width, "deep"))
    return nets


def data_gib(config: data.DatasetConfig, rows: int) -> float:
    """GiB of `rows` float32 41 x 41 images per sample of the data set `config`."""
    return (config.n_train + config.n_test) * rows * 1681 * 4 / 2**30


def _data_sizes() -> dict:
    configs = {name: data.dataset_config(name, order=2) for name in presets.NAMES}
    return {name: (c.n_train, c.n_test, data_gib(c, 7), data_gib(c, 28)) for name, c in configs.items()}


def _schedule(p: Preset, width: int) -> str:
    e = experiments.accuracy(p, "second", width)
    return f"{e.data.n_train} training images; " + ", ".join(
        f"{ph.epochs} epochs at {ph.lr:g} ({' + '.join(t.name for t in ph.terms)})" for ph in e.recipe.phases)


# numbers that are sentences with symbols in them: the chapter pastes them as Markdown ({glue:md})
MARKDOWN_NUMBERS = ("dv_all", "r_best")


def _net_label(label: str) -> str:
    """A row label of Tables 7-8 with its maths typeset: "128 + R_high" -> "L = 128 + $R_{\\text{high}}$"."""
    return "L = " + label.replace("R_high", "$R_{\\text{high}}$")


PAPER_NETS = {w: f"paper, L = {w} ({paper.WEIGHTS_MILLIONS[w]}M)" for w in paper.TABLE1} | {
    "deep": "paper, 20M (five hidden layers of 2048, + $R_{\\text{high}}$)"}


def _table6(s: SecondOrder) -> report.Table:
    """Table 6: our second-derivative networks at the preset's widths (and with n_ij as printed),
    then the paper's rows at all its widths."""
    t = report.Table("Table 6", subtitle=", second-derivative training ($E_0 + E_1 + E_2$): errors and the gains "
                     "in test error over the conventional and first-derivative networks of the same size "
                     "(Tables 1 and 2).",
                     columns=["network", "e train %", "e test %", "gain over conventional", "gain over first",
                              "minutes"],
                     formats={1: ".3f", 2: ".3f", 3: ".2f", 4: ".2f", 5: ".1f"})
    for w in s.preset.widths:
        t.add(f"L = {w}", s.e("second", w, "train"), s.e("second", w), s.e("conventional", w) / s.e("second", w),
              s.e("first", w) / s.e("second", w), s.accuracy["second", w].minutes)
    pw = s.preset.printed_width
    if s.printed:
        m = s.printed.metrics
        t.add(f"L = {pw}, $n_{{ij}}$ as printed", m["e_train"], m["e_test"], s.e("conventional", pw) / m["e_test"],
              s.e("first", pw) / m["e_test"], s.printed.minutes)
    for w, r in s.weighted.items():
        m = r.metrics
        t.add(f"L = {w}, {weighted_label(s)} (ours)", m["e_train"], m["e_test"], s.e("conventional", w) / m["e_test"],
              s.e("first", w) / m["e_test"], r.minutes)
    for w, (train, test) in paper.TABLE6.items():
        t.add(PAPER_NETS[w], f"{train:.3f}", f"{test:.3f}", f"{paper.TABLE1[w][1] / test:.1f}",
              f"{paper.TABLE2[w][1] / test:.1f}", None)
    # a timing disturbed by other jobs on the machine carries a note in its provenance
    notes = [f"Minutes at L = {w} are not a clean timing: the run shared the CPU with other jobs."
             for (m, w), r in s.accuracy.items() if m == "second" and "train_seconds_note" in r.provenance]
    prov = s.accuracy["second", s.best].provenance
    notes.insert(0, "Rows \"paper\": the paper's Table 6; its gains are its Table 1 and Table 2 test errors over "
                 "its Table 6 test error, and it quotes no training times for Table 6 (\"-\").")
    if s.weighted:
        notes.append(f"Rows \"{weighted_label(s)} (ours)\": the same recipe with $E_2$ multiplied by "
                     f"{s.preset.e2_weight:g} (equivalently, every $n_{{ij}}$ {s.preset.e2_weight ** -0.5:g} times "
                     "larger): not the paper's method.")
    notes.append(f"Our minutes on {store.device_text(prov)}, code {prov['git_commit'][:12]}, {prov['date'][:10]}.")
    t.note = "\n\n".join(notes)
    return t


# the readings of E2's normalisation n_ij at the largest width, p.seeds seeds each: the
# method of experiments.accuracy training each, and its label
READING_METHOD = {"paper": "second", "corners": "second-corners"}
READINGS = {"first": "first-derivative training (no $E_2$)",
            "paper": "$E_2$ as we read the paper ($n_{ij}$ of the 3 predicted vertices)",
            "weighted": "$E_2 \\times w$ (our deviation)",
            "corners": "the author's reading ($n_{ij}$ of the 24 exported face corners)"}


READING_NAMES = {"paper": "the paper's $E_2$ as we read it", "weighted": "the weighted $E_2$ (our deviation)",
                 "corners": "the author's reading"}  # for the text (glued as Markdown: it has symbols)


def readings_table(s: SecondOrder) -> report.Table:
    """Test e of each reading of E2's normalisation over the seeds, beside first-derivative
    training: mean, range, and the gain over first-derivative training's mean."""
    n = s.numbers
    t = report.Table("", ["training", "rotation $n_{ij}$", *[f"seed {k}" for k in range(s.preset.seeds)], "mean",
                          "first / mean"],
                     formats={**{2 + k: ".3f" for k in range(s.preset.seeds + 1)}, 3 + s.preset.seeds: ".2f"},
                     note=f"Test $e$ (%) at L = {s.best}, the same schedule, data and initialisation seeds; "
                          "rotation $n_{ij}$: the range over the six rotation pairs of the normalisation of "
                          "$E_2$ (the paper: \"close to 1\").")
    w = s.preset.e2_weight ** 0.5  # E2 x w is every n_ij 1 / sqrt(w) times larger
    rot = {"first": "-", "paper": f"{n['r_n_rot_lo']:.2f}-{n['r_n_rot_hi']:.2f}",
           "weighted": f"{n['r_n_rot_lo'] / w:.1f}-{n['r_n_rot_hi'] / w:.1f}",
           "corners": f"{n['r_n_corners_lo']:.2f}-{n['r_n_corners_hi']:.2f}"}
    first = n["r_first_mean"]
    for m in READINGS:
        e = [s.seeds[m, k].metrics["e_test"] for k in range(s.preset.seeds)]
        t.add(READINGS[m], rot[m], *e, n[f"r_{m}_mean"], first / n[f"r_{m}_mean"])
    return t


def rotation_norms(vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation pairs' n_ij [6] under our reading (avg ||d2|| of the 3 predicted vertices,
    terms.second_order_norms "scaled") and the author's: its generator (img-gen.m) exports all
    24 face corners, each vertex three times, so sqrt(3) avg ||d2|| of the 8 vertices ("corners")."""
    d2 = geometry.vertex_d2(vertices)[:, torch.from_numpy(ROTATION)]  # [N, 6, 8, 3]
    return geometry.target(d2).norm(dim=-1).mean(0), 3 ** 0.5 * d2.flatten(2).norm(dim=-1).mean(0)


def _reading_numbers(s: SecondOrder) -> dict:
    """Mean, range and gain over first-derivative training of each reading, and the best."""
    keys = [f"r_{m}_{q}" for m in READINGS for q in ("mean", "lo", "hi", "gain")] + \
        ["r_best_gain", "r_n_rot_lo", "r_n_rot_hi", "r_n_corners_lo", "r_n_corners_hi"]
    if ("corners", 0) not in s.seeds:  # one seed at this preset: not compared
        return {**dict.fromkeys(keys, float("nan")), "r_best": "not measured at this preset", "r_best_key": "",
                "r_corners_verdict": "was not compared at this preset"}
    out = {}
    for m in READINGS:
        e = np.array([s.seeds[m, k].metrics["e_test"] for k in range(s.preset.seeds)])
        out.update({f"r_{m}_mean": float(e.mean()), f"r_{m}_lo": float(e.min()), f"r_{m}_hi": float(e.max())})
    for m in READINGS:
        out[f"r_{m}_gain"] = out["r_first_mean"] / out[f"r_{m}_mean"]
    # the rotation pairs' n_ij under our and the author's reading, from the training poses alone
    cfg = data.dataset_config(s.preset)
    ours, corners = rotation_norms(sampling.sample_vertices(cfg.n_train, cfg.start))
    out.update({"r_n_rot_lo": ours.min().item(), "r_n_rot_hi": ours.max().item(),
                "r_n_corners_lo": corners.min().item(), "r_n_corners_hi": corners.max().item()})
    best = min(("paper", "weighted", "corners"), key=lambda m: out[f"r_{m}_mean"])
    out.update({"r_best": READING_NAMES[best], "r_best_key": best, "r_best_gain": out[f"r_{best}_gain"],
                "r_corners_verdict": claims.over_seeds([s.seeds["first", k].metrics["e_test"] for k in range(s.preset.seeds)],
                                                  [s.seeds["corners", k].metrics["e_test"] for k in range(s.preset.seeds)])})
    return out


def seed_table(s: SecondOrder) -> report.Table:
    """First-derivative training against E2 x w at the largest width, seed by seed."""
    t = report.Table("", columns=["seed", "first-derivative: e test %", f"{weighted_label(s)}: e test %", "ratio"],
                     formats={1: ".3f", 2: ".3f", 3: ".2f"},
                     note=f"L = {s.best}, the same schedule, data and initialisation seed in each row; ratio: "
                          "first-derivative over second-derivative test error.")
    for k in range(s.preset.seeds):
        a, b = s.seeds["first", k].metrics["e_test"], s.seeds["weighted", k].metrics["e_test"]
        t.add(str(k), a, b, a / b)
    n = s.numbers
    t.add("mean", n["w_first_mean"], n["w_mean"], n["w_first_mean"] / n["w_mean"])
    return t


def _weighted_numbers(s: SecondOrder) -> dict:
    """The working method against first-derivative training over the seeds: means, ranges, verdict."""
    if not s.seeds:
        return {}
    first = np.array([s.seeds["first", k].metrics["e_test"] for k in range(s.preset.seeds)])
    second = np.array([s.seeds["weighted", k].metrics["e_test"] for k in range(s.preset.seeds)])
    verdict = claims.over_seeds(first, second)
    # E2 as the paper defines it (unweighted) at the end of the E2 phases, from the training curves
    last_e2 = lambda r, w: next(v for v in reversed(r.curves["E2"]) if v is not None) / w
    w = s.preset.e2_weight
    return {"w_weight": w, "w_seeds": int(s.preset.seeds), "w_first_mean": float(first.mean()),
            "w_first_lo": float(first.min()), "w_first_hi": float(first.max()), "w_mean": float(second.mean()),
            "w_lo": float(second.min()), "w_hi": float(second.max()), "w_gain_first": float(first.mean() / second.mean()),
            "w_gain_conv": s.e("conventional", s.best) / float(second.mean()), "w_verdict": verdict,
            "w_e2_end": float(np.mean([last_e2(s.seeds["weighted", k], w) for k in range(s.preset.seeds)])),
            "w_e2_paper_end": last_e2(s.accuracy["second", s.best], 1.0),
            "w_small_width": int(min(s.weighted)), "w_small_e": s.weighted[min(s.weighted)].e_test,
            "w_small_first": s.e("first", min(s.weighted)),
            "w_small_gain": s.e("first", min(s.weighted)) / s.weighted[min(s.weighted)].e_test, **paper_gains()}


def paper_gains() -> dict:
    """The paper's test-error gains of second-derivative training (Table 6) over first-derivative
    (Table 2) and conventional (Table 1) training at its smallest and largest networks."""
    out = {}
    for name, L in (("small", min(paper.TABLE6)), ("large", max(paper.TABLE6))):
        out[f"paper_gain_first_{name}"] = paper.TABLE2[L][1] / paper.TABLE6[L][1]
        out[f"paper_gain_conv_{name}"] = paper.TABLE1[L][1] / paper.TABLE6[L][1]
    return out


def _pair(a: float, b: float, fmt: str) -> str:
    return f"{a:{fmt}} / {b:{fmt}}"


def _tables_7_8(s: SecondOrder) -> tuple[report.Table, report.Table]:
    """Tables 7 and 8: our robust networks, then the paper's rows (first order from its Table 3)."""
    vmax = "$\\bar v_{\\max}$ test %"
    t7 = report.Table("Table 7", subtitle=", robust training without (first order, Table 3's recipe) and with the "
                      "second-order terms: test errors and vulnerabilities.",
                      columns=["network", "first order: e test %", vmax, "second order: e test %", vmax],
                      formats={1: ".2f", 2: ".1f", 3: ".2f", 4: ".1f"},
                      note="Rows \"paper\": first order from the paper's Table 3, second order from its Table 7.")
    t8 = report.Table("Table 8", subtitle=", second-order robust training + one epoch of $E_0 + E_1$ (trade-off "
                      "adjusted): training and test values side by side.",
                      columns=["network", "e % train / test", "$\\bar v_{\\max}$ %", "$\\bar v_{\\text{sen}}$ %",
                               "$\\bar v_{\\text{inv}}$ %"],
                      note="Rows \"paper\": the paper's Table 8.")
    for n in s.nets:
        a, b = s.robust[n.label, False, False].metrics, s.robust[n.label, True, False].metrics
        t7.add(_net_label(n.label), a["e_test"], a["v_max_test"], b["e_test"], b["v_max_test"])
        m = s.robust[n.label, True, True].metrics
        t8.add(_net_label(n.label), _pair(m["e_train"], m["e_test"], ".2f"),
               *(_pair(m[f"{k}_train"], m[f"{k}_test"], ".1f") for k in ("v_max", "v_sen", "v_inv")))
    for k, (e7, v7) in paper.TABLE7.items():
        e3, v3 = paper.TABLE3[k]
        t7.add(PAPER_NETS[k], *map(paper_number, (e3, v3, e7, v7)))
        t8.add(PAPER_NETS[k], *(" / ".join(map(paper_number, paper.TABLE8[k][q])) for q in ("e", "v_max", "v_sen",
                                                                                           "v_inv")))
    return t7, t8


def _noise_tables(s: SecondOrder) -> tuple[report.Table, report.Table]:
    oracle = report.Table("", columns=["$\\sigma$", "noise norm", "correction (eq. 52)", "of which 2nd order",
                                       "eq. 52 vs eq. 9", "1st order vs eq. 9", "eq. 9 converged"],
                          formats={1: ".2f", 2: ".2f", 3: ".2f", 4: ".3f", 5: ".3f"})
    for o in s.sweep["oracle"]:
        oracle.add(f"{o['sigma']:g}", o["noise_norm"], o["correction"], o["second_order_part"],
                   o["eq52_vs_nonlinear"], o["first_vs_nonlinear"], f"{100 * o['converged']:.0f} %")
    oracle.note = ("The oracle's answer for noisy test images, in the units of e (eq. 8, %): how far it is from the "
                   "clean cube, the part of that which is second order, and how far eq. (52) and the first-order "
                   "expansion are from the nonlinear oracle (over the images where it converged).")
    vmax = "$\\bar v_{\\max}$"
    nets = report.Table("", columns=["network", "e at $\\sigma = 0$", "e at largest $\\sigma$ (eq. 52)", "(eq. 9)",
                                     "(uncorrected)", f"{vmax} at $\\sigma = 0$", f"{vmax} at largest $\\sigma$",
                                     "growth", f"{vmax} uncorrected at largest $\\sigma$"],
                        formats={1: ".2f", 2: ".2f", 3: ".2f", 4: ".2f", 5: ".1f", 6: ".1f", 7: "+.1f", 8: ".1f"})
    for label, rows_ in s.sweep["networks"].items():
        a, z = rows_[0], rows_[-1]
        nets.add(network_label(label), a["e_corrected"], z["e_corrected"], z["e_nonlinear"], z["e_uncorrected"],
                 a["v_max_corrected"], z["v_max_corrected"], z["v_max_corrected"] - a["v_max_corrected"],
                 z["v_max_uncorrected"])
    nets.note = ("Errors e (%) against the oracle's answer for the noisy image (eq. 52, and the nonlinear eq. 9), "
                 "and against the clean cube (uncorrected); growth: of $\\bar v_{\\max}$ from $\\sigma = 0$ to the "
                 "largest $\\sigma$, in points.")
    return oracle, nets


def network_label(label: str) -> str:
    """A network of Figs. 9-10 (analyses.figure_networks) with its maths typeset."""
    if label.startswith("N "):  # the best Gaussian augmentation, "N <sigma>"
        return f"N (Gaussian, $\\sigma = {label[2:]}$)"
    return label.replace("E0+E1 epoch", "one epoch of $E_0 + E_1$")


def size_table(s: SecondOrder) -> report.Table:
    """Samples and float32 GiB of each preset's order-2 data set."""
    t = report.Table("", columns=["preset", "training + test samples", "images + first derivatives (GiB)",
                                  "+ second derivatives (GiB)"], formats={2: ".2f", 3: ".2f"},
                     note="Each sample: the image, its 6 first and 21 second derivatives, 41 × 41 float32 each.")
    for name, (n_train, n_test, gib_d1, gib_d2) in s.data_sizes.items():
        t.add(f"`{name}`", f"{n_train} + {n_test}", gib_d1, gib_d2)
    return t


def setup_text(s: SecondOrder) -> str:
    """The preset's widths and the second-derivative schedule in words."""
    return f"preset {s.preset.name!r}: widths {s.preset.widths}; {s.schedule}"


def sweep_text(s: SecondOrder) -> str:
    """The noise sweep of Figs. 9-10: images, sigmas and networks."""
    return (f"{s.sweep['images']} test images; σ = {s.sweep['sigmas']}; networks: "
            + ", ".join(f"{k} = {v}" for k, v in s.sweep["experiments"].items()))


def epochs_to_beat(s: SecondOrder, method: str, width: int) -> int:
    """The first evaluation epoch from which the second-order test curve stays below `method`'s
    final test error (-1: never)."""
    cur, target = s.accuracy["second", width].curves, s.accuracy[method, width].metrics["e_test"]
    for k, ep in enumerate(cur["epoch"]):
        if all(v < target for v in cur["e_test"][k:]):
            return ep
    return -1


def growth(s: SecondOrder, label: str, key: str = "v_max_corrected") -> float:
    """How much `key` of the network `label` grows from sigma = 0 to the largest sigma."""
    rows_ = s.sweep["networks"][label]
    return rows_[-1][key] - rows_[0][key]


def _size_numbers(s: SecondOrder) -> dict:
    return {"gib_paper": s.data_sizes["paper"][3], "gib_quick": s.data_sizes["quick"][3]}


def _table6_numbers(s: SecondOrder) -> dict:
    best, printed = s.best, s.printed
    if printed is None:
        reading = "was not trained at this preset"
    elif printed.metrics["e_test"] > 90:
        reading = (f"its sensitivity vulnerability is {printed.metrics['v_sen_test']:.2f} %: it has collapsed to "
                   "an almost constant output. The printed weights let the 15 pairs whose target is zero dominate "
                   "the second-derivative cost, and a network without input gradient satisfies them all")
    else:
        reading = f"its v_max is {printed.metrics['v_max_test']:.1f} %"
    return {"gain2_conv": s.e("conventional", best) / s.e("second", best),
            "gain2_first": s.e("first", best) / s.e("second", best),
            "e2_best": s.e("second", best), "e1_best": s.e("first", best), "e0_best": s.e("conventional", best),
            "best": int(best), "second_epochs": int(s.accuracy["second", best].epochs),
            "e2_printed": printed.metrics["e_test"] if printed else float("nan"),
            "printed_reading": reading,
            "beat_first_epoch": int(epochs_to_beat(s, "first", best)),
            "beat_conv_epoch": int(epochs_to_beat(s, "conventional", best)),
            **_depth_numbers(s.accuracy["second", best].metrics["e_test_per_output"])}


DEPTH = (2, 5, 8)  # the z coordinate of each of the three vertices among the nine outputs (geometry.target)


def _depth_numbers(per_output) -> dict:
    """Where a network's test error sits: its three depth (z) outputs against the six others."""
    z = [per_output[i] for i in DEPTH]
    xy = [v for i, v in enumerate(per_output) if i not in DEPTH]
    return {"e2_z_lo": min(z), "e2_z_hi": max(z), "e2_xy_lo": min(xy), "e2_xy_hi": max(xy)}


def _long_numbers(s: SecondOrder) -> dict:
    if not s.long:  # no long run at this preset: the sentence then reads "nan"
        return {**dict.fromkeys(("long_ratio", "long_first", "long_second", "long_second_gain", "long_first_gain"),
                                float("nan")), "long_epochs": 0}
    n, first, second = s.preset.second_long_epochs, s.long["first"].metrics, s.long["second"].metrics
    return {"long_ratio": n / s.preset.epochs, "long_epochs": int(n), "long_first": first["e_test"],
            "long_second": second["e_test"], "long_second_gain": s.e("second", s.best) / second["e_test"],
            "long_first_gain": s.e("first", s.best) / first["e_test"]}


def _robust_numbers(s: SecondOrder) -> dict:
    big = s.nets[-1].label
    I, II = s.robust[big, False, False].metrics, s.robust[big, True, False].metrics
    It, IIt = s.robust[big, False, True].metrics, s.robust[big, True, True].metrics
    # the training-time ratio from the plain recipe at the largest width (a timing disturbed by
    # other jobs carries a train_seconds_note in its provenance)
    w_cost = max(s.preset.widths)
    # the paper's own clean-image price of the second-order terms, over its five networks
    t73 = [paper.TABLE7[k][0] / paper.TABLE3[k][0] for k in paper.TABLE7]
    t84 = [paper.TABLE8[k]["e"][1] / paper.TABLE4[k]["e"][1] for k in paper.TABLE8]
    ours = (II["e_test"] / I["e_test"], IIt["e_test"] / It["e_test"])
    place = ["inside" if min(t) <= r <= max(t) else "below" if r < min(t) else "above" for r, t in zip(ours, (t73, t84))]
    dv = [f"{s.robust[n.label, True, False].metrics['v_max_test'] - s.robust[n.label, False, False].metrics['v_max_test']:+.1f}"
          f" at {_net_label(n.label)}" for n in s.nets]
    return {"big_label": big, "big_width": int(s.nets[-1].width), "I_e": I["e_test"], "I_v": I["v_max_test"],
            "II_e": II["e_test"], "II_v": II["v_max_test"], "It_e": It["e_test"], "It_v": It["v_max_test"], "IIt_e": IIt["e_test"],
            "IIt_v": IIt["v_max_test"], "II_over_I": II["e_test"] / I["e_test"],
            "IIt_over_It": IIt["e_test"] / It["e_test"], "dv_clean": II["v_max_test"] - I["v_max_test"],
            "cost_ratio": s.robust[f"{w_cost}", True, False].provenance["train_seconds"]
            / s.robust[f"{w_cost}", False, False].provenance["train_seconds"],
            "w_cost": int(w_cost),
            "paper_II_over_I": f"{min(t73):.1f}–{max(t73):.1f}", "paper_IIt_over_It": f"{min(t84):.1f}–{max(t84):.1f}",
            "II_vs_paper": f"{place[0]} the paper's range" if place[0] == place[1] else
            f"{place[0]} the paper's range before the trade-off epoch and {place[1]} it after",
            "dv_all": ", ".join(dv)}


def _oracle_numbers(s: SecondOrder) -> dict:
    top = s.sweep["oracle"][-1]
    return {"sigma_top": top["sigma"], "norm_top": top["noise_norm"], "corr_top": top["correction"],
            "second_share_top": top["second_order_part"] / top["correction"], "second_part_top": top["second_order_part"],
            "second_share_inv": top["correction"] / top["second_order_part"],
            "eq52_gap_top": top["eq52_vs_nonlinear"], "first_gap_top": top["first_vs_nonlinear"],
            "nl_corr_top": top["nonlinear_correction"], "converged_top": 100 * top["converged"]}


def _noise_numbers(s: SecondOrder) -> dict:
    nets = s.sweep["networks"]
    gI, gII, gIt, gIIt = (growth(s, k) for k in ("I", "II", "I + E0+E1 epoch", "II + E0+E1 epoch"))
    gauss_label = next(k for k in nets if k.startswith("N"))
    corr_helps = [k for k, rows_ in nets.items() if rows_[-1]["e_corrected"] < rows_[-1]["e_uncorrected"]]
    top = {k: rows_[-1]["e_corrected"] for k, rows_ in nets.items()}  # the error against eq. (52) at the largest sigma
    lowest = min(top, key=top.get)
    if gII < gI and gIIt < gIt:
        verdict = "grows more slowly"
    elif gII >= gI and gIIt >= gIt:
        verdict = "does not grow more slowly"
    else:
        verdict = "grows more slowly for one of the two pairs only"
    return {"grow_I": gI, "grow_II": gII, "grow_It": gIt, "grow_IIt": gIIt, "grow_N": growth(s, gauss_label),
            "gauss_label": gauss_label, "gauss_sigma": float(gauss_label.split()[1]),
            "uncorr_gap": max(abs(r["v_max_corrected"] - r["v_max_uncorrected"]) for v in nets.values() for r in v),
            "corr_helps": ", ".join(corr_helps) if corr_helps else
            "none of the networks; every network's answer stays nearer the clean cube than the oracle's answer for "
            "the noisy image, so the networks ignore the noise rather than follow the oracle off the manifold",
            "noise_verdict": verdict, "paper_gauss_sigma": paper.BEST_GAUSSIAN_SIGMA,
            "e_top_all": ", ".join(f"{k}: {v:.1f} %" for k, v in top.items()),
            "II_unmatched": "the lowest" if lowest == "II" else f"not the lowest ({lowest} is)"}


def _verdicts(s: SecondOrder) -> dict:
    best = s.best
    if s.long:
        gap = s.e("second", best) / s.e("first", best)
        gap_long = s.long["second"].metrics["e_test"] / s.long["first"].metrics["e_test"]
        trend = (f"{'narrows' if gap_long < gap else 'does not narrow'} (second / first: "
                 f"{gap:.1f} at {s.preset.epochs} epochs, {gap_long:.1f} at {s.preset.second_long_epochs})")
    else:
        trend = "was not measured"
    return {"long_trend": trend, "acc_verdict": "beats" if s.e("second", best) < s.e("first", best) else "does not beat"}


# --------------------------------------------------------------------------------------
# The intro's rows

def rows(s: SecondOrder) -> list[Claim]:
    """The intro's claims of this chapter (Tables 6-8, Figs. 9-10), at the largest width,
    against the paper's nearest network."""
    name, W = s.preset.name, s.best
    pw = nearest(W)
    epochs = s.accuracy["second", W].epochs  # at paper-small fewer than the paper's (its name says how many)
    net, theirs, small = network(name, W, epochs), f"{paper.WEIGHTS_MILLIONS[pw]}M", smaller(name, W, epochs)
    null = analyses.null_network(name)
    t1, t2, t6 = paper.TABLE1[pw][1], paper.TABLE2[pw][1], paper.TABLE6[pw][1]
    conv, first, second = s.e("conventional", W), s.e("first", W), s.e("second", W)
    out = [
        Claim("table6-e", "Table 6: test $e$ (%), second-derivative training", t6, theirs, second, net, name,
              "sec-second-table6", kind="error", null=null["e_test"], smaller=small),
        Claim("second-gain", "second derivatives: 25x more accurate than conventional training (12M; ratio of "
              "test e)", round(t1 / t6, 1), theirs, conv / second, net, name, "sec-second-table6",
              kind="gain", null=1.0, smaller=small),
        Claim("second-vs-first", "second derivatives: 4x more accurate than first derivatives (12M; ratio of "
              "test e)", round(t2 / t6, 1), theirs, first / second, net, name, "sec-second-table6",
              kind="gain", null=1.0, smaller=small),
    ]
    robust_nets = [n for n in s.nets if not n.base.high and not n.base.deep]
    if robust_nets:
        n = robust_nets[-1]
        pn = nearest(n.width)
        t7, t8, rtheirs = paper.TABLE7[pn], paper.TABLE8[pn], f"{paper.WEIGHTS_MILLIONS[pn]}M"
        for tradeoff, (id, table, adjusted) in ((False, ("table7", "Table 7", "")),
                                                (True, ("table8", "Table 8", ", trade-off adjusted"))):
            stored = s.robust[n.label, True, tradeoff]
            r, rn, rsmall = stored.metrics, network(name, n.width, stored.epochs), smaller(name, n.width, stored.epochs)
            e_paper, v_paper = (t8["e"][1], t8["v_max"][1]) if tradeoff else t7
            out += [Claim(f"{id}-vmax", f"{table}: test $\\bar v_{{\\max}}$ (%), second-order robust training{adjusted}",
                          v_paper, rtheirs, r["v_max_test"], rn, name, "sec-second-tables78", kind="vulnerability",
                          null=null["v_max_test"], smaller=rsmall),
                    Claim(f"{id}-e", f"{table}: test $e$ (%), second-order robust training{adjusted}", e_paper,
                          rtheirs, r["e_test"], rn, name, "sec-second-tables78", kind="error", null=null["e_test"],
                          smaller=rsmall)]
    if s.seeds:
        n = s.numbers
        out.append(Claim("second-vs-first-weighted", f"second derivatives with $E_2 \\times$ {n['w_weight']:g} (a "
                         "deviation from the paper's method): more accurate than first derivatives (ratio of test e, "
                         f"mean of {n['w_seeds']} seeds)", round(t2 / t6, 1), theirs, n["w_gain_first"], net, name,
                         "sec-second-weighted", kind="gain", null=1.0, smaller=small))
    if "r_corners_gain" in s.numbers:
        n = s.numbers
        out.append(Claim("second-vs-first-corners", "second derivatives with the author's normalisation ($n_{ij}$ of the "
                         "24 face corners its generator exports): more accurate than first derivatives (ratio of "
                         f"test e, mean of {s.preset.seeds} seeds)", round(t2 / t6, 1), theirs, n["r_corners_gain"],
                         net, name, "sec-second-readings", kind="gain", null=1.0, smaller=small))
    top = s.sweep["sigmas"][-1]
    out.append(Claim("noise-second-share", f"eq. (52) at $\\sigma$ = {top:g}: the second-order term's share of the "
                     "oracle's correction (\"up to 1/20\" for $\\sigma \\le$ 0.25; no network involved)",
                     paper.SECOND_ORDER_SHARE_OF_CORRECTION, "", s.numbers["second_share_top"], "", name,
                     "sec-second-noise", smaller=False))
    # Fig. 10; a network ignoring its input has the same v_max at every sigma: no growth to compare
    out.append(Claim("noise-stability", f"under Gaussian noise up to $\\sigma$ = {top:g}, " r"$\bar v_{\max}$ of second-order robust "
                     "training grows less than first-order's (points less; effect: > 1 point)", "flatter (Fig. 10)", "",
                     growth(s, "I") - growth(s, "II"), "", name, "sec-second-noise", kind="qualitative",
                     better="higher", threshold=1.0, null=0.0, smaller=small, digits=2))
    return out + _fig9_rows(s, null["e_test"], small)


def _fig9_rows(s: SecondOrder, null_e: float, small: bool) -> list[Claim]:
    """Fig. 9 at the largest sigma: "for all networks the corrected accuracy is higher" (the
    error against eq. (52)'s cube below the error against the clean cube: the largest ratio
    over the networks) and "the results of II are unmatched" (II's corrected error over the
    lowest of the others).  A network ignoring its input is as far from either cube (ratio 1)
    and, as II, has the null network's error."""
    nets, top = s.sweep["networks"], s.sweep["sigmas"][-1]
    ratio = max(r[-1]["e_corrected"] / r[-1]["e_uncorrected"] for r in nets.values())
    others = min(r[-1]["e_corrected"] for k, r in nets.items() if k != "II")
    return [Claim("noise-corrected", f"Fig. 9 at $\\sigma$ = {top:g}: every network's error against eq. (52)'s cube is "
                  "below its error against the clean cube (largest ratio of the two over the networks; effect: < "
                  f"1/{NO_EFFECT})", "corrected accuracy higher", "20M", ratio, "", s.preset.name, "sec-second-noise",
                  kind="qualitative", better="lower", threshold=1 / NO_EFFECT, null=1.0, smaller=small, digits=2),
            Claim("noise-II-unmatched", f"Fig. 9 at $\\sigma$ = {top:g}: second-order robust training has the lowest "
                  f"corrected error (II's / the lowest of the others; effect: < 1/{NO_EFFECT})", "II unmatched", "20M",
                  nets["II"][-1]["e_corrected"] / others, "", s.preset.name, "sec-second-noise", kind="qualitative",
                  better="lower", threshold=1 / NO_EFFECT, null=null_e / others, smaller=small, digits=2)]


@functools.lru_cache(maxsize=1)
def _dataset(p: Preset) -> data.Dataset:
    """The preset's order-2 data set, read once for both analyses of the chapter."""
    return data.load(data.dataset_config(p, order=2), progress=False)


@dataclass
class PairNorms:
    image: torch.Tensor  # [21] avg ||H_ij|| over the training images (float64)
    scaled: torch.Tensor  # [21] n_ij by the rule we use (terms.second_order_norms, "scaled")
    printed: torch.Tensor  # [21] n_ij as printed
    numbers: dict  # r_rot, n_rot_lo, n_rot_hi, h_max, h_max_pair, share_scaled, share_printed


def _untargeted_share(weights: torch.Tensor) -> float:
    """The share of the 15 pairs without a target in the total weight 1/n_ij^2 of E2."""
    return (weights[~torch.from_numpy(ROTATION)].sum() / weights.sum()).item()


def pair_norms(s: SecondOrder) -> PairNorms:
    """n_ij of §5.2 under both rules, and the training images' average ||H_ij|| per pair."""
    train = _dataset(s.preset).train
    scaled = T.second_order_norms(train.target_d2, train.d2, "scaled")
    printed = T.second_order_norms(train.target_d2, train.d2, "printed")
    image = torch.stack([train.d2[i:i + 1024].flatten(2).double().norm(dim=-1).sum(0)
                         for i in range(0, len(train), 1024)]).sum(0) / len(train)
    rot = torch.from_numpy(ROTATION)
    diagonal = torch.tensor([i == j and j < 3 for i, j in geometry.PAIRS])
    _, corners = rotation_norms(train.vertices)  # the author's reading
    numbers = {"r_rot": image[rot].mean().item(), "r_rot_diagonal": image[diagonal].mean().item(),
               "n_corners_lo": corners.min().item(), "n_corners_hi": corners.max().item(),
               "n_rot_lo": scaled[rot].min().item(),
               "n_rot_hi": scaled[rot].max().item(), "h_max": image.max().item(),
               "h_max_pair": PAIR_LABELS[int(image.argmax())],
               "share_scaled": 100 * _untargeted_share(1 / scaled**2),
               "share_printed": 100 * _untargeted_share(1 / printed**2)}
    return PairNorms(image, scaled, printed, numbers)


@dataclass
class TermValues:
    terms: dict  # "first" / "second" (/ "weighted") -> {"E0": float, "E1": [6] per motion, "E2": [21] per pair}
    numbers: dict  # E0_first, E0_second, E2_first, E2_second, E1_worst_name, E1_worst_ratio, E2_rot_share, E2_ratio
    grads: dict = field(default_factory=dict)  # network -> {"E0", "E1", "E2"}: norm of each term's weight gradient


def term_diagnosis(s: SecondOrder, norms: PairNorms) -> TermValues:
    """E0, E1 per motion and E2 per pair (scaled n_ij, unweighted) of the first- and second-
    derivative networks of the largest width (and of E2 x w where it was trained), on every 4th
    training image (DIAGNOSIS_IMAGES of them)."""
    ds = _dataset(s.preset)
    norms2 = T.Norms(n=ds.norms.n, n_i=ds.norms.n_i.float(), D=ds.norms.D_i.float(), n_ij=norms.scaled.float())
    tr = ds.train
    sub = torch.arange(0, len(tr), 4)[:DIAGNOSIS_IMAGES]
    rows_ = torch.cat([tr.image[sub].reshape(len(sub), 1, -1), tr.d1[sub].reshape(len(sub), 6, -1),
                       tr.d2[sub].reshape(len(sub), 21, -1)], 1).float()
    terms, grads = {}, {}
    nets = {m: experiments.accuracy(s.preset, m, s.best) for m in ("first", "second")}
    if s.weighted:
        nets["weighted"] = weighted_experiment(s.preset, s.best)
    batch = SimpleNamespace(rows=rows_[:GRADIENT_IMAGES], target=tr.target[sub][:GRADIENT_IMAGES].float(),
                            target_d1=tr.target_d1[sub][:GRADIENT_IMAGES].float(),
                            target_d2=tr.target_d2[sub][:GRADIENT_IMAGES].float())
    for m, exp in nets.items():
        net = store.network(exp)
        grads[m] = gradient_norms(net, batch, norms2)
        with torch.no_grad():
            y, y1, y2 = (t.double() for t in net.jet_rows(rows_, 6, geometry.PAIRS))
        terms[m] = {
            "E0": (((y - tr.target[sub]) ** 2).sum(-1).mean() / norms2.n**2).item(),
            "E1": (((y1 - tr.target_d1[sub]) ** 2).sum(-1).mean(0) / norms2.n_i.double()**2).numpy(),
            "E2": (((y2 - tr.target_d2[sub]) ** 2).sum(-1).mean(0) / norms2.n_ij.double()**2).numpy(),
        }
    tv1, tv2 = terms["first"], terms["second"]
    worst = int(np.argmax(tv2["E1"] / tv1["E1"]))
    g1 = grads["first"]
    numbers = {"grad_images": GRADIENT_IMAGES, "grad_E0_first": g1["E0"], "grad_E1_first": g1["E1"],
               "grad_E2_first": g1["E2"], "grad_ratio_first": g1["E2"] / g1["E1"],
               "E0_first": tv1["E0"], "E0_second": tv2["E0"], "E2_first": float(tv1["E2"].sum()),
               "E2_second": float(tv2["E2"].sum()), "E1_worst_name": MOTIONS[worst],
               "E1_worst_ratio": float(tv2["E1"][worst] / tv1["E1"][worst]),
               "E2_rot_share": 100 * float(tv2["E2"][ROTATION].sum() / tv2["E2"].sum()),
               "E2_ratio": float(tv1["E2"].sum() / tv2["E2"].sum())}
    if "weighted" in terms:
        tw = terms["weighted"]
        w = s.preset.e2_weight
        numbers |= {"grad_E2_weighted": w * grads["weighted"]["E2"], "grad_E1_weighted": grads["weighted"]["E1"],
                    "grad_E2_first_weighted": w * grads["first"]["E2"],
                    "E0_weighted": tw["E0"], "E2_weighted": float(tw["E2"].sum()),
                    "E1_weighted_ratio": float((tw["E1"] / tv1["E1"]).max()),
                    "E2_weighted_rot_max": float(tw["E2"][ROTATION].max()),
                    "E2_first_rot_max": float(tv1["E2"][ROTATION].max())}
    return TermValues(terms, numbers, grads)


def gradient_norms(net, batch, norms: T.Norms) -> dict:
    """||d E_k / d weights|| of E0, E1 and E2 (weight 1) on one batch (`rows`, `target`,
    `target_d1`, `target_d2` as in trainset.TrainSet): how hard each term pulls."""
    idx = torch.arange(len(batch.rows))
    params = list(net.parameters())
    values = T.evaluate(net, batch, idx, (T.E0(), T.E1(), T.E2()), norms, T.Epoch(dirs={}, d2O={}))
    out = {}
    for k, v in values.items():
        gs = torch.autograd.grad(v, params, retain_graph=True, allow_unused=True)
        out[k] = torch.cat([g.flatten() for g in gs if g is not None]).norm().item()
    return out


SHARE_IMAGES = 128  # test images of the share analysis (~5 s per blur to render at order 2 on one core)
SHARE_BLURS = (0.015, render.SIGMA, 0.06)  # the rendering's Gaussian width, halved and doubled
DIAMETER_IMAGES = 4000  # test images over which the manifold's diameter is taken


def _second_share(vertices: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, noise_: torch.Tensor,
                  D: torch.Tensor) -> dict:
    """The second-order term's share of the oracle's correction by eq. (52), for noise [n, 1, P]
    at cubes `vertices` with image derivatives d1, d2: as the sweep measures it (mean over the
    outputs of rms / D_i), per output, per image (median), and the part of eq. (51) that the
    noise outside the tangent space makes, its first two summands together:
    2 H_ik . (D - dI/dnu_p dnu_p) dnu_k, zero for a direction in the tangent space."""
    t = oracle.tangent(vertices, d1.double(), d2.double())
    ex = oracle.along(t, noise_, order=2)
    first, second = ex.dO[:, 0], 0.5 * ex.d2O[:, 0]
    rms = lambda x: (x ** 2).mean(0).sqrt() / D  # noqa: E731, per output in units of D_i
    # the residual r = D - J dnu of the first-order fit, met by the image Hessian, solved with
    # Gamma like the whole of eq. (51)
    r = noise_ - ex.dnu @ t.J
    rH = (r @ t.H.transpose(-1, -2))[..., geometry.SYMMETRIC]
    residual = 2 * torch.einsum("bmik,bmk->bmi", rH, ex.dnu)
    b_residual = torch.linalg.solve(t.G[:, None], residual[..., None]).squeeze(-1)
    part_residual = 0.5 * (b_residual @ t.dC)[:, 0]
    per_image = (second / D).norm(dim=1) / ((first + second) / D).norm(dim=1)
    return {"share": (rms(second).mean() / rms(first + second).mean()).item(),
            "ratio": (rms(second).mean() / rms(first).mean()).item(),  # second-order term / first
            "per_output": (rms(second) / rms(first + second)).tolist(),
            "per_image_median": per_image.median().item(),
            "residual": (rms(part_residual).mean() / rms(first + second).mean()).item()}


@dataclass
class SecondShare:
    base: dict  # _second_share at the preset's first test images
    by_blur: dict  # rendering width -> share
    numbers: dict  # for the chapter's text


def second_share(s: SecondOrder, n: int = SHARE_IMAGES) -> SecondShare:
    """What sets the second-order term's share of the oracle's correction at the sweep's
    largest sigma (the paper: "up to 1/20" for sigma <= 0.25): per output and image, the
    residual term of eq. (51), the rendering's blur, the images' contrast (scaling every image
    by k divides the second-order term over the first by k: dnu ~ 1/k and d2nu ~ 1/k^2 in
    eqs. 23 and 51), and the manifold's diameter, which fixes our contrast against the
    paper's "about 10"."""
    ds = _dataset(s.preset)
    test, D = ds.test, ds.norms.D_i.double()
    n = min(n, len(test))
    sigma = s.sweep["oracle"][-1]["sigma"]
    N = sigma * noise.standard_noise(n, s.sweep["seed"]).reshape(n, 1, -1)
    V = test.vertices[:n]
    base = _second_share(V, test.d1[:n], test.d2[:n], N, D)
    by_blur = {render.SIGMA: base["share"]}
    for blur in (b for b in SHARE_BLURS if b != render.SIGMA):  # the same cubes rendered at another width
        r = render.render(V, order=2, sigma=blur, check=False)
        by_blur[blur] = _second_share(V, r.d1, r.d2, N, D)["share"]
    doubled = _second_share(V, 2 * test.d1[:n], 2 * test.d2[:n], N, D)["ratio"]
    m = min(DIAMETER_IMAGES, len(test))
    X = test.image[:m].reshape(m, -1).double()
    diameter = max(torch.cdist(X[i:i + 1000], X).max().item() for i in range(0, m, 1000))
    rows_ = s.sweep["oracle"][1:]  # sigma > 0
    slope = [r["second_order_part"] / r["correction"] / r["sigma"] for r in rows_]
    numbers = {"share_images": n, "share_base": base["share"], "share_out_lo": min(base["per_output"]),
               "share_out_hi": max(base["per_output"]),
               "share_image_median": base["per_image_median"], "share_residual": base["residual"],
               "share_blur_lo": by_blur[SHARE_BLURS[0]], "share_blur_mid": by_blur[SHARE_BLURS[1]],
               "share_blur_hi": by_blur[SHARE_BLURS[2]], "blur_lo": SHARE_BLURS[0], "blur_mid": SHARE_BLURS[1],
               "blur_hi": SHARE_BLURS[2], "share_contrast_ratio": doubled / base["ratio"],
               "diameter": diameter, "diameter_images": m,
               "share_per_sigma_lo": min(slope), "share_per_sigma_hi": max(slope),
               "sigma_paper_share": paper.SECOND_ORDER_SHARE_OF_CORRECTION / (sum(slope) / len(slope)),
               "contrast_for_paper_share": s.numbers["second_share_top"] / paper.SECOND_ORDER_SHARE_OF_CORRECTION}
    return SecondShare(base, by_blur, numbers)
