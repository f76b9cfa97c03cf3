"""One command for a GPU window.

    python -m cubelib gpu-batch --budget 540 --out $OUT [--preset paper] [--device cuda]
    python -m cubelib import results.tar.gz [--dry-run]

A lent GPU has minutes in all and returns files from one folder only, so `gpu-batch` does in
one process, each stage timed and logged to OUT/log.txt and OUT/report.json:

1. self-check (seconds, `gpu_checks.self_check`): the renderer, the extended pass and one
   training step of every kind of term on the device against float64 references.  Any check
   off beyond its tolerance stops the command with exit status 2 before anything trains.
2. benchmark (`gpu_checks.benchmark`): the render rate, matmul peaks in TF32 and bfloat16,
   and the extended training step at the paper's sizes as TFLOP/s against those peaks.
3. training (here): the preset's pending networks (no stored result in results/<preset>/) in
   a fixed priority order (`priority`), each with `store.run(time_limit=...)`, so the last one
   stops at an epoch boundary with a checkpoint; results go to OUT/work/results.
4. one archive OUT/results.tar.gz (<= 16 MiB, `gpu_archive.pack`): the results, their
   manifest and weights, then checkpoints (unfinished runs first) while they fit; what did not
   fit is listed in the report.  OUT/work is then removed: OUT holds log.txt, report.json and
   the archive.

`python -m cubelib import` (`gpu_archive.import_archive`) brings such an archive into
results/<preset>/.

Only torch and numpy are needed (no scipy, matplotlib, tqdm or Jupyter): this module, imported
first by the command line, stands in for tqdm where it is missing.
"""
from __future__ import annotations

import importlib.machinery
import sys
import types

try:  # data.py and train.py draw progress bars; a torch-only machine may lack tqdm
    import tqdm as _tqdm  # noqa: F401
except ImportError:
    class _NoBar:
        def __init__(self, iterable=None, *args, **kwargs):
            self.iterable, self.n = iterable, kwargs.get("initial", 0)

        def __iter__(self):
            return iter(self.iterable)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            self.n += n

        def set_postfix(self, *args, **kwargs):
            pass

        def close(self):
            pass

    _mod, _auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
    _mod.tqdm = _auto.tqdm = _NoBar
    # a spec without origin: torch._dynamo asks importlib.util.find_spec("tqdm") at import
    _mod.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)
    _auto.__spec__ = importlib.machinery.ModuleSpec("tqdm.auto", None)
    _mod.auto = _auto
    sys.modules["tqdm"], sys.modules["tqdm.auto"] = _mod, _auto
try:
    import numpy  # noqa: F401
except ImportError as exc:
    raise ImportError("cubelib needs numpy besides torch (the renderer's quadrature nodes and the pose "
                      "sampler): pip install numpy") from exc

import argparse
import json
import math
import os
import platform
import shutil
import time
import traceback
from pathlib import Path

import torch

from . import data, experiments, gpu_archive, gpu_checks, presets, store, versions

BENCH_WIDTHS = (256, 512, 1024, 2048)  # Tables 1-2
BENCH_BATCH = 2310  # 97 020 training images in 42 batches (§3.5)
BUDGET_RANGE = (10.0, 86400.0)


# --------------------------------------------------------------------------------------
# Flags

def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    lo, hi = BUDGET_RANGE
    if not lo <= value <= hi:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be seconds between {lo:g} and {hi:g}, got {text!r}")
    return value


