"""Training and test sets (section 3.4), built once and cached on disk.

A data set is a pure function of its `DatasetConfig`: poses are R-sequence points
start .. start + n_train - 1 (training) and the n_test points that follow (test), so the test
poses interleave with the training ones without repeating them.  Each split holds the
vertices, the 9 targets with their first and second derivatives along nu (closed form), and
the images with image derivatives up to `order`.  Files are keyed by a hash of the config,
the schema, the renderer version and the source of geometry, sampling and render; a stale
or corrupt file is rebuilt, never reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import geometry, oracle, presets, render, sampling

SCHEMA = 1
_STORAGE = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class DatasetConfig:
    n_train: int
    n_test: int
    order: int = 1  # image derivatives stored: 0 (images), 1 (+ dI/dnu), 2 (+ d2I/dnu2)
    sigma: float = render.SIGMA
    storage: str = "float32"  # dtype of the image tensors on disk and in memory
    start: int = 0  # offset into the R-sequence

    def __post_init__(self):
        for name in ("n_train", "n_test", "start"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "n_train" else 0):
                low = 1 if name == "n_train" else 0
                raise ValueError(f"DatasetConfig.{name} must be an integer >= {low}, got {v!r}")
        if self.order not in (0, 1, 2):
            raise ValueError(f"DatasetConfig.order must be 0, 1 or 2, got {self.order!r}")
        if not (isinstance(self.sigma, (int, float)) and 0 < self.sigma <= 0.2):
            raise ValueError(f"DatasetConfig.sigma must be in (0, 0.2], got {self.sigma!r}")
        if self.storage not in _STORAGE:
            raise ValueError(f"DatasetConfig.storage must be one of {sorted(_STORAGE)}, got {self.storage!r}")

    def key(self) -> str:
        blob = json.dumps({"config": dataclasses.asdict(self), "schema": SCHEMA,
                           "render": render.RENDER_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dataset_config(preset, **overrides) -> DatasetConfig:
    """The data set of a preset (a name or presets.Preset); keyword arguments override fields
    (e.g. order=2)."""
    p = presets.get(preset)
    return DatasetConfig(n_train=p.n_train, n_test=p.n_test, **overrides)


@dataclass
class Split:
    vertices: torch.Tensor  # [N, 8, 3] float64
    target: torch.Tensor  # [N, 9] float64, C of eq. (1)
    target_d1: torch.Tensor  # [N, 6, 9] dC/dnu_i
    target_d2: torch.Tensor  # [N, 21, 9] d2C/dnu_i dnu_j, i <= j
    image: torch.Tensor  # [N, 41, 41]
    d1: torch.Tensor | None  # [N, 6, 41, 41]
    d2: torch.Tensor | None  # [N, 21, 41, 41]
    visible: torch.Tensor  # [N, 6] bool

    def __len__(self):
        return self.target.shape[0]


@dataclass
class Norms:
    """Normalisation constants from the training set: n = avg ||C|| (eq. 7),
    n_i = avg ||dC/dnu_i|| (section 4.3), D_i = std of C_i (eq. 8)."""

    n: float
    n_i: torch.Tensor  # [6]
    D_i: torch.Tensor  # [9]


@dataclass
class Dataset:
    config: DatasetConfig
    train: Split
    test: Split
    norms: Norms
    path: Path | None = None


def source_hash(*modules) -> str:
    """Hash of the source files of `modules`: a cache made by other code is not reused."""
    h = hashlib.sha256()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()[:12]


def cache_path(config: DatasetConfig, cache_dir: Path) -> Path:
    """Cache file of a data set: keyed by the config and by the source of the modules that
    compute it, so an edit to the renderer rebuilds the data (seconds to minutes) rather than
    reusing numbers made by other code."""
    return cache_dir / f"cube-{config.key()}-{source_hash(geometry, sampling, render)}.pt"


def default_cache_dir() -> Path:
    return Path(os.environ.get("CUBELIB_CACHE", Path.home() / ".cache" / "cubelib"))


def build_split(start: int, n: int, order: int, sigma: float, storage: torch.dtype,
                batch: int = 1024, device=None, progress: bool = True, desc: str = "render") -> Split:
    """Render R-sequence poses start .. start + n - 1 in batches (on `device`)."""
    vertices = sampling.sample_vertices(n, start)
    R = render.RESOLUTION
    image = torch.empty(n, R, R, dtype=storage)
    d1 = torch.empty(n, 6, R, R, dtype=storage) if order >= 1 else None
    d2 = torch.empty(n, 21, R, R, dtype=storage) if order >= 2 else None
    visible = torch.empty(n, 6, dtype=torch.bool)
    batch = batch if order < 2 else max(1, batch // 8)
    with tqdm(total=n, desc=desc, unit="img", disable=not progress, mininterval=1.0) as bar:
        for i in range(0, n, batch):
            v = vertices[i:i + batch].to(device)
            r = render.render(v, order=order, sigma=sigma)
            image[i:i + batch] = r.image.to("cpu", storage)
            if d1 is not None:
                d1[i:i + batch] = r.d1.to("cpu", storage)
            if d2 is not None:
                d2[i:i + batch] = r.d2.to("cpu", storage)
            visible[i:i + batch] = r.visible.cpu()
            bar.update(v.shape[0])
    return Split(
        vertices=vertices,
        target=geometry.target(vertices),
        target_d1=geometry.target(geometry.vertex_d1(vertices)),
        target_d2=geometry.target(geometry.vertex_d2(vertices)),
        image=image, d1=d1, d2=d2, visible=visible,
    )


# memoised oracle gradients up to this many bytes per split (quick's training set: 1.2 GB)
_MEMO_BYTES = 2 * 2**30


def oracle_gradients(split: Split, n: int | None = None, batch: int = 512, dtype=torch.float64) -> torch.Tensor:
    """grad O_k (eqs. 25-26) of the first `n` images of a split (all if None): [n, 9, 1681] in
    `dtype`, computed in float64 and rounded batch by batch (so float32 costs 4 bytes per value
    at any moment: 5.9 GB, not 17.6, for a paper-size training set).  Computed once per split,
    count and dtype (a fraction of a second per thousand images) and kept with the split, so
    training, its learning curves and the evaluation share them."""
    n = len(split) if n is None else min(n, len(split))
    if split.d1 is None:
        raise ValueError("the oracle gradients need the image derivatives: load the data set with order >= 1")
    memo = split.__dict__.setdefault("_oracle_gradients", {})  # not a dataclass field: never saved
    if (n, dtype) in memo:
        return memo[(n, dtype)]
    out = torch.empty(n, 9, split.image[0].numel(), dtype=dtype)
    for i in range(0, n, batch):
        j = min(i + batch, n)
        out[i:j] = oracle.gradients(split.vertices[i:j], render.RenderResult(
            image=split.image[i:j].double(), d1=split.d1[i:j].double())).flatten(2)
    if out.numel() * out.element_size() <= _MEMO_BYTES:
        memo[(n, dtype)] = out
    return out


def compute_norms(train: Split) -> Norms:
    return Norms(
        n=train.target.norm(dim=-1).mean().item(),
        n_i=train.target_d1.norm(dim=-1).mean(0),
        D_i=train.target.std(0),
    )


def build(config: DatasetConfig, device=None, progress: bool = True) -> Dataset:
    storage = _STORAGE[config.storage]
    train = build_split(config.start, config.n_train, config.order, config.sigma, storage,
                        device=device, progress=progress, desc="train set")
    test = build_split(config.start + config.n_train, config.n_test, config.order, config.sigma, storage,
                       device=device, progress=progress, desc="test set")
    return Dataset(config=config, train=train, test=test, norms=compute_norms(train))


# --------------------------------------------------------------------------------------
# Cache

def _digest(tensors: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        if t is not None:
            h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
            h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _flatten(ds: Dataset) -> dict:
    out = {}
    for split in ("train", "test"):
        for f in dataclasses.fields(Split):
            out[f"{split}.{f.name}"] = getattr(getattr(ds, split), f.name)
    return out


def _meta(config: DatasetConfig) -> dict:
    return {"config": dataclasses.asdict(config), "schema": SCHEMA, "render": render.RENDER_VERSION}


def save(ds: Dataset, path: Path) -> None:
    tensors = _flatten(ds)
    payload = {"meta": _meta(ds.config), "tensors": tensors, "digest": _digest(tensors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache file


def _read(path: Path, config: DatasetConfig) -> Dataset:
    """Load a cached data set, raising ValueError if it is stale or corrupt."""
    try:
        # mapped, not read: the pages are the OS's file cache, shared by every process that
        # trains on this data set (two paper-size runs hold one 5.5 GB copy, not two) and
        # private on write (a caller that modifies a tensor never changes the file)
        payload = torch.load(path, weights_only=True, mmap=True)
    except Exception as exc:  # truncated or not a torch file
        raise ValueError(f"unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("meta") != _meta(config):
        raise ValueError("stale (made for another config, schema or renderer version)")
    tensors = payload["tensors"]
    if _digest(tensors) != payload.get("digest"):
        raise ValueError("corrupt (checksum mismatch)")
    splits = {s: Split(**{f.name: tensors[f"{s}.{f.name}"] for f in dataclasses.fields(Split)})
              for s in ("train", "test")}
    return Dataset(config=config, norms=compute_norms(splits["train"]), path=path, **splits)


def load(config: DatasetConfig | str, cache_dir: Path | str | None = None, device=None,
         progress: bool = True) -> Dataset:
    """The data set for `config` (or a preset name): from the cache if valid, else built and cached.

    `device` is where rendering runs when a build is needed; the result lives on the CPU.
    """
    if isinstance(config, str):
        config = dataset_config(config)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_path(config, cache)
    if path.exists():
        try:
            return _read(path, config)
        except ValueError as why:
            warnings.warn(f"rebuilding {path.name}: cached file is {why}", stacklevel=2)
    ds = build(config, device=device, progress=progress)
    save(ds, path)
    ds.path = path
    return ds
