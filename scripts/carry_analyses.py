"""Carry stored analyses to keys that cover their computing function, without recomputing.

Analyses used to be keyed by their spec and one physics module (cubelib.noise, inputspace,
capacity), not by the function in cubelib/analyses.py that computes them, so an edit of that
function silently reused old numbers.  Today's key (store.analysis_key) covers both.  A stored
file made under the old key moves to the new key only when this script shows that the code
which made it is today's code:

- the old key recomputed from its spec and today's module must equal its file name (else the
  module changed since, and the file is stale: it is left alone, and reported);
- the computing function (its `compute_*` closure) must be identical, without comments and
  docstrings, at the commit recorded in the file's provenance and at the commit that added the
  file, to today's.

The carried file holds the old numbers and provenance verbatim, plus `carried`: the old
name, both commits and the check.  The old file is removed.  Files already under a current
key are left as they are.

    python scripts/carry_analyses.py [--dry-run]
"""
import argparse
import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cubelib import analyses, capacity, inputspace, noise, store, versions  # noqa: E402

# kind -> (the physics module the old key covered, the function whose closure computes it, its name)
KINDS = {"noise": (noise, analyses.noise_sweep, "compute_sweep"),
         "indicator": (inputspace, analyses.indicator_table, "compute_table"),
         "capacity": (capacity, analyses.capacity_bound, "compute_bound")}


def old_key(spec: dict, module) -> str:
    blob = json.dumps({"spec": spec, "schema": store.SCHEMA, "code": versions.normalised_source(module)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def closure_at(commit: str, outer: str, inner: str) -> str | None:
    """The normalised source of function `inner` nested in `outer` of cubelib/analyses.py at `commit`."""
    out = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:cubelib/analyses.py"], capture_output=True,
                         text=True)
    if out.returncode:
        return None
    for node in ast.walk(ast.parse(out.stdout)):
        if isinstance(node, ast.FunctionDef) and node.name == outer:
            for sub in ast.walk(node):
                if isinstance(sub, ast.FunctionDef) and sub.name == inner:
                    sub.name = ""  # as versions.normalised_source reads a function
                    return versions.normalised_tree(ast.Module(body=[sub], type_ignores=[]))
    return None


def added_by(path: Path) -> str | None:
    out = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--", str(path)],
                         capture_output=True, text=True).stdout.split()
    return out[-1] if out else None


def main() -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--dry-run", action="store_true")
    args = a.parse_args()
    failed = 0
    for path in sorted((ROOT / "results").glob("*/analysis-*.json")):
        kind, key = path.stem.split("-")[1], path.stem.split("-")[-1]
        if kind not in KINDS:
            continue
        module, outer, inner = KINDS[kind]
        found = json.loads(path.read_text())
        spec = found["spec"]
        # the closure object is built inside `outer`; its source is what analysis_key hashes
        new = store.analysis_key(spec, (module, _closure(outer, inner)))
        if key == new:
            print(f"current: {path.name}")
            continue
        if key != old_key(spec, module):
            print(f"STALE (its module changed since): {path.name}")
            failed += 1
            continue
        made = found["provenance"]["git_commit"].removesuffix("+dirty")
        added = added_by(path)
        now = versions.normalised_source(_closure(outer, inner))
        same = {c: closure_at(c, outer.__name__, inner) == now for c in {made, added} if c}
        if not same or not all(same.values()):
            print(f"DIFFERENT computing code ({same}): {path.name}")
            failed += 1
            continue
        target = path.with_name(f"analysis-{kind}-{new}.json")
        carried = {**found, "carried": {"from": path.name, "commits": sorted(same), "by": "scripts/carry_analyses.py",
                                        "check": f"{inner} of analyses.{outer.__name__} identical to today's",
                                        "date": versions.now()}}
        print(f"carry: {path.name} -> {target.name}")
        if not args.dry_run:
            versions.write_json(target, carried)
            path.unlink()
    return 1 if failed else 0


def _closure(outer, inner: str):
    """The code object of the function `inner` nested in `outer`: its source is what
    store.analysis_key reads from the closure itself."""
    import types
    return next(c for c in outer.__code__.co_consts if isinstance(c, types.CodeType) and c.co_name == inner)


if __name__ == "__main__":
    sys.exit(main())
