"""Cost of the extended forward/backward pass (cubelib.jets) in one training step.

For a first-order step (value + 6 tangents) and a second-order step (value + 6 + 21), prints
  * time of the extended step / time of a plain step over the same total number of rows
    (ideal 1.0: the extra work is only the elementwise sigmoid-jet arithmetic),
  * time of the extended step / time of the same step written with torch.func (vmap over jvp).
All ratios are measured in one run; absolute times depend on the (shared) machine.

    python bench/train_step.py [--device cpu|cuda] [--width 256] [--batch 231]
"""
import argparse
import time

import torch
from torch.func import jvp, vmap

from cubelib import jets
from cubelib.geometry import PAIRS


def timeit(fn, device, repeat=5):
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
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
    p.add_argument("--batch", type=int, default=231, help="images per step (97020 / 42 = 2310 on a GPU)")
    p.add_argument("--epoch-images", type=int, default=0,
                   help="also estimate one first-order epoch over this many images (97020 at the paper scale)")
    a = p.parse_args()
    if a.width < 1 or a.batch < 1:
        p.error("--width and --batch must be positive")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    dev = a.device
    torch.manual_seed(0)
    model = jets.MLP((a.width, a.width, a.width, 128)).to(dev)
    params = list(model.parameters())
    B = a.batch
    x = torch.rand(B, 1681, device=dev)
    d1 = torch.randn(B, 6, 1681, device=dev) * 0.1
    d2 = torch.randn(B, 21, 1681, device=dev) * 0.1
    name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; L = {a.width}; {B} images per step; float32")

    def backward(loss):
        for q in params:
            q.grad = None
        loss.backward()

    for order, rows in ((1, 7), (2, 28)):
        pairs = PAIRS if order == 2 else None

        stacked = torch.cat([x[:, None], d1] + ([d2] if order == 2 else []), 1)  # as training stores it

        def extended():
            y, y1, y2 = model.jet_rows(stacked, 6, pairs)
            loss = (y**2).sum() + (y1**2).sum() + ((y2**2).sum() if order == 2 else 0)
            backward(loss)

        xr = torch.rand(B * rows, 1681, device=dev)

        def plain():
            backward((model(xr) ** 2).sum())

        def functional():
            tangents = d1.transpose(0, 1)  # [6, B, n]
            y = model(x)
            y1 = vmap(lambda t: jvp(model, (x,), (t,))[1])(tangents)
            loss = (y**2).sum() + (y1**2).sum()
            if order == 2:
                ia = torch.tensor([i for i, _ in PAIRS], device=dev)
                ib = torch.tensor([j for _, j in PAIRS], device=dev)

                def second(ta, tb, tab):
                    inner = lambda z: jvp(model, (z,), (tb,))[1]
                    return jvp(inner, (x,), (ta,))[1] + jvp(model, (x,), (tab,))[1]
                y2 = vmap(second)(tangents[ia], tangents[ib], d2.transpose(0, 1))
                loss = loss + (y2**2).sum()
            backward(loss)

        t_ext, t_plain, t_func = (timeit(f, dev) for f in (extended, plain, functional))
        # matmul work of one step: forward 2*rows*in*out per layer, backward twice that
        sizes = model.sizes
        flops = 6 * B * rows * sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
        print(f"order {order} ({rows} rows per image): extended {t_ext * 1e3:8.1f} ms "
              f"({flops / t_ext / 1e12:.3f} TFLOP/s in matmuls) | extended / plain {t_ext / t_plain:5.2f} | "
              f"torch.func / extended {t_func / t_ext:5.2f}")
        if a.epoch_images and order == 1:
            steps = max(1, a.epoch_images // B)
            print(f"  one first-order epoch of {steps * B} images in {steps} steps: {steps * t_ext:.2f} s "
                  f"(paper, Table 1 on an A10: conventional L=2048 in 16 min / 2000 epochs = 0.48 s per epoch)")


if __name__ == "__main__":
    main()
