"""Experiments: presets, and run(experiment) -> a cached result with provenance.

An experiment is a pure function of its `Experiment` config (data set + training).  Its
result is a JSON file in results/ named by the config's hash; `run` loads it when present
and valid, otherwise trains (resuming from a checkpoint in the cache if one exists) and
writes it.  A result made for another config, schema or code version is recomputed, never
silently used.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import data, render, train
from .train import Phase, TrainConfig

SCHEMA = 1
# Bump when training or evaluation changes numbers, so old result files are recomputed.
TRAIN_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
# Networks up to this many weights (L <= 256: ~4 MB) are stored next to their result file,
# so later chapters can analyse them without retraining; larger ones stay in the cache.
SMALL_MODEL = 1_000_000


def results_dir() -> Path:
    return Path(os.environ.get("CUBELIB_RESULTS", ROOT / "results"))


@dataclass(frozen=True)
class Experiment:
    name: str  # e.g. "accuracy-first-L256"; the file name starts with it
    data: data.DatasetConfig
    train: TrainConfig
    # an experiment whose training is a prefix of this one's (same config, first phases
    # equal): when its final checkpoint exists, training continues from it instead of
    # starting over (bit-identical, since a resumed run is the uninterrupted run)
    parent: "Experiment | None" = None

    def __post_init__(self):
        if self.parent is not None:
            p = self.parent
            same = dataclasses.replace(self.train, phases=p.train.phases) == p.train
            prefix = self.train.phases[:len(p.train.phases)] == p.train.phases
            if p.data != self.data or not same or not prefix or len(p.train.phases) >= len(self.train.phases):
                raise ValueError(f"Experiment {self.name!r}: parent {p.name!r} must have the same data and "
                                 "training config, with phases a strict prefix of this one's")

    def key(self) -> str:
        blob = json.dumps({"data": self.data.key(), "train": self.train.key(), "schema": SCHEMA,
                           "version": TRAIN_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def path(self, root: Path | None = None) -> Path:
        return (root or results_dir()) / f"{self.name}-{self.key()}.json"


# --------------------------------------------------------------------------------------
# Presets of the accuracy chapter (Tables 1 and 2)

METHODS = {"conventional": ("E0",), "first": ("E0", "E1")}

# widths L of the 1681-L-L-L-128-9 networks, epochs, epochs at the lower learning rate
ACCURACY_PRESETS = {
    "smoke": dict(widths=(16,), epochs=4, low_lr_epochs=1, batches=4, eval_every=1),
    "quick": dict(widths=(64, 128), epochs=150, low_lr_epochs=15, batches=42, eval_every=5),
    "paper": dict(widths=(256, 512, 1024, 2048), epochs=2000, low_lr_epochs=50, batches=42, eval_every=20),
}


# second-derivative training (§5.2, Table 6): E0 + E1 + E2 with n_ij by each rule of
# losses.second_order_norms ("second" is ours, "second-printed" the formula as extracted)
SECOND_METHODS = {"second": "scaled", "second-printed": "printed"}


def accuracy_experiment(preset: str, method: str, width: int, seed: int = 0, epochs: int | None = None) -> Experiment:
    """Training of 1681-L-L-L-128-9 on the plain problem (§3.5, §4.3, §5.2):
    conventional  E0, the preset's epochs, the last ones at lr 1e-4 (Table 1)
    first         E0 + E1, the same schedule (Table 2)
    second        E0 + E1 + E2, the same epochs; the low-rate ones split as the paper's 25 + 25:
                  first half at 1e-4 with E2, then E2 dropped ("gradual exclusion") at 1e-5 (Table 6)
    second-printed  the same with n_ij as printed (see losses.second_order_norms)
    `epochs` replaces the preset's number of epochs, keeping the share at the lower rates."""
    p = dict(ACCURACY_PRESETS[data.check_preset(preset)])
    if epochs is not None:
        if not isinstance(epochs, int) or epochs < 3:
            raise ValueError(f"epochs must be an integer >= 3, got {epochs!r}")
        p.update(epochs=epochs, low_lr_epochs=max(2, round(epochs * p["low_lr_epochs"] / p["epochs"])))
    if method not in METHODS and method not in SECOND_METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join([*METHODS, *SECOND_METHODS])}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    high, low = p["epochs"] - p["low_lr_epochs"], p["low_lr_epochs"]
    extra = {}
    if method in SECOND_METHODS:
        e2, e1 = ("E0", "E1", "E2"), ("E0", "E1")
        phases = (Phase(high, 1e-3, e2), Phase(low - low // 2, 1e-4, e2), Phase(max(1, low // 2), 1e-5, e1))
        if SECOND_METHODS[method] != "scaled":
            extra["n_ij_rule"] = SECOND_METHODS[method]
    else:
        terms = METHODS[method]
        phases = (Phase(high, 1e-3, terms), Phase(low, 1e-4, terms))
    cfg = TrainConfig(hidden=(width, width, width, 128), phases=phases, batches=p["batches"], seed=seed,
                      eval_every=p["eval_every"], **extra)
    order = 2 if method in SECOND_METHODS else 1
    suffix = "" if epochs is None else f"-e{epochs}"
    return Experiment(name=f"accuracy-{preset}-{method}{suffix}-L{width}",
                      data=data.dataset_config(preset, order=order), train=cfg)


def accuracy_experiments(preset: str) -> list[Experiment]:
    p = ACCURACY_PRESETS[data.check_preset(preset)]
    return [accuracy_experiment(preset, m, w) for w in p["widths"] for m in METHODS]


# --------------------------------------------------------------------------------------
# Presets of the robustness chapter (Tables 3-5, Figs. 4-7)

ROBUST_PRESETS = {
    "smoke": dict(widths=(16,), sweep_width=16, epochs=4, low_lr_epochs=1, batches=4, eval_every=1,
                  sigmas=(0.055,), jacobian_weights=(1.0,), deep_width=None, long_epochs=8, high_width=16),
    # quick: the accuracy chapter's schedule; sigma over the paper's range and beyond, c^2 over
    # six decades (the small network's invariance attacks take over late, if at all)
    "quick": dict(widths=(64, 128), sweep_width=128, epochs=150, low_lr_epochs=15, batches=42, eval_every=10,
                  sigmas=(0.005, 0.02, 0.035, 0.055, 0.075, 0.095, 0.12, 0.17, 0.25, 0.35),
                  jacobian_weights=(0.01, 0.1, 1.0, 10.0, 100.0, 1000.0), deep_width=None,
                  # the robust network once more with 3x the epochs: is it the schedule that limits it?
                  long_epochs=450,
                  # and with R_high added (as the paper's 20M network): its remaining misalignment
                  # is mostly above 10 cycles per image
                  high_width=128),
    # paper: §3.5's schedule; the sweeps on the 4M network (L = 1024) as in Figs. 6-7; the 20M
    # network of Table 3's last column (five hidden layers of 2048)
    "paper": dict(widths=(256, 512, 1024, 2048), sweep_width=1024, epochs=2000, low_lr_epochs=50, batches=42,
                  eval_every=20, sigmas=(0.005, 0.02, 0.035, 0.055, 0.075, 0.095, 0.12, 0.145, 0.17),
                  jacobian_weights=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), deep_width=2048, long_epochs=None, high_width=None),
}

ROBUST_METHODS = ("robust", "robust-tradeoff", "robust-high", "robust-high-tradeoff", "robust-deep",
                  "robust-deep-tradeoff", "robust2", "robust2-tradeoff", "robust2-high", "robust2-high-tradeoff",
                  "robust2-deep", "robust2-deep-tradeoff", "gaussian", "jacobian")
GAUSSIAN_TABLE_SIGMA = 0.055  # Table 5


def robust_experiment(preset: str, method: str, width: int, strength: float | None = None,
                      seed: int = 0, epochs: int | None = None) -> Experiment:
    """One network of §4.6.  Methods:
    robust       E0 + E1 + R_low + R_mid on 1681-L-L-L-128-9 (Table 3)
    robust-high  the same + R_high
    robust-deep  the 20M network of Table 3: five hidden layers of L, twice the batches,
                 10 % more epochs, + R_high
    robust2*     any of those three with the second-order terms R2_f of each family (§5.4,
                 Table 7), trained on the data set with image Hessians
    *-tradeoff   any of those + one epoch of E0 + E1 at lr 1e-4 (Tables 4, 8)
    gaussian     E0 on images + fresh noise of sigma = strength each epoch (eq. 44)
    jacobian     E0 + c^2 sum ||dN/dD||^2 over D_low and D_mid, c^2 = strength
    `epochs` replaces the preset's number of epochs, keeping the share at the lower rate."""
    p = dict(ROBUST_PRESETS[data.check_preset(preset)])
    if epochs is not None:
        if not isinstance(epochs, int) or epochs < 2:
            raise ValueError(f"epochs must be an integer >= 2, got {epochs!r}")
        low = max(1, round(epochs * p["low_lr_epochs"] / p["epochs"]))
        p.update(epochs=epochs, low_lr_epochs=low)
    if method not in ROBUST_METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(ROBUST_METHODS)}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if method in ("gaussian", "jacobian"):
        if not (isinstance(strength, (int, float)) and strength > 0):
            raise ValueError(f"method {method!r} needs strength > 0 (sigma or c^2), got {strength!r}")
    elif strength is not None:
        raise ValueError(f"method {method!r} takes no strength, got {strength!r}")
    second = method.startswith("robust2")
    kind = method.replace("robust2", "robust")
    deep = kind.startswith("robust-deep")
    terms = {"robust": ("E0", "E1", "R_low", "R_mid"), "gaussian": ("E0",),
             "jacobian": ("E0", "J_low", "J_mid")}["robust" if method.startswith("robust") else method]
    if deep or kind.startswith("robust-high"):
        terms += ("R_high",)
    if second:
        terms += tuple(t.replace("R_", "R2_") for t in terms if t.startswith("R_"))
    scale = 1.1 if deep else 1.0
    high = round(scale * (p["epochs"] - p["low_lr_epochs"]))
    phases = (Phase(high, 1e-3, terms), Phase(round(scale * p["low_lr_epochs"]), 1e-4, terms))
    hidden = (width,) * (5 if deep else 3) + (128,)
    extra = {"noise_sigma": float(strength)} if method == "gaussian" else \
        {"jacobian_weight": float(strength)} if method == "jacobian" else {}
    cfg = TrainConfig(hidden=hidden, phases=phases, batches=p["batches"] * (2 if deep else 1), seed=seed,
                      eval_every=p["eval_every"], **extra)
    parent = None
    if method.endswith("-tradeoff"):
        parent = robust_experiment(preset, method.removesuffix("-tradeoff"), width, seed=seed, epochs=epochs)
        cfg = dataclasses.replace(cfg, phases=phases + (Phase(1, 1e-4, ("E0", "E1")),))
    suffix = ("" if strength is None else f"-{strength:g}") + ("" if epochs is None else f"-e{epochs}")
    return Experiment(name=f"robustness-{preset}-{method}{suffix}-L{width}",
                      data=data.dataset_config(preset, order=2 if second else 1), train=cfg, parent=parent)


