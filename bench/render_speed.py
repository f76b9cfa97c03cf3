"""Renderer throughput: images per second for order 0, 1 and 2, and data-set build times.

Prints ratios measured in one run (the machines are shared and noisy).  On a CUDA device
(--device cuda) it also times the paper's training set with second derivatives.

    python bench/render_speed.py [--device cpu|cuda] [--n 2048] [--full]
"""
import argparse
import time

import torch

from cubelib import render, sampling


def rate(vertices, order, device, repeat=2):
    v = vertices.to(device)
    render.render(v[:64], order=order)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        render.render(v, order=order)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return len(v) / best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--n", type=int, default=2048, help="images per measurement (>= 64)")
    p.add_argument("--full", action="store_true", help="also time the paper-size sets (97 020 images)")
    a = p.parse_args()
    if a.n < 64:
        p.error("--n must be at least 64")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    name = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; float64")
    v = sampling.sample_vertices(a.n)
    r0 = rate(v, 0, a.device)
    r1 = rate(v, 1, a.device)
    r2 = rate(v[: max(64, a.n // 8)], 2, a.device)
    print(f"order 0: {r0:9.0f} images/s")
    print(f"order 1: {r1:9.0f} images/s   (order 1 / order 0 time: {r0 / r1:.2f}x)")
    print(f"order 2: {r2:9.0f} images/s   (order 2 / order 1 time: {r1 / r2:.2f}x; 12 displaced renders + 1)")
    for label, n in [("quick", 9702 + 2016), ("paper", 97020 + 20160)]:
        print(f"estimated {label} set ({n} images): order 1 {n / r1:7.1f} s, order 2 {n / r2:7.1f} s")
    if a.full:
        for order in (1, 2) if a.device == "cuda" else (1,):
            t = time.perf_counter()
            vv = sampling.sample_vertices(97020).to(a.device)
            for i in range(0, len(vv), 4096 if order == 1 else 512):
                render.render(vv[i:i + (4096 if order == 1 else 512)], order=order)
            if a.device == "cuda":
                torch.cuda.synchronize()
            print(f"paper training set, order {order}: {time.perf_counter() - t:.1f} s (measured)")


if __name__ == "__main__":
    main()
