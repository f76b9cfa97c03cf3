"""The robustness chapter (§4.6): universal robust training (Tables 3-4) against Gaussian
augmentation (Table 5) and Jacobian regularisation, the sweeps over sigma and c^2 (Figs. 6-7),
the claim at one width, the error-vulnerability plane, the long schedule and R_high.

`study` only loads stored results and builds the tables and numbers; the analyses that need
the data set or the networks' weights (random directions and their norms, the jet check,
network gradients, spectra of the optimal attacks, the capacity floor) are separate functions
the chapter calls, each returning its figure data and numbers.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from .. import analyses, claims, directions, evaluate, experiments, paper, presets, report
from .. import store
from ..claims import FULL_SETUP, LARGER, NO_EFFECT, NO_EFFECT_TEXT, Claim, nearest, network, smaller
from ..experiments import Robust
from ..presets import Preset
from ..store import Result

FAMILIES = {"low": directions.low, "mid": directions.mid, "high": directions.high}
METRICS = ("e_train", "e_test", "v_max_test", "v_sen_test", "v_inv_test")
SWEEP_LABELS = {"gaussian": r"$\sigma$", "jacobian": r"$c^2$"}
SWEEP_SYMBOLS = {"gaussian": "σ", "jacobian": "c²"}
SWEEP_TITLES = {"gaussian": "Gaussian augmentation", "jacobian": "Jacobian regularisation"}
HEAD = ["network", "weights (M)", "e % train / test", "$\\bar v_{\\max}$ %", "$\\bar v_{\\text{sen}}$ %",
        "$\\bar v_{\\text{inv}}$ %"]
# widths at which the capacity floor is estimated, besides the preset's
FLOOR_WIDTHS = (16, 32, 64, 128, 256, 512, 1024)
NORM_IMAGES = 2048  # training images that fix n_i and c of eq. (43), and the principal directions


@dataclass
class Robustness:
    preset: Preset
    results: dict  # experiment name -> Result: every network of the chapter (experiments.robust_experiments)
    accuracy: dict  # "conventional" / "first" -> Result of the accuracy chapter at the sweep width
    sweeps: dict  # "gaussian" / "jacobian" -> {"values": the strengths, and an array per METRICS key}
    best: dict  # "gaussian" / "jacobian" -> the strength of the sweep's best network (analyses.best)
    # built from the above by `study`
    curves: dict = field(default_factory=dict)  # label -> learning curves: robust, the best baselines, conventional
    table3: report.Table | None = None
    table4: report.Table | None = None
    table5: report.Table | None = None
    claim: report.Table | None = None  # the robust networks against the best baselines at the sweep width
    high: report.Table | None = None  # robust training with and without R_high at the preset's high_width
    long: report.Table | None = None  # robust training with the preset's and the long schedule (None: not run)
    numbers: dict = field(default_factory=dict)
    # experiment name -> Result: the stored networks of `LARGER` shown beside a smaller build's own
    larger: dict = field(default_factory=dict)

    def robust(self, kind: Robust = Robust(), width: int | None = None, epochs: int | None = None) -> Result:
        """The result of robust training `kind` (at the sweep width unless `width`)."""
        return self.results[experiments.robust(self.preset, kind, width or self.preset.sweep_width, epochs=epochs).name]

    def gaussian(self, sigma: float) -> Result:
        """The network of the sigma sweep with `sigma`."""
        return self.results[experiments.gaussian_sweep(self.preset, sigma).name]

    def table5_network(self, width: int) -> Result:
        """Table 5's network (sigma = 0.055, the preset's whole schedule) at `width`."""
        return self.results[experiments.gaussian(self.preset, experiments.TABLE5_SIGMA, width).name]

    def jacobian(self, c2: float, width: int | None = None) -> Result:
        return self.results[experiments.jacobian(self.preset, c2, width or self.preset.sweep_width).name]

    def best_result(self, method: str) -> Result:
        """The best network of the `method` sweep ("gaussian" or "jacobian")."""
        return getattr(self, method)(self.best[method])


# --------------------------------------------------------------------------------------
# The study: stored results, tables, numbers

def larger_results(p: Preset) -> dict:
    """The stored networks of this chapter at `LARGER`, for a build at a smaller preset:
    experiment name -> Result (nothing is trained; a result of code not recorded as equivalent
    is left out)."""
    return {} if p.name in FULL_SETUP else store.stored(experiments.robust_experiments(presets.get(LARGER)))


# The network of Tables 3, 4 and 5 at a preset and width (Table 5: sigma = 0.055, the whole schedule)
TABLE_NETWORK = {3: lambda q, w: experiments.robust(q, Robust(), w),
                 4: lambda q, w: experiments.robust(q, Robust(tradeoff=True), w),
                 5: lambda q, w: experiments.gaussian(q, experiments.TABLE5_SIGMA, w)}


def larger_network(s: "Robustness", table: int) -> tuple[str, Result] | None:
    """(label, result) of Table `table`'s network at LARGER's sweep width when stored, e.g.
    "L = 256, `paper-small`, 500 epochs" (the epochs when fewer than its schedule)."""
    q = presets.get(LARGER)
    r = s.larger.get(TABLE_NETWORK[table](q, q.sweep_width).name)
    if r is None:
        return None
    return f"L = {q.sweep_width}, `{LARGER}`" + ("" if r.epochs == q.epochs else f", {r.epochs} epochs"), r


def study(preset, device="cpu") -> Robustness:
    """Every network of the chapter loaded (store.run), its tables and named numbers."""
    p = presets.get(preset)
    W = p.sweep_width
    results = {e.name: store.run(e, device=device) for e in experiments.robust_experiments(p)}
    accuracy = {m: store.run(experiments.accuracy(p, m, W), device=device) for m in ("conventional", "first")}
    found = {m: _sweep(p, results, m) for m in ("gaussian", "jacobian")}
    sweeps = {m: {"values": tuple(f), **{k: np.array([r.metrics[k] for r in f.values()]) for k in METRICS}}
              for m, f in found.items()}
    best = {m: analyses.best(analyses.scores(f)) for m, f in found.items()}
    s = Robustness(preset=p, results=results, accuracy=accuracy, sweeps=sweeps, best=best, larger=larger_results(p))
    s.curves = {"robust": s.robust().curves,
                f"Gaussian, sigma = {best['gaussian']:g}": s.best_result("gaussian").curves,
                f"Jacobian, c^2 = {best['jacobian']:g}": s.best_result("jacobian").curves,
                "conventional": accuracy["conventional"].curves}
    s.table3, s.table4 = _tables_3_4(s)
    s.table5 = _table_5(s)
    s.claim, verdict = _claim(s)
    s.high = _high_table(s)
    s.long = _long_table(s)
    s.numbers = {**_setup_numbers(s), **_table_numbers(s), **_sweep_numbers(s), **_curve_numbers(s),
                 **_claim_numbers(s, verdict), **_long_numbers(s), **_high_numbers(s), **_summary_numbers(s),
                 **_larger_numbers(s), **_larger_sweep_numbers(s)}
    # the claim with R_high, and its margins over the best of the sweeps
    n = s.numbers
    n["claim_high_text"] = ("was not tested at this preset" if n["verdict_high"] == "was not tested" else
                            n["verdict_high"] + n["high_margins"])
    return s


def _sweep_experiments(p: Preset, method: str) -> dict:
    """strength -> Experiment of the `method` sweep ("gaussian": sigma, "jacobian": c^2) at the sweep width."""
    if method == "gaussian":
        return {v: experiments.gaussian_sweep(p, v) for v in p.sigmas}
    return {v: experiments.jacobian(p, v, p.sweep_width) for v in p.jacobian_weights}


def _sweep(p: Preset, results: dict, method: str) -> dict:
    """strength -> Result of the `method` sweep at the sweep width."""
    return {v: results[e.name] for v, e in _sweep_experiments(p, method).items()}


def larger_label(epochs: int) -> str:
    """A `LARGER` network's name in a figure, e.g. "L = 256, paper-small, 500 epochs"."""
    return f"L = {presets.get(LARGER).sweep_width}, {LARGER}, {epochs} epochs"


