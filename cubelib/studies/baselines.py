"""The baselines chapter: the robust training of papers 002-004 (Loss and Prediction IBP,
Tangent BP, fast adversarial training, Jacobian regularisation, gradient regularisation),
each swept over its strength and measured with the oracle beside universal robust training;
003's projection estimate and 004's indicator tested.

`study` only loads stored results and analyses (the noise sweep and the indicator table) and
builds the tables and numbers; the analyses that need the networks' weights (003's
convergence, the terms' scales, Tangent BP's derivatives, 004's surfaces) are separate
functions the chapter calls, each returning its figure data and numbers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import analyses, data, experiments, inputspace, paper, presets, robustness
from .. import store, trainset
from .. import terms as T
from ..baselines import unit_projections
from ..experiments import Robust
from ..claims import NO_EFFECT, NO_EFFECT_TEXT, Claim
from ..report import Table

NOISE_SIGMAS = (0.05, 0.1, 0.2)  # the noise columns of the table (eq. 52)
INDICATORS = ("J_out", "H_out", "H_rms", "J_err", "H_err")
V_HEADS = ["$\\bar v_{\\max}$", "$\\bar v_{\\text{sen}}$", "$\\bar v_{\\text{inv}}$"]


@dataclass
class Baselines:
    preset: presets.Preset
    dataset: data.Dataset  # order 1: images and their derivatives
    comparison: dict  # baseline_table: the sweeps, picks, reference and the table's networks
    noise: dict  # analyses.noise_sweep of the table's networks at NOISE_SIGMAS
    indicator: dict  # analyses.indicator_table: 004's indicator of every network of the book
    compared: dict  # label -> the table's row: metrics, errors under noise, cost against conventional
    picks: dict  # label -> row of each method's pick, jr-exact left out (the same network as jr)
    rho: dict  # indicator -> Spearman rho with the oracle's v_max over every network
    ceiling: float  # v_max of a network with no input gradient: the invariance attack's ceiling
    sweep_table: Table
    jr_table: Table
    table: Table
    rho_table: Table
    numbers: dict


def _row(exp, res, **extra) -> dict:
    m = res.metrics
    return dict(name=exp.name, experiment=exp, e_test=m["e_test"], v_max_test=m["v_max_test"],
                v_sen_test=m["v_sen_test"], v_inv_test=m["v_inv_test"],
                train_seconds=res.provenance["train_seconds"], **extra)


def baseline_table(preset, device="cpu", compute: bool = True) -> dict | None:
    """The baselines chapter's comparison (results loaded, or computed if missing).

    reference: universal robust training of the same width with its trade-off epoch (Table 4).
    sweeps: method -> a row per strength; picks: method -> `best` of its sweep with e limited
    by the reference's.  networks / metrics: label -> Experiment / row, for the table: the
    robustness chapter's networks of this width, then each method's pick.  With
    compute=False: None if any result is missing."""
    p = presets.get(preset)
    W = p.baseline_width

    def get(exp, **extra):
        res = store.run(exp, device=device, progress=False) if compute else store.load(exp)
        if res is None:
            raise LookupError(exp.name)
        return _row(exp, res, **extra)

    def pick(rows: list, limit: float) -> dict:
        return rows[analyses.best({i: (r["e_test"], r["v_max_test"]) for i, r in enumerate(rows)}, limit)]

    try:
        reference = get(experiments.robust(p, Robust(tradeoff=True), W))
        sweeps = {m: [get(e, strength=s) for e, s in zip(experiments.baseline_sweep(p, m), experiments.baseline_strengths(p, m))]
                  for m in experiments.BASELINE_METHODS}
        picks = {m: pick(rows, reference["e_test"]) for m, rows in sweeps.items()}
        literature = {}
        if W == p.sweep_width:
            literature["Gaussian augmentation"] = [get(experiments.gaussian_sweep(p, s)) for s in p.sigmas]
            literature["Jacobian reg. (§4.6.3)"] = [get(experiments.jacobian(p, c, W)) for c in p.jacobian_weights]
        conventional = get(experiments.accuracy(p, "conventional", W))
        refs = {"conventional": conventional, "first derivatives": get(experiments.accuracy(p, "first", W)),
                "universal robust, trade-off adj.": reference}
        robust = {"robust, trade-off adj.": reference}
        if p.high_width == W:
            refs["universal robust + R_high, trade-off adj."] = robust["robust + R_high, trade-off adj."] = \
                get(experiments.robust(p, Robust(high=True, tradeoff=True), W))
    except LookupError:
        return None
    strength_of = {"Gaussian augmentation": lambda e: f"sigma = {e.recipe.phases[0].terms[0].noise:g}",
                   "Jacobian reg. (§4.6.3)": lambda e: f"c^2 = {e.recipe.phases[0].terms[1].weight:g}"}
    for label, rows in literature.items():
        chosen = pick(rows, reference["e_test"])
        refs[f"{label}, {strength_of[label](chosen['experiment'])}"] = chosen
    labels = {m: f"{m} ({r['strength']:g})" for m, r in picks.items()}
    metrics = {**refs, **{labels[m]: r for m, r in picks.items()}}
    return {"reference": reference, "reference_label": "universal robust, trade-off adj.", "sweeps": sweeps,
            "picks": picks, "picks_by_label": set(labels.values()), "literature_sweeps": literature,
            "robust": robust, "conventional": conventional, "metrics": metrics,
            "networks": {label: r["experiment"] for label, r in metrics.items()}}


def study(preset, device="cpu") -> Baselines:
    """Every network of the comparison, the noise sweep and the indicator (stored or computed)."""
    p = presets.get(preset)
    ds = data.load(data.dataset_config(p, order=1), progress=False)
    table = baseline_table(p, device=device)
    networks = table["networks"]
    sweep = analyses.noise_sweep(p, networks, device=device, progress=False, sigmas=NOISE_SIGMAS)
    devices = {store.load(exp).device for exp in networks.values()}
    if len(devices) != 1:
        raise ValueError(f"training times from different machines: {devices}")
    conv_seconds = table["conventional"]["train_seconds"]
    compared = {label: dict(m, noise=[r["e_corrected"] for r in sweep["networks"][label]],
                            cost=m["train_seconds"] / conv_seconds) for label, m in table["metrics"].items()}
    picks = {k: v for k, v in compared.items() if k in table["picks_by_label"] and not k.startswith("jr-exact")}
    ind = analyses.indicator_table(p, progress=False)
    nets = ind["networks"]
    v_all = [nets[k]["v_max_test"] for k in sorted(nets)]
    rho = {key: inputspace.spearman([nets[k][key] for k in sorted(nets)], v_all) for key in INDICATORS}
    grad_O = data.oracle_gradients(ds.test, min(len(ds.test), 256))
    ceiling = robustness.vulnerabilities(torch.zeros_like(grad_O), grad_O).v_max.mean().item()
    s = Baselines(preset=p, dataset=ds, comparison=table, noise=sweep, indicator=ind, compared=compared,
                  picks=picks, rho=rho, ceiling=ceiling, sweep_table=_sweep_table(table),
                  jr_table=_jr_table(table), table=_table(compared), rho_table=_rho_table(rho, len(nets)), numbers={})
    s.numbers = {"W": int(p.baseline_width), "preset_name": p.name, "epochs": int(p.epochs),
                 "n_train": int(ds.config.n_train), "n_test": int(ds.config.n_test),
                 **_sweep_numbers(s), **_table_numbers(s), **_indicator_numbers(s), **_verdict_numbers(s)}
    return s


# numbers that are sentences with symbols in them: the chapter pastes them as Markdown ({glue:md})
MARKDOWN_NUMBERS = ("tbp_trend", "any_v_text", "match_text", "tradeoff_text", "near_text")


def _sweep_table(table: dict) -> Table:
    t = Table("", ["method", "strength", "e (%)", *V_HEADS, "training s"],
              formats={2: ".2f", 3: ".1f", 4: ".1f", 5: ".1f", 6: ".0f"})
    for method, sweep in table["sweeps"].items():
        for r in sweep:
            mark = " **(pick)**" if r["name"] == table["picks"][method]["name"] else ""
            t.add(f"{method}{mark}", f"{r['strength']:g}", r["e_test"], r["v_max_test"], r["v_sen_test"],
                  r["v_inv_test"], r["train_seconds"])
    return t


def _jr_table(table: dict) -> Table:
    t = Table("", ["$\\lambda$", "e, one projection", "e, exact", "$\\bar v_{\\max}$, one projection",
                   "$\\bar v_{\\max}$, exact"], formats={1: ".2f", 2: ".2f", 3: ".1f", 4: ".1f"})
    for a, b in zip(table["sweeps"]["jr"], table["sweeps"]["jr-exact"]):
        t.add(f"{a['strength']:g}", a["e_test"], b["e_test"], a["v_max_test"], b["v_max_test"])
    return t


def _table(compared: dict) -> Table:
    t = Table("", ["network", "e (%)", *V_HEADS, *(f"e at $\\sigma$ = {s:g}" for s in NOISE_SIGMAS), "cost"],
              formats={1: ".2f", **{k: ".1f" for k in range(2, 5 + len(NOISE_SIGMAS))}})
    for label, m in compared.items():
        shown = (label.replace("sigma", "$\\sigma$").replace("c^2", "$c^2$")
                 .replace("R_high", "$R^{\\text{I}}_{\\text{high}}$"))
        t.add(shown, m["e_test"], m["v_max_test"], m["v_sen_test"], m["v_inv_test"], *m["noise"], f"{m['cost']:.1f}x")
    return t


def _rho_table(rho: dict, n: int) -> Table:
    t = Table("Rank correlation with the oracle's $\\bar v_{\\max}$", subtitle=f" over {n} networks:",
              columns=["indicator", "$\\lvert J\\rvert_{\\text{out}}$", "$\\lambda_{\\text{out}}$",
                       "$\\lambda^{\\text{rms}}_{\\text{out}}$", "$\\lvert J\\rvert_{\\text{err}}$",
                       "$\\lambda_{\\text{err}}$"], formats={k: ".2f" for k in range(1, 6)})
    t.add("Spearman $\\rho$", *(rho[k] for k in INDICATORS))
    return t


def _sweep_numbers(s: Baselines) -> dict:
    """The reference, picks at a sweep's end, one projection against the exact norm, Tangent BP's sweep."""
    table, reference = s.comparison, s.comparison["reference"]
    at_end = [m for m, rows in table["sweeps"].items()
              if table["picks"][m]["name"] == rows[-1]["name"] and rows[-1]["e_test"] <= reference["e_test"]]
    pairs = list(zip(table["sweeps"]["jr"], table["sweeps"]["jr-exact"]))
    de = max(abs(a["e_test"] / b["e_test"] - 1) for a, b in pairs)
    dv = max(abs(a["v_max_test"] / b["v_max_test"] - 1) for a, b in pairs)
    cost = np.mean([a["train_seconds"] / b["train_seconds"] for a, b in pairs])
    tbp_e = [r["e_test"] for r in table["sweeps"]["tangent-bp"]]
    tbp_v = [r["v_max_test"] for r in table["sweeps"]["tangent-bp"]]
    return {
        "ref_e": reference["e_test"], "ref_v": reference["v_max_test"],
        "at_end_text": ("The pick is the strongest strength trained for " + ", ".join(at_end) +
                        ": there the best setting may lie beyond the sweep.") if at_end else
        "Every pick lies inside its sweep or where a stronger setting already costs more accuracy than "
        "the reference allows.",
        "jr_de": 100 * de, "jr_dv": 100 * dv, "jr_cost": float(cost),
        "jr_verdict": "one projection trains like the exact norm on this problem (largest change "
        f"{100 * max(de, dv):.2f} %), at a fraction of its cost." if max(de, dv) < 0.1 else
        f"one projection and the exact norm end up to {100 * max(de, dv):.1f} % apart here, more than "
        "003's Fig. 2 shows.",
        "tbp_e_strongest": tbp_e[-1],
        "tbp_trend": f"Along $\\beta$ the test error goes {' → '.join(f'{e:.1f}' for e in tbp_e)} % and "
        f"$\\bar v_{{\\max}}$ {' → '.join(f'{v:.0f}' for v in tbp_v)} % (one seed each).",
    }


def _table_numbers(s: Baselines) -> dict:
    """The picks against the reference, on clean images, under noise and in cost."""
    ref, base = s.compared[s.comparison["reference_label"]], s.picks
    best = min(base, key=lambda k: base[k]["v_max_test"])
    worst = max(base, key=lambda k: base[k]["v_max_test"])
    matched = [k for k, v in base.items() if analyses.at_least_as_good(v, ref)]
    any_v = [r for sw in s.comparison["sweeps"].values() for r in sw if r["v_max_test"] <= ref["v_max_test"]]
    noisy_best = min(base, key=lambda k: base[k]["noise"][-1])
    # the picks within the 5 % tolerance of the best under noise: a tie, not a ranking
    tied = sorted((k for k in base if base[k]["noise"][-1] <= NO_EFFECT * base[noisy_best]["noise"][-1]),
                  key=lambda k: base[k]["noise"][-1])
    gauss = next((k for k in s.compared if k.startswith("Gaussian")), None)
    return {
        "noise_images": int(s.noise["images"]), "n_base": len(base),
        "best_label": best, "best_v": base[best]["v_max_test"], "best_e": base[best]["e_test"],
        "worst_label": worst, "worst_v": base[worst]["v_max_test"], "worst_e": base[worst]["e_test"],
        "n_matched": len(matched), "matched": ", ".join(matched) if matched else "none",
        "any_v_text": f"{len(any_v)} reach its $\\bar v_{{\\max}}$ at some strength" +
        (f"; the most accurate of those has e = {min(r['e_test'] for r in any_v):.1f} %." if any_v else "."),
        "noisy_best": noisy_best, "noisy_best_e": base[noisy_best]["noise"][-1], "ref_noise": ref["noise"][-1],
        "noisy_text": ("the most accurate pick under noise is " if len(tied) == 1 else
                       f"the most accurate picks under noise, within {NO_EFFECT_TEXT} of each other, are ")
        + ", ".join(f"{k} ({base[k]['noise'][-1]:.1f} %)" for k in tied)
        + (f"; the robustness chapter's best {gauss.replace('sigma', 'σ').replace(', ', ' (', 1)}) has "
           f"{s.compared[gauss]['noise'][-1]:.1f} %" if gauss else ""),
        "ref_cost": ref["cost"], "best_cost": base[best]["cost"],
    }


def _indicator_numbers(s: Baselines) -> dict:
    """004's indicator against the oracle's v_max, also among the networks near the ceiling."""
    nets = s.indicator["networks"]
    near = [k for k in sorted(nets) if nets[k]["v_max_test"] < 1.5 * s.ceiling]
    # where the oracle ranks a network with no gradient (v_max = the ceiling) among them all
    zero_rank = 1 + sum(r["v_max_test"] < s.ceiling for r in nets.values())
    return {
        "zero_rank": zero_rank,
        "n_sen_limited": int(sum(r["v_sen_test"] > r["v_inv_test"] for r in nets.values())),
        "zero_grad_v": s.ceiling, "n_near": len(near),
        "rho_near": inputspace.spearman([nets[k]["J_out"] for k in near],
                                        [nets[k]["v_max_test"] for k in near]) if len(near) > 2 else 0.0,
        **{f"rho_{key}": value for key, value in s.rho.items()},
        "n_networks": len(nets), "n_trained": sum(len(sw) for sw in s.comparison["sweeps"].values()),
    }


def _verdict_numbers(s: Baselines) -> dict:
    """Where a baseline matches universal robust training, the floor near the ceiling, the paper's values."""
    ref = s.compared[s.comparison["reference_label"]]
    beats = {k: v for k, v in s.picks.items() if analyses.at_least_as_good(v, ref)}
    robustish = [v["v_max_test"] for v in s.compared.values() if v["v_max_test"] < 1.5 * s.ceiling]
    sweeps = s.comparison["sweeps"]
    e_match = [r for sw in sweeps.values() for r in sw if r["e_test"] <= s.comparison["reference"]["e_test"]]
    label = {r["name"]: f"{m} ({r['strength']:g})" for m, sw in sweeps.items() for r in sw}
    best_at_ref_e = min(e_match, key=lambda r: r["v_max_test"]) if e_match else None
    # the paper's trade-off, by more than the 5 % tolerance: sensitivity falls and invariance rises
    traded = [m for m, rows in sweeps.items()
              if rows[-1]["v_sen_test"] * NO_EFFECT < rows[0]["v_sen_test"]
              and rows[-1]["v_inv_test"] > NO_EFFECT * min(r["v_inv_test"] for r in rows)]
    ref_e = s.comparison["reference"]["e_test"]
    # within the 5 % tolerance on clean error, a network the strict rule leaves out
    near = [r for sw in sweeps.values() for r in sw if ref_e < r["e_test"] <= NO_EFFECT * ref_e
            and (best_at_ref_e is None or r["v_max_test"] < best_at_ref_e["v_max_test"])]
    near_best = min(near, key=lambda r: r["v_max_test"]) if near else None
    inv_max = max(r["v_inv_test"] for rows in sweeps.values() for r in rows)
    return {
        "match_text": (f"At this preset {len(beats)} of the {len(s.picks)} picks are at least as good as universal "
                       "robust training on clean error and $\\bar v_{\\max}$ together: " +
                       "; ".join(f"{k}, e = {v['e_test']:.1f} % and $\\bar v_{{\\max}}$ = {v['v_max_test']:.1f} %"
                                 for k, v in sorted(beats.items(), key=lambda kv: kv[1]['v_max_test'])) +
                       f" (reference: {ref['e_test']:.1f} % and {ref['v_max_test']:.1f} %).") if beats else
        "At this preset no pick matches universal robust training on clean error and $\\bar v_{\\max}$ together.",
        "floor_lo": min(robustish) if robustish else float("nan"),
        "floor_hi": max(robustish) if robustish else float("nan"), "n_robustish": len(robustish),
        "zero_v": s.ceiling, "paper_ref_v": paper.TABLE4[1024]["v_max"][1],
        "paper_gauss_v": paper.BEST_GAUSSIAN_V_MAX, "paper_jr_v": paper.BEST_JACOBIAN_V_MAX,
        "paper_deep_v": paper.TABLE4["deep"]["v_max"][1],
        "tradeoff_text": f"In {len(traded)} of {len(sweeps)} sweeps the strongest setting has a "
        f"$\\bar v_{{\\text{{sen}}}}$ more than {NO_EFFECT_TEXT} below the weakest's and a $\\bar v_{{\\text{{inv}}}}$ "
        f"more than {NO_EFFECT_TEXT} above "
        "the sweep's minimum: the trade-off the paper finds for Gaussian augmentation and Jacobian regularisation "
        "(its Fig. 6 and §4.6.3). "
        f"The largest $\\bar v_{{\\text{{inv}}}}$ of any baseline is {inv_max:.1f} %.",
        "best_v_at_ref_e": best_at_ref_e["v_max_test"] if e_match else float("nan"),
        "best_at_ref_e_label": label[best_at_ref_e["name"]] if e_match else "none",
        "near_text": (f"Within the book's {NO_EFFECT_TEXT} tolerance on clean error, {label[near_best['name']]} "
                      f"(e = {near_best['e_test']:.2f} % against the reference's {ref_e:.2f} %) reaches "
                      f"$\\bar v_{{\\max}}$ = {near_best['v_max_test']:.1f} %, lower still.") if near_best else
        f"No baseline within the book's {NO_EFFECT_TEXT} tolerance on clean error does better.",
    }