def _widths(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        out = ()
    if not out or any(not 1 <= w <= 16384 for w in out):
        raise argparse.ArgumentTypeError(f"must be comma-separated widths between 1 and 16384, got {text!r}")
    return out


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be an integer between 1 and 100000, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--budget", type=_budget, required=True,
                   help=f"seconds for the whole command ({BUDGET_RANGE[0]:g} to {BUDGET_RANGE[1]:g}); set the machine's "
                        "per-command limit a minute above it (start-up, the last epoch and evaluation)")
    p.add_argument("--out", required=True, help="an empty (or new) folder: log.txt, report.json, " + gpu_archive.ARCHIVE)
    p.add_argument("--preset", default="paper", choices=presets.NAMES)
    p.add_argument("--device", default="cuda", help="cuda[:N] (default) or cpu")
    p.add_argument("--bench-widths", type=_widths, default=BENCH_WIDTHS,
                   help="hidden widths L of the benchmarked step (default: the paper's 256,512,1024,2048)")
    p.add_argument("--bench-batch", type=_batch, default=BENCH_BATCH,
                   help=f"images per benchmarked step (default {BENCH_BATCH}, the paper's)")
    p.add_argument("--resume", default=None, metavar="ARCHIVE",
                   help="an earlier gpu-batch archive whose checkpoints the pending networks resume from")


# --------------------------------------------------------------------------------------
# Log and report

class Session:
    """The log (OUT/log.txt and stdout), the report (OUT/report.json, rewritten after each
    stage, so a killed run still leaves one) and the clock."""

    def __init__(self, out: Path, budget: float, started: float):
        self.out, self.budget, self.started = out, budget, started
        self.deadline = started + budget
        self.report: dict = {"stages": {}, "errors": []}
        self._log = open(out / "log.txt", "a", buffering=1)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, msg: str):
        line = f"[{self.elapsed():7.1f} s] {msg}"
        print(line, flush=True)
        self._log.write(line + "\n")

    def save(self):
        tmp = self.out / "report.json.tmp"
        tmp.write_text(json.dumps(self.report, indent=1, default=str))
        os.replace(tmp, self.out / "report.json")

    def stage(self, name: str, fn, *args):
        """Run stage `fn`, recording its seconds, its result and any exception."""
        self.log(f"== {name} ({self.left():.0f} s of the budget left)")
        t = time.monotonic()
        entry = self.report["stages"][name] = {}
        try:
            entry.update(fn(*args) or {})
            entry.setdefault("ok", True)
        except Exception as exc:  # recorded; the caller decides whether to go on
            entry["ok"] = False
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
            self.report["errors"].append(f"{name}: {entry['error']}")
            self.log(f"{name} failed: {entry['error']}")
        entry["seconds"] = round(time.monotonic() - t, 2)
        self.log(f"== {name}: {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']:.1f} s")
        self.save()
        return entry

    def close(self):
        self._log.close()


def _environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "code_version": versions.code_version(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        try:
            props = torch.cuda.get_device_properties(device)
            env.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(
                props.total_memory / 2**30, 1), cuda=torch.version.cuda)
        except Exception as exc:  # the self-check will say more
            env.update(name=f"CUDA device ({type(exc).__name__}: {exc})", cuda=torch.version.cuda)
    else:
        env["name"] = f"CPU ({platform.processor() or platform.machine()})"
    return env


# --------------------------------------------------------------------------------------
# Stage 3: training (stages 1-2 are in gpu_checks, stage 4 in gpu_archive)

def priority(preset) -> list[store.Experiment]:
    """Every experiment of `preset` in the order a GPU window trains them: Tables 1 and 2
    (conventional and first-derivative training, smallest width first), then robust training,
    its trade-off epoch and Gaussian noise at the smallest width (256 at the paper's presets),
    then Table 6 at that width (the paper's E2 and, where the preset has it, E2 x e2_weight),
    then everything else in experiments.all_experiments order (parents before children)."""
    p = presets.get(preset)
    w0 = min(p.widths)
    first = [experiments.accuracy(p, m, w) for w in sorted(p.widths) for m in ("conventional", "first")]
    first += [experiments.robust(p, experiments.Robust(), w0), experiments.robust(p, experiments.Robust(tradeoff=True), w0),
              experiments.gaussian(p, experiments.TABLE5_SIGMA, w0), experiments.accuracy(p, "second", w0)]
    if p.e2_weight:
        first.append(experiments.accuracy(p, "second", w0, e2_weight=p.e2_weight))
    every = experiments.all_experiments(p)
    keys = {e.key() for e in every}
    out = {e.key(): e for e in first if e.key() in keys}
    out.update({e.key(): e for e in every if e.key() not in out})
    return list(out.values())