def larger_sweep(s: Robustness, method: str) -> dict:
    """strength -> Result: the stored points of `LARGER`'s `method` sweep (none at a full-setup build)."""
    exps = _sweep_experiments(presets.get(LARGER), method)
    return {v: s.larger[e.name] for v, e in exps.items() if e.name in s.larger}


def larger_best(s: Robustness, method: str) -> float | None:
    """The strength of the lowest stored test v_max of `LARGER`'s `method` sweep (None: none stored)."""
    found = larger_sweep(s, method)
    return analyses.best(analyses.scores(found)) if found else None


def larger_compared(s: Robustness, method: str) -> tuple[Result, Result] | None:
    """(robust network, best of the sweep) at `LARGER` once its robust network and the whole
    `method` sweep are stored (equal schedules): the pair the claims compare; else None."""
    robust, found = larger_network(s, 3), larger_sweep(s, method)
    if robust is None or len(found) < len(_sweep_experiments(presets.get(LARGER), method)):
        return None
    return robust[1], found[larger_best(s, method)]


def _nets(p: Preset) -> list[tuple[str, bool, int]]:
    """(label, deep, width) of the networks of Tables 3-5: the preset's widths, then its deep network."""
    nets = [(f"L = {w}", False, w) for w in p.widths]
    if p.deep_width:
        nets.append((f"20M (deep, L = {p.deep_width})", True, p.deep_width))
    return nets


PAPER_NETS = [(f"paper, {paper.WEIGHTS_MILLIONS[w]}M", paper.WEIGHTS_MILLIONS[w], w) for w in paper.TABLE3
              if w != "deep"] + [("paper, 20M*", 20, "deep")]


def _ours(label: str, m: dict) -> list:
    return [label, m["n_weights"] / 1e6, f"{m['e_train']:.2f} / {m['e_test']:.2f}",
            f"{m['v_max_train']:.1f} / {m['v_max_test']:.1f}", f"{m['v_sen_train']:.1f} / {m['v_sen_test']:.1f}",
            f"{m['v_inv_train']:.1f} / {m['v_inv_test']:.1f}"]


def _paper(label: str, millions, t: dict) -> list:
    return [label, str(millions), *(f"{t[k][0]:.3g} / {t[k][1]:.3g}" for k in ("e", "v_max", "v_sen", "v_inv"))]


def _larger_note() -> str:
    return (f"Rows `{LARGER}`: the paper's smallest network (0.6M weights) on the paper's data and learning-rate "
            f"schedule; a number of epochs after the name is a shortened schedule (the paper: 2000).")


def _larger_numbers(s: Robustness) -> dict:
    """The `LARGER` networks of Tables 3-5 for the text, where stored: ps_t3_*, ps_t4_*, ps_t5_*
    (test e, v_max, v_sen, v_inv in %, epochs, training hours) and the paper's test values."""
    out = {}
    nets = {"ps_t3": (3, None), "ps_t4": (4, paper.TABLE4), "ps_t5": (5, paper.TABLE5)}
    pw = nearest(presets.get(LARGER).sweep_width)
    for key, (number, table) in nets.items():
        if (row := larger_network(s, number)) is None:
            continue
        r = row[1]
        out.update({f"{key}_{k}": r.metrics[f"{k}_test"] for k in ("e", "v_max", "v_sen", "v_inv")})
        out.update({f"{key}_epochs": r.epochs, f"{key}_hours": r.provenance["train_seconds"] / 3600,
                    f"{key}_device": r.device})
        theirs = {"e": paper.TABLE3[pw][0], "v_max": paper.TABLE3[pw][1]} if table is None else \
            {k: table[pw][k][1] for k in ("e", "v_max", "v_sen", "v_inv")}
        out.update({f"{key}_paper_{k}": v for k, v in theirs.items()})
    if "ps_t5_v_max" in out and s.preset.sweep_width in s.preset.widths:  # the build's own, for comparison
        out["ps_t5_own_v_max"] = s.table5_network(s.preset.sweep_width).v_max_test
    return out


def _larger_sweep_numbers(s: Robustness) -> dict:
    """`LARGER`'s sweeps where stored (ps_gaussian_*, ps_jacobian_*: points, the best stored
    point, whether the sweep is complete) and the cost of its shortened schedule measured at
    Table 5's sigma: the sweep's network against Table 5's (ps_short_*)."""
    out = {}
    q = presets.get(LARGER)
    for method in ("gaussian", "jacobian"):
        found = larger_sweep(s, method)
        if not found:
            continue
        b, planned, sym = larger_best(s, method), sorted(_sweep_experiments(q, method)), SWEEP_SYMBOLS[method]
        out.update({f"ps_{method}_where": _where(planned.index(b), len(planned), sym, missing=set(planned) - set(found)),
                    f"ps_{method}_points": ", ".join(f"{sym} = {v:g}: {found[v].v_max_test:.1f} %" for v in sorted(found)),
                    f"ps_{method}_stored": len(found), f"ps_{method}_of": len(planned),
                    f"ps_{method}_best": b, f"ps_{method}_best_v": found[b].v_max_test,
                    f"ps_{method}_best_e": found[b].e_test, f"ps_{method}_epochs": found[b].epochs,
                    f"ps_{method}_compared": larger_compared(s, method) is not None})
        # the split into the two attacks along the sweep: where the invariance attack takes over,
        # and, if the lowest v_max is the last point, what still falls after the takeover
        vals = sorted(found)
        sen, inv, e = ([found[v].metrics[k] for v in vals] for k in ("v_sen_test", "v_inv_test", "e_test"))
        k = _takeover(sen, inv)
        out[f"ps_{method}_takeover"] = _takeover_text(vals, k, method, len(found) == len(planned), sen, inv)
        if k is not None and k < len(vals) - 1 and b == vals[-1]:
            out[f"ps_{method}_tail"] = (
                f"from {sym} = {vals[k]:g} on, $\\bar v_{{\\text{{inv}}}}$ stays within {min(inv[k:]):.1f}-"
                f"{max(inv[k:]):.1f} %, while $\\bar v_{{\\text{{sen}}}}$ goes from {sen[k]:.1f} to {sen[-1]:.1f} % "
                f"and the test error from {e[k]:.1f} to {e[-1]:.1f} %")
    short, whole = larger_sweep(s, "gaussian").get(experiments.TABLE5_SIGMA), larger_network(s, 5)
    if short is not None and whole is not None and short.epochs < whole[1].epochs:
        out.update({"ps_short_epochs": short.epochs, "ps_short_e": short.e_test, "ps_short_v": short.v_max_test,
                    "ps_whole_epochs": whole[1].epochs, "ps_whole_e": whole[1].e_test,
                    "ps_whole_v": whole[1].v_max_test, "ps_short_sigma": experiments.TABLE5_SIGMA})
    return out


