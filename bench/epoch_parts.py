"""Where an epoch's time goes, per recipe: the epoch's random draws (directions, noise) against
the training steps, measured in one run on a preset's cached data (the recipes interleaved,
so a noisy neighbour hits them alike).  Prints each part per epoch and its share, so the cost
of a schedule can be planned (on the CPU the directions of robust and Jacobian training cost
about as much as the steps) and a change to either part measured.

    python bench/epoch_parts.py [--preset quick] [--width 128] [--batches 8] [--device cpu]
"""
import argparse
import time

import torch

from cubelib import data, experiments, jets, presets, trainset
from cubelib import terms as T
from cubelib.experiments import Robust


def recipes(p, width):
    return {"conventional": experiments.accuracy(p, "conventional", width).recipe,
            "first": experiments.accuracy(p, "first", width).recipe,
            "gaussian": experiments.gaussian(p, experiments.TABLE5_SIGMA, width).recipe,
            "jacobian": experiments.jacobian(p, 1.0, width).recipe,
            "robust": experiments.robust(p, Robust(), width).recipe}


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--preset", default="quick", choices=presets.NAMES)
    a.add_argument("--width", type=int, default=128, help="hidden width L (>= 1)")
    a.add_argument("--batches", type=int, default=8, help="training steps timed per recipe (>= 1)")
    a.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = a.parse_args()
    if args.width < 1 or args.batches < 1:
        a.error("--width and --batches must be positive")
    p, dev = presets.get(args.preset), args.device
    ds = data.load(data.dataset_config(p), device=dev)
    print(f"preset {p.name}: {p.n_train} images, {p.batches} batches per epoch, L = {args.width}, "
          f"{torch.get_num_threads()} threads, {dev}")
    print(f"{'recipe':>13}  {'draws s/epoch':>13}  {'steps s/epoch':>13}  draws share")
    for name, recipe in recipes(p, args.width).items():
        rows, norms = trainset.prepare(recipe, ds, dev)
        model = jets.MLP(recipe.hidden).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(1)
        phase = recipe.phases[0]
        sync(dev)
        t = time.perf_counter()
        draws = trainset.draw_epoch(phase, rows, gen, dev)
        sync(dev)
        t_draw = time.perf_counter() - t
        chunks = torch.tensor_split(torch.randperm(len(rows), generator=gen).to(dev), recipe.batches)
        t = time.perf_counter()
        for idx in chunks[:args.batches]:
            loss = sum(T.evaluate(model, rows, idx, phase.terms, norms, draws).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(dev)
        t_steps = (time.perf_counter() - t) / min(args.batches, len(chunks)) * recipe.batches
        print(f"{name:>13}  {t_draw:13.2f}  {t_steps:13.2f}  {t_draw / (t_draw + t_steps):11.0%}")


if __name__ == "__main__":
    main()
