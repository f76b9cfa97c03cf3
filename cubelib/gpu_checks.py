"""What a GPU window checks and measures before it trains (stages 1 and 2 of `gpu-batch`).

1. `self_check`: the renderer on the device against the CPU in float64, the extended pass
   against nested torch.func jvps on the device in float64, and one training step (every
   kind of term: E0, E1, E2, R, R2) on the device against the CPU in float64, float32, TF32
   and bfloat16.  Each check is off by at most its tolerance (RENDER_TOL, JET_TOL,
   STEP_FLOOR and the rules above `_step_check`) or the window trains nothing.
2. `benchmark`: the render rate, a matmul's peak in TF32 and in bfloat16, and the extended
   training step at the paper's sizes (L = 256 .. 2048, batch 2310, orders 1 and 2) in both,
   as TFLOP/s against those peaks; a size whose estimated cost exceeds the stage's time is
   skipped.

Both take `log`, a function of one line of text (the window's log).  Only torch and numpy
are needed.
"""
from __future__ import annotations

import math
import time
import traceback
import types

import torch

from . import data, jets, render, sampling, train, trainset
from . import terms as T
from .geometry import PAIRS
from .recipes import Phase, Recipe


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def self_check(log, device: torch.device) -> dict:
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
        log(f"self-check {name}: {'ok' if r['ok'] else 'FAILED'} ({summary}; {r['seconds']:.1f} s)")
        for f in r.get("failures", []):
            log(f"  {f}")
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


def benchmark(log, device: torch.device, widths, batch: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    out = {"budget_s": round(seconds, 1), "batch": batch, "flops_rule": "3 x 2 x rows x weights per step"}
    out["render_images_per_s"] = {o: round(_render_rate(device, o), 2) for o in (1, 2)}
    log(f"render: {out['render_images_per_s'][1]:.0f} images/s at order 1, "
          f"{out['render_images_per_s'][2]:.1f} at order 2")
    peaks = {"tf32": _matmul_peak(device, torch.float32), "bfloat16": _matmul_peak(device, torch.bfloat16)}
    out["matmul_peak_tflops"] = {k: round(v / 1e12, 3) for k, v in peaks.items()}
    log(f"matmul peak: {out['matmul_peak_tflops']['tf32']:.2f} TFLOP/s TF32, "
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
                log(f"step L={width} order {order} {precision}: {what}")
    return out