def robust_experiments(preset: str) -> list[Experiment]:
    """Every experiment of the robustness chapter at `preset`; each parent before its child."""
    p = ROBUST_PRESETS[data.check_preset(preset)]
    out = {}
    for w in p["widths"]:
        e = robust_experiment(preset, "gaussian", w, GAUSSIAN_TABLE_SIGMA)
        out[e.name] = e
    for s in p["sigmas"]:
        e = robust_experiment(preset, "gaussian", p["sweep_width"], s)
        out[e.name] = e
    for w in p["widths"]:
        for m in ("robust", "robust-tradeoff"):
            e = robust_experiment(preset, m, w)
            out[e.name] = e
    for c2 in p["jacobian_weights"]:
        e = robust_experiment(preset, "jacobian", p["sweep_width"], c2)
        out[e.name] = e
    if p["high_width"]:
        for m in ("robust-high", "robust-high-tradeoff"):
            e = robust_experiment(preset, m, p["high_width"])
            out[e.name] = e
    if p["long_epochs"]:
        for m in ("robust", "robust-tradeoff"):
            e = robust_experiment(preset, m, p["sweep_width"], epochs=p["long_epochs"])
            out[e.name] = e
    if p["deep_width"]:
        for m in ("robust-deep", "robust-deep-tradeoff"):
            e = robust_experiment(preset, m, p["deep_width"])
            out[e.name] = e
    return list(out.values())