def larger_sweeps_text(s: Robustness) -> str:
    """The paragraph on `LARGER`'s stored sweep points under the sweeps figure ("" if none)."""
    n, q = s.numbers, presets.get(LARGER)
    found = [m for m in ("gaussian", "jacobian") if f"ps_{m}_points" in n]
    if not found:
        return ""

    def sweep(m):  # the sentences on one sweep
        sym, paper_note = SWEEP_SYMBOLS[m], \
            f" (the paper: from {paper.GAUSSIAN_INVARIANCE_TAKES_OVER:g})" if m == "gaussian" else ""
        tail = f"; {n[f'ps_{m}_tail']}" if f"ps_{m}_tail" in n else ""
        count = n[f'ps_{m}_of'] if n[f'ps_{m}_stored'] == n[f'ps_{m}_of'] else \
            f"{n[f'ps_{m}_stored']} of {n[f'ps_{m}_of']}"
        trained = "networks" if n[f'ps_{m}_stored'] == n[f'ps_{m}_of'] else "networks trained so far"
        return (f" {SWEEP_TITLES[m]} ({count} {trained}), test "
                f"$\\bar v_{{\\max}}$ at {n[f'ps_{m}_points']}. The lowest is {n[f'ps_{m}_best_v']:.1f} % at {sym} = "
                f"{n[f'ps_{m}_best']:g} (test error {n[f'ps_{m}_best_e']:.1f} %), {n[f'ps_{m}_where']}. Its invariance "
                f"attack {n[f'ps_{m}_takeover']}{paper_note}{tail}.")
    short = (f" The shortened schedule has a price, measured at σ = {n['ps_short_sigma']:g}: {n['ps_short_epochs']} "
             f"epochs end at a test error of {n['ps_short_e']:.2f} % and $\\bar v_{{\\max}}$ = {n['ps_short_v']:.1f} %, "
             f"the whole {n['ps_whole_epochs']} epochs (Table 5's network) at {n['ps_whole_e']:.2f} % and "
             f"{n['ps_whole_v']:.1f} %. {_compared_text(n)}" if "ps_short_v" in n else "")
    return (f"The hollow squares are the paper's smallest network on the paper's data (preset `{q.name}`, "
            f"$L$ = {q.sweep_width}), trained for {n[f'ps_{found[0]}_epochs']} epochs like its robust networks."
            + "".join(sweep(m) for m in found) + short)


def _compared_text(n: dict) -> str:
    """Which sweeps robust training is compared with at `LARGER` (equal schedules), and what
    each comparison still waits for (`n`: the chapter's numbers)."""
    methods = ("gaussian", "jacobian")
    done = [m for m in methods if n.get(f"ps_{m}_compared")]
    partial = [m for m in methods if n.get(f"ps_{m}_stored", 0) < n.get(f"ps_{m}_of", 1)]
    sweeps = lambda ms: " and ".join(f"the {SWEEP_TITLES[m]} sweep" for m in ms)
    if len(done) == len(methods):
        return "Robust training is therefore compared with the sweeps, of equal schedules, not with Table 5's network."
    if done:
        return (f"Robust training is therefore compared with {sweeps(done)}, of equal schedule, not with Table 5's "
                f"network; with {sweeps([m for m in methods if m not in done])} once all its networks are trained.")
    waits = (["its network is trained"] if "ps_t3_v_max" not in n else []) + \
        ([f"{sweeps(partial)} {'is' if len(partial) == 1 else 'are'} complete"] if partial else [])
    return ("Robust training will therefore be compared with the sweeps, of equal schedules, not with Table 5's "
            f"network, once {' and '.join(waits)}.")


def larger_tables34_text(s: Robustness) -> str:
    """The paragraph on `LARGER`'s rows of Tables 3-4 ("" until both robust networks are stored),
    with robust training against the best of each sweep that is complete (equal schedules)."""
    n, q = s.numbers, presets.get(LARGER)
    if not ("ps_t3_v_max" in n and "ps_t4_v_max" in n):
        return ""
    text = (f"The rows `{q.name}` are the paper's smallest network on the paper's data, trained for "
            f"{n['ps_t3_epochs']} epochs (the paper: {q.epochs}; {n['ps_t3_hours']:.1f} hours on {n['ps_t3_device']}). "
            f"Robust training ends at a test error of {n['ps_t3_e']:.2f} % and $\\bar v_{{\\max}}$ = "
            f"{n['ps_t3_v_max']:.1f} % (the paper's Table 3: {n['ps_t3_paper_e']:.2f} % and {n['ps_t3_paper_v_max']:.1f} %). "
            f"After the trade-off epoch: {n['ps_t4_e']:.2f} % and {n['ps_t4_v_max']:.1f} % (Table 4: "
            f"{n['ps_t4_paper_e']:.2f} % and {n['ps_t4_paper_v_max']:.1f} %).")
    for method in ("gaussian", "jacobian"):
        if (pair := larger_compared(s, method)) is None:
            continue
        (rob, best), b = pair, larger_best(s, method)
        ratio = best.v_max_test / rob.v_max_test
        vulnerable = "as" if round(ratio, 2) == 1 else "less" if ratio > 1 else "more"
        text += (f" Against the best network of the {SWEEP_TITLES[method]} sweep of the same schedule "
                 f"({SWEEP_SYMBOLS[method]} = {b:g}: $\\bar v_{{\\max}}$ = {best.v_max_test:.1f} %, "
                 f"test error {best.e_test:.2f} %), robust training is {vulnerable} vulnerable "
                 f"(the ratio of the two $\\bar v_{{\\max}}$, sweep / robust: {ratio:.2f}) and "
                 f"{'more' if rob.e_test < best.e_test else 'less'} accurate.")
        # the sweep's best may buy its v_max with accuracy: the best among those no less accurate
        found = larger_sweep(s, method)
        fair = any(r.e_test <= rob.e_test for r in found.values())
        if fair and (v := analyses.best(analyses.scores(found), e_limit=rob.e_test)) != b:
            text += (f" Among the sweep's networks no less accurate than robust training (test error at most "
                     f"{rob.e_test:.2f} %), the lowest $\\bar v_{{\\max}}$ is {found[v].v_max_test:.1f} % at "
                     f"{SWEEP_SYMBOLS[method]} = {v:g} (ratio {found[v].v_max_test / rob.v_max_test:.2f}).")
        elif not fair:
            text += " None of the sweep's networks is as accurate as robust training."
    if larger_compared(s, "gaussian") is not None:
        theirs = paper.TABLE5[256]["v_max"][1] / paper.TABLE3[256][1]
        text += (f" The paper's own 0.6M networks give {theirs:.2f} (Table 5's $\\sigma$ = {experiments.TABLE5_SIGMA} "
                 f"against Table 3: {paper.TABLE5[256]['v_max'][1]} % and {paper.TABLE3[256][1]} %); its "
                 f"{paper.BEST_GAUSSIAN_V_MAX / paper.TABLE3['deep'][1]:.1f} is the 20M robust network against the best "
                 f"of a 4M sweep.")
    return text


def larger_at_error(s: Robustness, method: str, r: Result) -> tuple[float, int] | None:
    """`LARGER`'s `method` sweep (its stored points in the sweep's order) at `r`'s test error:
    analyses.at_error's (v_max, index of the bracketing segment's first point), or None."""
    found = larger_sweep(s, method)
    return analyses.at_error([(found[v].e_test, found[v].v_max_test) for v in sorted(found)], r.e_test)


def seed_spread(p: Preset) -> float | None:
    """max / min - 1 of robust training's test v_max over the stored seeds (PRECISION_SEEDS,
    float32) at `p`'s largest width: how much one network's v_max moves with the seed alone
    (None: fewer than two seeds stored)."""
    exps = [experiments.robust(p, Robust(), max(p.widths), k) for k in experiments.PRECISION_SEEDS]
    v = [r.v_max_test for r in store.stored(exps).values()]
    return max(v) / min(v) - 1 if len(v) >= 2 else None


def _tolerance_text(p: Preset) -> str:
    """The book's 5 % tolerance for "no effect", with the seed spread of v_max measured at `p`."""
    spread = seed_spread(p)
    seeds = "" if spread is None else (
        f"; robust training's $\\bar v_{{\\max}}$ moves by {spread * 100:.1f} % over {len(experiments.PRECISION_SEEDS)} "
        f"seeds at `{p.name}`")
    return (f"{NO_EFFECT_TEXT}, the book's tolerance for no effect (the largest seed-to-seed spread "
            f"measured, of test errors{seeds})")