def _data_seconds(exp: store.Experiment, rates: dict) -> float:
    """Estimated seconds to render `exp`'s data set (0 when cached)."""
    if data.cache_path(exp.data, data.default_cache_dir()).exists():
        return 0.0
    rate = rates.get(exp.data.order) or rates.get(str(exp.data.order))
    return 1.2 * (exp.data.n_train + exp.data.n_test) / rate + 5 if rate else 0.0  # + saving it


def training(s: Session, device: torch.device, preset: str, work: Path, reserve: float, rates: dict,
             resume: Path | None) -> dict:
    order = priority(preset)
    pending, done, stale = [], [], []
    for e in order:
        try:
            (done if store.load(e) is not None else pending).append(e)
        except (store.StaleResult, ValueError) as exc:  # not ours to retrain over
            stale.append(f"{e.name}: {exc}")
    s.log(f"{preset}: {len(order)} networks, {len(done)} stored, {len(pending)} pending, {len(stale)} stale or "
          f"corrupt (left alone)")
    if resume is not None:
        for line in gpu_archive.place_checkpoints(resume, work, {e.key(): e for e in pending}, dry_run=False):
            s.log(f"resume: {line}")
    for e in pending:  # presets whose checkpoints are committed beside the results resume from them
        src, dst = e.checkpoint_path(), e.checkpoint_path(work)
        if src == dst or not src.exists():  # nothing committed elsewhere: read no checkpoint
            continue
        epoch_src, epoch_dst = gpu_archive.checkpoint_epoch(src), gpu_archive.checkpoint_epoch(dst)
        if (epoch_src or 0) > (epoch_dst or -1):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            s.log(f"{e.name}: resuming from {src} (epoch {epoch_src})")
    out = {"networks": len(order), "stored_before": len(done), "pending": len(pending), "stale_or_corrupt": stale,
           "trained": [], "unfinished": [], "failed": [], "not_started": []}
    for i, e in enumerate(pending):
        left = s.left() - reserve
        if left < max(2.0, 0.02 * s.budget):
            out["not_started"] += [{"name": x.name, "key": x.key(), "why": "budget spent"} for x in pending[i:]]
            s.log(f"budget spent: {len(pending) - i} pending networks not started")
            break
        need = _data_seconds(e, rates)
        if need > left:
            why = f"its data set would take ~{need:.0f} s to render, {left:.0f} s left"
            out["not_started"].append({"name": e.name, "key": e.key(), "why": why})
            s.log(f"{e.name}: not started ({why})")
            continue
        t = time.monotonic()
        s.log(f"{e.name}: training ({left:.0f} s left)")
        try:
            res = store.run(e, device=str(device), root=work, progress=False, time_limit=left)
        except KeyboardInterrupt:  # Ctrl-C: train.py saved a checkpoint at the epoch's end; pack what there is
            epoch = gpu_archive.checkpoint_epoch(e.checkpoint_path(work))
            out["unfinished"].append({"name": e.name, "key": e.key(), "epoch": epoch,
                                      "epochs": e.recipe.epochs, "seconds": round(time.monotonic() - t, 1)})
            out["not_started"] += [{"name": x.name, "key": x.key(), "why": "interrupted"} for x in pending[i + 1:]]
            s.report["errors"].append(f"train {e.name}: interrupted")
            s.log(f"{e.name}: interrupted; packing what there is")
            break
        except Exception as exc:
            out["failed"].append({"name": e.name, "key": e.key(), "error": f"{type(exc).__name__}: {exc}",
                                  "traceback": traceback.format_exc()})
            s.report["errors"].append(f"train {e.name}: {type(exc).__name__}: {exc}")
            s.log(f"{e.name}: FAILED ({type(exc).__name__}: {exc})")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        took = round(time.monotonic() - t, 1)
        if res is None:
            epoch = gpu_archive.checkpoint_epoch(e.checkpoint_path(work))
            out["unfinished"].append({"name": e.name, "key": e.key(), "epoch": epoch, "epochs": e.recipe.epochs,
                                      "seconds": took})
            s.log(f"{e.name}: stopped at epoch {epoch} of {e.recipe.epochs} by the budget; checkpoint kept")
        else:
            m = res.metrics
            out["trained"].append({"name": e.name, "key": e.key(), "e_test": m["e_test"],
                                   "v_max_test": m.get("v_max_test"), "train_seconds": res.provenance["train_seconds"],
                                   "seconds": took})
            s.log(f"{e.name}: e_test {m['e_test']:.3f} %, {res.provenance['train_seconds']:.0f} s training, "
                  f"{took:.0f} s in all")
        s.save()
    out["ok"] = not out["failed"]
    return out