# --------------------------------------------------------------------------------------
# Presets of the second-order chapter (Tables 6-8, Figs. 9-10)

SECOND_PRESETS = {
    # printed_width: the network also trained with n_ij as printed (None: not run);
    # long_epochs: first- and second-derivative training once more with this many epochs
    # at the largest width (is it the schedule that holds second-order training back?)
    "smoke": dict(printed_width=16, long_epochs=6),
    "quick": dict(printed_width=128, long_epochs=300),
    "paper": dict(printed_width=None, long_epochs=None),
}


def second_order_experiments(preset: str) -> list[Experiment]:
    """Every experiment of the second-order chapter at `preset`; each parent before its child.
    Widths as in the accuracy and robustness chapters, so Table 6 sits next to Tables 1-2 and
    Tables 7-8 next to Tables 3-4."""
    acc = ACCURACY_PRESETS[data.check_preset(preset)]
    rob = ROBUST_PRESETS[preset]
    out = [accuracy_experiment(preset, "second", w) for w in acc["widths"]]
    if SECOND_PRESETS[preset]["printed_width"]:
        out.append(accuracy_experiment(preset, "second-printed", SECOND_PRESETS[preset]["printed_width"]))
    if SECOND_PRESETS[preset]["long_epochs"]:
        out += [accuracy_experiment(preset, m, max(acc["widths"]), epochs=SECOND_PRESETS[preset]["long_epochs"])
                for m in ("first", "second")]
    for w in rob["widths"]:
        out += [robust_experiment(preset, m, w) for m in ("robust2", "robust2-tradeoff")]
    if rob["high_width"]:
        out += [robust_experiment(preset, m, rob["high_width"]) for m in ("robust2-high", "robust2-high-tradeoff")]
    if rob["deep_width"]:
        out += [robust_experiment(preset, m, rob["deep_width"]) for m in ("robust2-deep", "robust2-deep-tradeoff")]
    return out


