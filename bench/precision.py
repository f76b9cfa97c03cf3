"""float32 against bfloat16 for the extended training step, each against its measured peak.

For each precision, in one run:
  * the peak: a plain matmul of the first layer's shape (7 x batch rows x 1681 @ 1681 x L);
  * a first-order (7 rows per image) and a second-order (28 rows) training step of
    1681-L-L-L-128-9, forward + backward (cubelib.studies.precision.step_seconds), in GFLOP/s
    (matmul FLOPs only: 3 x 2 x rows x weights) and as a fraction of that precision's peak;
  * bf16's step time over fp32's (bf16 = `Recipe(precision="bfloat16")`, jets.matmul_precision:
    hidden layers' matmul operands and products rounded to bfloat16; weights, the output
    layer, the jet arithmetic and the optimiser in float32);
  * the second-order step's time over the first-order one's, per precision: an epoch of
    second- against first-derivative training is 42 such steps each (at the paper's batch);
  * with --compile, the same steps with the extended pass under torch.compile as training
    compiles it (Recipe.compiled) beside the eager ones, and their ratio (compiling takes
    seconds to a minute per shape and is not timed).
Absolute numbers depend on the (shared) machine; the ratios are measured in the same run.

    python bench/precision.py [--device cpu|cuda] [--width 256] [--batch 2310] [--repeat 3] [--compile]
"""
import argparse

import torch

from cubelib import jets
from cubelib.studies.precision import best_time, step_seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--width", type=int, default=256, help="hidden width L (>= 1)")
    p.add_argument("--batch", type=int, default=2310, help="images per step (97020 / 42 = 2310 in the paper)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions; the best is kept (>= 1)")
    p.add_argument("--compile", action="store_true", help="also time the steps with the extended pass under torch.compile")
    a = p.parse_args()
    if a.width < 1 or a.batch < 1 or a.repeat < 1:
        p.error("--width, --batch and --repeat must be positive")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    dev, B, L = a.device, a.batch, a.width
    weights = sum(w.numel() for w in jets.MLP((L, L, L, 128)).weights)
    name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; L = {L}; {B} images per step")
    seconds = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = torch.rand(B * 7, 1681, device=dev, dtype=dtype)
        w = torch.rand(1681, L, device=dev, dtype=dtype)
        peak = 2 * B * 7 * 1681 * L / best_time(lambda: x @ w, a.repeat, dev) / 1e9
        for kind in ("eager", "compiled") if a.compile else ("eager",):
            for order, rows in ((1, 7), (2, 28)):
                t = step_seconds(L, B, order, None if dtype == torch.float32 else dtype, a.repeat, dev,
                                 compiled=kind == "compiled")
                seconds[label, kind, order] = t
                rate = 3 * 2 * B * rows * weights / t / 1e9
                print(f"{label} {kind:>8}: peak {peak:7.1f} GFLOP/s | order {order} step {t:7.3f} s, "
                      f"{rate:7.1f} GFLOP/s = {rate / peak:5.1%} of peak")
    kinds = ("eager", "compiled") if a.compile else ("eager",)
    for kind in kinds:
        for order in (1, 2):
            print(f"{kind} order {order}: bf16 step time / fp32 step time = "
                  f"{seconds['bf16', kind, order] / seconds['fp32', kind, order]:.2f}")
    for label in ("fp32", "bf16"):
        for kind in kinds:
            print(f"{label} {kind}: second-order step / first-order step = "
                  f"{seconds[label, kind, 2] / seconds[label, kind, 1]:.2f}")
        if a.compile:
            for order in (1, 2):
                print(f"{label} order {order}: eager step / compiled step = "
                      f"{seconds[label, 'eager', order] / seconds[label, 'compiled', order]:.2f}")


if __name__ == "__main__":
    main()