def rows(s: Baselines) -> list[Claim]:
    """The intro's claims of this chapter: the other papers' claims under the oracle's metrics."""
    name, W, n = s.preset.name, s.preset.baseline_width, s.numbers
    ref = s.comparison["reference"]
    net = f"L = {W}"
    return [
        # §7 claims robust training beats Jacobian regularisation and Gaussian augmentation; the
        # literature's other methods are held to the same claim (a network ignoring its input: 1)
        Claim("baseline-best", r"universal robust training is less vulnerable than the best method of the three other "
              r"papers at $e \le$ its own (its $\bar v_{\max}$ / robust $\bar v_{\max}$, " f"{n['best_label']}; "
              f"effect: > {NO_EFFECT})", "less vulnerable (§7)", "", n["best_v"] / ref["v_max_test"], net, name,
              "sec-baselines-table", kind="qualitative", better="higher", null=1.0),
        Claim("jr-projection", "Jacobian regularisation (a claim of Hoffman, Roberts and Yaida): one random "
              "projection trains like the exact norm "
              "(largest relative change of test $e$, %; effect: < 10 %)", "negligible", "", n["jr_de"], net, name,
              "sec-baselines-projections", kind="qualitative", better="lower", threshold=10.0, digits=2),
        Claim("indicator", "the input-gradient / Hessian indicator tracks robustness (a claim of Yu et al.; Spearman "
              "rho of mean $|J|$ "
              "with the oracle's $\\bar v_{\\max}$; effect: > 0.5)", "tracks it", "", s.rho["J_out"], net, name, "sec-baselines-indicator",
              kind="qualitative", better="higher", threshold=0.5, digits=2),
    ]