# --------------------------------------------------------------------------------------
# Presets of the baselines chapter: papers 002-004 under the oracle's metrics

# method -> (regulariser term or None, TrainConfig fields); the strength goes to
# baseline_weight, or to adversarial_eps for fast AT
BASELINE_METHODS = {
    "ibp-loss-l1": ("IBP_loss", dict(baseline_norm="l1")),  # 002, Loss IBP, its default r = 1
    "ibp-loss-l2": ("IBP_loss", dict(baseline_norm="l2")),
    "ibp-pred": ("IBP_pred", dict(baseline_norm="l1")),  # 002, Prediction IBP
    "tangent-bp": ("TBP", dict(baseline_norm="l1")),  # 002, (original) Tangent BP
    "fast-at": (None, {}),  # 002, fast adversarial training
    "jr": ("JR", dict(n_proj=1)),  # 003, Algorithm 1 with one projection
    "jr-exact": ("JR", dict(n_proj=0)),  # 003, the exact Frobenius norm
    "gradreg-l1": ("GR", dict(baseline_norm="l1")),  # 004, eq. (11)
    "gradreg-l2": ("GR", dict(baseline_norm="l2")),
    "gradreg-linf": ("GR", dict(baseline_norm="linf")),
}

# strengths of each method's sweep, decades around m = 10^round(log10(E0 / term)) on the
# conventionally trained L = 128 network (the term at weight 1; measured once, and checked by
# the chapter): m / 10, m, 10 m, 100 m, since a regulariser that only matches E0 at the start
# barely moves a network; and 1000 m where 100 m still left the network more accurate than
# universal robust training (the pick would otherwise sit at the sweep's end).  Fast AT: eps
# in pixel units, 1e-4 to 1e-1 (a sign perturbation of norm 41 eps: 0.004 to 4.1, the latter
# that of noise with sigma = 0.1)
BASELINE_STRENGTHS = {
    "ibp-loss-l1": (1e-4, 1e-3, 1e-2, 1e-1), "ibp-loss-l2": (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    "ibp-pred": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "tangent-bp": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    "fast-at": (1e-4, 1e-3, 1e-2, 1e-1), "jr": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    "jr-exact": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1), "gradreg-l1": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    "gradreg-l2": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "gradreg-linf": (1e-3, 1e-2, 1e-1, 1.0, 10.0),
}