def larger_plane_text(s: Robustness) -> str:
    """The paragraph under the plane on `LARGER`'s two robust networks against each complete
    sweep of the same schedule at equal test error ("" until both robust networks and a whole
    sweep are stored): the v_max the sweep's curve reaches at the robust network's error
    (analyses.at_error), and whether the network lies below or above that curve or within
    NO_EFFECT of it (the book's tolerance for no effect)."""
    t3, t4 = larger_network(s, 3), larger_network(s, 4)
    if t3 is None or t4 is None:
        return ""
    nets = (("robust training's", t3[1]), ("the trade-off adjusted network's", t4[1]))
    text = ""
    for method in ("gaussian", "jacobian"):
        if larger_compared(s, method) is None:
            continue
        found, sym = larger_sweep(s, method), SWEEP_SYMBOLS[method]
        vals = sorted(found)
        first, last = found[vals[0]], found[vals[-1]]
        text += (f" The {SWEEP_TITLES[method]} sweep runs from a test error of {first.e_test:.2f} % and "
                 f"$\\bar v_{{\\max}}$ = {first.v_max_test:.1f} % at {sym} = {vals[0]:g} to {last.e_test:.2f} % and "
                 f"{last.v_max_test:.1f} % at {sym} = {vals[-1]:g}.")
        sides, said = [], []
        for whose, r in nets:
            if (at := larger_at_error(s, method, r)) is None:
                said.append(f"{whose} test error, {r.e_test:.2f} %, lies outside the errors the sweep spans")
                sides.append(None)
                continue
            (v, i), ratio = at, at[0] / r.v_max_test
            side = "below" if ratio >= NO_EFFECT else "above" if ratio <= 1 / NO_EFFECT else "on"
            sides.append(side)
            where = f"within {NO_EFFECT_TEXT} of" if side == "on" else side
            said.append(f"at {whose} test error, {r.e_test:.2f} %, the sweep's curve (interpolated between {sym} = "
                        f"{vals[i]:g} and {vals[i + 1]:g}) is at {v:.1f} %, against its {r.v_max_test:.1f} % "
                        f"(sweep / robust {ratio:.3f}: {where} the curve)")
        text += f" {said[0][0].upper()}{said[0][1:]}; {said[1]}."
        tolerance = _tolerance_text(s.preset)
        if sides[0] == sides[1] == "on":
            text += (f" Both robust networks lie within {tolerance} of the curve: at this size and schedule robust "
                     f"training picks a point near the trade-off the sweep traces; it does not escape it.")
        elif sides[0] == sides[1] == "below":
            text += (f" Both robust networks lie below the curve, by more than {tolerance}: at equal error they are "
                     f"less vulnerable than any network of the sweep.")
        elif sides[0] == sides[1] == "above":
            text += (f" Both robust networks lie above the curve, by more than {tolerance}: at equal error the "
                     f"sweep's networks are less vulnerable.")
    if not text:
        return ""
    t3p, t4p, t5p = paper.TABLE3[256], paper.TABLE4[256], paper.TABLE5[256]
    return (f"The right panel of {{numref}}`fig-robustness-plane` is the same plane for the paper's smallest "
            f"network on the paper's data (`{LARGER}`, L = {presets.get(LARGER).sweep_width}, {t3[1].epochs} epochs)."
            f"{text} The paper has one Gaussian network of that size: against it "
            f"(Table 5, σ = {experiments.TABLE5_SIGMA}: {t5p['e'][1]} %, {t5p['v_max'][1]} %) its trade-off adjusted "
            f"robust network (Table 4: {t4p['e'][1]} %, {t4p['v_max'][1]} %) is "
            f"{t5p['v_max'][1] / t4p['v_max'][1]:.2f}x less vulnerable and {t4p['e'][1] / t5p['e'][1]:.2f}x less "
            f"accurate, and before its trade-off epoch (Table 3: {t3p[0]} %, {t3p[1]} %) "
            f"{t5p['v_max'][1] / t3p[1]:.2f}x less vulnerable and {t3p[0] / t5p['e'][1]:.1f}x less accurate.")


def _curve_at(r: Result, epoch: int) -> tuple[float, float]:
    """(test e, test v_max on the curve's images) of `r`'s learning curve at `epoch`."""
    c = r.curves
    i = c["epoch"].index(epoch)
    return c["e_test"][i], c["v_max_test"][i]


def larger_summary_text(s: Robustness, numbers: dict) -> str:
    """What `LARGER` (the paper's smallest network on its data) shows, once both of its robust
    networks are stored ("" before): Tables 3-4 against the paper, the plane against each
    complete sweep, what the shortened schedule leaves (the learning curves), and the first
    layer's bound (`numbers`: the chapter's analyses, ps_cap_* where stored)."""
    t3, t4 = larger_network(s, 3), larger_network(s, 4)
    if t3 is None or t4 is None:
        return ""
    (_, rob), (_, adj), q = t3, t4, presets.get(LARGER)
    items = [f"- **Tables 3-4.** Robust training ends at $\\bar v_{{\\max}}$ = {rob.v_max_test:.1f} % and a test error "
             f"of {rob.e_test:.2f} % after {rob.epochs} of the paper's {q.epochs} epochs (the paper: "
             f"{paper.TABLE3[256][1]} % and {paper.TABLE3[256][0]} %); its trade-off epoch gives {adj.v_max_test:.1f} % "
             f"and {adj.e_test:.2f} % (the paper: {paper.TABLE4[256]['v_max'][1]} % and {paper.TABLE4[256]['e'][1]} %)."]
    for method in ("gaussian", "jacobian"):
        if larger_compared(s, method) is None:
            continue
        ratios, said = [], []
        for whose, r in (("robust training", rob), ("trade-off adjusted", adj)):
            if (at := larger_at_error(s, method, r)) is None:
                said.append(f"none for {whose} (its error lies outside the sweep's)")
            else:
                ratios.append(at[0] / r.v_max_test)
                said.append(f"{ratios[-1]:.3f} ({whose})")
        if ratios:
            seen = (f"robust training is less vulnerable at equal error by up to {max(ratios):.2f}x"
                    if max(ratios) >= NO_EFFECT else
                    f"no ratio is past the book's {NO_EFFECT_TEXT} tolerance for no effect")
            items.append(f"- **Against {SWEEP_TITLES[method]}** of the same schedule, at equal test error "
                         f"({{numref}}`fig-robustness-plane`, right): sweep / robust = {' and '.join(said)}: "
                         f"{seen}. The paper's {paper.BEST_GAUSSIAN_V_MAX / paper.TABLE3['deep'][1]:.1f}x is its 20M "
                         f"robust network against the best of a 4M sweep.")
    whole = larger_network(s, 5)
    if whole is not None and whole[1].epochs > rob.epochs and rob.epochs in whole[1].curves["epoch"]:
        (e_mid, v_mid), (e_end, v_end) = _curve_at(whole[1], rob.epochs), _curve_at(whole[1], whole[1].epochs)
        last = rob.curves["epoch"][-5] if len(rob.curves["epoch"]) >= 5 else rob.curves["epoch"][0]
        e_last, v_last = _curve_at(rob, last)
        e_rob, v_rob = _curve_at(rob, rob.epochs)
        learning = "had not finished learning" if v_rob < v_last or e_rob < e_last else "had stopped improving"
        items.append(
            f"- **The schedule.** Robust training {learning} at epoch {rob.epochs}: along its learning curve (first "
            f"{evaluate.CURVE_VUL_IMAGES} test images) its $\\bar v_{{\\max}}$ went from {v_last:.1f} % at epoch {last} "
            f"to {v_rob:.1f} % and its error from {e_last:.1f} to {e_rob:.1f} %. Gaussian augmentation with "
            f"σ = {experiments.TABLE5_SIGMA}, the one network here trained for all {whole[1].epochs} epochs, went "
            f"from {v_mid:.1f} % at epoch {rob.epochs} to {v_end:.1f} % at the end (error {e_mid:.1f} → {e_end:.1f} %). "
            f"Where robust training would sit on the plane after the paper's whole schedule is not measured here.")
    if "ps_cap_own" in numbers:
        items.append(f"- **Capacity.** The robust network's own first layer allows {numbers['ps_cap_own']:.1f} % and it "
                     f"reaches {numbers['ps_cap_vmax']:.1f} % (first {numbers['ps_cap_images']} test images)"
                     + (f": at L = {q.sweep_width} too, the first layer is not what stops it."
                        if numbers["ps_cap_own"] * NO_EFFECT < numbers["ps_cap_vmax"] else
                        f", within {NO_EFFECT_TEXT} of that bound: at this width the first layer may be what "
                        "stops it."))
    return (f"At the paper's smallest network and data (`{LARGER}`, L = {q.sweep_width}, "
            f"{q.n_train} training images):\n\n" + "\n".join(items))