def _conventional(s: Baselines):
    """The conventionally trained network of the baselines' width (float32)."""
    return store.network(experiments.accuracy(s.preset, "conventional", s.preset.baseline_width), device="cpu")


@dataclass
class Projection:
    errors: dict  # inputspace.projection_errors on the conventional network
    slope: float  # of log(relative error per image) against log(n_proj)
    images: int
    numbers: dict


def projection_convergence(s: Baselines) -> Projection:
    """003's eq. 7: the random-projection estimate of ||J||_F^2 against the exact norm, over
    repeated draws, per image and for the mean over the first `projection_images` test images."""
    ds = s.dataset
    n = min(len(ds.test), s.preset.projection_images)
    x = ds.test.image[:n].reshape(n, -1).double()
    err = inputspace.projection_errors(_conventional(s).double(), x, ds.norms.n, n_projs=(1, 2, 4, 8, 16, 32), draws=64)
    slope = float(np.polyfit(np.log(np.array(err["n_proj"])), np.log(err["per_image"]), 1)[0])
    numbers = {"proj_slope": slope, "proj_err1": 100 * err["per_image"][0], "proj_batch1": 100 * err["batch"][0],
               "proj_images": int(n), "proj_bias": 100 * abs(err["estimate_mean"] / err["exact_mean"] - 1),
               "proj_pred1": 100 * err["predicted_per_image"], "proj_bound": 100 * err["bound"]}
    return Projection(errors=err, slope=slope, images=n, numbers=numbers)


