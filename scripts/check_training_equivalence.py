"""Check that the training code at HEAD reproduces an older commit's numbers bit for bit.

When a change to a hashed source (see experiments.training_source_hash) is meant to leave the
numbers of existing experiments unchanged, this proves it instead of assuming it: one network
per distinct recipe of the stored results (its phases shortened to one epoch each, the width
to 32) is trained by the old commit's cubelib and by the working tree's, on the same cached
data set, and the final weights must be equal bit for bit.  With --rehash, results made by
code identical to OLD (in every hashed source) then get the current hash, with a note naming
the check.

    python scripts/check_training_equivalence.py OLD_COMMIT [--preset quick] [--rehash]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HASHED = ["cubelib/jets.py", "cubelib/losses.py", "cubelib/train.py", "cubelib/directions.py", "cubelib/baselines.py",
          "cubelib/geometry.py", "cubelib/oracle.py", "cubelib/robustness.py"]

# runs in a fresh interpreter with the cubelib to test first on sys.path
TRAIN_ONE = r'''
import json, sys, torch
from cubelib import data, train
from cubelib.train import Phase, TrainConfig
spec = json.loads(sys.argv[1])
ds = data.load(data.DatasetConfig(**spec.pop("data")), progress=False)
phases = tuple(Phase(e, lr, tuple(t)) for e, lr, t in spec.pop("phases"))
res = train.train(TrainConfig(phases=phases, **spec), ds, progress=False)
torch.save(res.model.state_dict(), sys.argv[2])
'''


def recipes(preset: str, current: str) -> dict:
    """One short training spec per distinct recipe (phases and their terms; the strength of
    noise or Jacobian terms is one number in the same code path) among the stored results
    made by other code than `current`."""
    out = {}
    for path in sorted((ROOT / "results").glob(f"*-{preset}-*.json")):
        r = json.loads(path.read_text())
        if "config" not in r or r["provenance"].get("source_hash") == current:
            continue
        t = r["config"]["train"]
        spec = {"data": r["config"]["data"], "hidden": [32, 32, 32, 16], "batches": t["batches"], "seed": 0,
                "eval_every": 1, "phases": [[1, p["lr"], p["terms"]] for p in t["phases"]]}
        for k in ("noise_sigma", "jacobian_weight"):
            if t.get(k) not in (None, 0.0, 1.0):
                spec[k] = t[k]
        name = " + ".join("/".join(p[2]) for p in spec["phases"]) + "".join(
            f" with {k}" for k in ("noise_sigma", "jacobian_weight") if k in spec)
        out.setdefault(name, spec)
    return out


def train_with(cubelib_parent: Path, spec: dict, out: Path):
    env = {"PYTHONPATH": str(cubelib_parent), "PATH": "/usr/bin:/bin", "CUBELIB_CACHE": _cache()}
    subprocess.run([sys.executable, "-c", TRAIN_ONE, json.dumps(spec), str(out)], check=True, env=env,
                   cwd=tempfile.gettempdir())


def _cache():
    sys.path.insert(0, str(ROOT))
    from cubelib import data
    return str(data.default_cache_dir())


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def main() -> int:
    import torch
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("old")
    a.add_argument("--preset", default="quick")
    a.add_argument("--rehash", action="store_true")
    args = a.parse_args()
    old = git("rev-parse", args.old).stdout.strip()
    if not old:
        raise SystemExit(f"unknown commit {args.old!r}")
    sys.path.insert(0, str(ROOT))
    from cubelib import experiments
    current = experiments.training_source_hash()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "old").mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", old, "cubelib"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp / "old")], input=archive.stdout, check=True)
        same = True
        for name, spec in recipes(args.preset, current).items():
            train_with(tmp / "old", spec, tmp / "a.pt")
            train_with(ROOT, spec, tmp / "b.pt")
            A, B = torch.load(tmp / "a.pt"), torch.load(tmp / "b.pt")
            equal = all(torch.equal(A[k], B[k]) for k in A)
            same &= equal
            print(f"{'bit-identical' if equal else 'DIFFERENT'}: {name}", flush=True)
    if not same:
        print("the working tree trains differently from", old[:12])
        return 1
    if args.rehash:
        sys.path.insert(0, str(ROOT / "scripts"))
        from rehash_results import relabel
        for path in sorted((ROOT / "results").glob("*.json")):
            r = json.loads(path.read_text())
            prov = r.get("provenance", {})
            commit = prov.get("git_commit", "")
            if "config" not in r or prov.get("source_hash") == current or commit.endswith("+dirty"):
                continue
            if git("diff", "--quiet", commit, old, "--", *HASHED).returncode != 0:
                print(f"{path.name}: made by code other than {old[:12]}; left alone")
                continue
            relabel(path, r, current, f"scripts/check_training_equivalence.py found HEAD's training "
                                      f"bit-identical to {old[:12]}'s for every {args.preset} recipe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
