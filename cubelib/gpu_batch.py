"""One command for a GPU window, and the import of what it brings back.

    python -m cubelib gpu-batch --budget 540 --out $OUT [--preset paper] [--device cuda]
    python -m cubelib import results.tar.gz [--dry-run]

A lent GPU has minutes in all and returns files from one folder only, so `gpu-batch` does in
one process, each stage timed and logged to OUT/log.txt and OUT/report.json:

1. self-check (seconds): the renderer on the device against the CPU in float64, the extended
   pass against nested torch.func jvps on the device in float64, and one training step (every
   kind of term: E0, E1, E2, R, R2) on the device against the CPU in float64, float32, TF32
   and bfloat16.  Any check off beyond its tolerance (see `_render_check`, `_jet_check`,
   `_step_check`) stops the command with exit status 2 before anything trains.
2. benchmark: the render rate, a matmul's peak in TF32 and in bfloat16, and the extended
   training step at the paper's sizes (L = 256 .. 2048, batch 2310, orders 1 and 2) in both,
   as TFLOP/s against those peaks; a size whose estimated cost exceeds the stage's share of
   the budget is skipped.
3. training: the preset's pending networks (no stored result in results/<preset>/) in a
   fixed priority order (`priority`), each with `store.run(time_limit=...)`, so the last one
   stops at an epoch boundary with a checkpoint; results go to OUT/work/results.
4. one archive OUT/results.tar.gz (<= 16 MiB): the results, their manifest and weights, then
   checkpoints (unfinished runs first) while they fit; what did not fit is listed in the
   report.  OUT/work is then removed: OUT holds log.txt, report.json and the archive.

`import_archive` (python -m cubelib import) unpacks such an archive into results/<preset>/
(checkpoints where `store.run` resumes them), refusing to overwrite a result with different
content, and checking every result against the preset's experiments and the current code.

Only torch and numpy are needed (no scipy, matplotlib, tqdm or Jupyter).
"""
from __future__ import annotations

import importlib.machinery
import sys
import types

try:  # data.py and train.py draw progress bars; a torch-only machine may lack tqdm
    import tqdm as _tqdm  # noqa: F401
except ImportError:
    class _NoBar:
        def __init__(self, iterable=None, *args, **kwargs):
            self.iterable, self.n = iterable, kwargs.get("initial", 0)

        def __iter__(self):
            return iter(self.iterable)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            self.n += n

        def set_postfix(self, *args, **kwargs):
            pass

        def close(self):
            pass

    _mod, _auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
    _mod.tqdm = _auto.tqdm = _NoBar
    # a spec without origin: torch._dynamo asks importlib.util.find_spec("tqdm") at import
    _mod.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)
    _auto.__spec__ = importlib.machinery.ModuleSpec("tqdm.auto", None)
    _mod.auto = _auto
    sys.modules["tqdm"], sys.modules["tqdm.auto"] = _mod, _auto
try:
    import numpy  # noqa: F401
except ImportError as exc:
    raise ImportError("cubelib needs numpy besides torch (the renderer's quadrature nodes and the pose "
                      "sampler): pip install numpy") from exc

import argparse
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import tarfile
import time
import traceback
from pathlib import Path

import torch

from . import data, experiments, jets, presets, render, sampling, store, train, trainset, versions
from . import terms as T
from .geometry import PAIRS
from .recipes import Phase, Recipe

FILE_LIMIT = 16 * 2**20  # what one returned file may hold
ARCHIVE_LIMIT = FILE_LIMIT - 256 * 2**10  # a margin for tar headers and gzip's worst case
ARCHIVE = "results.tar.gz"
BENCH_WIDTHS = (256, 512, 1024, 2048)  # Tables 1-2
BENCH_BATCH = 2310  # 97 020 training images in 42 batches (§3.5)
BUDGET_RANGE = (10.0, 86400.0)
META = "gpu-batch.json"


# --------------------------------------------------------------------------------------
# Flags

def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    lo, hi = BUDGET_RANGE
    if not lo <= value <= hi:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be seconds between {lo:g} and {hi:g}, got {text!r}")
    return value


def _widths(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        out = ()
    if not out or any(not 1 <= w <= 16384 for w in out):
        raise argparse.ArgumentTypeError(f"must be comma-separated widths between 1 and 16384, got {text!r}")
    return out


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be an integer between 1 and 100000, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--budget", type=_budget, required=True,
                   help=f"seconds for the whole command ({BUDGET_RANGE[0]:g} to {BUDGET_RANGE[1]:g}); set the machine's "
                        "per-command limit a minute above it (start-up, the last epoch and evaluation)")
    p.add_argument("--out", required=True, help="an empty (or new) folder: log.txt, report.json, " + ARCHIVE)
    p.add_argument("--preset", default="paper", choices=presets.NAMES)
    p.add_argument("--device", default="cuda", help="cuda[:N] (default) or cpu")
    p.add_argument("--bench-widths", type=_widths, default=BENCH_WIDTHS,
                   help="hidden widths L of the benchmarked step (default: the paper's 256,512,1024,2048)")
    p.add_argument("--bench-batch", type=_batch, default=BENCH_BATCH,
                   help=f"images per benchmarked step (default {BENCH_BATCH}, the paper's)")
    p.add_argument("--resume", default=None, metavar="ARCHIVE",
                   help="an earlier gpu-batch archive whose checkpoints the pending networks resume from")


