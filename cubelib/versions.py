"""Code versions of results and their recorded equivalences.

`code_version()` hashes the modules that turn a data set into a result (CODE), without
comments and docstrings.  results/equivalences.json records code versions verified by
scripts/check_equivalence.py to train bit-identically; `accepted_versions` is the current
version with everything recorded as equivalent to it, transitively.
"""
from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import inspect
import json
import os
import subprocess
import textwrap
from pathlib import Path

from . import baselines, data, directions, evaluate, geometry, jets, oracle, recipes, robustness, terms, train, trainset

ROOT = Path(__file__).resolve().parents[1]
# what decides a result's numbers besides its config: hashed into code_version()
CODE = (data, geometry, jets, terms, recipes, trainset, train, evaluate, directions, oracle, robustness, baselines)


def write_json(path: Path, obj: dict, overwrite: bool = False):
    """Atomically (a run killed mid-write leaves no half file); never over another file
    unless `overwrite` (manifests and the equivalence records)."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; results are immutable")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "cubelib"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def normalised_source(code) -> str:
    """The code of a module or a function without comments and docstrings: edits to either
    change nothing."""
    if inspect.ismodule(code):
        tree = ast.parse(Path(code.__file__).read_text())
    else:  # a function, nested ones too (an analysis' computing closure); its name changes nothing
        tree = ast.parse(textwrap.dedent(inspect.getsource(code)))
        tree.body[0].name = ""
    return normalised_tree(tree)


def normalised_tree(tree: ast.AST) -> str:
    """ast.dump of `tree` without its docstrings."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """Hash of the code in CODE, read once per process (at import, see the end of this file):
    a long run records the code it runs, not a later edit of the files."""
    h = hashlib.sha256()
    for m in CODE:
        h.update(normalised_source(m).encode())
    return h.hexdigest()[:12]


def equivalences_path(root: Path) -> Path:
    return root / "equivalences.json"


def equivalences(root: Path) -> list[dict]:
    path = equivalences_path(root)
    if not path.exists():
        return []
    try:
        found = json.loads(path.read_text())
        assert isinstance(found, list) and all("from" in e and "to" in e for e in found)
        return found
    except (ValueError, AssertionError) as exc:
        raise ValueError(f"{path}: not a list of equivalence records ({exc})") from exc


def accepted_versions(root: Path) -> set[str]:
    """The current code version and every version recorded as training identically to it."""
    accepted = {code_version()}
    edges = equivalences(root)
    grew = True
    while grew:
        grew = False
        for e in edges:
            if (e["to"] in accepted) != (e["from"] in accepted):
                accepted |= {e["to"], e["from"]}
                grew = True
    return accepted


def record_equivalence(root: Path, old: str, evidence: str, checked: list[str] | None = None):
    """Record 'code `old` trains bit-identically to the current code' with its evidence
    (replacing an earlier record of the same pair)."""
    found = [e for e in equivalences(root) if (e["from"], e["to"]) != (old, code_version())]
    found.append({"from": old, "to": code_version(), "evidence": evidence, "checked": checked or [],
                  "commit": git_commit(), "date": now()})
    write_json(equivalences_path(root), found, overwrite=True)


code_version()  # fixed now, while the files on disk are the code this process runs