BASELINE_PRESETS = {
    # sweep: indices into each method's strengths (None: all of them)
    "smoke": dict(width=16, epochs=4, low_lr_epochs=1, batches=4, eval_every=1, sweep=(2,)),
    # quick: the robustness chapter's sweep network and schedule, so its rows sit next to the
    # universal robust, Gaussian and Jacobian (§4.6.3) networks of Tables 3-5
    "quick": dict(width=128, epochs=150, low_lr_epochs=15, batches=42, eval_every=10, sweep=None),
    "paper": dict(width=1024, epochs=2000, low_lr_epochs=50, batches=42, eval_every=20, sweep=None),
}


def baseline_experiment(preset: str, method: str, strength: float, width: int | None = None,
                        seed: int = 0) -> Experiment:
    """One network trained by a method of papers 002-004 (BASELINE_METHODS) at `strength`
    (beta, lambda_JR, c, or eps for fast AT): E0 + the method's term on 1681-L-L-L-128-9 with
    the conventional schedule (the preset's epochs, the last ones at lr 1e-4)."""
    p = BASELINE_PRESETS[data.check_preset(preset)]
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline method {method!r}; allowed: {', '.join(BASELINE_METHODS)}")
    if not (isinstance(strength, (int, float)) and strength > 0):
        raise ValueError(f"strength of {method!r} must be > 0, got {strength!r}")
    if method == "fast-at" and strength > 1:
        raise ValueError(f"fast-at strength is eps in pixel units and must be in (0, 1], got {strength!r}")
    width = p["width"] if width is None else width
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    term, fields = BASELINE_METHODS[method]
    terms = ("E0",) if term is None else ("E0", term)
    extra = dict(fields, **({"adversarial_eps": float(strength)} if term is None else
                            {"baseline_weight": float(strength)}))
    high, low = p["epochs"] - p["low_lr_epochs"], p["low_lr_epochs"]
    cfg = TrainConfig(hidden=(width, width, width, 128), phases=(Phase(high, 1e-3, terms), Phase(low, 1e-4, terms)),
                      batches=p["batches"], seed=seed, eval_every=p["eval_every"], **extra)
    return Experiment(name=f"baseline-{preset}-{method}-{strength:g}-L{width}",
                      data=data.dataset_config(preset, order=1), train=cfg)


def baseline_sweep(preset: str, method: str) -> list[Experiment]:
    """The strengths of `method` swept at `preset`."""
    p = BASELINE_PRESETS[data.check_preset(preset)]
    strengths = BASELINE_STRENGTHS[method]
    return [baseline_experiment(preset, method, strengths[i])
            for i in (range(len(strengths)) if p["sweep"] is None else p["sweep"])]


def baseline_experiments(preset: str) -> list[Experiment]:
    """Every experiment of the baselines chapter at `preset`."""
    return [e for m in BASELINE_METHODS for e in baseline_sweep(preset, m)]


def _row(exp: Experiment, res: dict, **extra) -> dict:
    m = res["metrics"]
    return dict(name=exp.name, experiment=exp, e_test=m["e_test"], v_max_test=m["v_max_test"],
                v_sen_test=m["v_sen_test"], v_inv_test=m["v_inv_test"],
                train_seconds=res["provenance"]["train_seconds"], **extra)


