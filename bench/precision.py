"""float32 against bfloat16 for the extended training step, each against its measured peak.

For each precision, in one run:
  * the peak: a plain matmul of the first layer's shape (rows x 1681 @ 1681 x L), GFLOP/s;
  * a first-order (7 rows per image) and a second-order (28 rows) training step of
    1681-L-L-L-128-9, forward + backward, in GFLOP/s (matmul FLOPs only: 3 x 2 x rows x
    weights) and as a fraction of that precision's peak;
  * the step's time in bfloat16 against float32 (bf16 = `Recipe(precision="bfloat16")`, i.e.
    jets.matmul_precision: matmul operands rounded to bfloat16, products accumulated in
    float32; weights, the jet arithmetic and the optimiser in float32).
Absolute numbers depend on the (shared) machine; the ratios are measured in the same run.

    python bench/precision.py [--device cpu|cuda] [--width 256] [--batch 2310] [--repeat 3]
"""
import argparse
import time

import torch

from cubelib import jets
from cubelib.geometry import PAIRS


def best_time(fn, device, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--width", type=int, default=256, help="hidden width L (>= 1)")
    p.add_argument("--batch", type=int, default=2310, help="images per step (97020 / 42 = 2310 in the paper)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions; the best is kept (>= 1)")
    a = p.parse_args()
    if a.width < 1 or a.batch < 1 or a.repeat < 1:
        p.error("--width, --batch and --repeat must be positive")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    dev, B = a.device, a.batch
    torch.manual_seed(0)
    model = jets.MLP((a.width, a.width, a.width, 128)).to(dev)
    weights = sum(w.numel() for w in model.weights)
    name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; L = {a.width}; {B} images per step")

    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        label = "fp32" if dtype == torch.float32 else "bf16"
        x = torch.rand(B * 7, 1681, device=dev, dtype=dtype)
        w = torch.rand(1681, a.width, device=dev, dtype=dtype)
        peak = 2 * B * 7 * 1681 * a.width / best_time(lambda: x @ w, dev, a.repeat) / 1e9
        matmul_dtype = None if dtype == torch.float32 else dtype
        for order, rows in ((1, 7), (2, 28)):
            h = torch.randn(B, rows, 1681, device=dev) * 0.1
            h[:, 0] = torch.rand(B, 1681, device=dev)
            pairs = PAIRS if order == 2 else None

            def step():
                for q in model.parameters():
                    q.grad = None
                with jets.matmul_precision(model, matmul_dtype):
                    y, y1, y2 = model.jet_rows(h, 6, pairs)
                loss = (y**2).sum() + (y1**2).sum() + ((y2**2).sum() if order == 2 else 0)
                loss.backward()

            t = best_time(step, dev, a.repeat)
            flops = 3 * 2 * B * rows * weights
            results[label, order] = t
            print(f"{label}: peak {peak:7.1f} GFLOP/s | order {order} step {t:7.3f} s, {flops / t / 1e9:7.1f} GFLOP/s"
                  f" = {flops / t / 1e9 / peak:5.1%} of peak")
    for order in (1, 2):
        print(f"order {order}: bf16 step time / fp32 step time = {results['bf16', order] / results['fp32', order]:.2f}")


if __name__ == "__main__":
    main()
