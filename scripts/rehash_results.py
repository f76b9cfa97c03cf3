"""Bring a result's provenance hash up to date when only the hash function changed.

`experiments.training_source_hash` hashes the code that makes numbers.  When the set of
files it covers changes, results made by identical code carry an old hash and would warn on
every load.  For each result whose hash differs, this script checks with git that every
hashed source file, and the evaluation functions of experiments.py, are byte-identical
between the commit recorded in the result and HEAD.  Only then does it replace the hash,
and it records that it did (`source_hash_note`).  Anything else is left alone: rerun it.

    python scripts/rehash_results.py [results/]
"""
import datetime
import inspect
import json
import subprocess
import sys
from pathlib import Path

from cubelib import experiments

HASHED = ["cubelib/jets.py", "cubelib/losses.py", "cubelib/train.py", "cubelib/directions.py",
          "cubelib/geometry.py", "cubelib/oracle.py", "cubelib/robustness.py"]


def git(*args):
    return subprocess.run(["git", "-C", str(experiments.ROOT), *args], capture_output=True, text=True)


def same_code(commit: str) -> bool:
    if commit.endswith("+dirty") or git("cat-file", "-e", commit).returncode != 0:
        return False
    if git("diff", "--quiet", commit, "HEAD", "--", *HASHED).returncode != 0:
        return False
    old = git("show", f"{commit}:cubelib/experiments.py").stdout
    fns = (experiments.evaluate, experiments._evaluate, experiments.input_gradient_norm)
    return all(inspect.getsource(f) in old for f in fns) and \
        f"VUL_IMAGES = {experiments.VUL_IMAGES}\n" in old


def main(root: Path) -> int:
    current = experiments.training_source_hash()
    head = git("rev-parse", "HEAD").stdout.strip()
    for path in sorted(root.glob("*.json")):
        result = json.loads(path.read_text())
        prov = result["provenance"]
        if prov.get("source_hash") == current:
            continue
        if not same_code(prov["git_commit"]):
            print(f"{path.name}: made by other code (commit {prov['git_commit'][:12]}); rerun it")
            continue
        relabel(path, result, current, f"the hashed sources are identical at {prov['git_commit'][:12]} and {head[:12]}")
    return 0


def relabel(path: Path, result: dict, current: str, why: str):
    """Give a result the current code hash, keeping the old one and the reason in its provenance."""
    prov = result["provenance"]
    prov["source_hash_note"] = f"hash {prov.get('source_hash')} replaced by {current} on {datetime.date.today()}: {why}"
    prov["source_hash"] = current
    path.write_text(json.dumps(result, indent=1))
    print(f"{path.name}: hash updated ({why})")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else experiments.results_dir()))
