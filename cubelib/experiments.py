"""The experiments of each chapter, built from a preset: a data set and a typed recipe each.

The schedule of §3.5: the preset's epochs, the last `low_lr_epochs` at lr 1e-4, the rest at
1e-3; 1681-L-L-L-128-9 networks.  Names are `<chapter>-<preset>-<method>[-<strength>][-e<epochs>]-L<width>`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import data, presets
from . import terms as T
from .presets import Preset
from .recipes import Phase, Recipe
from .store import Experiment


def _preset(preset) -> Preset:
    return presets.get(preset)


def _dataset(p: Preset, order: int) -> data.DatasetConfig:
    return data.DatasetConfig(n_train=p.n_train, n_test=p.n_test, order=order)


def _check_width(width):
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")


def _epochs(p: Preset, epochs: int | None, minimum: int) -> tuple[int, int]:
    """(epochs at 1e-3, epochs at 1e-4): the preset's, or `epochs` with the same low-rate share."""
    if epochs is None:
        return p.high_lr_epochs, p.low_lr_epochs
    if not isinstance(epochs, int) or epochs < minimum:
        raise ValueError(f"epochs must be an integer >= {minimum}, got {epochs!r}")
    low = max(minimum - 1, round(epochs * p.low_lr_epochs / p.epochs))
    return epochs - low, low


# --------------------------------------------------------------------------------------
# Accuracy (Tables 1, 2) and second-derivative training (Table 6)

ACCURACY_METHODS = ("conventional", "first", "second", "second-printed", "second-corners")


N_IJ_RULE = {"second": "scaled", "second-printed": "printed", "second-corners": "corners"}  # terms.second_order_norms


def _variant(seed: int, precision: str) -> str:
    """The name suffix of a non-default seed or precision (the key covers both anyway)."""
    return (f"-s{seed}" if seed else "") + ("-bf16" if precision == "bfloat16" else "")