def baseline_table(preset: str, device="cpu", compute: bool = True) -> dict | None:
    """The baselines chapter's comparison at `preset` (results loaded, or computed if missing).

    reference: universal robust training of the same width with its trade-off epoch (Table 4).
    sweeps: method -> a row per strength; picks: method -> the strength with the lowest test
    v_max among those with test e <= the reference's (else the lowest e).
    networks / metrics: label -> Experiment / row, for the table: the robustness chapter's
    networks of this width, then each method's pick.  With compute=False: None if any
    result is missing."""
    try:
        return _baseline_table(preset, device, compute)
    except LookupError:
        return None


def _baseline_table(preset: str, device, compute: bool) -> dict:
    p = BASELINE_PRESETS[data.check_preset(preset)]
    rp = ROBUST_PRESETS[preset]
    W = p["width"]
    def get(exp):
        res = run(exp, device=device, progress=False) if compute else load(exp)
        if res is None:
            raise LookupError(exp.name)
        return _row(exp, res)

    ref_exp = robust_experiment(preset, "robust-tradeoff", W)
    reference = get(ref_exp)
    sweeps, picks = {}, {}
    for method in BASELINE_METHODS:
        sweeps[method] = []
        for exp in baseline_sweep(preset, method):
            term, _ = BASELINE_METHODS[method]
            strength = exp.train.adversarial_eps if term is None else exp.train.baseline_weight
            sweeps[method].append(dict(get(exp), strength=strength))
        ok = [r for r in sweeps[method] if r["e_test"] <= reference["e_test"]]
        picks[method] = min(ok, key=lambda r: r["v_max_test"]) if ok else min(sweeps[method], key=lambda r: r["e_test"])
    literature, strength_of = {}, {}
    if W == rp["sweep_width"]:
        literature["Gaussian augmentation"] = [get(robust_experiment(preset, "gaussian", W, s)) for s in rp["sigmas"]]
        literature["Jacobian reg. (§4.6.3)"] = [get(robust_experiment(preset, "jacobian", W, c))
                                                for c in rp["jacobian_weights"]]
        strength_of = {"Gaussian augmentation": lambda t: f"sigma = {t.noise_sigma:g}",
                       "Jacobian reg. (§4.6.3)": lambda t: f"c^2 = {t.jacobian_weight:g}"}
    conventional = get(accuracy_experiment(preset, "conventional", W))
    refs = {"conventional": conventional,
            "first derivatives": get(accuracy_experiment(preset, "first", W)),
            "universal robust, trade-off adj.": reference}
    robust = {"robust, trade-off adj.": reference}
    if rp["high_width"] == W:
        refs["universal robust + R_high, trade-off adj."] = robust["robust + R_high, trade-off adj."] = \
            get(robust_experiment(preset, "robust-high-tradeoff", W))
    for label, rows in literature.items():
        ok = [r for r in rows if r["e_test"] <= reference["e_test"]]
        best = min(ok, key=lambda r: r["v_max_test"]) if ok else min(rows, key=lambda r: r["e_test"])
        refs[f"{label}, {strength_of[label](best['experiment'].train)}"] = best
    labels = {m: f"{m} ({r['strength']:g})" for m, r in picks.items()}
    metrics = {**refs, **{labels[m]: r for m, r in picks.items()}}
    return {"reference": reference, "reference_label": "universal robust, trade-off adj.", "sweeps": sweeps,
            "picks": picks, "picks_by_label": set(labels.values()), "literature_sweeps": literature,
            "robust": robust, "conventional": conventional, "metrics": metrics,
            "networks": {label: r["experiment"] for label, r in metrics.items()}}


# --------------------------------------------------------------------------------------
# Running

def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "cubelib"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device, seconds: float) -> dict:
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {"git_commit": _git_commit(), "device": name, "torch": torch.__version__,
            "python": platform.python_version(), "train_seconds": round(seconds, 2),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "render_version": render.RENDER_VERSION, "train_version": TRAIN_VERSION,
            "source_hash": training_source_hash()}