def _tables_3_4(s: Robustness) -> tuple[report.Table, report.Table]:
    p = s.preset
    prov = s.robust().provenance
    t3 = report.Table("Table 3", HEAD, formats={1: ".2f"},
                      subtitle=", first-order robust training $E_0 + E_1 + R_{\\text{low}} + R_{\\text{mid}}$")
    t4 = report.Table("Table 4", HEAD, formats={1: ".2f"},
                      subtitle=", the same + one epoch of $E_0 + E_1$ (trade-off adjusted)",
                      note=f"Training and test values side by side. Ours at preset `{p.name}`: trained on "
                           f"{store.device_text(prov)}, code {prov['git_commit'][:12]}, torch {prov['torch']}; the paper's "
                           "Table 3 gives test values only.")
    for label, deep, w in _nets(p):
        t3.add(*_ours(label, s.robust(Robust(deep=deep), w).metrics))
        t4.add(*_ours(label, s.robust(Robust(deep=deep, tradeoff=True), w).metrics))
    shown = False
    for table, number in ((t3, 3), (t4, 4)):
        if (row := larger_network(s, number)) is not None:
            table.add(*_ours(row[0], row[1].metrics))
            shown = True
    if shown:
        t4.note += " " + _larger_note()
    for label, millions, k in PAPER_NETS:
        t3.add(label, str(millions), f"- / {paper.TABLE3[k][0]}", f"- / {paper.TABLE3[k][1]}", None, None)
        t4.add(*_paper(label, millions, paper.TABLE4[k]))
    return t3, t4


def _table_5(s: Robustness) -> report.Table:
    sigma = experiments.TABLE5_SIGMA
    t5 = report.Table("Table 5", HEAD, formats={1: ".2f"},
                      subtitle=f", Gaussian augmentation, $\\sigma$ = {sigma}, clean images")
    for w in s.preset.widths:
        t5.add(*_ours(f"L = {w}", s.table5_network(w).metrics))
    if (row := larger_network(s, 5)) is not None:
        t5.add(*_ours(row[0], row[1].metrics))
        t5.note = _larger_note()
    for label, millions, k in PAPER_NETS:
        t5.add(*_paper(label, millions, paper.TABLE5[k]))
    return t5


def typeset(label: str) -> str:
    """A network's label for a Markdown table or a figure: sigma, c^2 and R_high as symbols."""
    return (label.replace("sigma", "$\\sigma$").replace("c^2", "$c^2$")
            .replace("R_high", "$R^{\\text{I}}_{\\text{high}}$"))


def _contenders(s: Robustness) -> dict:
    """label -> metrics: the best baselines of the sweeps, then the robust networks at the sweep width."""
    g, j = s.best["gaussian"], s.best["jacobian"]
    out = {f"best Gaussian (sigma = {g:g})": s.best_result("gaussian").metrics,
           f"best Jacobian (c^2 = {j:g})": s.best_result("jacobian").metrics,
           "robust (Table 3)": s.robust().metrics,
           "robust, trade-off adj. (Table 4)": s.robust(Robust(tradeoff=True)).metrics}
    if s.preset.high_width == s.preset.sweep_width:
        out.update({"robust + R_high": s.robust(Robust(high=True)).metrics,
                    "robust + R_high, trade-off adj.": s.robust(Robust(high=True, tradeoff=True)).metrics})
    return out


def dominance(s: Robustness, name: str, m: dict) -> Claim:
    """The paper's comparison (§4.6, §7) for the robust network `name` with metrics `m`: less
    vulnerable than the best Gaussian and the best Jacobian network and no less accurate.
    Ours is its smallest margin over the two, their v_max / its v_max and their e / its e
    (above NO_EFFECT: better on both axes past the seed spread); a network ignoring its input
    has the null network's v_max and e, and its margin is below 1."""
    base = [s.best_result(k).metrics for k in ("gaussian", "jacobian")]
    margin = lambda v, e: min(min(b["v_max_test"] / v, b["e_test"] / e) for b in base)
    null = analyses.null_network(s.preset.name)
    W = s.preset.sweep_width
    return Claim(f"dominance-{name}", f"{name}: below the best Gaussian and Jacobian networks on both axes (smallest "
                 f"ratio of theirs to its $e$ and $\\bar v_{{\\max}}$; effect: > {NO_EFFECT})", "2.3x (§7)", "20M vs 4M",
                 margin(m["v_max_test"], m["e_test"]), f"L = {W}", s.preset.name, "sec-robust-claim",
                 kind="qualitative", better="higher", null=margin(null["v_max_test"], null["e_test"]),
                 smaller=smaller(s.preset.name, W) or W < 1024)


def _claim(s: Robustness) -> tuple[report.Table, dict]:
    """The claim table, and label -> the dominance claim of that robust network."""
    W = s.preset.sweep_width
    table = report.Table("", [f"network, L = {W}", "e test %", "$\\bar v_{\\max}$ test %",
                              "smallest margin over both best (theirs / its, both axes)", "verdict"],
                         formats={1: ".2f", 2: ".1f", 3: ".2f"})
    found = {}
    for name, m in _contenders(s).items():
        if not name.startswith("robust"):
            table.add(typeset(name), m["e_test"], m["v_max_test"], None, "")
            continue
        found[name] = c = dominance(s, name, m)
        table.add(typeset(name), m["e_test"], m["v_max_test"], c.ours, claims.verdict(c))
    return table, found


HIGH_ROWS = (("robust", Robust()), ("robust, trade-off adj.", Robust(tradeoff=True)),
             ("robust + R_high", Robust(high=True)),
             ("robust + R_high, trade-off adj.", Robust(high=True, tradeoff=True)))


def _high_table(s: Robustness) -> report.Table | None:
    L = s.preset.high_width
    if not L:
        return None
    table = report.Table("", [f"network, L = {L}", "e train / test %", "$\\bar v_{\\max}$ %",
                              "$\\bar v_{\\text{sen}}$ %", "$\\bar v_{\\text{inv}}$ %"],
                         formats={2: ".1f", 3: ".1f", 4: ".1f"})
    for label, kind in HIGH_ROWS:
        m = s.robust(kind, L).metrics
        table.add(typeset(label), f"{m['e_train']:.2f} / {m['e_test']:.2f}", m["v_max_test"], m["v_sen_test"],
                  m["v_inv_test"])
    return table


def gaussian_v_at(s: Robustness, e: float) -> float:
    """The Gaussian sweep's test v_max at test error `e` (analyses.at_error; NaN outside the sweep)."""
    sw = s.sweeps["gaussian"]
    at = analyses.at_error(list(zip(sw["e_test"].tolist(), sw["v_max_test"].tolist())), e)
    return float("nan") if at is None else at[0]


def _setup_numbers(s: Robustness) -> dict:
    vul_n = s.robust().metrics["vul_images"]
    p = s.preset
    return {"n_networks": len(s.results), "n_train": int(p.n_train), "n_test": int(p.n_test),
            "low_lr_epochs": int(p.low_lr_epochs), "batches": int(p.batches),
            "vul_test": int(vul_n["test"]), "vul_train": int(vul_n["train"]),
            "vul_test_share": 100 * vul_n["test"] / s.preset.n_test, "preset_name": s.preset.name,
            "W": int(s.preset.sweep_width), "epochs_preset": int(s.preset.epochs),
            "robust_epochs": s.robust().epochs, "epochs_text": _epochs_text(s),
            "curve_images": int(evaluate.CURVE_VUL_IMAGES)}