@dataclass
class Scales:
    E0: float  # E0 of the conventional network on the first training images
    scales: dict  # method -> the weight at which its term equals E0 there (fast AT: none)
    presets_match: bool  # every m of experiments.BASELINE_STRENGTHS is the power of ten nearest its scale
    table: Table
    numbers: dict


def strength_scales(s: Baselines) -> Scales:
    """Each method's term at weight 1 against E0, on the conventional network and the first
    512 training images: the m of the strength sweeps."""
    ds = s.dataset
    dd = trainset.TrainSet(ds.train, 1, "cpu")
    norms = T.Norms(n=ds.norms.n, n_i=ds.norms.n_i.float(), D=ds.norms.D_i.float())
    idx = torch.arange(min(512, len(dd)))
    draws = T.Epoch(dirs={}, d2O={}, projections=unit_projections(len(dd), 1, torch.Generator().manual_seed(0)))
    net, E0, scales = _conventional(s), None, {}
    for method, make in experiments.BASELINE_METHODS.items():
        if make is None:  # fast AT has no term of its own
            continue
        term = make(1.0)
        out = T.evaluate(net, dd, idx, (T.E0(), term), norms, draws)
        E0 = out["E0"].item()
        scales[method] = E0 / out[term.name].item()
    table = Table("", ["method", "weight at which the term equals $E_0$", "strengths trained"], formats={1: ".1e"})
    for method in experiments.BASELINE_STRENGTHS:
        table.add(method, scales.get(method, "- (eps, pixel units)"),
                  ", ".join(f"{v:g}" for v in experiments.baseline_strengths(s.preset, method)))
    match = all(np.isclose(experiments.BASELINE_STRENGTHS[m][1], 10.0 ** round(np.log10(v))) for m, v in scales.items())
    return Scales(E0=E0, scales=scales, presets_match=bool(match), table=table, numbers={"E0_conv": E0})