@functools.lru_cache(maxsize=None)
def training_source_hash() -> str:
    """Hash of the code that turns a data set into a result: the network, losses, trainer,
    random directions, oracle gradients and vulnerabilities, and this file's evaluation
    functions (not its presets, so adding an experiment does not flag the stored ones).

    Computed once per process, at import (see the end of this module): it reads the sources
    from disk, and a long run must record the code it runs, not a later edit of the files."""
    import inspect
    from . import baselines, directions, geometry, jets, losses, oracle, robustness
    h = hashlib.sha256(data.source_hash(jets, losses, train, directions, geometry, oracle, robustness,
                                        baselines).encode())
    for f in (evaluate, _evaluate, input_gradient_norm):
        h.update(inspect.getsource(f).encode())
    h.update(str(VUL_IMAGES).encode())
    return h.hexdigest()[:12]


def input_gradient_norm(model, x, output: int = 0, batch: int = 4096) -> float:
    """Mean over images of ||dN_output / dI|| (the adversarial gradient of §3.6)."""
    norms = []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xb)[:, output].sum(), xb)
        norms.append(g.norm(dim=1))
    return torch.cat(norms).mean().item()


# vulnerabilities of a result: on the first VUL_IMAGES images of each split (quick: the whole
# test set; paper: a fifth of it, which fixes the mean to ~0.1 % of v)
VUL_IMAGES = 4096


def evaluate(model, ds: data.Dataset, device) -> dict:
    """Errors (eq. 8), the mean input-gradient norm of N_1 and the mean vulnerabilities
    v_max, v_sen, v_inv (eqs. 33-41) on both splits, in full float32 (no TF32)."""
    from . import robustness
    with train.fp32_matmul():
        metrics = _evaluate(model, ds, device)
        if ds.test.d1 is not None:
            for name, split in (("train", ds.train), ("test", ds.test)):
                n = min(VUL_IMAGES, len(split))
                vul = robustness.measure(model, split.image[:n].to(device, torch.float32),
                                         robustness.split_oracle_gradients(split, n).to(device))
                metrics.update({f"{k}_{name}": v for k, v in vul.items()})
            metrics["vul_images"] = {"train": min(VUL_IMAGES, len(ds.train)), "test": min(VUL_IMAGES, len(ds.test))}
        return metrics


def _evaluate(model, ds: data.Dataset, device) -> dict:
    x_train = ds.train.image.reshape(len(ds.train), -1).to(device, torch.float32)
    x_test = ds.test.image.reshape(len(ds.test), -1).to(device, torch.float32)
    D = ds.norms.D_i
    e_train = train.error_e(model, x_train, ds.train.target.to(device, torch.float32), D)
    e_test = train.error_e(model, x_test, ds.test.target.to(device, torch.float32), D)
    return {"e_train": e_train.mean().item(), "e_test": e_test.mean().item(),
            "e_train_per_output": e_train.tolist(), "e_test_per_output": e_test.tolist(),
            "grad_norm_N1": input_gradient_norm(model, x_test), "n_weights": model.n_weights()}


def _read(path: Path, exp: Experiment) -> dict:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable ({exc})") from exc
    if result.get("schema") != SCHEMA or result.get("key") != exp.key() or "metrics" not in result:
        raise ValueError("stale (another config, schema or code version)")
    if exp.data.order >= 1 and "v_max_test" not in result["metrics"]:
        raise ValueError("stale (made before results carried the vulnerabilities)")
    made_by = result.get("provenance", {}).get("source_hash")
    if made_by != training_source_hash():
        # Same config and versions, other training code: used (results can be GPU-hours), but
        # said, so a change that alters numbers without bumping TRAIN_VERSION is noticed.
        warnings.warn(f"{path.name} was made by other training code (source {made_by}, now "
                      f"{training_source_hash()}, commit {result['provenance'].get('git_commit', '?')[:12]}); "
                      "bump experiments.TRAIN_VERSION if that change alters results", stacklevel=3)
    return result


def load(exp: Experiment, root: Path | None = None) -> dict | None:
    """The stored result of `exp`, or None if there is none (or it is stale or corrupt)."""
    path = exp.path(root)
    if not path.exists():
        return None
    try:
        return _read(path, exp)
    except ValueError as why:
        warnings.warn(f"ignoring {path.name}: {why}", stacklevel=2)
        return None