def _epochs_text(s: Robustness) -> str:
    """The chapter's schedules in words: one for all, or the preset's and the shorter one of the
    networks trained with derivative terms (robust, Jacobian), which carry it in their names."""
    p = s.preset
    whole = f"{p.epochs} epochs ({p.low_lr_epochs} of them at learning rate 10⁻⁴)"
    if p.derivative_epochs is None:
        return whole
    low = experiments.robust(p, Robust(), p.sweep_width).recipe.phases[-1].epochs
    return (f"{whole} for Table 5, and {p.derivative_epochs} epochs ({low} at 10⁻⁴; named "
            f"\"-e{p.derivative_epochs}\") for the networks trained with derivative terms and for the sigma "
            f"sweep they are compared with")


def _table_numbers(s: Robustness) -> dict:
    p = s.preset
    rob, rob_t = s.robust().metrics, s.robust(Robust(tradeoff=True)).metrics
    gain_e = [paper.TABLE3[k][0] / paper.TABLE4[k]["e"][1] for k in paper.TABLE3]
    cost_v = [paper.TABLE4[k]["v_max"][1] / paper.TABLE3[k][1] for k in paper.TABLE3]
    robust = [(w, t, s.robust(Robust(deep=deep, tradeoff=t), w).metrics)
              for _, deep, w in _nets(p) for t in (False, True)]
    gap = max(abs(m["v_max_test"] / m["v_max_train"] - 1) for _, _, m in robust)
    inv_larger = [f"L = {w} ({'trade-off adjusted' if t else 'before the trade-off epoch'})"
                  for w, t, m in robust if m["v_inv_test"] > m["v_sen_test"]]
    lo = min(p.widths)
    conv = s.accuracy["conventional"].metrics
    return {
        "rob_e": rob["e_test"], "rob_v": rob["v_max_test"], "rob_t_e": rob_t["e_test"], "rob_t_v": rob_t["v_max_test"],
        "tradeoff_gain": rob["e_test"] / rob_t["e_test"], "tradeoff_cost": rob_t["v_max_test"] / rob["v_max_test"],
        "conv_e": conv["e_test"], "conv_v": conv["v_max_test"],
        # the paper's factors for the trade-off epoch, test columns of Tables 3 and 4
        "paper_gain_e": f"{min(gain_e):.1f}–{max(gain_e):.1f}",
        "paper_cost_v": f"{min(cost_v):.2f}–{max(cost_v):.2f}",
        "train_test_gap": 100 * gap,
        # the paper splits v_max only after the trade-off epoch (Table 4): sensitivity the larger throughout
        "largest_attack": "The sensitivity attack is the larger of the two for every robust network, as in the "
        "paper's Table 4 (its Table 3 gives no split)." if not inv_larger else
        "The invariance attack is the larger of the two for " + ", ".join(inv_larger) + "; in the paper's Table 4, "
        "after the trade-off epoch, the sensitivity attack is the larger for every network (its Table 3 gives no "
        "split).",
        "rob_e_lo": s.robust(width=lo).metrics["e_test"], "rob_v_lo": s.robust(width=lo).metrics["v_max_test"],
        "L_lo": int(lo)}


def _where(i: int, n: int, symbol: str = "", missing=()) -> str:
    """Where the best of n sweep points (the i-th, in increasing strength) lies, in words;
    `missing`: the sweep's strengths not trained yet (any of them may hold the minimum)."""
    if n == 1:
        return "the sweep's only point"
    if missing:  # the minimum may move to a point not trained yet
        names = [f"{v:g}" for v in sorted(missing)]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"provisional while {symbol} = {listed} {'is' if len(names) == 1 else 'are'} not trained yet"
    return "at the end of the sweep, so the true minimum may lie beyond it" if i == n - 1 else \
        "at the start of the sweep" if i == 0 else "inside the sweep"


def _takeover(v_sen, v_inv) -> int | None:
    """Index of the first sweep point (in increasing strength) where the invariance attack is at
    least as strong as the sensitivity attack (None: nowhere)."""
    return next((i for i, (sen, inv) in enumerate(zip(v_sen, v_inv)) if inv >= sen), None)


def _takeover_text(values, i: int | None, method: str, whole: bool = True, v_sen=(), v_inv=()) -> str:
    """What the invariance attack does along a sweep, given `_takeover`'s index; `whole`:
    every planned point of the sweep is among `values` (else the text says so); where it never
    overtakes, how close it comes (given the sweep's `v_sen`, `v_inv`)."""
    if i is None:
        text = "never overtakes the sensitivity attack in this sweep" if whole else \
            "does not overtake the sensitivity attack at the points trained so far"
        if len(v_sen):
            j = max(range(len(values)), key=lambda k: v_inv[k] - v_sen[k])
            text += (f"; at {SWEEP_SYMBOLS[method]} = {values[j]:g} it comes within "
                     f"{v_sen[j] - v_inv[j]:.1f} points of it")
        return text
    return f"overtakes the sensitivity attack from {SWEEP_SYMBOLS[method]} = {values[i]:g}" + \
        ("" if whole else " among the points trained so far")


def _sweep_numbers(s: Robustness) -> dict:
    out = {}
    for method, sw in s.sweeps.items():
        values = sw["values"]
        i = values.index(s.best[method])
        out[f"{method}_best"] = float(values[i])
        out[f"{method}_best_v"] = float(sw["v_max_test"][i])
        out[f"{method}_best_e"] = float(sw["e_test"][i])
        out[f"{method}_where"] = _where(i, len(values))
        out[f"{method}_takeover"] = _takeover_text(values, _takeover(sw["v_sen_test"], sw["v_inv_test"]), method,
                                                   v_sen=sw["v_sen_test"], v_inv=sw["v_inv_test"])
    gauss = s.sweeps["gaussian"]
    out.update({"gauss_v_first": float(gauss["v_max_test"][0]), "gauss_v_last": float(gauss["v_max_test"][-1]),
                "sigma_first": float(gauss["values"][0]), "sigma_last": float(gauss["values"][-1]),
                "paper_takeover": paper.GAUSSIAN_INVARIANCE_TAKES_OVER})
    return out


def _curve_numbers(s: Robustness) -> dict:
    rc = s.curves["robust"]
    g = s.curves[f"Gaussian, sigma = {s.best['gaussian']:g}"]["v_max_test"]
    j = s.curves[f"Jacobian, c^2 = {s.best['jacobian']:g}"]["v_max_test"]
    return {"rc_epoch0": int(rc["epoch"][0]), "rc_v0": rc["v_max_test"][0], "rc_vmin": min(rc["v_max_test"]),
            "rc_vmax": max(rc["v_max_test"]), "rc_e0": rc["e_test"][0], "rc_e1": rc["e_test"][-1],
            "g_peak": max(g), "g_final": g[-1], "j_peak": max(j), "j_final": j[-1]}


def _claim_numbers(s: Robustness, verdict: dict) -> dict:
    rob, rob_t = s.robust().metrics, s.robust(Robust(tradeoff=True)).metrics
    high = verdict.get("robust + R_high, trade-off adj.")
    rob_t_gauss_v = gaussian_v_at(s, rob_t["e_test"])
    below = None if np.isnan(rob_t_gauss_v) else rob_t["v_max_test"] < rob_t_gauss_v
    return {"verdict_table4": claims.verdict(verdict["robust, trade-off adj. (Table 4)"]),
            "verdict_high": "was not tested" if high is None else claims.verdict(high),
            "rob_gauss_v": gaussian_v_at(s, rob["e_test"]), "rob_t_gauss_v": rob_t_gauss_v,
            "plane_verdict": "the robust networks lie below the Gaussian sweep" if below else
            "the robust networks do not lie below the Gaussian sweep: at equal error, Gaussian augmentation with a "
            "large σ is as robust or more" if below is False else
            "the Gaussian sweep does not reach the robust networks' error, so they cannot be compared at equal error"}


def long_results(s: Robustness) -> tuple[Result, Result] | None:
    """Robust training with the preset's robust_long_epochs, and its trade-off epoch (None: not run)."""
    n = s.preset.robust_long_epochs
    return (s.robust(epochs=n), s.robust(Robust(tradeoff=True), epochs=n)) if n else None