@dataclass
class TangentBP:
    conventional: np.ndarray  # [6] avg ||dN/dnu_i|| / avg ||dC/dnu_i|| of the conventional network
    ratios: dict  # strength -> [6] the same for Tangent BP at that strength
    numbers: dict


def tangent_bp(s: Baselines) -> TangentBP:
    """The networks' derivatives along the cube's six motions against the true ones, on the
    first 512 test images: what Tangent BP's invariances do to them."""
    ds = s.dataset
    n = min(len(ds.test), 512)
    x, tangents = ds.test.image[:n].reshape(n, -1).float(), ds.test.d1[:n].reshape(n, 6, -1).float()
    true_norm = ds.test.target_d1[:n].norm(dim=-1).mean(0)

    def ratio(model):
        with torch.no_grad():
            _, y1, _ = model.jet(x, tangents)
        return (y1.norm(dim=-1).mean(0) / true_norm).numpy()

    ratios = {r["strength"]: ratio(store.model(r["experiment"], device="cpu")) for r in s.comparison["sweeps"]["tangent-bp"]}
    strongest = max(ratios)
    return TangentBP(conventional=ratio(_conventional(s)), ratios=ratios,
                     numbers={"tbp_ratio_min": float(ratios[strongest].min()), "tbp_strongest": float(strongest)})