def accuracy(preset, method: str, width: int, seed: int = 0, epochs: int | None = None,
             precision: str = "float32", e2_weight: float = 1.0) -> Experiment:
    """1681-L-L-L-128-9 on the plain problem (§3.5, §4.3, §5.2):
    conventional    E0, the preset's epochs, the last ones at lr 1e-4 (Table 1)
    first           E0 + E1, the same schedule (Table 2)
    second          E0 + E1 + E2, the same epochs; the low-rate ones split as the paper's 25 + 25:
                    first half at 1e-4 with E2, then E2 dropped ("gradual exclusion") at 1e-5 (Table 6)
    second-printed  the same with n_ij as printed (terms.second_order_norms)
    second-corners  the same with the rotation pairs' n_ij over the 24 face corners that the
                    author's generator exports (the author's reading, terms.second_order_norms)
    `epochs` replaces the preset's number of epochs, keeping the share at the lower rates;
    `precision` "bfloat16" trains with bfloat16 matmuls (recipes.Recipe.precision);
    `e2_weight` multiplies E2 (second-derivative methods only; 1 is the paper's)."""
    p = _preset(preset)
    if method not in ACCURACY_METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(ACCURACY_METHODS)}")
    _check_width(width)
    if epochs is None and method != "conventional":
        epochs = p.derivative_epochs
    high, low = _epochs(p, epochs, 3)
    if e2_weight != 1.0 and not method.startswith("second"):
        raise ValueError(f"e2_weight applies to the second-derivative methods only, got method {method!r}")
    if method.startswith("second"):
        e2 = (T.E0(), T.E1(), T.E2(N_IJ_RULE[method], e2_weight))
        phases = (Phase(high, 1e-3, e2), Phase(low - low // 2, 1e-4, e2), Phase(max(1, low // 2), 1e-5, e2[:2]))
    else:
        ts = (T.E0(),) if method == "conventional" else (T.E0(), T.E1())
        phases = (Phase(high, 1e-3, ts), Phase(low, 1e-4, ts))
    recipe = Recipe(hidden=(width, width, width, 128), phases=phases, batches=p.batches, seed=seed,
                    eval_every=p.eval_every, precision=precision)
    suffix = ("" if e2_weight == 1.0 else f"-w{e2_weight:g}") + ("" if epochs is None else f"-e{epochs}") + \
        _variant(seed, precision)
    chapter = "second_order" if method.startswith("second") else "accuracy"
    # order 1 at least: the vulnerabilities of every network need dI/dnu
    return Experiment(name=f"accuracy-{p.name}-{method}{suffix}-L{width}", preset=p.name, chapter=chapter,
                      data=_dataset(p, max(1, recipe.order)), recipe=recipe)


def accuracy_experiments(preset) -> list[Experiment]:
    """Tables 1-2 at the preset's widths; where the preset shortens derivative training
    (derivative_epochs), conventional training on that schedule too: what the shorter schedule
    costs, and first-derivative training's gain at equal epochs."""
    p = _preset(preset)
    out = [accuracy(p, m, w) for w in p.widths for m in ("conventional", "first")]
    return out + [e for w in p.widths if (e := conventional_short(p, w)) is not None]


def conventional_short(preset, width: int) -> Experiment | None:
    """Conventional training on the preset's shortened derivative schedule (None where the
    preset does not shorten it): what the schedule costs, and the gain at equal epochs."""
    p = _preset(preset)
    return None if p.derivative_epochs is None else accuracy(p, "conventional", width, epochs=p.derivative_epochs)


# --------------------------------------------------------------------------------------
# Robustness (Tables 3-5, 7-8, Figs. 4-7)

@dataclass(frozen=True)
class Robust:
    """Universal robust training (§4.6.2): E0 + E1 + R_low + R_mid, with R_high when `high`;
    `deep` is the 20M network (five hidden layers, twice the batches, 10 % more epochs, +
    R_high); `second` adds R^II_f of each family (§5.4); `tradeoff` one more epoch of E0 + E1
    at lr 1e-4 (Tables 4, 8)."""
    high: bool = False
    deep: bool = False
    second: bool = False
    tradeoff: bool = False

    @property
    def label(self) -> str:
        kind = "-deep" if self.deep else "-high" if self.high else ""
        return f"robust{'2' if self.second else ''}{kind}{'-tradeoff' if self.tradeoff else ''}"


def robust(preset, method: Robust, width: int, seed: int = 0, epochs: int | None = None,
           precision: str = "float32") -> Experiment:
    p = _preset(preset)
    _check_width(width)
    epochs = p.derivative_epochs if epochs is None else epochs
    high, low = _epochs(p, epochs, 2)
    fams = ("low", "mid", "high") if method.high or method.deep else ("low", "mid")
    ts = (T.E0(), T.E1(), *(T.Robust(f) for f in fams)) + \
        (tuple(T.Robust(f, order=2) for f in fams) if method.second else ())
    scale = 1.1 if method.deep else 1.0
    phases = (Phase(round(scale * high), 1e-3, ts), Phase(round(scale * low), 1e-4, ts))
    parent = None
    if method.tradeoff:
        parent = robust(p, dataclasses.replace(method, tradeoff=False), width, seed, epochs, precision)
        phases += (Phase(1, 1e-4, (T.E0(), T.E1())),)
    recipe = Recipe(hidden=(width,) * (5 if method.deep else 3) + (128,), phases=phases,
                    batches=p.batches * (2 if method.deep else 1), seed=seed, eval_every=p.robust_eval_every,
                    precision=precision)
    suffix = ("" if epochs is None else f"-e{epochs}") + _variant(seed, precision)
    return Experiment(name=f"robustness-{p.name}-{method.label}{suffix}-L{width}", preset=p.name,
                      chapter="second_order" if method.second else "robustness", data=_dataset(p, recipe.order),
                      recipe=recipe, parent=parent)


def gaussian(preset, sigma: float, width: int, seed: int = 0, epochs: int | None = None) -> Experiment:
    """E0 on images + fresh Gaussian noise of `sigma` each epoch (eq. 44); `epochs` replaces the
    preset's (Table 5 keeps them; the sigma sweep is `gaussian_sweep`)."""
    return _regularised(preset, "gaussian", sigma, width, seed, (T.E0(noise=float(sigma)),), epochs)


def gaussian_sweep(preset, sigma: float) -> Experiment:
    """A network of the sigma sweep (§4.6.2): at the sweep width, with the schedule of the
    robust and Jacobian networks it is compared with (the preset's derivative_epochs where set:
    at paper-small four 2000-epoch runs would cost ~10 CPU-hours, and a comparison at equal
    epochs is the fairer one)."""
    p = _preset(preset)
    return gaussian(p, sigma, p.sweep_width, epochs=p.derivative_epochs)


def jacobian(preset, c2: float, width: int, seed: int = 0) -> Experiment:
    """E0 + c^2 sum ||dN/dD||^2 over D_low and D_mid (§4.6.3)."""
    p = _preset(preset)
    return _regularised(p, "jacobian", c2, width, seed,
                        (T.E0(), T.Jacobian("low", float(c2)), T.Jacobian("mid", float(c2))), p.derivative_epochs)


def _regularised(preset, method, strength, width, seed, ts, epochs: int | None) -> Experiment:
    p = _preset(preset)
    _check_width(width)
    if not (isinstance(strength, (int, float)) and strength > 0):
        raise ValueError(f"{method}: strength (sigma or c^2) must be > 0, got {strength!r}")
    high, low = _epochs(p, epochs, 2)
    recipe = Recipe(hidden=(width, width, width, 128), phases=(Phase(high, 1e-3, ts), Phase(low, 1e-4, ts)),
                    batches=p.batches, seed=seed, eval_every=p.robust_eval_every)
    suffix = "" if epochs is None else f"-e{epochs}"
    return Experiment(name=f"robustness-{p.name}-{method}-{strength:g}{suffix}-L{width}", preset=p.name,
                      chapter="robustness", data=_dataset(p, 1), recipe=recipe)


TABLE5_SIGMA = 0.055


def robust_experiments(preset) -> list[Experiment]:
    """Every experiment of the robustness chapter; each parent before its child."""
    p = _preset(preset)
    out = [gaussian(p, TABLE5_SIGMA, w) for w in p.widths]
    out += [gaussian_sweep(p, s) for s in p.sigmas]
    out += [robust(p, Robust(tradeoff=t), w) for w in p.widths for t in (False, True)]
    out += [jacobian(p, c2, p.sweep_width) for c2 in p.jacobian_weights]
    if p.high_width:
        out += [robust(p, Robust(high=True, tradeoff=t), p.high_width) for t in (False, True)]
    if p.robust_long_epochs:
        out += [robust(p, Robust(tradeoff=t), p.sweep_width, epochs=p.robust_long_epochs) for t in (False, True)]
    if p.deep_width:
        out += [robust(p, Robust(deep=True, tradeoff=t), p.deep_width) for t in (False, True)]
    return list({e.name: e for e in out}.values())


def second_order_experiments(preset) -> list[Experiment]:
    """Every experiment of the second-order chapter; each parent before its child.  Widths as
    in the accuracy and robustness chapters, so Table 6 sits next to Tables 1-2 and Tables 7-8
    next to Tables 3-4."""
    p = _preset(preset)
    out = [accuracy(p, "second", w) for w in p.widths]
    if p.printed_width:
        out.append(accuracy(p, "second-printed", p.printed_width))
    if p.second_long_epochs:
        out += [accuracy(p, m, max(p.widths), epochs=p.second_long_epochs) for m in ("first", "second")]
    if p.e2_weight:
        out += [accuracy(p, "second", w, e2_weight=p.e2_weight) for w in p.widths]
        out += [accuracy(p, m, max(p.widths), seed=s, **({"e2_weight": p.e2_weight} if m == "second" else {}))
                for s in range(1, p.seeds) for m in ("first", "second")]
    if p.seeds > 1:  # the three readings of E2's n_ij, p.seeds seeds each at the largest width: the paper's
        # as we read it, E2 x e2_weight (above) and the author's (the 24 face corners of its generator)
        out += [accuracy(p, "second", max(p.widths), seed=s) for s in range(1, p.seeds)]
        out += [accuracy(p, "second-corners", max(p.widths), seed=s) for s in range(p.seeds)]
    out += [robust(p, Robust(second=True, tradeoff=t), w) for w in p.widths for t in (False, True)]
    if p.high_width:
        out += [robust(p, Robust(high=True, second=True, tradeoff=t), p.high_width) for t in (False, True)]
    if p.deep_width:
        out += [robust(p, Robust(deep=True, second=True, tradeoff=t), p.deep_width) for t in (False, True)]
    return out


# --------------------------------------------------------------------------------------
# Baselines of papers 002-004, in E0's units (baselines.py)

# method -> the term at strength s (fast AT: eps in pixel units, on E0 itself)
BASELINE_METHODS = {
    "ibp-loss-l1": lambda s: T.LossIBP(s, "l1"),  # 002, Loss IBP, its default r = 1
    "ibp-loss-l2": lambda s: T.LossIBP(s, "l2"),
    "ibp-pred": lambda s: T.PredictionIBP(s, "l1"),  # 002, Prediction IBP
    "tangent-bp": lambda s: T.TangentBP(s, "l1"),  # 002, (original) Tangent BP
    "fast-at": None,  # 002, fast adversarial training
    "jr": lambda s: T.JacobianNorm(s, n_proj=1),  # 003, Algorithm 1 with one projection
    "jr-exact": lambda s: T.JacobianNorm(s, n_proj=0),  # 003, the exact Frobenius norm
    "gradreg-l1": lambda s: T.GradientReg(s, "l1"),  # 004, eq. (11)
    "gradreg-l2": lambda s: T.GradientReg(s, "l2"),
    "gradreg-linf": lambda s: T.GradientReg(s, "linf"),
}

# strengths of each method's sweep, decades around m = 10^round(log10(E0 / term)) on the
# conventionally trained L = 128 network (the term at weight 1; measured once, and checked by
# the baselines chapter): m / 10, m, 10 m, 100 m, since a regulariser that only matches E0 at
# the start barely moves a network; and a decade more (1000 m, then 10^4 m) while the strongest
# one still left the network more accurate than universal robust training with the lowest v_max
# of its sweep (Jacobian regularisation at quick: 1e-1 gave 16.9 % against the reference's
# 23.7 %).  Fast AT: eps in pixel units, 1e-4 to 1e-1 (a sign perturbation of norm 41 eps:
# 0.004 to 4.1, the latter that of noise with sigma = 0.1)
BASELINE_STRENGTHS = {
    "ibp-loss-l1": (1e-4, 1e-3, 1e-2, 1e-1), "ibp-loss-l2": (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    "ibp-pred": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "tangent-bp": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    "fast-at": (1e-4, 1e-3, 1e-2, 1e-1), "jr": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    "jr-exact": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0), "gradreg-l1": (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    "gradreg-l2": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "gradreg-linf": (1e-3, 1e-2, 1e-1, 1.0, 10.0),
}


def baseline(preset, method: str, strength: float, width: int | None = None, seed: int = 0) -> Experiment:
    """E0 + a method of papers 002-004 at `strength` (beta, lambda_JR, c, or eps for fast AT)
    on 1681-L-L-L-128-9 with the conventional schedule."""
    p = _preset(preset)
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline method {method!r}; allowed: {', '.join(BASELINE_METHODS)}")
    if not (isinstance(strength, (int, float)) and strength > 0):
        raise ValueError(f"strength of {method!r} must be > 0, got {strength!r}")
    if method == "fast-at" and strength > 1:
        raise ValueError(f"fast-at strength is eps in pixel units and must be in (0, 1], got {strength!r}")
    width = p.baseline_width if width is None else width
    _check_width(width)
    term = BASELINE_METHODS[method]
    ts = (T.E0(adversarial_eps=float(strength)),) if term is None else (T.E0(), term(float(strength)))
    recipe = Recipe(hidden=(width, width, width, 128), phases=(Phase(p.high_lr_epochs, 1e-3, ts),
                                                               Phase(p.low_lr_epochs, 1e-4, ts)),
                    batches=p.batches, seed=seed, eval_every=p.robust_eval_every)
    return Experiment(name=f"baseline-{p.name}-{method}-{strength:g}-L{width}", preset=p.name, chapter="baselines",
                      data=_dataset(p, 1), recipe=recipe)


def baseline_strengths(preset, method: str) -> list[float]:
    """The strengths of `method` swept at `preset`."""
    p = _preset(preset)
    s = BASELINE_STRENGTHS[method]
    return [s[i] for i in (range(len(s)) if p.baseline_sweep is None else p.baseline_sweep)]


def baseline_sweep(preset, method: str) -> list[Experiment]:
    return [baseline(preset, method, s) for s in baseline_strengths(preset, method)]


def baseline_experiments(preset) -> list[Experiment]:
    return [e for m in BASELINE_METHODS for e in baseline_sweep(preset, m)]


# --------------------------------------------------------------------------------------
# Precision: bfloat16 against float32 (the execution page), with the seed-to-seed spread

PRECISION_SEEDS = (0, 1, 2)


def precision_experiments(preset) -> list[Experiment]:
    """Conventional, first-derivative and robust training at the preset's largest width, in
    float32 and in bfloat16, each with PRECISION_SEEDS: the seed spread is the yardstick."""
    p = _preset(preset)
    W = max(p.widths)
    out = []
    for precision in ("float32", "bfloat16"):
        for seed in PRECISION_SEEDS:
            out += [accuracy(p, m, W, seed, precision=precision) for m in ("conventional", "first")]
            out.append(robust(p, Robust(), W, seed, precision=precision))
    return out


CHAPTERS = {"accuracy": accuracy_experiments, "robustness": robust_experiments,
            "second-order": second_order_experiments, "baselines": baseline_experiments,
            "precision": precision_experiments}
# the chapters that follow the paper (the precision comparison is about how the book computes)
PAPER_CHAPTERS = ("accuracy", "robustness", "second-order", "baselines")


def book_experiments(preset) -> list[Experiment]:
    """Every network of the paper's chapters at `preset`, each once, parents before children."""
    return list({e.name: e for c in PAPER_CHAPTERS for e in CHAPTERS[c](preset)}.values())


def all_experiments(preset) -> list[Experiment]:
    """Every network of the book at `preset` (the paper's chapters, then the precision
    comparison), each once, parents before children."""
    return list({e.name: e for f in CHAPTERS.values() for e in f(preset)}.values())