# --------------------------------------------------------------------------------------
# The command

def main(a, device: str) -> int:
    started = time.monotonic()
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SystemExit(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if os.environ.get("CUBELIB_NO_TRAIN"):
        raise SystemExit("CUBELIB_NO_TRAIN is set, but gpu-batch trains: unset it")
    out = Path(a.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"--out {out}: must be an empty folder or not exist (it receives log.txt, report.json and "
                         f"{gpu_archive.ARCHIVE} only)")
    resume = Path(a.resume) if a.resume else None
    if resume is not None and not resume.is_file():
        raise SystemExit(f"--resume {resume}: no such archive")
    out.mkdir(parents=True, exist_ok=True)
    s = Session(out, a.budget, started)
    s.report.update(command="gpu-batch", preset=a.preset, budget_s=a.budget, date=versions.now(),
                    environment=_environment(device), results_root_checked=str(store.results_root()),
                    cache=str(data.default_cache_dir()))
    s.log(f"gpu-batch --preset {a.preset} --device {device} --budget {a.budget:g}: "
          f"{s.report['environment']['name']}, torch {torch.__version__}")
    work = out / "work" / "results"
    try:
        check = s.stage("self_check", gpu_checks.self_check, s.log, device)
        if not check["ok"]:
            s.log("self-check failed: nothing trained; see report.json for the numbers")
            s.report["exit"] = 2
            s.save()
            print(f"gpu-batch: self-check failed on {device} ({', '.join(k for k, v in check.items() if isinstance(v, dict) and not v.get('ok'))}); "
                  f"details in {out / 'report.json'}", file=sys.stderr)
            return 2
        reserve = max(10.0, 0.05 * a.budget)
        bench_seconds = max(0.0, min(0.1 * a.budget, 60.0, s.left() - reserve))
        bench = s.stage("benchmark", gpu_checks.benchmark, s.log, device, a.bench_widths, a.bench_batch, bench_seconds)
        rates = bench.get("render_images_per_s", {})
        trained = s.stage("train", training, s, device, a.preset, work, reserve, rates, resume)
        packed = s.stage("archive", gpu_archive.pack, s.log, s.out, a.preset, work, trained,
                         priority(a.preset))
        if packed.get("ok"):
            shutil.rmtree(out / "work", ignore_errors=True)
        files = sorted(p.name for p in out.iterdir())
        s.report["files"] = files
        s.report["exit"] = 0 if not s.report["errors"] else 1
        s.log(f"done in {s.elapsed():.0f} s of {a.budget:g}: {', '.join(files)}"
              + (f"; {len(s.report['errors'])} error(s)" if s.report["errors"] else ""))
        s.save()
        return s.report["exit"]
    finally:
        s.close()
