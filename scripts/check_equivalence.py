"""Check that the working tree trains bit for bit like an older commit, and record it.

When a change to the code in cubelib.store.CODE is meant to leave every number unchanged,
this proves it instead of assuming it: one network per distinct recipe shape among the stored
results of a preset (its phases cut to one epoch each, its layers to width 32; strengths are
numbers on the same code path, so one per shape) is trained by the old commit's cubelib and
by the working tree's, on the same cached data set, and the final weights must be equal bit
for bit.  Then results/equivalences.json gets a record: the stored results' code versions
train like the current code.  Results themselves are never rewritten.

    python scripts/check_equivalence.py OLD_COMMIT [--preset quick] [--dry-run]

Commits before the typed recipes (schema 1: cubelib.train.TrainConfig) are driven through
their own API, translated from each recipe.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# every snippet runs in a fresh interpreter with the cubelib to test first on sys.path; the
# venv's editable install of the working tree would otherwise answer for modules the tested
# tree lacks, so its finder is removed first
PRELUDE = r'''
import os, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
import cubelib
assert cubelib.__file__.startswith(os.environ["PYTHONPATH"]), cubelib.__file__
'''
# argv: spec, output
TRAIN_RECIPE = PRELUDE + r'''
import json, sys, torch
from cubelib import data, recipes, train
spec = json.loads(sys.argv[1])
ds = data.load(data.DatasetConfig(**spec["data"]), progress=False)
res = train.train(recipes.Recipe.from_description(spec["recipe"]), ds, progress=False)
torch.save(res.model.state_dict(), sys.argv[2])
'''
TRAIN_CONFIG = PRELUDE + r'''
import json, sys, torch
from cubelib import data, train
from cubelib.train import Phase, TrainConfig
spec = json.loads(sys.argv[1])
ds = data.load(data.DatasetConfig(**spec["data"]), progress=False)
r = spec["recipe"]
extra = {}
phases = []
for p in r["phases"]:
    names = []
    for t in p["terms"]:
        kind = t["type"]
        if kind == "E0":
            names.append("E0")
            if t["noise"]: extra["noise_sigma"] = t["noise"]
            if t["adversarial_eps"]: extra["adversarial_eps"] = t["adversarial_eps"]
        elif kind == "E1": names.append("E1")
        elif kind == "E2": names.append("E2"); extra["n_ij_rule"] = t["n_ij_rule"]
        elif kind == "Robust": names.append(("R2_" if t["order"] == 2 else "R_") + t["family"])
        elif kind == "Jacobian": names.append("J_" + t["family"]); extra["jacobian_weight"] = t["weight"]
        else:
            names.append({"LossIBP": "IBP_loss", "PredictionIBP": "IBP_pred", "TangentBP": "TBP",
                          "JacobianNorm": "JR", "GradientReg": "GR"}[kind])
            extra["baseline_weight"] = t["weight"]
            if "norm" in t: extra["baseline_norm"] = t["norm"]
            if "n_proj" in t: extra["n_proj"] = t["n_proj"]
    phases.append(Phase(p["epochs"], p["lr"], tuple(names)))
cfg = TrainConfig(hidden=tuple(r["hidden"]), phases=tuple(phases), batches=r["batches"], seed=r["seed"],
                  eval_every=r["eval_every"], tf32=r["tf32"], **extra)
res = train.train(cfg, ds, progress=False)
torch.save(res.model.state_dict(), sys.argv[2])
'''

VERSION = PRELUDE + r'''
try:
    from cubelib import store
    print(store.code_version())
except ImportError:  # before the store: the hash of the training sources
    from cubelib import experiments
    print(experiments.training_source_hash())
'''


def shapes(preset: str) -> dict:
    """One short training spec per distinct recipe shape among the stored results of `preset`,
    with the code versions that made them."""
    out, versions = {}, {}
    for path in sorted((ROOT / "results" / preset).glob("*.json")):
        r = json.loads(path.read_text())
        if "recipe" not in r.get("config", {}):
            continue
        recipe = r["config"]["recipe"]
        short = dict(recipe, hidden=[32] * (len(recipe["hidden"]) - 1) + [16], eval_every=1,
                     phases=[dict(p, epochs=1) for p in recipe["phases"]])
        shape = " + ".join("/".join(t["type"] + "".join(f",{k}={v}" for k, v in sorted(t.items())
                                                          if k not in ("type", "weight", "noise", "adversarial_eps"))
                                    + (",noise" if t.get("noise") else "") + (",adv" if t.get("adversarial_eps") else "")
                                    for t in p["terms"]) for p in short["phases"])
        out.setdefault(shape, {"data": r["config"]["data"], "recipe": short})
        versions.setdefault(r["provenance"]["code_version"], []).append(r["name"])
    return out, versions


def _env(tree: Path, cache: str) -> dict:
    return {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "CUBELIB_CACHE": cache, "OMP_NUM_THREADS": "1"}


def train_with(tree: Path, spec: dict, out: Path, cache: str):
    snippet = TRAIN_RECIPE if (tree / "cubelib" / "recipes.py").exists() else TRAIN_CONFIG
    subprocess.run([sys.executable, "-c", snippet, json.dumps(spec), str(out)], check=True, env=_env(tree, cache),
                   cwd=tempfile.gettempdir())


def version_of(tree: Path, cache: str) -> str:
    return subprocess.run([sys.executable, "-c", VERSION], check=True, env=_env(tree, cache), capture_output=True,
                          text=True, cwd=tempfile.gettempdir()).stdout.strip()


def main() -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("old")
    a.add_argument("--preset", default="quick")
    a.add_argument("--dry-run", action="store_true", help="check, but record nothing")
    a.add_argument("--recheck", action="store_true",
                   help="check every stored code version other than the current one, even if already recorded")
    args = a.parse_args()
    old = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.old], capture_output=True, text=True).stdout.strip()
    if not old:
        raise SystemExit(f"unknown commit {args.old!r}")
    sys.path.insert(0, str(ROOT))
    import torch
    from cubelib import data, store
    cache = str(data.default_cache_dir())
    specs, versions = shapes(args.preset)
    stale = sorted(set(versions) - ({store.code_version()} if args.recheck else store.accepted_versions()))
    if not stale:
        print("every stored result is already accepted by the current code")
        return 0
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "old").mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", old, "cubelib"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp / "old")], input=archive.stdout, check=True)
        old_version = version_of(tmp / "old", cache)
        if old_version not in stale:
            raise SystemExit(f"{old[:12]}'s code is version {old_version}; the results to accept were made by "
                             f"{', '.join(stale)}: check against the commit that made them")
        for name, spec in specs.items():
            train_with(tmp / "old", spec, tmp / "a.pt", cache)
            train_with(ROOT, spec, tmp / "b.pt", cache)
            A, B = torch.load(tmp / "a.pt"), torch.load(tmp / "b.pt")
            equal = A.keys() == B.keys() and all(torch.equal(A[k], B[k]) for k in A)
            same &= equal
            print(f"{'bit-identical' if equal else 'DIFFERENT'}: {name}", flush=True)
    if not same:
        print(f"the working tree trains differently from {old[:12]}: nothing recorded")
        return 1
    if not args.dry_run:
        store.record_equivalence(old_version, f"scripts/check_equivalence.py: {len(specs)} recipe shapes of the "
                                              f"{args.preset} results trained bit-identically by {old[:12]} and by "
                                              f"the working tree", checked=sorted(specs))
        print(f"recorded: code {old_version} trains like {store.code_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