def _long_numbers(s: Robustness) -> dict:
    n = s.preset.robust_long_epochs
    if not n:
        return {**dict.fromkeys(("long_e", "long_v", "long_t_e", "long_t_v", "long_gain_e", "long_t_gain_e",
                                 "long_t_gauss_v"), float("nan")),
                "long_epochs": 0, "verdict_long": "was not tested at this preset",
                "long_epochs_text": "more (not run at this preset)"}
    lm, ltm = (r.metrics for r in long_results(s))
    rob, rob_t = s.robust().metrics, s.robust(Robust(tradeoff=True)).metrics
    return {"long_epochs_text": f"{n}", "long_epochs": int(n), "long_e": lm["e_test"], "long_v": lm["v_max_test"],
            "long_t_e": ltm["e_test"], "long_t_v": ltm["v_max_test"], "long_gain_e": rob["e_test"] / lm["e_test"],
            "long_t_gain_e": rob_t["e_test"] / ltm["e_test"], "long_t_gauss_v": gaussian_v_at(s, ltm["e_test"]),
            "verdict_long": claims.verdict(dominance(s, f"robust, {n} epochs, trade-off adj.", ltm))}


def _long_table(s: Robustness) -> report.Table | None:
    """The robust network with the preset's and the long schedule, each with its trade-off epoch."""
    found = long_results(s)
    if found is None:
        return None
    p = s.preset
    table = report.Table("", [f"robust network, L = {p.sweep_width}", "epochs", "e test %", "$\\bar v_{\\max}$ test %"],
                         formats={2: ".2f", 3: ".1f"})
    for (label, res), epochs in zip((("robust", s.robust()), ("robust, trade-off adj.", s.robust(Robust(tradeoff=True))),
                                     ("robust", found[0]), ("robust, trade-off adj.", found[1])),
                                    (p.epochs, p.epochs, p.robust_long_epochs, p.robust_long_epochs)):
        table.add(label, str(epochs), res.metrics["e_test"], res.metrics["v_max_test"])
    return table


# numbers that are sentences with symbols in them: the chapter pastes them as Markdown ({glue:md})
MARKDOWN_NUMBERS = ("claim_high_text",)


def _high_numbers(s: Robustness) -> dict:
    L = s.preset.high_width
    if not L:
        return {**dict.fromkeys(("high_e", "high_v", "high_t_e", "high_t_v", "high_t_over_g", "high_t_over_j"),
                                float("nan")), "high_margins": ""}
    hm, htm = s.robust(Robust(high=True), L).metrics, s.robust(Robust(high=True, tradeoff=True), L).metrics
    # its margin over the best of each sweep (their v_max / its own), the paper's 2.3x measure
    over = {m: s.best_result(m).v_max_test / htm["v_max_test"] for m in ("gaussian", "jacobian")}
    return {"high_e": hm["e_test"], "high_v": hm["v_max_test"],
            "high_t_e": htm["e_test"], "high_t_v": htm["v_max_test"],
            "high_t_over_g": over["gaussian"], "high_t_over_j": over["jacobian"],
            "high_margins": (f": the best Gaussian and Jacobian networks have {over['gaussian']:.2f} and "
                             f"{over['jacobian']:.2f} times its $\\bar v_{{\\max}}$ (the paper: 2.3, its 20M robust "
                             f"network against its 4M sweeps), from one seed each")}


def _summary_numbers(s: Robustness) -> dict:
    v_inv = [r.metrics["v_inv_test"] for r in s.results.values()]
    return {"paper_small_rob_e": paper.TABLE4[256]["e"][1], "paper_small_gauss_e": paper.TABLE5[256]["e"][1],
            "paper_small_rob_v": paper.TABLE4[256]["v_max"][1], "paper_small_gauss_v": paper.TABLE5[256]["v_max"][1],
            "weights_W": s.robust().metrics["n_weights"] / 1e6, "vinv_lo": min(v_inv), "vinv_hi": max(v_inv),
            "paper_vinv_lo": min(t["v_inv"][1] for t in paper.TABLE4.values()),
            "paper_vinv_hi": max(t["v_inv"][1] for t in paper.TABLE4.values())}


# --------------------------------------------------------------------------------------
# The intro's rows

def _claim_row(id, text, table, value, r, at, w, sec, kind="vulnerability", quantity="v_max", baseline=False,
         nulls: dict | None = None) -> Claim:
    """A claim on network `r` (preset `at`, width `w`) against the paper's nearest network;
    `quantity` names the null network's value the rule needs, from `nulls`
    (analyses.null_network at `at`)."""
    pw = nearest(w)
    null = 1.0 if kind == "gain" else nulls[f"{quantity}_test"]
    return Claim(id, text, table(pw), f"{paper.WEIGHTS_MILLIONS[pw]}M", value(r), network(at, w, r.epochs), at,
                 sec, kind=kind, null=null, baseline=baseline, smaller=smaller(at, w, r.epochs))


def _metric(name):
    return lambda r: r.metrics[name]


def _tables34_rows(robust: Result, tradeoff: Result, at: str, w: int) -> list[Claim]:
    sec, nulls = "sec-robust-tables34", analyses.null_network(at)
    t4 = lambda q: lambda k: paper.TABLE4[k][q][1]
    _row = functools.partial(_claim_row, nulls=nulls)
    return [
        _row("table3-e", "Table 3: test $e$ (%), universal robust training",
             lambda k: paper.TABLE3[k][0], _metric("e_test"), robust, at, w, sec, "error", "e"),
        _row("table3-vmax", "Table 3: test $\\bar v_{\\max}$ (%), universal robust training",
             lambda k: paper.TABLE3[k][1], _metric("v_max_test"), robust, at, w, sec),
        _row("table4-vmax", "Table 4: test $\\bar v_{\\max}$ (%), robust training, trade-off adjusted",
             t4("v_max"), _metric("v_max_test"), tradeoff, at, w, sec),
        _row("table4-e", "Table 4: test $e$ (%), robust training, trade-off adjusted",
             t4("e"), _metric("e_test"), tradeoff, at, w, sec, "error", "e"),
        # the split of Table 4: sensitivity at v_max, invariance below it; a network ignoring its
        # input has v_sen = 0, so v_sen is a value to reproduce, not "lower is better"
        _row("table4-vsen", "Table 4: test $\\bar v_{\\text{sen}}$ (%), robust training, trade-off adjusted",
             t4("v_sen"), _metric("v_sen_test"), tradeoff, at, w, sec, "value", "v_sen"),
        _row("table4-vinv", "Table 4: test $\\bar v_{\\text{inv}}$ (%), robust training, trade-off adjusted",
             t4("v_inv"), _metric("v_inv_test"), tradeoff, at, w, sec, "vulnerability", "v_inv"),
        _row("tradeoff-gain", "one epoch of $E_0 + E_1$ makes the robust network 3-4x more accurate (ratio of test $e$)",
             lambda k: round(paper.TABLE3[k][0] / paper.TABLE4[k]["e"][1], 1),
             lambda r: robust.metrics["e_test"] / r.metrics["e_test"], tradeoff, at, w, sec, "gain"),
    ]


def _table5_rows(g: Result, at: str, w: int) -> list[Claim]:
    """Table 5, Gaussian augmentation: a baseline, reproduced within the tolerance either way."""
    sec, t5 = "sec-robust-table5", lambda q: lambda k: paper.TABLE5[k][q][1]
    _row = functools.partial(_claim_row, nulls=analyses.null_network(at))
    name = "Table 5: test {} (%), Gaussian augmentation $\\sigma$ = 0.055"
    return [_row("table5-vmax", name.format("$\\bar v_{\\max}$"), t5("v_max"), _metric("v_max_test"), g, at, w, sec,
                 baseline=True),
            _row("table5-e", name.format("$e$"), t5("e"), _metric("e_test"), g, at, w, sec, "error", "e", baseline=True),
            _row("table5-vsen", name.format("$\\bar v_{\\text{sen}}$"), t5("v_sen"), _metric("v_sen_test"), g, at, w,
                 sec, "value", "v_sen"),
            _row("table5-vinv", name.format("$\\bar v_{\\text{inv}}$"), t5("v_inv"), _metric("v_inv_test"), g, at, w,
                 sec, "vulnerability", "v_inv", baseline=True)]