def run(exp: Experiment, device="cpu", root: Path | None = None, force: bool = False,
        progress: bool = True, time_limit: float | None = None) -> dict | None:
    """Load the result of `exp` or compute it.  Returns None if `time_limit` (seconds) ran out
    first; the checkpoint then lets the next call resume."""
    started = time.monotonic()
    if not force:
        found = load(exp, root)
        if found is not None:
            return found
    ds = data.load(exp.data, device=device, progress=progress)
    if time_limit is not None:  # building the data set counts against the limit too
        time_limit = max(0.0, time_limit - (time.monotonic() - started))
    ck = checkpoint_path(exp)
    if force:
        ck.unlink(missing_ok=True)  # recompute means retrain, not re-evaluate a finished checkpoint
    if exp.parent is not None and not ck.exists() and not force:
        _continue_parent(exp, ck)
    res = train.train(exp.train, ds, device=device, checkpoint=ck, progress=progress, desc=exp.name,
                      time_limit=time_limit)
    if not res.complete:
        return None
    result = {
        "schema": SCHEMA, "name": exp.name, "key": exp.key(),
        "config": {"data": dataclasses.asdict(exp.data), "train": dataclasses.asdict(exp.train)},
        "metrics": evaluate(res.model, ds, device),
        "curves": res.curves,
        "provenance": provenance(device, res.seconds),
    }
    path = exp.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    if res.model.n_weights() <= SMALL_MODEL:
        weights = path.with_suffix(".pt")
        torch.save({k: v.cpu() for k, v in res.model.state_dict().items()}, weights.with_suffix(".tmp-pt"))
        os.replace(weights.with_suffix(".tmp-pt"), weights)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    return result


def read_cached(path: Path, schema: int, networks) -> dict | None:
    """An analysis file of several networks (noise sweep, indicator table) if it exists and
    was made for `schema` and exactly these networks; otherwise None, with a warning when a
    stale or unreadable file was there (it is then recomputed and replaced)."""
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warnings.warn(f"recomputing {path.name}: unreadable ({exc})", stacklevel=3)
        return None
    if found.get("schema") == schema and set(found.get("networks", {})) == set(networks):
        return found
    warnings.warn(f"recomputing {path.name}: made for other networks or schema", stacklevel=3)
    return None


def write_json(path: Path, obj: dict):
    """Write atomically: a run killed mid-write leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def checkpoint_path(exp: Experiment) -> Path:
    return data.default_cache_dir() / "checkpoints" / f"{exp.name}-{exp.key()}.pt"


def _continue_parent(exp: Experiment, ck: Path):
    """Start `exp` from its parent's final checkpoint, if the cache has it."""
    src = checkpoint_path(exp.parent)
    if not src.exists():
        return
    try:
        state = torch.load(src, weights_only=False, map_location="cpu")
    except Exception as exc:  # a corrupt parent checkpoint only costs the shortcut
        warnings.warn(f"ignoring parent checkpoint {src.name}: {exc}", stacklevel=3)
        return
    if state.get("key") != exp.parent.train.key() + ":" + exp.parent.data.key() or \
            state.get("epoch") != exp.parent.train.epochs:
        return
    state["key"] = exp.train.key() + ":" + exp.data.key()
    train._save(ck, state)


def model(exp: Experiment, device="cpu", root: Path | None = None) -> "jets.MLP":
    """The trained network of `exp`: from its weights in results/ (small models), else from
    its final checkpoint in the cache, else trained now (and its result written)."""
    from . import jets
    net = jets.MLP(exp.train.hidden)
    weights = exp.path(root).with_suffix(".pt")
    if load(exp, root) is not None and weights.exists():
        net.load_state_dict(torch.load(weights, weights_only=True))
        return net.to(device)
    ck = checkpoint_path(exp)
    if ck.exists():
        state = torch.load(ck, weights_only=False, map_location="cpu")
        if state.get("epoch") == exp.train.epochs and state.get("key", "").startswith(exp.train.key()):
            net.load_state_dict(state["model"])
            if load(exp, root) is None:
                run(exp, device=device, root=root)
            return net.to(device)
    run(exp, device=device, root=root, force=True)
    return model(exp, device, root)


training_source_hash()  # fixed now, while the files on disk are the code this process runs
