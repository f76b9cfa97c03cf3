"""A chapter's networks as independent tasks, on one machine or a Ray cluster.

    python -m cubelib sweep accuracy --preset quick --engine ray [--workers 2]
    python -m cubelib sweep robustness --preset paper --engine ray --address HEAD:6379 --device cuda --gpus-per-task 0.25
    python -m cubelib sweep accuracy --preset quick --engine serial      # the reference: store.run, one by one

Each network is a pure function of its experiment (`store.Experiment`, keyed), so a sweep is
N independent tasks with a result each.  The driver (this process) picks the chapter's pending
experiments (no stored result), submits each as a Ray task (`train_task`), and submits a child
(an experiment with a `parent`, e.g. a trade-off epoch) only once its parent's task finished,
passing it the parent's final checkpoint, so it continues from there as `store.run` does.

A task trains and evaluates in the worker (`store.compute`, one thread per task, or a fraction
of a GPU) and returns the result's content and its weights; the driver writes them through
the store (`store.write`): the files, byte for byte, and the manifest entry `store.run` would
make.  So results land in the driver's results/ whether or not the workers share a
filesystem; a worker's disk only holds its data cache and checkpoints ($CUBELIB_CACHE).
CPU training is bit-exact at a fixed thread count only, so every task, and the serial
engine, trains on one thread: the two engines store the same numbers and weights, bit for bit.

Ray is imported only for `--engine ray` (pip install ray; `ray://` addresses need
pip install "ray[client]").
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from . import data, experiments, presets, store, versions

ENGINES = ("serial", "ray")
DEVICES = ("cpu", "cuda")


# --------------------------------------------------------------------------------------
# Flags

def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (tasks at a time), got {text!r}")
    return value


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a fraction of one GPU in (0, 1], e.g. 0.25, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("chapter", choices=sorted(experiments.CHAPTERS))
    p.add_argument("--preset", required=True, choices=presets.NAMES)
    p.add_argument("--engine", default="serial", choices=ENGINES,
                   help="serial: store.run one network after another here (the reference); ray: one Ray task each")
    p.add_argument("--address", default=None,
                   help="an existing Ray cluster (HEAD:6379 from a node of it, ray://HEAD:10001 from elsewhere, or "
                        "auto); without it a local Ray is started and stopped")
    p.add_argument("--workers", type=_workers, default=None,
                   help="tasks at a time: the local Ray's CPUs (default: this machine's cores); with --address at "
                        "most this many tasks in flight (default: as many as the cluster takes)")
    p.add_argument("--device", default="cpu", choices=DEVICES, help="where each network trains")
    p.add_argument("--gpus-per-task", type=_gpus, default=None,
                   help="with --device cuda: the share of a GPU each task reserves (default 1), e.g. 0.25 puts four "
                        "small networks on one GPU")
    p.add_argument("--only", action="append", metavar="TEXT",
                   help="only experiments whose name contains TEXT (repeat for several)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a size of the preset (cubelib.presets.Preset), e.g. --set epochs=300")


def _check(a):
    """Flag combinations argparse cannot check; SystemExit naming the flag."""
    if a.engine == "serial":
        for flag, value in (("--address", a.address), ("--workers", a.workers), ("--gpus-per-task", a.gpus_per_task)):
            if value is not None:
                raise SystemExit(f"{flag} needs --engine ray (the serial engine trains here, one network at a time)")
    if a.gpus_per_task is not None and a.device != "cuda":
        raise SystemExit(f"--gpus-per-task needs --device cuda, got --device {a.device}")
    if a.engine == "serial" and a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available on this machine (use --device cpu)")


# --------------------------------------------------------------------------------------
# The task (runs in a Ray worker)

def train_task(exp: store.Experiment, device: str, code: str, parent_checkpoint: bytes | None = None,
               want_checkpoint: bool = False, threads: int = 1):
    """Train and evaluate `exp` here, writing no result: ({"raw", "weights", "host"}, the final
    checkpoint's bytes when `want_checkpoint`, else None).  `code` is the driver's code version:
    a worker running other code refuses before training.  `parent_checkpoint` (the parent's
    final checkpoint) is put where `store.compute` continues from it when this machine's
    cache lacks it (workers without a shared filesystem)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(exp, device, code, parent_checkpoint, want_checkpoint)
    finally:
        torch.set_num_threads(before)  # a worker process is reused by later tasks


def _train(exp, device, code, parent_checkpoint, want_checkpoint):
    host = platform.node()
    if versions.code_version() != code:
        raise RuntimeError(f"worker {host} runs cubelib code {versions.code_version()}, the driver {code}: "
                           "every node needs the driver's checkout (same commit, same edits)")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device cuda: worker {host} sees no GPU (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    if parent_checkpoint is not None:
        src = exp.parent.checkpoint_path()
        if not src.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            tmp = src.with_name(f"{src.name}.{os.getpid()}.tmp")
            tmp.write_bytes(parent_checkpoint)
            os.replace(tmp, src)
    cached = data.cache_path(exp.data, data.default_cache_dir())
    if not cached.exists():  # one build per machine: the workers sharing a cache wait for it
        with store._locked(cached):
            if not cached.exists():
                data.load(exp.data, device=device, progress=False)
    raw, weights = store.compute(exp, device=device, progress=False)
    ck = exp.checkpoint_path()
    return {"raw": raw, "weights": weights, "host": host}, \
        (ck.read_bytes() if want_checkpoint and ck.exists() else None)


# --------------------------------------------------------------------------------------
# The driver

def _line(exp: store.Experiment, raw: dict, done: int, total: int, where: str = "") -> str:
    m, p = raw["metrics"], raw["provenance"]
    vul = f", v_max {m['v_max_test']:.1f} %" if "v_max_test" in m else ""
    return (f"[{done}/{total}] {exp.name}: e_train {m['e_train']:.3f} %, e_test {m['e_test']:.3f} %{vul}, "
            f"{p['train_seconds']:.0f} s on {store.device_text(p)}{where}")


def pending(exps: list[store.Experiment]) -> list[store.Experiment]:
    """The experiments without a stored result (StaleResult and unreadable files raise: a
    sweep never trains over a stored file)."""
    return [e for e in exps if store.load(e) is None]


def run_serial(todo: list[store.Experiment], device: str) -> int:
    """`store.run` for each in turn, with one thread like a Ray task: CPU training is bit-exact
    at a given thread count only (its reductions split by thread), so this is the reference
    the Ray engine matches bit for bit.  `python -m cubelib run` uses every core instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i, exp in enumerate(todo, 1):
            res = store.run(exp, device=device)
            print(_line(exp, {"metrics": res.metrics, "provenance": res.provenance}, i, len(todo)), flush=True)
    finally:
        torch.set_num_threads(threads)
    return 0


def _import_ray(address: str | None):
    try:
        import ray
    except ImportError:
        extra = '"ray[client]"' if address and address.startswith("ray://") else "ray"
        raise SystemExit(f"--engine ray: Ray is not installed; pip install {extra} (or use --engine serial)") from None
    return ray


def _connect(ray, address: str | None, workers: int | None) -> str:
    """Start a local Ray (no address) or join a cluster (never starting one); a description."""
    if address is None:
        n = workers or os.cpu_count() or 1
        # "local": a fresh Ray even where one runs already or RAY_ADDRESS is set
        ray.init(address="local", num_cpus=n, include_dashboard=False, logging_level="warning")
        return f"a local Ray with {n} CPU{'s' if n > 1 else ''}"
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (what ray[client] adds to ray)
        except ImportError:
            raise SystemExit(f'--address {address}: a ray:// address needs Ray Client; pip install "ray[client]"') \
                from None
    try:
        ray.init(address=address, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SystemExit(f"--address {address}: no Ray cluster reachable there ({type(exc).__name__}: {exc}); start "
                         "one with `ray start --head` (and `ray start --address HEAD:6379` on the other nodes); if it "
                         "uses token authentication (`ray start` does where ~/.ray/auth_token exists), set "
                         "RAY_AUTH_MODE=token here with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN") from None
    have = ray.cluster_resources()
    return f"the Ray cluster at {address} ({have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs now)"


def run_ray(todo: list[store.Experiment], device: str, address: str | None = None, workers: int | None = None,
            gpus_per_task: float | None = None) -> int:
    """Train `todo` as Ray tasks, parents before their children; the driver writes each result.
    Returns the number of networks that failed or were not started (a failed parent's children)."""
    ray = _import_ray(address)
    names = {e.name for e in todo}
    children: dict[str, list[store.Experiment]] = {}
    ready = []
    for e in todo:
        if e.parent is not None and e.parent.name in names:
            children.setdefault(e.parent.name, []).append(e)
        else:
            ready.append((e, None))
    gpus = (gpus_per_task or 1.0) if device == "cuda" else 0
    limit = workers if address is not None else None  # a local Ray's CPUs already bound the tasks
    where = _connect(ray, address, workers)
    failed, done, started = 0, 0, time.monotonic()
    try:
        if gpus and not ray.cluster_resources().get("GPU"):
            if address is None:
                raise SystemExit("--device cuda: Ray found no GPU on this machine (use --device cpu)")
            print("sweep: warning: the cluster has no GPU now; the tasks wait for one (an autoscaler may add it)")
        print(f"sweep: {len(todo)} network{'s' if len(todo) != 1 else ''} on {where}, 1 CPU"
              + (f" and {gpus:g} GPU" if gpus else "") + " per task", flush=True)
        if address is not None:  # a stored parent's final checkpoint in this cache goes along to its child
            ready = [(e, _stored_checkpoint(ray, e)) for e, _ in ready]
        task = ray.remote(train_task)
        code = versions.code_version()
        flight: dict = {}  # result ref -> (experiment, checkpoint ref)
        while ready or flight:
            while ready and (limit is None or len(flight) < limit):
                exp, parent_ck = ready.pop(0)
                want = exp.name in children
                # a task lost with its worker or node is retried (Ray's default): it is a pure function
                ref, ck_ref = task.options(num_cpus=1, num_gpus=gpus, num_returns=2,
                                           name=exp.name).remote(exp, device, code, parent_ck, want)
                flight[ref] = (exp, ck_ref)
            (ref,), _ = ray.wait(list(flight), num_returns=1)
            exp, ck_ref = flight.pop(ref)
            try:
                out = ray.get(ref)
                if store.load(exp) is None:  # another run may have stored it meanwhile
                    store.write(exp, out["raw"], out["weights"])
                done += 1
                print(_line(exp, out["raw"], done + failed, len(todo), f" ({out['host']})"), flush=True)
            except Exception as exc:  # the task's error (ray.exceptions.RayTaskError) or the store's
                lost = _descendants(exp.name, children)
                failed += 1 + len(lost)
                print(f"[{done + failed}/{len(todo)}] {exp.name}: FAILED: {type(exc).__name__}: {exc}"
                      + (f"\n  not started (parent failed): {', '.join(e.name for e in lost)}" if lost else ""),
                      flush=True)
                continue
            ready += [(child, ck_ref) for child in children.pop(exp.name, [])]
        print(f"sweep: {done} trained, {failed} failed or not started, {time.monotonic() - started:.0f} s", flush=True)
    finally:
        ray.shutdown()  # a local Ray stops with it; a cluster is only left
    return failed


def _stored_checkpoint(ray, exp: store.Experiment):
    """An object ref to the final checkpoint of `exp`'s parent in this machine's cache, or None."""
    ck = exp.parent.checkpoint_path() if exp.parent is not None else None
    return ray.put(ck.read_bytes()) if ck is not None and ck.exists() else None


def _descendants(name: str, children: dict) -> list[store.Experiment]:
    out = []
    for child in children.pop(name, []):
        out += [child] + _descendants(child.name, children)
    return out


def main(a, preset: presets.Preset) -> int:
    """`python -m cubelib sweep` with parsed flags `a` and the preset (with --set applied)."""
    _check(a)
    if a.engine == "ray":
        _import_ray(a.address)  # before anything else: a missing Ray is the first thing to know
    exps = [e for e in experiments.CHAPTERS[a.chapter](preset) if not a.only or any(t in e.name for t in a.only)]
    todo = pending(exps)
    print(f"sweep {a.chapter} at {preset.name}: {len(exps)} network{'s' if len(exps) != 1 else ''}, "
          f"{len(exps) - len(todo)} stored, {len(todo)} to train", flush=True)
    if not todo:
        return 0
    if os.environ.get("CUBELIB_NO_TRAIN"):
        raise SystemExit(f"{len(todo)} results are missing and CUBELIB_NO_TRAIN is set")
    if a.engine == "serial":
        return run_serial(todo, a.device)
    return 1 if run_ray(todo, a.device, a.address, a.workers, a.gpus_per_task) else 0
