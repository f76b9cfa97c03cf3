"""An epoch's random directions (D_low and D_mid, §4.6.1) drawn in blocks of
`directions.BLOCK` images (the library's way) against in one draw of all images (the formula
as written), measured in one run: the two alternate `--repeats` times, so a noisy neighbour
hits them alike.  Prints seconds per draw of each, the ratio, and whether the two are equal
bit for bit (they must be: the blocks continue the generator's stream exactly).

    python bench/directions.py [--images 97020] [--repeats 2]
"""
import argparse
import time

import torch

from cubelib import directions

SIZE = directions.SIZE


def one_draw(n, r, generator):
    """U(r) for n images in one randn and two batched matmuls (the library before blocks)."""
    noise = torch.randn(n, SIZE + 2 * r, SIZE + 2 * r, generator=generator, dtype=torch.float32)
    g = directions.gaussian_matrix(r, torch.float32).sum(0)
    T = torch.zeros(SIZE, SIZE + 2 * r, dtype=torch.float32)
    for i in range(SIZE):
        T[i, i:i + 2 * r + 1] = g
    U = T @ noise @ T.T
    return U / U.flatten(1).norm(dim=1)[:, None, None]


def families(n, generator, smooth):
    """D_low and D_mid as directions.low and directions.mid build them, from `smooth`."""
    s = lambda r: smooth(n, r, generator)
    low = directions._unit(s(15) + s(8) + 0.4 * s(2) + 0.2 * s(1))
    mid = directions._unit(s(2) + s(1))
    return low, mid


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--images", type=int, default=97020, help="directions per family (>= 1; the paper's training set)")
    a.add_argument("--repeats", type=int, default=2, help="draws of each way (>= 1)")
    args = a.parse_args()
    if args.images < 1 or args.repeats < 1:
        a.error("--images >= 1 and --repeats >= 1")
    blocks = lambda n, r, g: directions.smooth(n, r, g, dtype=torch.float32)
    print(f"{args.images} images, D_low and D_mid in float32, {torch.get_num_threads()} torch threads, "
          f"blocks of {directions.BLOCK}")
    seconds = {"blocks": [], "one draw": []}
    drawn = {}
    for _ in range(args.repeats):
        for name, smooth in (("blocks", blocks), ("one draw", one_draw)):
            t = time.perf_counter()
            drawn[name] = families(args.images, torch.Generator().manual_seed(0), smooth)
            seconds[name].append(time.perf_counter() - t)
    same = all(torch.equal(x, y) for x, y in zip(drawn["blocks"], drawn["one draw"]))
    best = {k: min(v) for k, v in seconds.items()}
    print(f"one draw {best['one draw']:.2f} s, blocks {best['blocks']:.2f} s (best of {args.repeats}): "
          f"one draw / blocks = {best['one draw'] / best['blocks']:.2f}; bit-identical: {same}")


if __name__ == "__main__":
    main()
