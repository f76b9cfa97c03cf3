"""glibc's allocator and the training step, measured in one run: the same training steps in
child processes with and without GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge
pages for malloc'd memory, glibc >= 2.35), alternated so a noisy neighbour hits both alike.

A training step allocates tensors of tens of MB and frees them again; glibc hands such blocks
back to the kernel, and the next step's allocation faults in fresh zeroed 4 KiB pages. With
huge pages a fault brings 2 MiB, so far fewer faults (and less kernel time) per step.  Prints
each recipe's step time, page faults and kernel share in both settings, and the time ratio.

    python bench/allocator.py [--preset quick] [--width 256] [--batch-size 2310] [--batches 4] [--rounds 2]

--batch-size sets the images per step (default: the preset's); the effect needs the paper's
2310 (blocks over glibc's 32 MiB mmap limit), which the quick data set can supply.
"""
import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

TUNABLE = "glibc.malloc.hugetlb=1"
RECIPES = ("first", "jacobian", "robust")


def child(preset: str, width: int, batches: int, batch_size: int | None):
    """Time `batches` steps of each recipe (after one untimed step) and print JSON."""
    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    from epoch_parts import recipes

    from cubelib import data, jets, presets, trainset
    from cubelib import terms as T

    p = presets.get(preset)
    ds = data.load(data.dataset_config(p))
    out = {}
    for name, recipe in recipes(p, width).items():
        if name not in RECIPES:
            continue
        if batch_size is not None:
            recipe = dataclasses.replace(recipe, batches=len(ds.train) // batch_size)
        rows, norms = trainset.prepare(recipe, ds, "cpu")
        model = jets.MLP(recipe.hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(1)
        phase = recipe.phases[0]
        draws = trainset.draw_epoch(phase, rows, gen, "cpu")
        chunks = torch.tensor_split(torch.randperm(len(rows), generator=gen), recipe.batches)
        for i, idx in enumerate(chunks[:batches + 1]):
            if i == 1:  # the first step allocates everything once: not timed
                t, ru = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            loss = sum(T.evaluate(model, rows, idx, phase.terms, norms, draws).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ru2 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)
        out[name] = {"step_s": (time.perf_counter() - t) / batches,
                     "faults_per_step": (ru2.ru_minflt - ru.ru_minflt) / batches,
                     "kernel_share": (ru2.ru_stime - ru.ru_stime) / cpu}
    print(json.dumps(out))


def run(args, tunable: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunable:
        env["GLIBC_TUNABLES"] = TUNABLE
    cmd = [sys.executable, __file__, "--child", "--preset", args.preset, "--width", str(args.width),
           "--batches", str(args.batches)] + ([] if args.batch_size is None else ["--batch-size", str(args.batch_size)])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--preset", default="quick")
    a.add_argument("--width", type=int, default=256, help="hidden width L (>= 1)")
    a.add_argument("--batches", type=int, default=4, help="training steps timed per recipe (>= 1)")
    a.add_argument("--batch-size", type=int, default=None, help="images per step (default: the preset's)")
    a.add_argument("--rounds", type=int, default=2, help="alternations of the two settings (>= 1)")
    a.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = a.parse_args()
    if args.width < 1 or args.batches < 1 or args.rounds < 1:
        a.error("--width, --batches and --rounds must be positive")
    from cubelib import presets
    p = presets.get(args.preset)
    if args.batch_size is not None:
        most = p.n_train // (args.batches + 1)  # the timed steps and one untimed
        if not 1 <= args.batch_size <= most:
            a.error(f"--batch-size must be in [1, {most}] for {args.batches} + 1 steps of preset {args.preset}")
    elif args.batches + 1 > p.batches:
        a.error(f"--batches must be in [1, {p.batches - 1}]: preset {args.preset} has {p.batches} batches an epoch "
                f"and one step is not timed (or set --batch-size)")
    if args.child:
        return child(args.preset, args.width, args.batches, args.batch_size)
    found = {False: [], True: []}
    for _ in range(args.rounds):
        for tunable in (False, True):
            found[tunable].append(run(args, tunable))
    best = {t: {r: min(runs, key=lambda x: x[r]["step_s"])[r] for r in RECIPES} for t, runs in found.items()}
    size = "the preset's batch" if args.batch_size is None else f"{args.batch_size} images per step"
    print(f"preset {args.preset}, L = {args.width}, {size}, {os.environ.get('OMP_NUM_THREADS', 'default')} threads, "
          f"best of {args.rounds} runs of {args.batches} steps")
    print(f"{'recipe':>9}  {'default s':>9}  {'faults':>8}  {'kernel':>6}  {'hugetlb s':>9}  {'faults':>8}  "
          f"{'kernel':>6}  time ratio")
    for r in RECIPES:
        d, h = best[False][r], best[True][r]
        print(f"{r:>9}  {d['step_s']:9.3f}  {d['faults_per_step']:8.0f}  {d['kernel_share']:6.0%}  "
              f"{h['step_s']:9.3f}  {h['faults_per_step']:8.0f}  {h['kernel_share']:6.0%}  "
              f"{d['step_s'] / h['step_s']:.2f}x")


if __name__ == "__main__":
    main()