# --------------------------------------------------------------------------------------
# Log and report

class Session:
    """The log (OUT/log.txt and stdout), the report (OUT/report.json, rewritten after each
    stage, so a killed run still leaves one) and the clock."""

    def __init__(self, out: Path, budget: float, started: float):
        self.out, self.budget, self.started = out, budget, started
        self.deadline = started + budget
        self.report: dict = {"stages": {}, "errors": []}
        self._log = open(out / "log.txt", "a", buffering=1)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, msg: str):
        line = f"[{self.elapsed():7.1f} s] {msg}"
        print(line, flush=True)
        self._log.write(line + "\n")

    def save(self):
        tmp = self.out / "report.json.tmp"
        tmp.write_text(json.dumps(self.report, indent=1, default=str))
        os.replace(tmp, self.out / "report.json")

    def stage(self, name: str, fn, *args):
        """Run stage `fn`, recording its seconds, its result and any exception."""
        self.log(f"== {name} ({self.left():.0f} s of the budget left)")
        t = time.monotonic()
        entry = self.report["stages"][name] = {}
        try:
            entry.update(fn(*args) or {})
            entry.setdefault("ok", True)
        except Exception as exc:  # recorded; the caller decides whether to go on
            entry["ok"] = False
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
            self.report["errors"].append(f"{name}: {entry['error']}")
            self.log(f"{name} failed: {entry['error']}")
        entry["seconds"] = round(time.monotonic() - t, 2)
        self.log(f"== {name}: {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']:.1f} s")
        self.save()
        return entry

    def close(self):
        self._log.close()


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "code_version": versions.code_version(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        try:
            props = torch.cuda.get_device_properties(device)
            env.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(
                props.total_memory / 2**30, 1), cuda=torch.version.cuda)
        except Exception as exc:  # the self-check will say more
            env.update(name=f"CUDA device ({type(exc).__name__}: {exc})", cuda=torch.version.cuda)
    else:
        env["name"] = f"CPU ({platform.processor() or platform.machine()})"
    return env


# --------------------------------------------------------------------------------------
# 1. Self-check

# The renderer is verified on the CPU to 1e-12 (pixels, against independent integration),
# 1e-9 relative (dI/dnu, against differences) and 1e-5 relative (d2I/dnu2, against Richardson
# extrapolation).  The device must agree with the CPU within the first and ten times below the
# others, relative to the largest value of each tensor.  Rounding alone stays far below: float64
# ulps (~1e-16, a few per operation, FMA contraction included) on O(1) pixel sums, amplified
# for d2 by eq. (45)'s differences at eps = 5e-6 to ~1e-11 of max |d1| (about 1e-11 of max |d2|);
# a real fault (a wrong branch, a kernel in float32) shows at 1e-7 or more.
RENDER_TOL = {"image": 1e-12, "d1": 1e-10, "d2": 1e-6}
# The extended pass matches nested jvps to 1e-12 on the CPU (tests/test_jets.py); float64
# rounding of a few layers is ~1e-15.
JET_TOL = 1e-12


