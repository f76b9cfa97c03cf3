"""Trainer: Adam over a fixed number of batches per epoch, in phases of learning rate and loss.

A run is a pure function of its `TrainConfig`, its data set and its seed: on the CPU it is
bit-for-bit reproducible, and a run interrupted at any point resumes from its checkpoint to
the same result.  The checkpoint (model, optimiser, RNG, curves) is written atomically every
`checkpoint_seconds`, at the end, and on KeyboardInterrupt.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from . import baselines, data, directions, jets, losses, robustness
from .geometry import PAIRS

# v_max of the learning curves: on this many test images at every evaluation point
CURVE_VUL_IMAGES = 128
TERMS = ("E0", "E1", "E2", "R_low", "R_mid", "R_high", "R2_low", "R2_mid", "R2_high", "J_low", "J_mid", "J_high",
         *losses.BASELINE_TERMS)


@dataclass(frozen=True)
class Phase:
    """`epochs` epochs at learning rate `lr`, minimising the sum of `terms`."""

    epochs: int
    lr: float
    terms: tuple[str, ...] = ("E0",)

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Phase.epochs must be an integer >= 1, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"Phase.lr must be in (0, 1), got {self.lr!r}")
        bad = [t for t in self.terms if t not in TERMS]
        if bad or "E0" not in self.terms:
            raise ValueError(f"Phase.terms must include E0 and be drawn from {TERMS}, got {self.terms!r}")


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (256, 256, 256, 128)
    phases: tuple[Phase, ...] = (Phase(1950, 1e-3), Phase(50, 1e-4))
    batches: int = 42
    seed: int = 0
    eval_every: int = 10  # epochs between points of the learning curves
    tf32: bool = True  # TF32 matmuls on CUDA, as the paper trained; ignored on the CPU
    noise_sigma: float = 0.0  # Gaussian augmentation (eq. 44): fresh noise on the images each epoch
    jacobian_weight: float = 1.0  # weight of the J_f terms (the paper's c^2)
    n_ij_rule: str = "scaled"  # normalisation of E2 (losses.second_order_norms)
    # the baselines of papers 002-004 (baselines.py): the weight of their term (beta, lambda_JR,
    # c), its norm, 003's random projections per image (0: the exact Frobenius norm), and
    # 002's fast adversarial training (E0 on x + eps sign(grad_x E0) only, when eps > 0)
    baseline_weight: float = 1.0
    baseline_norm: str = "l1"
    n_proj: int = 1
    adversarial_eps: float = 0.0

    def __post_init__(self):
        if not self.phases:
            raise ValueError("TrainConfig.phases must hold at least one Phase")
        if not isinstance(self.batches, int) or self.batches < 1:
            raise ValueError(f"TrainConfig.batches must be an integer >= 1, got {self.batches!r}")
        if not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ValueError(f"TrainConfig.eval_every must be an integer >= 1, got {self.eval_every!r}")
        if any((not isinstance(h, int)) or h < 1 for h in self.hidden) or not self.hidden:
            raise ValueError(f"TrainConfig.hidden must be positive layer widths, got {self.hidden!r}")
        if not (isinstance(self.noise_sigma, (int, float)) and 0 <= self.noise_sigma <= 1):
            raise ValueError(f"TrainConfig.noise_sigma must be in [0, 1], got {self.noise_sigma!r}")
        if not (isinstance(self.jacobian_weight, (int, float)) and self.jacobian_weight >= 0):
            raise ValueError(f"TrainConfig.jacobian_weight must be >= 0, got {self.jacobian_weight!r}")
        if self.n_ij_rule not in losses.N_IJ_RULES:
            raise ValueError(f"TrainConfig.n_ij_rule must be one of {losses.N_IJ_RULES}, got {self.n_ij_rule!r}")
        if not (isinstance(self.baseline_weight, (int, float)) and self.baseline_weight >= 0):
            raise ValueError(f"TrainConfig.baseline_weight must be >= 0, got {self.baseline_weight!r}")
        terms = {t for p in self.phases for t in p.terms}
        allowed = baselines.NORMS if "GR" in terms or not terms & {"IBP_loss", "IBP_pred", "TBP"} else ("l1", "l2")
        if self.baseline_norm not in allowed:
            raise ValueError(f"TrainConfig.baseline_norm must be one of {allowed} for terms {sorted(terms)}, "
                             f"got {self.baseline_norm!r}")
        if not isinstance(self.n_proj, int) or not 0 <= self.n_proj <= 1000:
            raise ValueError(f"TrainConfig.n_proj must be an integer in [0, 1000] (0: exact), got {self.n_proj!r}")
        if not (isinstance(self.adversarial_eps, (int, float)) and 0 <= self.adversarial_eps <= 1):
            raise ValueError(f"TrainConfig.adversarial_eps must be in [0, 1], got {self.adversarial_eps!r}")

    @property
    def families(self) -> list[str]:
        """Direction families any phase needs (R_f or J_f terms)."""
        return losses.families({t for p in self.phases for t in p.terms})

    @property
    def robust(self) -> bool:
        """Any phase aligns derivatives with the oracle's along random directions."""
        return any(t.startswith("R") for p in self.phases for t in p.terms)

    @property
    def robust2(self) -> bool:
        """Any phase trains second derivatives along random directions (R2_f, §5.4)."""
        return any(t.startswith("R2_") for p in self.phases for t in p.terms)

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    @property
    def order(self) -> int:
        """Highest derivative order any phase trains."""
        terms = {t for p in self.phases for t in p.terms}
        return 2 if "E2" in terms or self.robust2 else 1 if terms & {"E1", "TBP"} else 0

    def key(self) -> str:
        # fields added after results were stored enter the key only when set, so existing
        # result files keep their names
        d = dataclasses.asdict(self)
        for name, default in _LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


