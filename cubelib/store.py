"""The result store: immutable results of experiments, with a manifest and provenance.

An `Experiment` (a data set and a training recipe) has a key: a hash of both and of the
schema, i.e. of everything it is asked to compute.  Its result lives in
results/<preset>/<name>-<key>.json (metrics, learning curves, provenance) and, for networks
of up to SMALL_MODEL weights, its weights beside it.  A written result is never rewritten.

The code that turns a data set into a result has a version, `code_version()` (versions.py):
a hash of the training and evaluation modules with comments and docstrings left out.  A result made by
other code is used only when results/equivalences.json records that code as verified to
give bit-identical training (scripts/check_equivalence.py does the check and writes the
record); otherwise loading it raises StaleResult, and nothing is silently retrained over it.
With CUBELIB_NO_TRAIN=1, `run` raises instead of training (the book built from results).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import data, evaluate, jets, recipes, train
from . import versions
from .versions import code_version, normalised_source, write_json

SCHEMA = 2
ROOT = Path(__file__).resolve().parents[1]
# networks up to this many weights (L <= 256: ~2.4 MB) keep their weights beside the result,
# so analyses can load them without retraining; larger ones stay in the checkpoint cache
SMALL_MODEL = 1_000_000
# presets whose runs last several sessions keep their checkpoints beside the results (committed
# to git, a few MB each at L = 256), so a new machine resumes them; the others' stay in the cache
PERSISTENT_CHECKPOINTS = ("paper-small",)


class StaleResult(RuntimeError):
    """A stored result made by code not recorded as equivalent to the current code."""


class TrainingDisabled(RuntimeError):
    """CUBELIB_NO_TRAIN is set and a result is missing."""


class Busy(RuntimeError):
    """Another process is training this experiment (it holds its training lock)."""


_HELD: set[Path] = set()  # the lock files of the training locks this process holds


@contextlib.contextmanager
def training_lock(exp: Experiment, root: Path | None = None):
    """Exclusive, non-blocking, per experiment and across processes (an flock on its
    checkpoint's `.lock` file, released when the holder exits or dies): two processes that
    train one network would both spend its hours and race to write its result.  Re-entrant
    within a process, so `run` can hold it across `compute` and `write`."""
    import fcntl
    path = exp.checkpoint_path(root)
    path = path.with_name(path.name + ".lock")
    if path in _HELD:  # held further out in this process (run -> compute), which releases it
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{exp.name} is being trained by another process (it holds {path}); "
                       f"wait for it to finish or stop it, then run again") from None
        _HELD.add(path)
        try:
            yield
        finally:
            _HELD.discard(path)


@contextlib.contextmanager
def training(allowed: bool):
    """Within: `run` and `analysis` may compute what is missing only if `allowed` (else they
    raise TrainingDisabled, as with CUBELIB_NO_TRAIN=1, which always wins)."""
    old = os.environ.get("CUBELIB_NO_TRAIN")
    if not allowed:
        os.environ["CUBELIB_NO_TRAIN"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CUBELIB_NO_TRAIN", None)
        else:
            os.environ["CUBELIB_NO_TRAIN"] = old


def results_root() -> Path:
    return Path(os.environ.get("CUBELIB_RESULTS", ROOT / "results"))


def accepted_versions(root: Path | None = None) -> set[str]:
    """The current code version and those recorded as training identically (versions.py)."""
    return versions.accepted_versions(root or results_root())


def record_equivalence(old: str, evidence: str, root: Path | None = None, checked: list[str] | None = None):
    """Record in results/equivalences.json that code `old` trains like the current code."""
    versions.record_equivalence(root or results_root(), old, evidence, checked)


@dataclass(frozen=True)
class Experiment:
    name: str  # e.g. "accuracy-quick-first-L128"; the file name starts with it
    preset: str
    chapter: str  # the chapter that trains it
    data: data.DatasetConfig
    recipe: recipes.Recipe
    # an experiment whose recipe is a prefix of this one's (same data and settings, its phases
    # the first of ours): training continues from its final checkpoint when the cache has it
    # (bit-identical, since a resumed run is the uninterrupted run)
    parent: "Experiment | None" = None

    def __post_init__(self):
        p = self.parent
        if p is not None:
            same = dataclasses.replace(self.recipe, phases=p.recipe.phases) == p.recipe
            prefix = self.recipe.phases[:len(p.recipe.phases)] == p.recipe.phases
            if p.data != self.data or not same or not prefix or len(p.recipe.phases) >= len(self.recipe.phases):
                raise ValueError(f"Experiment {self.name!r}: parent {p.name!r} must have the same data and "
                                 "recipe, with phases a strict prefix of this one's")

    def key(self) -> str:
        blob = json.dumps({"data": self.data.key(), "recipe": self.recipe.key(), "schema": SCHEMA}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def path(self, root: Path | None = None) -> Path:
        return (root or results_root()) / self.preset / f"{self.name}-{self.key()}.json"

    def weights_path(self, root: Path | None = None) -> Path:
        return self.path(root).with_suffix(".pt")

    def checkpoint_path(self, root: Path | None = None) -> Path:
        folder = (root or results_root()) / self.preset / "checkpoints" if self.preset in PERSISTENT_CHECKPOINTS \
            else data.default_cache_dir() / "checkpoints"
        return folder / f"{self.name}-{self.key()}.pt"


@dataclass(frozen=True)
class Result:
    name: str
    key: str
    metrics: dict  # evaluate.metrics
    curves: dict  # learning curves (train.train)
    provenance: dict  # code_version, git commit, device, torch, train_seconds, date
    config: dict  # the data set's and the recipe's description

    @property
    def e_test(self) -> float:
        return self.metrics["e_test"]

    @property
    def epochs(self) -> int:
        """Epochs the network was trained for (all phases of its recipe)."""
        return sum(ph["epochs"] for ph in self.config["recipe"]["phases"])

    @property
    def v_max_test(self) -> float:
        return self.metrics["v_max_test"]

    @property
    def minutes(self) -> float:
        return self.provenance["train_seconds"] / 60

    @property
    def device(self) -> str:
        """The machine it was trained on, for the text (device_text)."""
        return device_text(self.provenance)


# --------------------------------------------------------------------------------------
# Reading and writing

def read(exp: Experiment, root: Path | None = None) -> Result:
    """The stored result of `exp`; FileNotFoundError if there is none, ValueError if the file
    is unreadable or made for another config, StaleResult if made by unrecorded code."""
    path = exp.path(root)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    if raw.get("schema") != SCHEMA or raw.get("key") != exp.key():
        raise ValueError(f"{path}: made for another config or schema (key {raw.get('key')}, schema "
                         f"{raw.get('schema')}; expected {exp.key()}, {SCHEMA})")
    made_by = raw["provenance"].get("code_version")
    if made_by not in accepted_versions(root):
        raise StaleResult(f"{path.name} was made by code {made_by}, which is not recorded as equivalent to the "
                          f"current code {code_version()}: verify with scripts/check_equivalence.py (it records "
                          f"the equivalence), or delete the file to retrain")
    return Result(**{f.name: raw[f.name] for f in dataclasses.fields(Result)})


def load(exp: Experiment, root: Path | None = None) -> Result | None:
    """The stored result of `exp`, or None when there is none."""
    try:
        return read(exp, root)
    except FileNotFoundError:
        return None


def stored(exps: list[Experiment], root: Path | None = None) -> dict[str, Result]:
    """The stored results among `exps`, by experiment name; nothing is trained, and a result
    that is missing or made by code not recorded as equivalent is left out.  A corrupt file
    raises ValueError, as `load` does: it is a defect to mend, not a result to skip."""
    out = {}
    for e in exps:
        try:
            r = load(e, root)
        except StaleResult:
            r = None
        if r is not None:
            out[e.name] = r
    return out


def run(exp: Experiment, device="cpu", root: Path | None = None, progress: bool = True,
        time_limit: float | None = None) -> Result | None:
    """Load the result of `exp` or compute it.  Returns None if `time_limit` (seconds) ran out
    first; the checkpoint then lets the next call resume."""
    found = load(exp, root)
    if found is not None:
        return found
    if os.environ.get("CUBELIB_NO_TRAIN"):
        raise TrainingDisabled(f"{exp.path(root)} is missing and CUBELIB_NO_TRAIN is set")
    with training_lock(exp, root):  # Busy if another process trains it
        found = load(exp, root)  # it may have finished between our first look and the lock
        if found is not None:
            return found
        computed = compute(exp, device, root, progress, time_limit)
        if computed is None:
            return None
        return write(exp, *computed, root=root)


def compute(exp: Experiment, device="cpu", root: Path | None = None, progress: bool = True,
            time_limit: float | None = None) -> tuple[dict, dict | None] | None:
    """Train `exp` (resuming its checkpoint, or its parent's final one) and evaluate it, writing
    no result: (the result file's content, the weights as a CPU state dict or None over
    SMALL_MODEL weights), for `write`; None if `time_limit` ran out first.  `run` is `load`,
    else `compute` then `write`; a sweep's worker computes and its driver writes (sweep.py)."""
    with training_lock(exp, root):  # Busy if another process trains it
        return _compute(exp, device, root, progress, time_limit)


def _compute(exp, device, root, progress, time_limit):
    started = time.monotonic()
    ds = data.load(exp.data, device=device, progress=progress)
    if time_limit is not None:  # building the data set counts against the limit too
        time_limit = max(0.0, time_limit - (time.monotonic() - started))
    ck = exp.checkpoint_path(root)
    if exp.parent is not None and not ck.exists():
        try:  # without its parent's final checkpoint a child trains the parent's epochs itself
            with training_lock(exp.parent, root):
                _continue_parent(exp, ck, root)
        except Busy:
            raise Busy(f"{exp.name} continues from {exp.parent.name}'s final checkpoint, and another process "
                       f"is training {exp.parent.name}; run it once that has finished") from None
    res = train.train(exp.recipe, ds, device=device, checkpoint=ck, progress=progress, desc=exp.name,
                      time_limit=time_limit)
    if not res.complete:
        return None
    raw = {"schema": SCHEMA, "name": exp.name, "key": exp.key(),
           "config": {"data": dataclasses.asdict(exp.data), "recipe": exp.recipe.describe()},
           "metrics": evaluate.metrics(res.model, ds, device), "curves": res.curves,
           "provenance": provenance(device, res.seconds)}
    small = res.model.n_weights() <= SMALL_MODEL
    return raw, ({k: v.cpu() for k, v in res.model.state_dict().items()} if small else None)


def write(exp: Experiment, raw: dict, weights: dict | None, root: Path | None = None) -> Result:
    """Store what `compute` returned: the weights (when given), the result file, its manifest
    entry; the files `run` writes, byte for byte.  FileExistsError if the result is there."""
    if exp.path(root).exists():
        raise FileExistsError(f"{exp.path(root)} exists; results are immutable")
    if weights is not None:
        path = exp.weights_path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(weights, path.with_suffix(".tmp-pt"))
        os.replace(path.with_suffix(".tmp-pt"), path)
    write_json(exp.path(root), raw)
    add_to_manifest(exp, raw, root)
    return read(exp, root)


def model(exp: Experiment, device="cpu", root: Path | None = None) -> jets.MLP:
    """The trained network of `exp` from its stored weights, else from its final checkpoint in
    the cache; FileNotFoundError when neither exists (train it with `run` first)."""
    net = jets.MLP(exp.recipe.hidden)
    if load(exp, root) is None:
        raise FileNotFoundError(f"{exp.name}: no result; run it first (store.run)")
    if exp.weights_path(root).exists():
        net.load_state_dict(torch.load(exp.weights_path(root), weights_only=True))
        return net.to(device)
    ck = exp.checkpoint_path(root)
    if ck.exists():
        state = torch.load(ck, weights_only=False, map_location="cpu")
        if state.get("epoch") == exp.recipe.epochs and state.get("key", "").startswith(exp.recipe.key()):
            net.load_state_dict(state["model"])
            return net.to(device)
    raise FileNotFoundError(f"{exp.name}: its weights are not stored (over {SMALL_MODEL} weights) and its final "
                            f"checkpoint {ck} is not in this cache")


def network(exp: Experiment, device="cpu", root: Path | None = None) -> jets.MLP:
    """`run(exp)` (load, or train unless CUBELIB_NO_TRAIN is set), then `model(exp)`."""
    if run(exp, device=device, root=root, progress=False) is None:
        raise RuntimeError(f"{exp.name}: training stopped before the end")
    return model(exp, device, root)


def _continue_parent(exp: Experiment, ck: Path, root: Path | None = None):
    """Start `exp` from its parent's final checkpoint, if the cache has it."""
    src = exp.parent.checkpoint_path(root)
    if not src.exists():
        return
    state = torch.load(src, weights_only=False, map_location="cpu")
    if state.get("key") != exp.parent.recipe.key() + ":" + exp.parent.data.key() or \
            state.get("epoch") != exp.parent.recipe.epochs:
        return
    state["key"] = exp.recipe.key() + ":" + exp.data.key()
    train.save(ck, state)


# --------------------------------------------------------------------------------------
# Analyses of several trained networks (noise sweeps, indicator tables)

def analysis_key(spec: dict, code: tuple) -> str:
    """The key of an analysis: its spec, the schema, and the code that computes it (the
    physics module and the computing function itself, without comments and docstrings)."""
    blob = json.dumps({"spec": spec, "schema": SCHEMA, "code": [normalised_source(c) for c in code]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def analysis(preset: str, kind: str, spec: dict, code: tuple, compute=None, root: Path | None = None) -> dict | None:
    """The analysis `kind` of `spec` (its networks' experiment keys and its settings), made by
    `code` (modules and functions, e.g. (cubelib.noise, compute_sweep)):
    results/<preset>/analysis-<kind>-<key>.json, the key covering `spec`, the schema and that
    code, so an edit of the computing function or of its module computes it anew.  Loaded
    when present; else computed by `compute()` (a dict) and written with provenance; None when
    absent and `compute` is None.  Like results, a file made by unrecorded training code
    raises StaleResult."""
    path = (root or results_root()) / preset / f"analysis-{kind}-{analysis_key(spec, code)}.json"
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable ({exc}); delete it to recompute") from exc
        if found["provenance"].get("code_version") not in accepted_versions(root):
            raise StaleResult(f"{path.name} was made by code {found['provenance'].get('code_version')}, not recorded "
                              f"as equivalent to {code_version()}; delete it to recompute")
        return found
    if compute is None:
        return None
    if os.environ.get("CUBELIB_NO_TRAIN"):
        raise TrainingDisabled(f"{path} is missing and CUBELIB_NO_TRAIN is set")
    started = time.monotonic()
    out = dict(compute(), spec=spec)
    out["provenance"] = provenance("cpu", time.monotonic() - started)
    write_json(path, out)
    return out


# --------------------------------------------------------------------------------------
# Provenance and the manifest

def device_text(provenance: dict) -> str:
    """A provenance's device, e.g. "CPU (x86_64, 1 thread)": results stored before the
    singular was written say "1 threads" (stored files are never rewritten)."""
    return provenance["device"].replace(", 1 threads)", ", 1 thread)")


def provenance(device, seconds: float) -> dict:
    device = torch.device(device)
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'' if threads == 1 else 's'})"
    return {"code_version": code_version(), "git_commit": versions.git_commit(), "device": name,
            "torch": torch.__version__, "python": platform.python_version(), "train_seconds": round(seconds, 2),
            "date": versions.now()}


def manifest_path(preset: str, root: Path | None = None) -> Path:
    return (root or results_root()) / preset / "manifest.json"


def manifest(preset: str, root: Path | None = None) -> dict:
    path = manifest_path(preset, root)
    return json.loads(path.read_text()) if path.exists() else {}


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (through `path`.lock) across processes: several runs of
    one preset (sweeps, parallel jobs) update its manifest without losing an entry."""
    import fcntl
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def add_to_manifest(exp: Experiment, raw: dict, root: Path | None = None):
    """Record a new result: key -> name, chapter, code version, commit, date and checksums."""
    files = [exp.path(root)] + ([exp.weights_path(root)] if exp.weights_path(root).exists() else [])
    entry = {"name": exp.name, "chapter": exp.chapter, "code_version": raw["provenance"]["code_version"],
             "commit": raw["provenance"]["git_commit"], "date": raw["provenance"]["date"],
             "sha256": {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}}
    with _locked(manifest_path(exp.preset, root)):
        entries = manifest(exp.preset, root)
        entries[exp.key()] = entry
        write_json(manifest_path(exp.preset, root), dict(sorted(entries.items(), key=lambda kv: kv[1]["name"])),
                   overwrite=True)


def status(experiments: list[Experiment], root: Path | None = None) -> dict:
    """What the store holds for a preset's experiments: `missing` (not trained), `stale`
    (made by unrecorded code), `corrupt` (checksum differs from the manifest, or unreadable),
    `orphaned` (files of the preset no experiment asks for), `ok`."""
    out = {"ok": [], "missing": [], "stale": [], "corrupt": [], "orphaned": []}
    presets = {e.preset for e in experiments}
    wanted = {e.path(root).name for e in experiments}
    for exp in experiments:
        entry = manifest(exp.preset, root).get(exp.key())
        try:
            found = read(exp, root)
        except FileNotFoundError:
            out["missing"].append(exp.name)
            continue
        except StaleResult:
            out["stale"].append(exp.name)
            continue
        except ValueError:
            out["corrupt"].append(exp.name)
            continue
        digest = hashlib.sha256(exp.path(root).read_bytes()).hexdigest()
        ok = found is not None and entry is not None and entry["sha256"].get(exp.path(root).name) == digest
        out["ok" if ok else "corrupt"].append(exp.name)
    for preset in presets:
        for f in sorted(((root or results_root()) / preset).glob("*.json")):
            if f.name != "manifest.json" and f.name not in wanted and not f.name.startswith("analysis-"):
                out["orphaned"].append(f"{preset}/{f.name}")
    return out


