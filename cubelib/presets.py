"""Presets: every size of the project in one frozen value per preset.

A preset fixes the data set, the networks and their schedule, every sweep of the book, and
the sample counts of the analyses.  Data, recipes, analyses, chapters and the command line
read it from here; adding a preset is adding one value to `PRESETS`.  `get(name, **sizes)`
overrides sizes for one run (a papermill parameter, a CLI flag) and validates them.

    smoke        seconds on one core: tests prove every code path, not the science
    quick        the default build on a 2-core CPU: L <= 128, a tenth of the data, 150 epochs
    paper-small  the paper's smallest network (L = 256, 0.6M weights) at the paper's data and
                 schedule, trained on the CPU over several sessions
    paper        the paper's sizes (§3.4-3.5, §4.6, §5): widths 256-2048, 2000 epochs; a GPU
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

Sizes = tuple[int, ...]


@dataclass(frozen=True)
class Preset:
    name: str
    # data (§3.4): R-sequence points 0 .. n_train - 1 for training, the next n_test for testing
    n_train: int
    n_test: int
    # networks 1681-L-L-L-128-9 (Tables 1-2, 6) and the schedule of §3.5: `epochs` in all,
    # the last `low_lr_epochs` at lr 1e-4, `batches` per epoch
    widths: Sizes
    epochs: int
    low_lr_epochs: int
    batches: int
    # epochs of every network trained on derivatives (E1, E2, robust or Jacobian terms) where
    # the full schedule does not fit the preset's budget: a deviation, named "-e<epochs>" in
    # each result's name (None: `epochs`, the paper's schedule)
    derivative_epochs: int | None
    eval_every: int  # epochs between learning-curve points (accuracy and second order)
    robust_eval_every: int  # the same for the robustness and baselines chapters
    # robustness (§4.6): Gaussian sigma and Jacobian c^2 sweeps at `sweep_width`; robust
    # training + R_high at `high_width`, the 20M five-layer network at `deep_width`, and robust
    # training with `robust_long_epochs` (None: not run)
    sweep_width: int
    sigmas: tuple[float, ...]
    jacobian_weights: tuple[float, ...]
    high_width: int | None
    deep_width: int | None
    robust_long_epochs: int | None
    # second order (§5): n_ij as printed at `printed_width`, and first- and second-derivative
    # training once more with `second_long_epochs` at the largest width (None: not run)
    printed_width: int | None
    second_long_epochs: int | None
    # second order's working method, a labelled deviation: E2 x `e2_weight` at the widths of
    # Table 6, and at the largest width against first-derivative training over `seeds` seeds
    # each (None: not run)
    e2_weight: float | None
    seeds: int
    # baselines of papers 002-004 at `baseline_width`; `baseline_sweep` picks indices into
    # each method's strengths (None: all of them)
    baseline_width: int
    baseline_sweep: Sizes | None
    # sample counts of the analyses (images of the test split unless said)
    noise_sigmas: tuple[float, ...]  # Figs. 9-10
    noise_images: int
    indicator_images: int  # 004's indicator per network
    oracle_images: int  # the oracle chapter's attacks on the accuracy networks
    taylor_cubes: int  # poses of the oracle chapter's Taylor check (eqs. 23, 51)
    attack_checks: int  # images whose optimal attack is checked against the nonlinear oracle
    attack_images: int  # the robustness chapter's gradient analyses
    projection_images: int  # 003's projection-estimate check and the baselines' gradient analyses
    surface_steps: int  # grid of 004's input-space surfaces (steps x steps)
    spectrum_images: int  # spectra of attack directions
    derivative_checks: int  # poses checked by finite differences in the tangents chapter
    reach_stride: int  # every k-th step of the expansions' reach curves (tangents chapter)
    norm_images: int  # renders for average derivative norms (tangents chapter, summary)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check(self.name, f.name, getattr(self, f.name))
        if self.low_lr_epochs >= self.epochs:
            raise ValueError(f"preset {self.name!r}: low_lr_epochs ({self.low_lr_epochs}) must be < epochs "
                             f"({self.epochs})")
        if self.derivative_epochs is not None and not self.low_lr_epochs < self.derivative_epochs <= self.epochs:
            raise ValueError(f"preset {self.name!r}: derivative_epochs ({self.derivative_epochs}) must be in "
                             f"({self.low_lr_epochs}, {self.epochs}] or None")
        if self.batches > self.n_train:
            raise ValueError(f"preset {self.name!r}: batches ({self.batches}) must be <= n_train ({self.n_train})")

    @property
    def high_lr_epochs(self) -> int:
        return self.epochs - self.low_lr_epochs


_POSITIVE = ("n_train", "n_test", "epochs", "low_lr_epochs", "batches", "eval_every", "robust_eval_every",
             "sweep_width", "baseline_width", "noise_images", "indicator_images", "oracle_images",
             "taylor_cubes", "attack_checks", "attack_images", "projection_images", "surface_steps",
             "spectrum_images", "derivative_checks", "reach_stride", "norm_images", "seeds")
_OPTIONAL = ("high_width", "deep_width", "robust_long_epochs", "printed_width", "second_long_epochs",
             "derivative_epochs")


def _check(preset: str, name: str, value):
    where = f"preset {preset!r}: {name}"
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
    if name == "name":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    elif name in _POSITIVE or (name in _OPTIONAL and value is not None):
        if not is_int(value) or value < 1:
            raise ValueError(f"{where} must be an integer >= 1{' or None' if name in _OPTIONAL else ''}, "
                             f"got {value!r}")
    elif name in ("widths", "baseline_sweep"):
        if name == "baseline_sweep" and value is None:
            return
        if not isinstance(value, tuple) or not value or not all(is_int(v) and v >= (0 if name == "baseline_sweep"
                                                                                    else 1) for v in value):
            raise ValueError(f"{where} must be a non-empty tuple of {'indices' if name == 'baseline_sweep' else 'positive integers'}, got {value!r}")
    elif name in ("sigmas", "noise_sigmas"):
        if not isinstance(value, tuple) or not value or not all(isinstance(v, (int, float)) and 0 <= v <= 1
                                                                for v in value):
            raise ValueError(f"{where} must be a non-empty tuple of values in [0, 1], got {value!r}")
    elif name == "e2_weight":
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1):
            raise ValueError(f"{where} must be a number in (0, 1] or None, got {value!r}")
    elif name == "jacobian_weights":
        if not isinstance(value, tuple) or not value or not all(isinstance(v, (int, float)) and v > 0 for v in value):
            raise ValueError(f"{where} must be a non-empty tuple of values > 0, got {value!r}")


_SMOKE = Preset(
    name="smoke", n_train=240, n_test=60, widths=(16,), epochs=4, low_lr_epochs=1, batches=4, derivative_epochs=None,
    eval_every=1,
    robust_eval_every=1, sweep_width=16, sigmas=(0.055,), jacobian_weights=(1.0,), high_width=16, deep_width=None,
    robust_long_epochs=8, printed_width=16, second_long_epochs=6, e2_weight=0.01, seeds=2, baseline_width=16, baseline_sweep=(2,),
    noise_sigmas=(0.0, 0.1, 0.25), noise_images=12, indicator_images=8, oracle_images=4, taylor_cubes=2,
    attack_checks=2, attack_images=16, projection_images=16, surface_steps=9, spectrum_images=32,
    derivative_checks=2, reach_stride=4, norm_images=8)

_QUICK = Preset(
    name="quick", n_train=9702, n_test=2016, widths=(64, 128), epochs=150, low_lr_epochs=15, batches=42,
    derivative_epochs=None,
    eval_every=5, robust_eval_every=10, sweep_width=128,
    # sigma over the paper's range and beyond, c^2 over six decades: the small network's
    # invariance attacks take over late, if at all
    sigmas=(0.005, 0.02, 0.035, 0.055, 0.075, 0.095, 0.12, 0.17, 0.25, 0.35),
    jacobian_weights=(0.01, 0.1, 1.0, 10.0, 100.0, 1000.0),
    # robust + R_high (the paper's 20M recipe) at L = 128; robust training with 3x the epochs
    high_width=128, deep_width=None, robust_long_epochs=450,
    printed_width=128, second_long_epochs=300, e2_weight=0.01, seeds=3, baseline_width=128, baseline_sweep=None,
    noise_sigmas=(0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25), noise_images=512, indicator_images=128,
    oracle_images=200, taylor_cubes=4, attack_checks=8, attack_images=256, projection_images=256, surface_steps=25,
    spectrum_images=512, derivative_checks=8, reach_stride=1, norm_images=256)

_PAPER = Preset(
    name="paper", n_train=97020, n_test=20160, widths=(256, 512, 1024, 2048), epochs=2000, low_lr_epochs=50,
    derivative_epochs=None,
    batches=42, eval_every=20, robust_eval_every=20,
    # the sweeps on the 4M network (L = 1024) as in Figs. 6-7; the 20M network of Table 3's
    # last column (five hidden layers of 2048)
    sweep_width=1024, sigmas=(0.005, 0.02, 0.035, 0.055, 0.075, 0.095, 0.12, 0.145, 0.17),
    jacobian_weights=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), high_width=None, deep_width=2048,
    robust_long_epochs=None, printed_width=None, second_long_epochs=None, e2_weight=0.01, seeds=1, baseline_width=1024,
    baseline_sweep=None,
    noise_sigmas=(0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25), noise_images=2048,
    indicator_images=256, oracle_images=2000, taylor_cubes=4, attack_checks=8, attack_images=1024,
    projection_images=256, surface_steps=25, spectrum_images=512, derivative_checks=32, reach_stride=1,
    norm_images=2048)

# the paper's smallest network (Tables 1-5 at 0.6M weights) at the paper's data and schedule;
# networks trained on derivatives, and the sigma sweep they are compared with, get 500 of the
# 2000 epochs (Table 5 and conventional training keep 2000).  One CPU thread per epoch at
# L = 256: conventional ~4 s, Gaussian ~5 s, first-order ~23 s, Jacobian ~1.5x and robust
# ~2.3x a first-order one (bench/epoch_parts.py: their random directions are drawn on the
# CPU); 2000 epochs of every network would take ~100 CPU-hours.  The sweeps should bracket
# their best v_max: at 500 epochs the sigma sweep still falls at 0.17 (23.9 %) and 0.25
# (22.7 %), so it goes on to 0.35, quick's last point (quick's v_max still falls there too),
# and, its lowest v_max being at 0.35 (22.4 %), to 0.5 (22.8 %: the lowest is inside);
# the Jacobian sweep spans 10-1000 because at quick (L = 128) v_max falls from 125 % at
# c^2 = 0.01 to its lowest, 27.5 %, at 100 and rises again at 1000 (27.9 %); c^2 = 1 (65.6 %
# there) is not expected to be the best
_PAPER_SMALL = dataclasses.replace(
    _PAPER, name="paper-small", widths=(256,), derivative_epochs=500, sweep_width=256, high_width=None, deep_width=None,
    sigmas=(0.02, 0.055, 0.095, 0.17, 0.25, 0.35, 0.5), jacobian_weights=(10.0, 100.0, 1000.0), baseline_width=256,
    baseline_sweep=None, noise_images=512, oracle_images=500, attack_images=256)

PRESETS = {p.name: p for p in (_SMOKE, _QUICK, _PAPER_SMALL, _PAPER)}
NAMES = tuple(PRESETS)


def get(preset: "str | Preset", **sizes) -> Preset:
    """The preset `preset` (a name or a Preset), with `sizes` replacing its fields, validated.
    Overriding changes what the results are: result keys cover every size they depend on."""
    if isinstance(preset, Preset):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(NAMES)}")
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name"}
    bad = sorted(set(sizes) - fields)
    if bad:
        raise ValueError(f"unknown preset size(s) {', '.join(bad)}; allowed: {', '.join(sorted(fields))}")
    if not sizes:
        return base
    return dataclasses.replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()})
