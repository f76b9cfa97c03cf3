"""The training loop: Adam over a fixed number of batches per epoch, in a recipe's phases.

A run is a pure function of its recipe, its data set and its seed: on the CPU it is bit for
bit reproducible, and a run interrupted at any point resumes from its checkpoint to the same
result.  The checkpoint (model, optimiser, random streams, curves) is written atomically every
`checkpoint_seconds`, when stopped early, and at the end.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from . import data, evaluate, jets, robustness, trainset
from . import terms as T
from .recipes import Recipe


@dataclass
class TrainResult:
    model: jets.MLP
    curves: dict = field(default_factory=dict)  # epoch, e_train, e_test, v_max_test, loss per term
    seconds: float = 0.0  # training time, without evaluation
    resumed_from: int = 0
    epochs_done: int = 0
    complete: bool = True  # False when stopped early by `until_epoch` or `time_limit`


def save(path: Path, payload: dict):
    """Atomically: a run killed mid-write leaves the old checkpoint, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def stop_on_interrupt():
    """Ctrl-C (or a kernel interrupt) sets a flag instead of raising, so the loop can stop at
    the end of the epoch, after a checkpoint: a resumed run is then the uninterrupted run."""
    flag = []
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = signal.signal(signal.SIGINT, lambda *_: flag.append(True))
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def tf32(device: torch.device, on: bool):
    """TF32 matmuls for training on CUDA (as the paper trained); evaluation switches them off."""
    old = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


class _Serial(contextlib.nullcontext):
    """An executor that runs each call at once, in this thread."""

    def submit(self, fn, *args) -> Future:
        done = Future()
        done.set_result(fn(*args))
        return done


def _compiled_rows(jet_rows):
    """`jet_rows` under torch.compile, one graph per shape.  Its outputs are copied out of the
    stacked rows: views of a compiled graph's intermediate came back with corrupt sizes
    (torch 2.13, CPU inductor)."""
    def rows(h, K, pairs=None):
        return tuple(None if y is None else y.contiguous().clone() for y in jet_rows(h, K, pairs))
    return torch.compile(rows, dynamic=False)