_LATER_FIELDS = {"noise_sigma": 0.0, "jacobian_weight": 1.0, "n_ij_rule": "scaled", "baseline_weight": 1.0,
                 "baseline_norm": "l1", "n_proj": 1, "adversarial_eps": 0.0}


@dataclass
class TrainResult:
    model: jets.MLP
    curves: dict = field(default_factory=dict)  # epoch, e_train, e_test, loss per term
    seconds: float = 0.0  # training time, without evaluation
    resumed_from: int = 0
    epochs_done: int = 0
    complete: bool = True  # False when stopped early by `until_epoch` or `time_limit`


class DeviceData:
    """One split flattened for the network and kept on the training device.

    `rows` [N, R, 1681] stacks each image with its derivative images (R = 1, 7 or 28 for
    order 0, 1, 2), so a batch of the extended forward pass is one gather.  `tangent` (for the
    second-order robust terms) holds the oracle expansion's constants of every image.
    """

    def __init__(self, split: data.Split, order: int, device, dtype=torch.float32, oracle_gradients=False,
                 tangent=False):
        n = len(split)
        self.grad_O = self.tangent = None
        if oracle_gradients:  # grad O_k of every image (eqs. 25-26), for the robust terms
            from . import oracle, render
            self.grad_O = torch.cat([
                oracle.gradients(split.vertices[i:i + 512], render.RenderResult(
                    image=split.image[i:i + 512].double(), d1=split.d1[i:i + 512].double())).flatten(2).to(device, dtype)
                for i in range(0, n, 512)])
        parts = [split.image.reshape(n, 1, -1)]
        if order >= 1:
            parts.append(split.d1.reshape(n, 6, -1))
        if order >= 2:
            parts.append(split.d2.reshape(n, 21, -1))
        self.rows = torch.cat([p.to(device, dtype) for p in parts], 1)
        self.target = split.target.to(device, dtype)
        self.target_d1 = split.target_d1.to(device, dtype) if order >= 1 else None
        self.target_d2 = split.target_d2.to(device, dtype) if order >= 2 else None
        if tangent:
            from . import oracle
            if order < 2:
                raise ValueError("the oracle's second derivatives need the image Hessians (order 2)")
            self.tangent = oracle.tangent(split.vertices, self.rows[:, 1:7], self.rows[:, 7:28])

    def oracle_d2(self, D: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """d2O/dD2 (eq. 51) of every image along its direction D [N, P]: [N, 9]."""
        from . import oracle
        return torch.cat([oracle.along(self.tangent[i:i + chunk], D[i:i + chunk, None], order=2).d2O[:, 0]
                          for i in range(0, len(self), chunk)]).to(D.dtype)

    @property
    def x(self):
        return self.rows[:, 0]

    def __len__(self):
        return self.rows.shape[0]


class fp32_matmul:
    """Context: full-precision float32 matmuls on CUDA (TF32 off), restored on exit."""

    def __enter__(self):
        self.old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self.old


def error_e(model, x, target, D, batch=8192) -> torch.Tensor:
    """Eq. (8) per output: rms(N_i - C_i) / D_i, in percent; e is the mean of the 9.
    Evaluated without TF32, so the reported error is the network's, not the rounding's."""
    with torch.no_grad(), fp32_matmul():
        sq = torch.zeros(target.shape[1], dtype=torch.float64, device=x.device)
        for i in range(0, x.shape[0], batch):
            sq += ((model(x[i:i + batch]) - target[i:i + batch]).double() ** 2).sum(0)
        return 100 * torch.sqrt(sq / x.shape[0]) / D.to(sq)


def _save(path: Path, payload: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, ds: data.Dataset, device="cpu", checkpoint: Path | None = None,
          checkpoint_seconds: float = 300.0, progress: bool = True, desc: str = "train",
          until_epoch: int | None = None, time_limit: float | None = None) -> TrainResult:
    """Train a fresh network (or resume `checkpoint`) on `ds` according to `cfg`.

    `until_epoch` and `time_limit` (seconds of this call) stop early at an epoch boundary,
    after a checkpoint; the result then has complete=False and a later call resumes.
    """
    device = torch.device(device)
    if cfg.batches > len(ds.train):
        raise ValueError(f"TrainConfig.batches ({cfg.batches}) exceeds the {len(ds.train)} training images")
    if cfg.order > ds.config.order:
        raise ValueError(f"the config trains order-{cfg.order} derivatives but the data set holds only "
                         f"order {ds.config.order}; load it with order={cfg.order}")
    train_set = DeviceData(ds.train, max(cfg.order, 1 if cfg.robust else 0), device, oracle_gradients=cfg.robust,
                           tangent=cfg.robust2)
    test_x = ds.test.image.reshape(len(ds.test), -1).to(device, torch.float32)
    test_t = ds.test.target.to(device, torch.float32)
    norms = losses.Norms.from_dataset(ds, device, second_order=any("E2" in p.terms for p in cfg.phases),
                                      n_ij_rule=cfg.n_ij_rule)
    # the trade-off between accuracy and robustness shows along training: v_max (eq. 34) of
    # a fixed test subset at every point of the curves (data sets with image derivatives)
    vul_x = vul_O = None
    if ds.test.d1 is not None:
        vul_x = ds.test.image[:CURVE_VUL_IMAGES].to(device, torch.float32)
        vul_O = robustness.split_oracle_gradients(ds.test, CURVE_VUL_IMAGES).to(device)
    P = train_set.rows.shape[-1]
    n = len(train_set)
    families = cfg.families
    if cfg.robust:  # n_i and c of eq. (43) (and of R^II, §5.4), from one fixed draw of each family
        fixed = torch.Generator().manual_seed(cfg.seed + 7919)
        norms.robust, norms.robust2 = {}, {}
        second = losses.second_families({t for p in cfg.phases for t in p.terms})
        for f in families:
            D = getattr(directions, f)(n, fixed, dtype=torch.float32).reshape(n, P).to(device)
            n_i, c = losses.robust_norms(train_set.grad_O, D)
            norms.robust[f] = (n_i.to(device), c)
            if f in second:
                n_i, c = losses.spread_norms(train_set.oracle_d2(D))
                norms.robust2[f] = (n_i.to(device), c)

    gen = torch.Generator().manual_seed(cfg.seed)
    # directions and augmentation noise come from their own stream, so runs without them
    # draw exactly the same batches as before they existed
    dir_gen = torch.Generator().manual_seed(cfg.seed + 1)
    model = jets.MLP(cfg.hidden, generator=gen).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.phases[0].lr, betas=(0.9, 0.999), eps=1e-8)
    curves = {"epoch": [], "e_train": [], "e_test": [], "v_max_test": [], **{t: [] for t in TERMS}}
    start, seconds = 0, 0.0
    key = cfg.key() + ":" + ds.config.key()
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")
        if state.get("key") == key:
            model.load_state_dict(state["model"])  # copies onto the model's device
            opt.load_state_dict(state["optimizer"])  # casts the moments to the parameters' device
            gen.set_state(state["generator"].cpu())  # the permutation RNG lives on the CPU
            if "dir_generator" in state:
                dir_gen.set_state(state["dir_generator"].cpu())
            curves, start, seconds = state["curves"], state["epoch"], state["seconds"]
            curves.setdefault("v_max_test", [])  # checkpoints from before the v_max curve
            for t in TERMS:  # and from before the baselines' terms
                curves.setdefault(t, [None] * len(curves["epoch"]))

    def snapshot(epoch):
        if checkpoint is not None:
            _save(Path(checkpoint), {"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                     "generator": gen.get_state(), "dir_generator": dir_gen.get_state(),
                                     "curves": curves, "epoch": epoch,
                                     "seconds": seconds})

    schedule = [p for p in cfg.phases for _ in range(p.epochs)]  # the phase of each epoch
    last_save = started = time.monotonic()
    # Ctrl-C (or a kernel interrupt) stops at the end of the current epoch, after a checkpoint,
    # so that a resumed run is exactly the run that was never interrupted.
    interrupted = []
    no_handler = object()
    old_handler = no_handler
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32  # training matmuls only; evaluation is fp32
    bar = tqdm(total=cfg.epochs, initial=start, desc=desc, unit="epoch", disable=not progress, mininterval=2.0)
    try:
        for epoch in range(start, cfg.epochs):
            phase = schedule[epoch]
            for group in opt.param_groups:
                group["lr"] = phase.lr
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=gen).to(device)
            # new random directions every epoch (§4.6.1), new noise for augmentation (eq. 44)
            dirs = {f: getattr(directions, f)(n, dir_gen, dtype=torch.float32).reshape(n, P).to(device)
                    for f in losses.families(phase.terms)}
            d2O = {f: train_set.oracle_d2(dirs[f]) for f in losses.second_families(phase.terms)}
            noise = None
            if cfg.noise_sigma > 0:
                noise = cfg.noise_sigma * torch.randn(n, P, generator=dir_gen).to(device)
            projections = None  # 003's random output vectors, fresh for every image and epoch
            if "JR" in phase.terms and cfg.n_proj > 0:
                projections = baselines.unit_projections(n, cfg.n_proj, dir_gen).to(device)
            sums = {t: torch.zeros((), device=device) for t in phase.terms}
            chunks = torch.tensor_split(perm, cfg.batches)  # exactly cfg.batches batches
            for idx in chunks:
                terms = losses.terms(model, train_set, idx, phase.terms, norms, dirs, noise, cfg.jacobian_weight, d2O,
                                     cfg.baseline_weight, cfg.baseline_norm, projections, cfg.adversarial_eps)
                loss = sum(terms.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for t, v in terms.items():
                    sums[t] += v.detach()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            done = epoch + 1
            if done % cfg.eval_every == 0 or done == cfg.epochs:
                curves["epoch"].append(done)
                curves["e_train"].append(error_e(model, train_set.x, train_set.target, norms.D).mean().item())
                curves["e_test"].append(error_e(model, test_x, test_t, norms.D).mean().item())
                if vul_x is not None:
                    with fp32_matmul():
                        curves["v_max_test"].append(robustness.measure(model, vul_x, vul_O)["v_max"])
                for t in TERMS:
                    curves[t].append(sums[t].item() / len(chunks) if t in sums else None)
                bar.set_postfix(e_test=f"{curves['e_test'][-1]:.3f}%")
            bar.update(1)
            if interrupted:
                snapshot(done)
                raise KeyboardInterrupt(f"training stopped after epoch {done}; checkpoint saved to {checkpoint}")
            if (until_epoch is not None and done >= until_epoch) or \
                    (time_limit is not None and time.monotonic() - started > time_limit):
                if done < cfg.epochs:
                    snapshot(done)
                    return TrainResult(model=model, curves=curves, seconds=seconds, resumed_from=start,
                                       epochs_done=done, complete=False)
            if checkpoint is not None and time.monotonic() - last_save > checkpoint_seconds:
                snapshot(done)
                last_save = time.monotonic()
    finally:
        bar.close()
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
        if old_handler is not no_handler:
            signal.signal(signal.SIGINT, old_handler if old_handler is not None else signal.SIG_DFL)
    snapshot(cfg.epochs)
    return TrainResult(model=model, curves=curves, seconds=seconds, resumed_from=start, epochs_done=cfg.epochs)
