"""Command line for machines without Jupyter (e.g. a GPU box with only torch).

    python -m cubelib data --preset paper [--order 2] [--device cuda]
    python -m cubelib run accuracy --preset paper --device cuda [--time-limit 1500] [--only first]
    python -m cubelib run robustness|second-order|baselines --preset quick [--only gaussian]
    python -m cubelib run accuracy --preset quick --set widths=256,  --set epochs=300   # sizes overridden
    python -m cubelib status --preset quick          # missing, stale, corrupt and orphaned results
    python -m cubelib summary --preset quick [--no-compute]
    python -m cubelib gpu-batch --budget 540 --out OUT [--preset paper] [--device cuda]   # a GPU window
    python -m cubelib import OUT/results.tar.gz [--dry-run]   # what a GPU window brought back
    python -m cubelib sweep accuracy --preset quick --engine ray [--address HEAD:6379] [--workers 8]   # Ray tasks
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time

import torch

from . import gpu_batch  # first: it stands in for tqdm where only torch (and numpy) are installed
from . import data, experiments, gpu_archive, presets, store, sweep


def _device(name: str) -> str:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise SystemExit(f"--device must be 'cpu' or 'cuda[:N]', got {name!r}")
    return name


def _preset(a) -> presets.Preset:
    """The preset with the --set NAME=VALUE overrides (Python literals), validated."""
    sizes = {}
    for item in a.set or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes NAME=VALUE, got {item!r}")
        try:
            sizes[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SystemExit(f"--set {name}: {value!r} is not a Python literal (e.g. 256, (64, 128), 0.05)")
    try:
        return presets.get(a.preset, **sizes)
    except ValueError as exc:
        raise SystemExit(f"--set: {exc}")


def _run(a) -> None:
    device = _device(a.device)
    started = time.monotonic()
    for exp in experiments.CHAPTERS[a.chapter](_preset(a)):
        if a.only and not any(t in exp.name for t in a.only):
            continue
        left = None if a.time_limit is None else a.time_limit - (time.monotonic() - started)
        if left is not None and left <= 0:
            print(f"{exp.name}: not started, time limit reached")
            continue
        try:
            res = store.run(exp, device=device, time_limit=left)
        except store.Busy as busy:  # another job trains it: go on with the others
            print(f"{exp.name}: skipped, {busy}", flush=True)
            continue
        if res is None:
            print(f"{exp.name}: stopped by the time limit, checkpoint kept; run again to resume")
            continue
        m = res.metrics
        vul = f", v_max {m['v_max_test']:.1f} %" if "v_max_test" in m else ""
        print(f"{exp.name}: e_train {m['e_train']:.3f} %, e_test {m['e_test']:.3f} %{vul}, "
              f"{res.provenance['train_seconds']:.0f} s on {res.device}", flush=True)
    in_time = a.time_limit is None or time.monotonic() - started < a.time_limit
    if a.chapter == "robustness" and in_time:
        p = _preset(a)
        if all(store.load(experiments.robust(p, experiments.Robust(), w)) is not None for w in p.widths):
            from . import analyses  # the first layer's bound against what the robust networks reached
            bound = analyses.capacity_bound(p, device=device)
            for w, row in bound["networks"].items():
                print(f"capacity, L = {w}: first-layer bound {row['own_floor']:.1f} %, v_max {row['v_max']:.1f} % "
                      f"on {bound['images']} test images", flush=True)
    if a.chapter == "second-order" and not a.only and (a.time_limit is None or time.monotonic() - started < a.time_limit):
        from . import analyses  # needs scipy: imported only here, so a torch-only machine runs the rest
        sweep = analyses.noise_sweep(_preset(a), device=device)  # Figs. 9-10, against the oracle
        for label, rows in sweep["networks"].items():
            print(f"noise sweep, {label}: v_max " + ", ".join(f"{r['v_max_corrected']:.1f}" for r in rows) +
                  f" % at sigma = {sweep['sigmas']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cubelib", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="build (or check) the cached data set of a preset")
    d.add_argument("--preset", required=True, choices=presets.NAMES)
    d.add_argument("--order", type=int, default=1, choices=(0, 1, 2), help="image derivatives to include")
    d.add_argument("--device", default="cpu")
    r = sub.add_parser("run", help="run a chapter's experiments at a preset (stored results are reused)")
    r.add_argument("chapter", choices=sorted(experiments.CHAPTERS))
    r.add_argument("--preset", required=True, choices=presets.NAMES)
    r.add_argument("--device", default="cpu")
    r.add_argument("--time-limit", type=float, default=None,
                   help="seconds; stop cleanly at an epoch boundary after this, checkpointed for a later resume")
    r.add_argument("--only", action="append", metavar="TEXT",
                   help="run only experiments whose name contains TEXT (repeat for several)")
    r.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a size of the preset (cubelib.presets.Preset), e.g. --set epochs=300")
    st = sub.add_parser("status", help="list the preset's missing, stale, corrupt and orphaned results")
    st.add_argument("--preset", required=True, choices=presets.NAMES)
    s = sub.add_parser("summary", help="print the 'paper vs this book' claims with their verdicts as JSON")
    s.add_argument("--preset", required=True, choices=presets.NAMES)
    s.add_argument("--no-compute", action="store_true", help="report missing results instead of computing them")
    s.add_argument("--device", default="cpu")
    s.add_argument("--tables", action="store_true",
                   help="print Tables 1-8 at the preset beside the paper's, from stored results only (Markdown)")
    g = sub.add_parser("gpu-batch", help="a GPU window in one command: self-check, benchmark, train what is "
                       "pending, one archive (cubelib/gpu_batch.py)")
    gpu_batch.add_arguments(g)
    im = sub.add_parser("import", help="unpack a gpu-batch archive into results/<preset>/")
    im.add_argument("archive")
    im.add_argument("--dry-run", action="store_true", help="say what would be imported, write nothing")
    sw = sub.add_parser("sweep", help="train a chapter's pending networks as independent tasks, on a local Ray or a "
                        "cluster (cubelib/sweep.py)")
    sweep.add_arguments(sw)
    a = p.parse_args(argv)

    if a.command == "data":
        t = time.perf_counter()
        ds = data.load(data.dataset_config(a.preset, order=a.order), device=_device(a.device))
        print(f"{ds.path}: {len(ds.train)} train / {len(ds.test)} test images, order {a.order}, "
              f"{time.perf_counter() - t:.1f} s")
    elif a.command == "run":
        _run(a)
    elif a.command == "status":
        found = store.status(experiments.all_experiments(a.preset))
        for kind, names in found.items():
            print(f"{kind}: {len(names)}" + "".join(f"\n  {n}" for n in names if kind != "ok"))
        return 0 if not (found["stale"] or found["corrupt"]) else 1
    elif a.command == "gpu-batch":
        return gpu_batch.main(a, _device(a.device))
    elif a.command == "import":
        return gpu_archive.import_main(a.archive, a.dry_run)
    elif a.command == "sweep":
        return sweep.main(a, _preset(a))
    elif a.command == "summary":
        from . import claims, summary  # the studies need matplotlib and scipy
        if a.tables:
            print(summary.paper_tables(a.preset).markdown())
            return 0
        try:
            rows = summary.rows(a.preset, compute=not a.no_compute, device=_device(a.device))
        except store.Busy as busy:
            sys.exit(f"summary: {busy}; --no-compute prints what is stored without training")
        json.dump([claims.as_dict(c) for c in rows], sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