def train(recipe: Recipe, ds: data.Dataset, device="cpu", checkpoint: Path | None = None,
          checkpoint_seconds: float = 300.0, progress: bool = True, desc: str = "train",
          until_epoch: int | None = None, time_limit: float | None = None, prefetch: bool = True) -> TrainResult:
    """Train a fresh network (or resume `checkpoint`) on `ds` according to `recipe`.

    `until_epoch` and `time_limit` (seconds of this call) stop early at an epoch boundary,
    after a checkpoint; the result then has complete=False and a later call resumes.
    `prefetch` draws each epoch's random directions in a worker thread while the previous
    epoch trains (False: in this thread, when needed; the same bits either way)."""
    device = torch.device(device)
    rows, norms = trainset.prepare(recipe, ds, device)
    test_x, test_t = evaluate.flat_images(ds.test, device), ds.test.target.to(device, torch.float32)
    vul = evaluate.curve_vulnerability(ds.test, device)
    gen = torch.Generator().manual_seed(recipe.seed)
    dir_gen = torch.Generator().manual_seed(recipe.seed + trainset.DIRECTION_STREAM)
    model = jets.MLP(recipe.hidden, generator=gen).to(device)
    if recipe.compiled:  # the training steps' extended pass only; evaluation runs the plain forward
        model.jet_rows = _compiled_rows(model.jet_rows)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.phases[0].lr, betas=(0.9, 0.999), eps=1e-8)
    curves = {"epoch": [], "e_train": [], "e_test": [], "v_max_test": [], **{t: [] for t in T.NAMES}}
    start, seconds = 0, 0.0
    key = recipe.key() + ":" + ds.config.key()
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")
        if state.get("key") == key:
            model.load_state_dict(state["model"])  # copies onto the model's device
            opt.load_state_dict(state["optimizer"])  # casts the moments to the parameters' device
            gen.set_state(state["generator"].cpu())  # the random streams live on the CPU
            dir_gen.set_state(state["dir_generator"].cpu())
            curves, start, seconds = state["curves"], state["epoch"], state["seconds"]

    schedule = [p for p in recipe.phases for _ in range(p.epochs)]  # the phase of each epoch

    # An epoch's directions, noise and projections (20-70 % of a robust or Jacobian epoch,
    # drawn serially on the CPU) are drawn by a worker thread while the epoch before trains:
    # the same calls on the same generator in the same order, so the same bits.  Each draw
    # returns the stream's state before it, which is what a checkpoint after the previous
    # epoch must keep.
    def draw(epoch):
        state = dir_gen.get_state()
        return state, trainset.draw_epoch(schedule[epoch], rows, dir_gen, device)

    def snapshot(epoch):
        if checkpoint is not None:
            dir_state = pending.result()[0] if epoch < recipe.epochs else dir_gen.get_state()
            save(Path(checkpoint), {"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "generator": gen.get_state(), "dir_generator": dir_state,
                                    "curves": curves, "epoch": epoch, "seconds": seconds})

    last_save = started = time.monotonic()
    bar = tqdm(total=recipe.epochs, initial=start, desc=desc, unit="epoch", disable=not progress, mininterval=2.0)
    drawer = ThreadPoolExecutor(1) if prefetch else _Serial()
    with stop_on_interrupt() as interrupted, tf32(device, recipe.tf32), bar, drawer:
        pending = drawer.submit(draw, start) if start < recipe.epochs else None
        for epoch in range(start, recipe.epochs):
            phase = schedule[epoch]
            for group in opt.param_groups:
                group["lr"] = phase.lr
            t0 = time.perf_counter()
            perm = torch.randperm(len(rows), generator=gen).to(device)
            _, draws = pending.result()
            pending = drawer.submit(draw, epoch + 1) if epoch + 1 < recipe.epochs else None
            sums = {t.name: torch.zeros((), device=device) for t in phase.terms}
            chunks = torch.tensor_split(perm, recipe.batches)  # exactly recipe.batches batches
            for idx in chunks:
                with jets.matmul_precision(model, recipe.matmul_dtype):
                    values = T.evaluate(model, rows, idx, phase.terms, norms, draws)
                loss = sum(values.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for t, v in values.items():
                    sums[t] += v.detach()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            done = epoch + 1
            if done % recipe.eval_every == 0 or done == recipe.epochs:
                curves["epoch"].append(done)
                curves["e_train"].append(evaluate.error_e(model, rows.x, rows.target, norms.D).mean().item())
                curves["e_test"].append(evaluate.error_e(model, test_x, test_t, norms.D).mean().item())
                if vul is not None:
                    with evaluate.fp32_matmul():
                        curves["v_max_test"].append(robustness.measure(model, *vul)["v_max"])
                for t in T.NAMES:
                    curves[t].append(sums[t].item() / len(chunks) if t in sums else None)
                bar.set_postfix(e_test=f"{curves['e_test'][-1]:.3f}%")
            bar.update(1)
            if interrupted:
                snapshot(done)
                raise KeyboardInterrupt(f"training stopped after epoch {done}; checkpoint saved to {checkpoint}")
            if (until_epoch is not None and done >= until_epoch) or \
                    (time_limit is not None and time.monotonic() - started > time_limit):
                if done < recipe.epochs:
                    snapshot(done)
                    return TrainResult(model=model, curves=curves, seconds=seconds, resumed_from=start,
                                       epochs_done=done, complete=False)
            if checkpoint is not None and time.monotonic() - last_save > checkpoint_seconds:
                snapshot(done)
                last_save = time.monotonic()
    snapshot(recipe.epochs)
    return TrainResult(model=model, curves=curves, seconds=seconds, resumed_from=start, epochs_done=recipe.epochs)
