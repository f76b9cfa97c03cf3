"""Epochs with the next epoch's random draws made in a worker thread (train.train's default)
against drawn in the training thread, measured in one run: robust and Jacobian training of a
preset's first `--epochs` epochs, the two modes interleaved `--repeats` times, so a noisy
neighbour hits them alike.  Prints seconds per epoch of each and the ratio.  The gain needs a
free core (or a GPU) for the worker: with torch on one thread and another core idle, a robust
epoch can at best fall to its steps' share (bench/epoch_parts.py).

    python bench/prefetch.py [--preset quick] [--width 128] [--epochs 5] [--repeats 2] [--device cpu]
"""
import argparse

import torch

from cubelib import data, experiments, presets, train
from cubelib.experiments import Robust


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--preset", default="quick", choices=presets.NAMES)
    a.add_argument("--width", type=int, default=128, help="hidden width L (>= 1)")
    a.add_argument("--epochs", type=int, default=5, help="epochs timed per run (>= 2: the first draw is never ahead)")
    a.add_argument("--repeats", type=int, default=2, help="runs of each mode (>= 1)")
    a.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = a.parse_args()
    if args.width < 1 or args.epochs < 2 or args.repeats < 1:
        a.error("--width >= 1, --epochs >= 2 and --repeats >= 1")
    p = presets.get(args.preset)
    ds = data.load(data.dataset_config(p), device=args.device)
    print(f"preset {p.name}: {p.n_train} images, {p.batches} batches, L = {args.width}, "
          f"{torch.get_num_threads()} torch threads, {args.device}")
    print(f"{'recipe':>10}  {'ahead s/epoch':>13}  {'serial s/epoch':>14}  serial / ahead")
    for name, exp in (("robust", experiments.robust(p, Robust(), args.width)),
                      ("jacobian", experiments.jacobian(p, 1.0, args.width))):
        seconds = {True: [], False: []}
        for _ in range(args.repeats):
            for ahead in (True, False):
                res = train.train(exp.recipe, ds, device=args.device, progress=False, until_epoch=args.epochs,
                                  prefetch=ahead)
                seconds[ahead].append(res.seconds / args.epochs)  # epochs' time without setup or evaluation
        best = {k: min(v) for k, v in seconds.items()}
        print(f"{name:>10}  {best[True]:13.2f}  {best[False]:14.2f}  {best[False] / best[True]:.2f}")


if __name__ == "__main__":
    main()