# robust training against the best of each sweep: the paper's 20M robust network against its 4M
# sweeps, "a factor of 2.3" for both (§7); the Gaussian sweep within the paper's sigmas (Fig. 6)
VERSUS = {"gaussian": ("robust-vs-gaussian", "robust training is ~2.3x less vulnerable than the best Gaussian "
                       f"augmentation with $\\sigma \\le$ {paper.GAUSSIAN_SWEEP_MAX} (its $\\bar v_{{\\max}}$ / "
                       "robust $\\bar v_{\\max}$)"),
          "jacobian": ("robust-vs-jacobian", "... and than the best Jacobian regularisation (its $\\bar v_{\\max}$ / "
                       "robust $\\bar v_{\\max}$)")}
SWEEP_RANGE = {"gaussian": paper.GAUSSIAN_SWEEP_MAX, "jacobian": math.inf}  # the paper gives no c^2 range
# the same at robust training's own test error: the sweep's curve interpolated there (the plane),
# a comparison the paper does not make; above 1 robust training lies below the sweep's trade-off
AT_ERROR = {m: (f"robust-vs-{m}-at-e", f"robust training against the {SWEEP_TITLES[m]} sweep at equal test error "
                f"(the sweep's $\\bar v_{{\\max}}$ at robust training's error / robust $\\bar v_{{\\max}}$)")
            for m in VERSUS}


def _versus_rows(method: str, rob: Result, sweep: dict, at: str, w: int) -> tuple[Claim | None, Claim | None]:
    """Robust training `rob` against the `method` sweep (strength -> Result, stored whole):
    against its best network within the paper's range (the paper's comparison), and against
    its curve at `rob`'s test error (None where `rob`'s error lies outside the errors the
    sweep spans: no such number exists, and the chapter's plane says so).  A network ignoring
    its input sits at the null v_max whichever way it is trained: ratio 1."""
    inside = {v: r for v, r in sweep.items() if v <= SWEEP_RANGE[method]}
    id, text = VERSUS[method]
    net, small = network(at, w, rob.epochs), smaller(at, w, rob.epochs) or w < 1024
    best = None
    if inside:
        b = inside[analyses.best(analyses.scores(inside))]
        best = Claim(id, text, paper.ROBUST_GAIN_OVER_BASELINES, "20M vs 4M", b.v_max_test / rob.v_max_test, net, at,
                     "sec-robust-claim", kind="gain", null=1.0, smaller=small)
    curve = analyses.at_error([(sweep[v].e_test, sweep[v].v_max_test) for v in sorted(sweep)], rob.e_test)
    return (best, None if curve is None else Claim(*AT_ERROR[method], None, "", curve[0] / rob.v_max_test, net, at,
                                                   "sec-robust-claim", kind="gain", null=1.0, smaller=small))


def _takeover_row(sweep: dict, at: str, w: int) -> Claim:
    """§4.6.1: "starting at sigma = 0.1, invariance attacks become dominant": the first sigma of
    the Gaussian sweep (sigma -> Result) where v_inv >= v_sen (inf: nowhere in the sweep).  A
    network ignoring its input has v_sen = 0 and takes over at the sweep's first sigma."""
    sigmas = sorted(sweep)
    k = _takeover([sweep[v].metrics["v_sen_test"] for v in sigmas], [sweep[v].metrics["v_inv_test"] for v in sigmas])
    epochs = max(r.epochs for r in sweep.values())
    return Claim("gaussian-takeover", "Gaussian augmentation: the smallest $\\sigma$ of the sweep from which the "
                 "invariance attack is the stronger ($\\bar v_{\\text{inv}} \\ge \\bar v_{\\text{sen}}$; inf: "
                 f"nowhere up to {sigmas[-1]:g})", paper.GAUSSIAN_INVARIANCE_TAKES_OVER, "4M",
                 math.inf if k is None else sigmas[k], network(at, w, epochs), at, "sec-robust-sweeps",
                 null=sigmas[0], smaller=smaller(at, w, epochs) or w < 1024)


def rows(s: Robustness) -> list[Claim]:
    """The intro's claims of this chapter (Tables 3-5, Figs. 6-7, capacity), at the sweep
    width against the paper's nearest network; Tables 3-5 at `paper-small` where stored."""
    p, W = s.preset, s.preset.sweep_width
    robust, tradeoff = s.robust(width=W), s.robust(Robust(tradeoff=True), W)
    # Tables 3-4 from the paper's smallest network where both of its robust networks are stored
    at, w34 = p.name, W
    big = [larger_network(s, 3), larger_network(s, 4)]
    if all(big):
        (_, robust), (_, tradeoff) = big
        at, w34 = LARGER, presets.get(LARGER).sweep_width
    out = _tables34_rows(robust, tradeoff, at, w34)
    t5 = larger_network(s, 5)
    if t5 is not None:
        out += _table5_rows(t5[1], LARGER, presets.get(LARGER).sweep_width)
    elif p.sweep_width in p.widths:  # Table 5's network at the width of the other claims
        out += _table5_rows(s.table5_network(W), p.name, W)
    versus = []
    for method in VERSUS:
        # from LARGER where its robust network and the whole sweep are stored (equal schedules)
        if larger_compared(s, method) is not None:
            used = (larger_sweep(s, method), LARGER, presets.get(LARGER).sweep_width)
            versus.append(_versus_rows(method, larger_network(s, 3)[1], *used))
        else:
            own = {v: getattr(s, method)(v) for v in s.sweeps[method]["values"]}  # the study's sweep
            used = (own, p.name, W)
            versus.append(_versus_rows(method, s.robust(width=W), *used))
        if method == "gaussian":
            out.append(_takeover_row(*used))
    out += [best for best, _ in versus if best is not None] + [curve for _, curve in versus if curve is not None]
    # the abstract's "limited only by network capacity": v_max falls as the network grows
    if len(p.widths) > 1:
        a, b = p.widths[-2], p.widths[-1]
        per_doubling = (s.robust(width=a).v_max_test / s.robust(width=b).v_max_test) ** (1 / math.log2(b / a))
        out.append(Claim("capacity", "robustness grows with capacity: robust $\\bar v_{\\max}$ falls per doubling of L by",
                         round(paper.TABLE3[256][1] / paper.TABLE3[512][1], 2), "0.6M -> 1.5M", per_doubling,
                         f"L = {a} -> {b}", p.name, "sec-robust-capacity", kind="gain", null=1.0,
                         smaller=smaller(p.name, W, s.robust(width=W).epochs) or W < 1024))
    return out


def stored_rows(preset) -> list[Claim]:
    """The claims of Tables 3-5, and of robust training against each sweep stored whole, at
    `preset` from its stored networks alone (nothing is trained): what the summary shows of a
    preset whose chapter is still training.  The same rows as `rows` where both have them."""
    p = presets.get(preset)
    W = p.sweep_width
    nets = store.stored([TABLE_NETWORK[t](p, W) for t in (3, 4, 5)])
    robust, tradeoff, g = (nets.get(TABLE_NETWORK[t](p, W).name) for t in (3, 4, 5))
    out = _tables34_rows(robust, tradeoff, p.name, W) if robust and tradeoff else []
    if g is not None:
        out += _table5_rows(g, p.name, W)
    versus = []
    for method in VERSUS:
        exps = _sweep_experiments(p, method)
        found = store.stored(list(exps.values()))
        if robust is not None and len(found) == len(exps):
            sweep = {v: found[e.name] for v, e in exps.items()}
            versus.append(_versus_rows(method, robust, sweep, p.name, W))
            if method == "gaussian":
                out.append(_takeover_row(sweep, p.name, W))
    return out + [best for best, _ in versus if best is not None] + [curve for _, curve in versus if curve is not None]
