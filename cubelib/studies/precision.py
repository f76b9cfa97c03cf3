"""bfloat16 against float32 training (experiments.precision_experiments): the test error and
vulnerability of conventional, first-derivative and robust training in both precisions over
several seeds, and the time per epoch.  The rule: bfloat16 may replace float32 for a method
when its mean moves by less than the float32 seed-to-seed spread (max - min over seeds)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import experiments, presets, store
from ..experiments import PRECISION_SEEDS, Robust
from ..report import Table

METHODS = ("conventional", "first", "robust")


@dataclass
class Precision:
    preset: presets.Preset
    width: int
    values: dict  # (method, precision) -> {"e": [per seed], "v_max": [...]}
    verdicts: dict  # method -> True when bfloat16 stays within the float32 seed spread (e and v_max)
    table: Table
    numbers: dict


def _experiment(p, method, seed, precision):
    W = max(p.widths)
    if method == "robust":
        return experiments.robust(p, Robust(), W, seed, precision=precision)
    return experiments.accuracy(p, method, W, seed, precision=precision)


def study(preset, device="cpu") -> Precision:
    p = presets.get(preset)
    values = {}
    for method in METHODS:
        for precision in ("float32", "bfloat16"):
            rs = [store.run(_experiment(p, method, s, precision), device=device) for s in PRECISION_SEEDS]
            values[method, precision] = {
                "e": [r.e_test for r in rs], "v_max": [r.v_max_test for r in rs]}
    table = Table("", ["method", "precision", "test $e$ (%), mean", "$e$: seed spread",
                       r"test $\bar v_{\max}$ (%), mean", r"$\bar v_{\max}$: seed spread", "within float32's spread"],
                  formats={2: ".3f", 3: ".3f", 4: ".1f", 5: ".1f"})
    verdicts, numbers = {}, {}
    for method in METHODS:
        f32, b16 = values[method, "float32"], values[method, "bfloat16"]
        ok = all(abs(np.mean(b16[k]) - np.mean(f32[k])) <= np.ptp(f32[k]) for k in ("e", "v_max"))
        verdicts[method] = bool(ok)
        for precision, v in (("float32", f32), ("bfloat16", b16)):
            table.add(method, precision, float(np.mean(v["e"])), float(np.ptp(v["e"])), float(np.mean(v["v_max"])),
                      float(np.ptp(v["v_max"])), ("yes" if ok else "no") if precision == "bfloat16" else "")
        numbers[f"prec_{method}_de"] = float(np.mean(b16["e"]) / np.mean(f32["e"]) - 1) * 100
    numbers["prec_all_within"] = "all three methods" if all(verdicts.values()) else \
        ", ".join(m for m in METHODS if verdicts[m]) or "none of the methods"
    devices = {r.device for r in (store.load(e) for e in experiments.precision_experiments(p)) if r}
    table.note = (f"L = {max(p.widths)}, preset {p.name}, seeds {', '.join(map(str, PRECISION_SEEDS))}; "
                  f"spread = max - min over the seeds; trained on {', '.join(sorted(devices))} (wall times on a "
                  f"shared machine are not compared; the step timing above is). bfloat16 rounds "
                  "the hidden layers' matmul operands and products; weights, the output layer, the jet "
                  "arithmetic, the optimiser and every evaluation stay float32.")
    return Precision(p, max(p.widths), values, verdicts, table, numbers)


def best_time(fn, repeat: int = 3, device="cpu") -> float:
    """The best of `repeat` timings of `fn()` after one warm-up call (CUDA synchronised)."""
    import time

    import torch
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def step_seconds(width: int = 256, batch: int = 2310, order: int = 1, matmul_dtype=None, repeat: int = 3,
                 device="cpu", compiled: bool = False) -> float:
    """The best of `repeat` timings of one training step (extended forward pass of `order`,
    backward) of 1681-L-L-L-128-9 on `batch` random images, with `matmul_dtype` matmuls;
    `compiled`: the extended pass under torch.compile as training compiles it
    (Recipe.compiled: inductor fuses the elementwise jet arithmetic; compiling happens in the
    warm-up call, not timed)."""
    import torch

    from .. import jets
    from ..geometry import PAIRS
    torch.manual_seed(0)
    model = jets.MLP((width, width, width, 128)).to(device)
    h = torch.randn(batch, 7 if order == 1 else 28, 1681, device=device) * 0.1
    pairs = PAIRS if order == 2 else None

    from ..train import _compiled_rows
    rows = _compiled_rows(model.jet_rows) if compiled else model.jet_rows  # as training compiles it

    def step():
        for q in model.parameters():
            q.grad = None
        with jets.matmul_precision(model, matmul_dtype):
            y, y1, y2 = rows(h, 6, pairs)
        ((y**2).sum() + (y1**2).sum() + ((y2**2).sum() if order == 2 else 0)).backward()

    return best_time(step, repeat, device)


def bf16_units(cpuinfo: str | None = None) -> list[str] | None:
    """The bfloat16 matrix instructions this CPU reports ("amx_bf16", "avx512_bf16") among the
    flags of /proc/cpuinfo (or of `cpuinfo`, its text); None where that cannot be read."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    return None if flags is None else [f for f in ("amx_bf16", "avx512_bf16") if f in flags]


def speed_note(ratio: float, units: list[str] | None) -> str:
    """What the execution page says of a bf16 / fp32 step-time `ratio` on a CPU with `units`."""
    if ratio < 1:
        return ""
    if units is None:
        return "Here bfloat16 is slower."
    if not units:
        return ("Here bfloat16 is slower: this CPU reports no bfloat16 matrix instructions (neither AMX nor "
                "AVX-512 BF16), so its products are emulated; the option only pays where the hardware has them.")
    names = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16"}  # the flags' names in prose
    return (f"Here bfloat16 is slower although this CPU has {' and '.join(names[u] for u in units)}: at this "
            "size converting the operands costs more than the faster products save.")


def speed(width: int = 256, batch: int = 2310, repeat: int = 3) -> dict:
    """One step of orders 1 and 2 in float32 and bfloat16, timed in the same run on this
    machine (the execution page's speed numbers)."""
    import platform

    import torch
    out = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
           "width": width, "batch": batch}
    for order in (1, 2):
        f32 = step_seconds(width, batch, order, None, repeat)
        b16 = step_seconds(width, batch, order, torch.bfloat16, repeat)
        out[f"order{order}"] = {"float32": f32, "bfloat16": b16, "ratio": b16 / f32}
    return out


def available(preset) -> bool:
    """Are all networks of the comparison stored at `preset`, or may they be trained here?"""
    import os
    p = presets.get(preset)
    if not os.environ.get("CUBELIB_NO_TRAIN"):
        return True
    return all(store.load(e) is not None for e in experiments.precision_experiments(p))


def shown(preset, device="cpu"):
    """The comparison's table and its verdict in words, or a sentence saying it is not
    stored at this preset (Markdown for the execution page)."""
    from IPython.display import Markdown
    p = presets.get(preset)
    if not available(p):
        return Markdown(f"*The comparison is not stored at the preset {p.name!r}: "
                        f"`python -m cubelib run precision --preset {p.name}` trains it.*")
    s = study(p, device)
    n = s.numbers
    verdict = (f"At this preset bfloat16 stays within float32's seed-to-seed spread for {n['prec_all_within']} "
               f"(mean test error {n['prec_conventional_de']:+.1f} % conventional, {n['prec_first_de']:+.1f} % "
               f"first derivatives, {n['prec_robust_de']:+.1f} % robust, relative to float32).")
    return Markdown(s.table.markdown() + "\n\n" + verdict)