def _relmax(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _render_check(device: torch.device) -> dict:
    v = sampling.sample_vertices(4, start=5000)  # R-sequence poses outside every preset's first sets
    ref = render.render(v, order=2)
    t = time.perf_counter()
    got = render.render(v.to(device), order=2)
    _sync(device)
    seconds = time.perf_counter() - t
    out = {"poses": 4, "device_seconds": round(seconds, 3)}
    ok = bool(torch.equal(got.visible.cpu(), ref.visible))
    out["visible_faces_equal"] = ok
    for name, tol in RENDER_TOL.items():
        diff = _relmax(getattr(got, name), getattr(ref, name))
        out[name] = {"max_abs_diff": (getattr(got, name).cpu() - getattr(ref, name)).abs().max().item(),
                     "rel_to_max": diff, "tol": tol}
        ok &= diff <= tol
    out["ok"] = bool(ok)
    return out


def _jet_check(device: torch.device) -> dict:
    from torch.func import jvp
    g = torch.Generator().manual_seed(0)
    net = jets.MLP((32, 24, 16), generator=g, dtype=torch.float64)
    B, K = 3, 6
    x = torch.randn(B, jets.INPUTS, generator=g, dtype=torch.float64)
    d1 = torch.randn(B, K, jets.INPUTS, generator=g, dtype=torch.float64)
    d2 = torch.randn(B, len(PAIRS), jets.INPUTS, generator=g, dtype=torch.float64)
    y_cpu, y1_cpu, y2_cpu = net.jet(x, d1, d2, PAIRS)
    net, x, d1, d2 = net.to(device), x.to(device), d1.to(device), d2.to(device)
    y, y1, y2 = net.jet(x, d1, d2, PAIRS)
    # references on the device: one jvp per direction, nested jvps per pair (eq. 45's
    # H_N[d1_i, d1_j] + J_N d2_ij); the network acts row by row, so a batch is one call
    r1 = torch.stack([jvp(net, (x,), (d1[:, a],))[1] for a in range(K)], 1)
    r2 = []
    for k, (i, j) in enumerate(PAIRS):
        def inner(z, j=j):
            return jvp(net, (z,), (d1[:, j],))[1]
        r2.append(jvp(inner, (x,), (d1[:, i],))[1] + jvp(net, (x,), (d2[:, k],))[1])
    r2 = torch.stack(r2, 1)
    out = {"value_vs_forward": _relmax(y, net(x)), "d1_vs_jvp": _relmax(y1, r1), "d2_vs_nested_jvp": _relmax(y2, r2),
           "device_vs_cpu": max(_relmax(y, y_cpu), _relmax(y1, y1_cpu), _relmax(y2, y2_cpu)), "tol": JET_TOL}
    out["ok"] = all(v <= JET_TOL for k, v in out.items() if k != "tol")
    return out


def _cast(obj, device, dtype):
    """A copy of a TrainSet / Norms / Epoch / tensor / container with floating tensors on
    `device` in `dtype` (the float64 reference of one step)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, dtype) if obj.is_floating_point() else obj.to(device)
    if isinstance(obj, dict):
        return {k: _cast(v, device, dtype) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast(v, device, dtype) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        new = object.__new__(type(obj))
        new.__dict__.update({k: _cast(v, device, dtype) for k, v in vars(obj).items()})
        return new
    return obj


STEP_TERMS = (T.E0(), T.E1(), T.E2(), T.Robust("low"), T.Robust("mid"), T.Robust("low", order=2))
# Tolerances of one step (loss, and the relative norm of the gradient's error), against the
# float64 step on the same inputs:
# * float32 on the device within 10x the CPU's own float32 error (the reduction orders differ,
#   the rounding unit does not), and at least 1e-5 (loss) / 1e-4 (gradient): float32 sums of a
#   few thousand terms, and the device prepares its oracle terms itself;
# * TF32 rounds matmul operands to 11 significant bits, the CPU's bfloat16 path to 8: within 4x
#   the CPU's bfloat16 error, or one TF32 rounding unit (2^-11), whichever is larger;
# * bfloat16 on the device rounds the same operands the same way (cuBLAS may also reduce partial
#   sums in reduced precision): within 4x the CPU's bfloat16 error, or one bfloat16 unit (2^-8).
# Rounding errors average out over a batch, far below a whole unit.  Measured on the CPU (12
# images, L = 64, four seeds): float32 1e-8-9e-8 (loss) / 3e-7 (gradient); bfloat16 2e-5-2e-4 /
# 1e-3; TF32 emulated (every mm and bmm operand rounded to 10 mantissa bits) 1e-5-3e-5 / 2e-4-3e-4.
# A fault (a wrong term, a kernel in lower precision than asked) shows at 1e-2 or more.
STEP_FLOOR = {"loss": 1e-5, "grad": 1e-4}


def _one_step(model, rows, norms, draws, idx, dtype=None):
    """Loss and flat gradient of one batch, the terms as training sums them."""
    model.zero_grad(set_to_none=True)
    with jets.matmul_precision(model, dtype):
        values = T.evaluate(model, rows, idx, STEP_TERMS, norms, draws)
    loss = sum(values.values())
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    return loss.detach().double().cpu(), grad.detach().double().cpu(), {k: v.item() for k, v in values.items()}


def _step_check(device: torch.device) -> dict:
    split = data.build_split(0, 16, 2, render.SIGMA, torch.float32, progress=False)
    ds = data.Dataset(config=data.DatasetConfig(n_train=16, n_test=0, order=2), train=split, test=split,
                      norms=data.compute_norms(split))
    recipe = Recipe(hidden=(64, 64, 64, 128), phases=(Phase(1, 1e-3, STEP_TERMS),), batches=1)
    init = jets.MLP(recipe.hidden, generator=torch.Generator().manual_seed(0)).state_dict()

    def prepared(dev):
        rows, norms = trainset.prepare(recipe, ds, dev)
        draws = trainset.draw_epoch(recipe.phases[0], rows, torch.Generator().manual_seed(1), dev)
        return rows, norms, draws

    def model(dev, dtype=torch.float32):
        m = jets.MLP(recipe.hidden)
        m.load_state_dict(init)
        return m.to(dev, dtype)

    cpu = torch.device("cpu")
    rows, norms, draws = prepared(cpu)
    idx = torch.arange(12)  # a batch, not the whole set
    runs = {"cpu_float64": _one_step(model(cpu, torch.float64), *_cast((rows, norms, draws), cpu, torch.float64),
                                     idx),
            "cpu_float32": _one_step(model(cpu), rows, norms, draws, idx),
            "cpu_bfloat16": _one_step(model(cpu), rows, norms, draws, idx, torch.bfloat16)}
    drows, dnorms, ddraws = prepared(device)  # prepared on the device: its oracle terms too
    didx = idx.to(device)
    with train.tf32(device, False):
        runs["device_float32"] = _one_step(model(device), drows, dnorms, ddraws, didx)
    with train.tf32(device, True):
        runs["device_tf32"] = _one_step(m := model(device), drows, dnorms, ddraws, didx)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        opt.step()  # the optimiser's step on the device, then the batch once more
        after = _one_step(m, drows, dnorms, ddraws, didx)
        runs["device_bfloat16"] = _one_step(model(device), drows, dnorms, ddraws, didx, torch.bfloat16)
    ref_loss, ref_grad, _ = runs["cpu_float64"]
    err = {k: {"loss": abs((v[0] - ref_loss) / ref_loss).item(),
               "grad": ((v[1] - ref_grad).norm() / ref_grad.norm()).item()} for k, v in runs.items()}
    tol = {}
    for q in ("loss", "grad"):
        f32 = max(10 * err["cpu_float32"][q], STEP_FLOOR[q])
        bf = err["cpu_bfloat16"][q]
        tol["device_float32", q] = f32
        tol["device_tf32", q] = max(4 * bf, 2.0**-11)
        tol["device_bfloat16", q] = max(4 * bf, 2.0**-8)
    out = {"terms": list(runs["cpu_float64"][2]), "loss_float64": ref_loss.item(),
           "terms_float64": runs["cpu_float64"][2], "terms_device_float32": runs["device_float32"][2],
           "rel_error": err, "tol": {f"{k}/{q}": v for (k, q), v in tol.items()},
           "loss_after_adam_step_device": after[0].item()}
    bad = [f"{k} {q}: {err[k][q]:.2e} > {v:.2e}" for (k, q), v in tol.items() if not err[k][q] <= v]
    if not math.isfinite(after[0].item()) or not torch.isfinite(after[1]).all():
        bad.append("non-finite loss or gradient after an Adam step on the device")
    out["ok"], out["failures"] = not bad, bad
    return out


def self_check(s: Session, device: torch.device) -> dict:
    out = {}
    for name, fn in (("render", _render_check), ("jet", _jet_check), ("step", _step_check)):
        t = time.monotonic()
        try:
            out[name] = fn(device)
        except Exception as exc:
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        out[name]["seconds"] = round(time.monotonic() - t, 2)
        r = out[name]
        if "error" in r:
            summary = r["error"]
        elif name == "render":
            summary = "relative to the largest value: " + ", ".join(f"{k} {r[k]['rel_to_max']:.1e}" for k in RENDER_TOL)
        elif name == "jet":
            summary = ", ".join(f"{k} {v:.1e}" for k, v in r.items() if isinstance(v, float) and k != "seconds")
        else:
            summary = "relative to float64: " + ", ".join(f"{k} loss {v['loss']:.1e} grad {v['grad']:.1e}"
                                                          for k, v in r["rel_error"].items() if k != "cpu_float64")
        s.log(f"self-check {name}: {'ok' if r['ok'] else 'FAILED'} ({summary}; {r['seconds']:.1f} s)")
        for f in r.get("failures", []):
            s.log(f"  {f}")
    out["ok"] = all(v["ok"] for v in out.values())
    return out


# --------------------------------------------------------------------------------------
# 2. Benchmark

def _matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a square matmul (TF32 on for float32)."""
    n, reps = (8192, 20) if device.type == "cuda" else (512, 3)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    with train.tf32(device, True):
        for _ in range(2):
            a @ b
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def _render_rate(device: torch.device, order: int) -> float:
    n = (2048 if order == 1 else 256) if device.type == "cuda" else (16 if order == 1 else 2)
    render.render(sampling.sample_vertices(min(n, 64), start=7000).to(device), order=order)  # warm-up
    _sync(device)
    v = sampling.sample_vertices(n, start=9000).to(device)
    t = time.perf_counter()
    render.render(v, order=order)
    _sync(device)
    return n / (time.perf_counter() - t)


def _bench_step(device, width, order, precision, batch, deadline, peak) -> dict:
    """Time the extended training step (gather, extended pass, terms, backward, Adam) on
    random data of the real shapes, all on the device; no host sync inside the timed loop."""
    R = 7 if order == 1 else 28
    terms = (T.E0(), T.E1()) if order == 1 else (T.E0(), T.E1(), T.E2())
    model = jets.MLP((width, width, width, 128), generator=torch.Generator().manual_seed(0)).to(device)
    rows_per_step = batch * R
    flops = 3 * 2 * rows_per_step * model.n_weights()
    est = flops / (0.4 * peak) + (0.002 if device.type == "cuda" else 0.01)  # 40 % of the peak
    if time.monotonic() + 6 * est > deadline:
        return {"skipped": f"estimated {6 * est:.1f} s for 6 steps, more than the "
                           f"{max(0.0, deadline - time.monotonic()):.1f} s left to the benchmark"}
    g = torch.Generator(device=device).manual_seed(0)
    rows = types.SimpleNamespace(
        rows=torch.randn(batch, R, jets.INPUTS, device=device, generator=g),
        target=torch.randn(batch, 9, device=device, generator=g),
        target_d1=torch.randn(batch, 6, 9, device=device, generator=g),
        target_d2=torch.randn(batch, 21, 9, device=device, generator=g) if order == 2 else None, grad_O=None)
    norms = T.Norms(n=1.0, n_i=torch.ones(6, device=device), D=torch.ones(9, device=device),
                    n_ij=torch.ones(21, device=device) if order == 2 else None)
    draws = T.Epoch(dirs={}, d2O={})
    idx = torch.randperm(batch, device=device, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if precision == "bfloat16" else None

    def step():
        with jets.matmul_precision(model, dtype):
            loss = sum(T.evaluate(model, rows, idx, terms, norms, draws).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with train.tf32(device, True):
        t = time.perf_counter()
        step()  # warm-up (kernel selection, allocator)
        _sync(device)
        first = time.perf_counter() - t
        if time.monotonic() + 4 * first > deadline:  # the estimate was off: stop here
            return {"skipped": f"the first step took {first:.2f} s; no time left to time more",
                    "first_step_ms": round(1e3 * first, 1)}
        t = time.perf_counter()
        step()
        _sync(device)
        one = time.perf_counter() - t
        n = int(max(3, min(50, 0.5 / max(one, 1e-6))))
        if time.monotonic() + n * one > deadline:
            n = max(1, int((deadline - time.monotonic()) / max(one, 1e-6)))
        t = time.perf_counter()
        for _ in range(n):
            step()
        _sync(device)
        dt = (time.perf_counter() - t) / n
    return {"rows_per_step": rows_per_step, "weights": model.n_weights(), "steps": n, "step_ms": round(1e3 * dt, 3),
            "tflops": round(flops / dt / 1e12, 3), "fraction_of_peak": round(flops / dt / peak, 3)}


def benchmark(s: Session, device: torch.device, widths, batch: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    out = {"budget_s": round(seconds, 1), "batch": batch, "flops_rule": "3 x 2 x rows x weights per step"}
    out["render_images_per_s"] = {o: round(_render_rate(device, o), 2) for o in (1, 2)}
    s.log(f"render: {out['render_images_per_s'][1]:.0f} images/s at order 1, "
          f"{out['render_images_per_s'][2]:.1f} at order 2")
    peaks = {"tf32": _matmul_peak(device, torch.float32), "bfloat16": _matmul_peak(device, torch.bfloat16)}
    out["matmul_peak_tflops"] = {k: round(v / 1e12, 3) for k, v in peaks.items()}
    s.log(f"matmul peak: {out['matmul_peak_tflops']['tf32']:.2f} TFLOP/s TF32, "
          f"{out['matmul_peak_tflops']['bfloat16']:.2f} bfloat16")
    out["steps"] = []
    for width in sorted(widths):
        for order in (1, 2):
            for precision in ("tf32", "bfloat16"):
                row = {"L": width, "order": order, "precision": precision}
                try:
                    row.update(_bench_step(device, width, order, precision, batch, deadline, peaks[precision]))
                except Exception as exc:  # out of memory above all: recorded, the next size tried
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                out["steps"].append(row)
                what = row.get("skipped") or row.get("error") or \
                    f"{row['step_ms']:.2f} ms/step, {row['tflops']:.2f} TFLOP/s ({100 * row['fraction_of_peak']:.0f} % of peak)"
                s.log(f"step L={width} order {order} {precision}: {what}")
    return out


# --------------------------------------------------------------------------------------
# 3. Training

def priority(preset) -> list[store.Experiment]:
    """Every experiment of `preset` in the order a GPU window trains them: Tables 1 and 2
    (conventional and first-derivative training, smallest width first), then robust training,
    its trade-off epoch and Gaussian noise at the smallest width (256 at the paper's presets),
    then Table 6 at that width (the paper's E2 and, where the preset has it, E2 x e2_weight),
    then everything else in experiments.all_experiments order (parents before children)."""
    p = presets.get(preset)
    w0 = min(p.widths)
    first = [experiments.accuracy(p, m, w) for w in sorted(p.widths) for m in ("conventional", "first")]
    first += [experiments.robust(p, experiments.Robust(), w0), experiments.robust(p, experiments.Robust(tradeoff=True), w0),
              experiments.gaussian(p, experiments.TABLE5_SIGMA, w0), experiments.accuracy(p, "second", w0)]
    if p.e2_weight:
        first.append(experiments.accuracy(p, "second", w0, e2_weight=p.e2_weight))
    every = experiments.all_experiments(p)
    keys = {e.key() for e in every}
    out = {e.key(): e for e in first if e.key() in keys}
    out.update({e.key(): e for e in every if e.key() not in out})
    return list(out.values())


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu").get("epoch"))
    except Exception:
        return None


def _data_seconds(exp: store.Experiment, rates: dict) -> float:
    """Estimated seconds to render `exp`'s data set (0 when cached)."""
    if data.cache_path(exp.data, data.default_cache_dir()).exists():
        return 0.0
    rate = rates.get(exp.data.order) or rates.get(str(exp.data.order))
    return 1.2 * (exp.data.n_train + exp.data.n_test) / rate + 5 if rate else 0.0  # + saving it


def training(s: Session, device: torch.device, preset: str, work: Path, reserve: float, rates: dict,
             resume: Path | None) -> dict:
    order = priority(preset)
    pending, done, stale = [], [], []
    for e in order:
        try:
            (done if store.load(e) is not None else pending).append(e)
        except (store.StaleResult, ValueError) as exc:  # not ours to retrain over
            stale.append(f"{e.name}: {exc}")
    s.log(f"{preset}: {len(order)} networks, {len(done)} stored, {len(pending)} pending, {len(stale)} stale or "
          f"corrupt (left alone)")
    if resume is not None:
        for line in _place_checkpoints(resume, work, {e.key(): e for e in pending}, dry_run=False):
            s.log(f"resume: {line}")
    for e in pending:  # presets whose checkpoints are committed beside the results resume from them
        src, dst = e.checkpoint_path(), e.checkpoint_path(work)
        if src != dst and src.exists() and (_checkpoint_epoch(src) or 0) > (_checkpoint_epoch(dst) or -1):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            s.log(f"{e.name}: resuming from {src} (epoch {_checkpoint_epoch(src)})")
    out = {"networks": len(order), "stored_before": len(done), "pending": len(pending), "stale_or_corrupt": stale,
           "trained": [], "unfinished": [], "failed": [], "not_started": []}
    for i, e in enumerate(pending):
        left = s.left() - reserve
        if left < max(2.0, 0.02 * s.budget):
            out["not_started"] += [{"name": x.name, "key": x.key(), "why": "budget spent"} for x in pending[i:]]
            s.log(f"budget spent: {len(pending) - i} pending networks not started")
            break
        need = _data_seconds(e, rates)
        if need > left:
            why = f"its data set would take ~{need:.0f} s to render, {left:.0f} s left"
            out["not_started"].append({"name": e.name, "key": e.key(), "why": why})
            s.log(f"{e.name}: not started ({why})")
            continue
        t = time.monotonic()
        s.log(f"{e.name}: training ({left:.0f} s left)")
        try:
            res = store.run(e, device=str(device), root=work, progress=False, time_limit=left)
        except KeyboardInterrupt:  # Ctrl-C: train.py saved a checkpoint at the epoch's end; pack what there is
            out["unfinished"].append({"name": e.name, "key": e.key(), "epoch": _checkpoint_epoch(e.checkpoint_path(work)),
                                      "epochs": e.recipe.epochs, "seconds": round(time.monotonic() - t, 1)})
            out["not_started"] += [{"name": x.name, "key": x.key(), "why": "interrupted"} for x in pending[i + 1:]]
            s.report["errors"].append(f"train {e.name}: interrupted")
            s.log(f"{e.name}: interrupted; packing what there is")
            break
        except Exception as exc:
            out["failed"].append({"name": e.name, "key": e.key(), "error": f"{type(exc).__name__}: {exc}",
                                  "traceback": traceback.format_exc()})
            s.report["errors"].append(f"train {e.name}: {type(exc).__name__}: {exc}")
            s.log(f"{e.name}: FAILED ({type(exc).__name__}: {exc})")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        took = round(time.monotonic() - t, 1)
        if res is None:
            epoch = _checkpoint_epoch(e.checkpoint_path(work))
            out["unfinished"].append({"name": e.name, "key": e.key(), "epoch": epoch, "epochs": e.recipe.epochs,
                                      "seconds": took})
            s.log(f"{e.name}: stopped at epoch {epoch} of {e.recipe.epochs} by the budget; checkpoint kept")
        else:
            m = res.metrics
            out["trained"].append({"name": e.name, "key": e.key(), "e_test": m["e_test"],
                                   "v_max_test": m.get("v_max_test"), "train_seconds": res.provenance["train_seconds"],
                                   "seconds": took})
            s.log(f"{e.name}: e_test {m['e_test']:.3f} %, {res.provenance['train_seconds']:.0f} s training, "
                  f"{took:.0f} s in all")
        s.save()
    out["ok"] = not out["failed"]
    return out


# --------------------------------------------------------------------------------------
# 4. The archive

def pack(s: Session, preset: str, work: Path, trained: dict) -> dict:
    """OUT/results.tar.gz: gpu-batch.json, then the results with their manifest, their
    weights, the checkpoints of unfinished runs, of parents whose child is unfinished and of
    finished networks without stored weights, each while the total stays under the limit."""
    by_key = {e.key(): e for e in priority(preset)}
    folder = work / preset
    results = sorted(folder.glob("*.json")) if folder.exists() else []
    results = [f for f in results if f.name != "manifest.json"]
    required = ([("results/" + preset + "/manifest.json", folder / "manifest.json")] if results else []) + \
        [(f"results/{preset}/{f.name}", f) for f in results]
    optional = [(f"results/{preset}/{f.name}", f) for f in sorted(folder.glob("*.pt"))] if folder.exists() else []
    unfinished = [r["key"] for r in trained.get("unfinished", [])]
    parents = [by_key[k].parent.key() for k in unfinished if by_key[k].parent is not None]
    finished = [r["key"] for r in trained.get("trained", []) if not by_key[r["key"]].weights_path(work).exists()]
    checkpoints = []
    for k in dict.fromkeys(unfinished + parents + finished):
        ck = by_key[k].checkpoint_path(work)
        if ck.exists():
            checkpoints.append({"name": by_key[k].name, "key": k, "epoch": _checkpoint_epoch(ck),
                                "epochs": by_key[k].recipe.epochs, "file": f"checkpoints/{preset}/{ck.name}",
                                "path": ck})
    optional += [(c["file"], c["path"]) for c in checkpoints]
    members, left_out, total = [], [], 0
    for arc, path in required + optional:
        size = path.stat().st_size + 1024
        if total + size > ARCHIVE_LIMIT and (arc, path) not in required:
            left_out.append({"file": arc, "bytes": size - 1024, "why": "does not fit the 16 MiB archive"})
            continue
        members.append((arc, path))
        total += size
    meta = {"preset": preset, "code_version": versions.code_version(), "date": versions.now(),
            "results": [f.name for f in results],
            "checkpoints": [{k: v for k, v in c.items() if k != "path"} for c in checkpoints
                            if (c["file"], c["path"]) in members],
            "left_out": left_out}
    target = s.out / ARCHIVE
    while True:
        blob = json.dumps(meta, indent=1).encode()
        with tarfile.open(target, "w:gz") as tar:
            info = tarfile.TarInfo(META)
            info.size, info.mtime = len(blob), int(time.time())
            tar.addfile(info, io.BytesIO(blob))
            for arc, path in members:
                tar.add(path, arcname=arc, recursive=False)
        size = target.stat().st_size
        if size <= FILE_LIMIT or not [m for m in members if m not in required]:
            break
        arc, path = members.pop()  # gzip grew it past the limit (never seen): drop the last optional file
        meta["left_out"].append({"file": arc, "bytes": path.stat().st_size, "why": "archive over 16 MiB"})
        meta["checkpoints"] = [c for c in meta["checkpoints"] if c["file"] != arc]
    for item in meta["left_out"]:
        s.log(f"left out of the archive: {item['file']} ({item['bytes'] / 2**20:.1f} MiB)")
    s.log(f"{ARCHIVE}: {size / 2**20:.2f} MiB, {len(members)} files besides {META}")
    return {"path": str(target), "bytes": size, "members": [m for m, _ in members], "left_out": meta["left_out"],
            "checkpoints": meta["checkpoints"], "ok": size <= FILE_LIMIT}


# --------------------------------------------------------------------------------------
# The command

def main(a, device: str) -> int:
    started = time.monotonic()
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SystemExit(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if os.environ.get("CUBELIB_NO_TRAIN"):
        raise SystemExit("CUBELIB_NO_TRAIN is set, but gpu-batch trains: unset it")
    out = Path(a.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"--out {out}: must be an empty folder or not exist (it receives log.txt, report.json and "
                         f"{ARCHIVE} only)")
    resume = Path(a.resume) if a.resume else None
    if resume is not None and not resume.is_file():
        raise SystemExit(f"--resume {resume}: no such archive")
    out.mkdir(parents=True, exist_ok=True)
    s = Session(out, a.budget, started)
    s.report.update(command="gpu-batch", preset=a.preset, budget_s=a.budget, date=versions.now(),
                    environment=_environment(device), results_root_checked=str(store.results_root()),
                    cache=str(data.default_cache_dir()))
    s.log(f"gpu-batch --preset {a.preset} --device {device} --budget {a.budget:g}: "
          f"{s.report['environment']['name']}, torch {torch.__version__}")
    work = out / "work" / "results"
    try:
        check = s.stage("self_check", self_check, s, device)
        if not check["ok"]:
            s.log("self-check failed: nothing trained; see report.json for the numbers")
            s.report["exit"] = 2
            s.save()
            print(f"gpu-batch: self-check failed on {device} ({', '.join(k for k, v in check.items() if isinstance(v, dict) and not v.get('ok'))}); "
                  f"details in {out / 'report.json'}", file=sys.stderr)
            return 2
        reserve = max(10.0, 0.05 * a.budget)
        bench_seconds = max(0.0, min(0.1 * a.budget, 60.0, s.left() - reserve))
        bench = s.stage("benchmark", benchmark, s, device, a.bench_widths, a.bench_batch, bench_seconds)
        rates = bench.get("render_images_per_s", {})
        trained = s.stage("train", training, s, device, a.preset, work, reserve, rates, resume)
        packed = s.stage("archive", pack, s, a.preset, work, trained)
        if packed.get("ok"):
            shutil.rmtree(out / "work", ignore_errors=True)
        files = sorted(p.name for p in out.iterdir())
        s.report["files"] = files
        s.report["exit"] = 0 if not s.report["errors"] else 1
        s.log(f"done in {s.elapsed():.0f} s of {a.budget:g}: {', '.join(files)}"
              + (f"; {len(s.report['errors'])} error(s)" if s.report["errors"] else ""))
        s.save()
        return s.report["exit"]
    finally:
        s.close()


# --------------------------------------------------------------------------------------
# Import

_RESULT = re.compile(r"^results/(?P<preset>[a-z-]+)/(?P<name>[A-Za-z0-9._-]+)-(?P<key>[0-9a-f]{16})\.(?P<ext>json|pt)$")
_CHECKPOINT = re.compile(r"^checkpoints/(?P<preset>[a-z-]+)/(?P<name>[A-Za-z0-9._-]+)-(?P<key>[0-9a-f]{16})\.pt$")


def _read_archive(path: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                raise ValueError(f"{path}: {m.name} is not a plain file")
            out[m.name] = tar.extractfile(m).read()
    return out


def _write(path: Path, blob: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp-import")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def _checkpoint_meta(blob: bytes) -> dict:
    state = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    return {"key": state.get("key"), "epoch": state.get("epoch")}


def _place_checkpoints(archive: Path, root: Path | None, wanted: dict, dry_run: bool,
                       files: dict | None = None) -> list[str]:
    """Put the archive's checkpoints of experiments in `wanted` (key -> Experiment) where
    store.run resumes them (exp.checkpoint_path(root)), each unless one at least as far along
    is there already.  Lines saying what was (or would be) done."""
    files = _read_archive(archive) if files is None else files
    lines = []
    for name, blob in sorted(files.items()):
        m = _CHECKPOINT.match(name)
        if not m or m["key"] not in wanted:
            continue
        exp = wanted[m["key"]]
        meta = _checkpoint_meta(blob)
        if meta["key"] != exp.recipe.key() + ":" + exp.data.key():
            raise ValueError(f"{name}: a checkpoint of another recipe or data set than {exp.name}")
        dest = exp.checkpoint_path(root)
        have = None
        if dest.exists():
            try:
                have = _checkpoint_meta(dest.read_bytes())
            except Exception:
                have = {"epoch": None}
        if have is not None and (have["epoch"] is None or have["epoch"] >= meta["epoch"]):
            lines.append(f"checkpoint of {exp.name}: kept {dest} (epoch {have['epoch']}; the archive's: "
                         f"{meta['epoch']})")
            continue
        if not dry_run:
            _write(dest, blob)
        lines.append(f"checkpoint of {exp.name}: epoch {meta['epoch']} of {exp.recipe.epochs} "
                     f"{'would go' if dry_run else 'written'} to {dest}")
    return lines


def import_archive(archive, dry_run: bool = False, root: Path | None = None) -> list[str]:
    """Unpack a gpu-batch archive into the result store (results/<preset>/, or `root`):
    results with their weights and manifest entries, checkpoints where store.run resumes
    them.  Raises ValueError, writing nothing, when any result is not an experiment of the
    preset, was made by code not accepted here, fails its checksum, or differs from a result
    already stored.  Returns the lines saying what was imported (or would be, `dry_run`)."""
    archive = Path(archive)
    files = _read_archive(archive)
    if META not in files:
        raise ValueError(f"{archive}: not a gpu-batch archive (no {META})")
    meta = json.loads(files[META])
    preset = meta.get("preset")
    if preset not in presets.NAMES:
        raise ValueError(f"{archive}: unknown preset {preset!r}; allowed: {', '.join(presets.NAMES)}")
    root = root or store.results_root()
    exps = {e.key(): e for e in experiments.all_experiments(preset)}
    manifest_name = f"results/{preset}/manifest.json"
    manifest = json.loads(files[manifest_name]) if manifest_name in files else {}
    accepted = store.accepted_versions(root)
    problems, plan, lines, same = [], [], [], set()
    for name, blob in sorted(files.items()):
        if name in (META, manifest_name) or _CHECKPOINT.match(name):
            if _CHECKPOINT.match(name) and _CHECKPOINT.match(name)["preset"] != preset:
                problems.append(f"{name}: not of preset {preset}")
            continue
        m = _RESULT.match(name)
        if not m or m["preset"] != preset:
            problems.append(f"{name}: not a result file of preset {preset}")
            continue
        exp = exps.get(m["key"])
        if exp is None or exp.name != m["name"]:
            problems.append(f"{name}: key {m['key']} is not an experiment of preset {preset} with the current "
                            "experiments.py (another recipe or data set)")
            continue
        entry = manifest.get(m["key"])
        digest = hashlib.sha256(blob).hexdigest()
        if entry is None or entry.get("sha256", {}).get(Path(name).name) != digest:
            problems.append(f"{name}: its checksum is not the one in the archive's manifest")
            continue
        if m["ext"] == "json":
            raw = json.loads(blob)
            if raw.get("key") != exp.key() or raw.get("schema") != store.SCHEMA:
                problems.append(f"{name}: made for another key or schema")
                continue
            made_by = raw.get("provenance", {}).get("code_version")
            if made_by not in accepted:
                problems.append(f"{name}: made by code {made_by}, not the current code {versions.code_version()} nor "
                                "one recorded as equivalent (scripts/check_equivalence.py)")
                continue
            dest = exp.path(root)
        else:
            if f"results/{preset}/{exp.name}-{exp.key()}.json" not in files:
                problems.append(f"{name}: weights without their result")
                continue
            dest = exp.weights_path(root)
        if dest.exists():
            if dest.read_bytes() == blob:
                same.add(exp.name)
                continue
            problems.append(f"{name}: refusing to overwrite {dest}, which holds a different result")
            continue
        plan.append((m["ext"], exp, dest, blob))
    if problems:
        raise ValueError(f"{archive}: nothing imported:\n  " + "\n  ".join(problems))
    verb = "would import" if dry_run else "imported"
    for ext, exp, dest, blob in sorted(plan, key=lambda x: x[0] == "json"):  # weights before their result
        if not dry_run:
            _write(dest, blob)
        lines.append(f"{verb}: {dest}")
    if not dry_run:
        for ext, exp, dest, blob in plan:
            if ext == "json":
                store.add_to_manifest(exp, json.loads(blob), root)
    if same:
        lines.append(f"unchanged: {len(same)} result(s) already stored with identical content")
    if any(ext == "json" for ext, *_ in plan):
        lines.append(f"{'would merge' if dry_run else 'merged'} {sum(ext == 'json' for ext, *_ in plan)} entries into "
                     f"{store.manifest_path(preset, root)}")
    lines += _place_checkpoints(archive, root, exps, dry_run, files)
    if not plan and not any(line.startswith("checkpoint") and "kept" not in line for line in lines):
        lines.append("nothing to import: everything in the archive is stored already")
    else:
        lines.append(f"{'would import' if dry_run else 'imported'} {sum(ext == 'json' for ext, *_ in plan)} result(s) "
                     f"of preset {preset} into {root / preset}")
    return lines


def import_main(archive: str, dry_run: bool) -> int:
    if not Path(archive).is_file():
        raise SystemExit(f"import: {archive}: no such file")
    try:
        lines = import_archive(archive, dry_run=dry_run)
    except (ValueError, tarfile.TarError, OSError) as exc:
        raise SystemExit(f"import: {exc}")
    for line in lines:
        print(line)
    return 0
