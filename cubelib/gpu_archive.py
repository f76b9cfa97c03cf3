"""The archive a GPU window brings back (stage 4 of `gpu-batch`), and its import.

`pack` writes OUT/results.tar.gz (at most 16 MiB, what one returned file may hold): the
window's results with their manifest and weights, then checkpoints (unfinished runs first)
while they fit.  `import_archive` (python -m cubelib import) unpacks such an archive into
results/<preset>/ (checkpoints where `store.run` resumes them), refusing to overwrite a result
with different content and checking every result against the preset's experiments and the
current code; `place_checkpoints` also lets a window resume from an earlier window's archive.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from pathlib import Path

import torch

from . import experiments, presets, store, versions

FILE_LIMIT = 16 * 2**20  # what one returned file may hold
ARCHIVE_LIMIT = FILE_LIMIT - 256 * 2**10  # a margin for tar headers and gzip's worst case
ARCHIVE = "results.tar.gz"
META = "gpu-batch.json"
# the names of its members: results/<preset>/<name>-<key>.json|.pt, checkpoints/<preset>/<name>-<key>.pt
_RESULT = re.compile(r"^results/(?P<preset>[a-z-]+)/(?P<name>[A-Za-z0-9._-]+)-(?P<key>[0-9a-f]{16})\.(?P<ext>json|pt)$")
_CHECKPOINT = re.compile(r"^checkpoints/(?P<preset>[a-z-]+)/(?P<name>[A-Za-z0-9._-]+)-(?P<key>[0-9a-f]{16})\.pt$")


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint file was saved at (None: missing or unreadable)."""
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu").get("epoch"))
    except Exception:
        return None


def pack(log, out: Path, preset: str, work: Path, trained: dict, exps: list[store.Experiment]) -> dict:
    """`out`/results.tar.gz: gpu-batch.json, then the results in `work` with their manifest,
    their weights, the checkpoints of unfinished runs, of parents whose child is unfinished and
    of finished networks without stored weights, each while the total stays under the limit.
    `trained` is the training stage's report, `exps` the preset's experiments."""
    by_key = {e.key(): e for e in exps}
    folder = work / preset
    results = sorted(folder.glob("*.json")) if folder.exists() else []
    results = [f for f in results if f.name != "manifest.json"]
    required = ([("results/" + preset + "/manifest.json", folder / "manifest.json")] if results else []) + \
        [(f"results/{preset}/{f.name}", f) for f in results]
    optional = [(f"results/{preset}/{f.name}", f) for f in sorted(folder.glob("*.pt"))] if folder.exists() else []
    unfinished = [r["key"] for r in trained.get("unfinished", [])]
    parents = [by_key[k].parent.key() for k in unfinished if by_key[k].parent is not None]
    finished = [r["key"] for r in trained.get("trained", []) if not by_key[r["key"]].weights_path(work).exists()]
    checkpoints = []
    for k in dict.fromkeys(unfinished + parents + finished):
        ck = by_key[k].checkpoint_path(work)
        if ck.exists():
            checkpoints.append({"name": by_key[k].name, "key": k, "epoch": checkpoint_epoch(ck),
                                "epochs": by_key[k].recipe.epochs, "file": f"checkpoints/{preset}/{ck.name}",
                                "path": ck})
    optional += [(c["file"], c["path"]) for c in checkpoints]
    members, left_out, total = [], [], 0
    for arc, path in required + optional:
        size = path.stat().st_size + 1024
        if total + size > ARCHIVE_LIMIT and (arc, path) not in required:
            left_out.append({"file": arc, "bytes": size - 1024, "why": "does not fit the 16 MiB archive"})
            continue
        members.append((arc, path))
        total += size
    meta = {"preset": preset, "code_version": versions.code_version(), "date": versions.now(),
            "results": [f.name for f in results],
            "checkpoints": [{k: v for k, v in c.items() if k != "path"} for c in checkpoints
                            if (c["file"], c["path"]) in members],
            "left_out": left_out}
    target = out / ARCHIVE
    while True:
        blob = json.dumps(meta, indent=1).encode()
        with tarfile.open(target, "w:gz") as tar:
            info = tarfile.TarInfo(META)
            info.size, info.mtime = len(blob), int(time.time())
            tar.addfile(info, io.BytesIO(blob))
            for arc, path in members:
                tar.add(path, arcname=arc, recursive=False)
        size = target.stat().st_size
        if size <= FILE_LIMIT or not [m for m in members if m not in required]:
            break
        arc, path = members.pop()  # gzip grew it past the limit (never seen): drop the last optional file
        meta["left_out"].append({"file": arc, "bytes": path.stat().st_size, "why": "archive over 16 MiB"})
        meta["checkpoints"] = [c for c in meta["checkpoints"] if c["file"] != arc]
    for item in meta["left_out"]:
        log(f"left out of the archive: {item['file']} ({item['bytes'] / 2**20:.1f} MiB)")
    log(f"{ARCHIVE}: {size / 2**20:.2f} MiB, {len(members)} files besides {META}")
    return {"path": str(target), "bytes": size, "members": [m for m, _ in members], "left_out": meta["left_out"],
            "checkpoints": meta["checkpoints"], "ok": size <= FILE_LIMIT}


def _read_archive(path: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(path, "r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                raise ValueError(f"{path}: {m.name} is not a plain file")
            out[m.name] = tar.extractfile(m).read()
    return out


def _write(path: Path, blob: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp-import")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def _checkpoint_meta(blob: bytes) -> dict:
    state = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    return {"key": state.get("key"), "epoch": state.get("epoch")}


def place_checkpoints(archive: Path, root: Path | None, wanted: dict, dry_run: bool,
                       files: dict | None = None) -> list[str]:
    """Put the archive's checkpoints of experiments in `wanted` (key -> Experiment) where
    store.run resumes them (exp.checkpoint_path(root)), each unless one at least as far along
    is there already.  Lines saying what was (or would be) done."""
    files = _read_archive(archive) if files is None else files
    lines = []
    for name, blob in sorted(files.items()):
        m = _CHECKPOINT.match(name)
        if not m or m["key"] not in wanted:
            continue
        exp = wanted[m["key"]]
        meta = _checkpoint_meta(blob)
        if meta["key"] != exp.recipe.key() + ":" + exp.data.key():
            raise ValueError(f"{name}: a checkpoint of another recipe or data set than {exp.name}")
        dest = exp.checkpoint_path(root)
        have = None
        if dest.exists():
            try:
                have = _checkpoint_meta(dest.read_bytes())
            except Exception:
                have = {"epoch": None}
        if have is not None and (have["epoch"] is None or have["epoch"] >= meta["epoch"]):
            lines.append(f"checkpoint of {exp.name}: kept {dest} (epoch {have['epoch']}; the archive's: "
                         f"{meta['epoch']})")
            continue
        if not dry_run:
            _write(dest, blob)
        lines.append(f"checkpoint of {exp.name}: epoch {meta['epoch']} of {exp.recipe.epochs} "
                     f"{'would go' if dry_run else 'written'} to {dest}")
    return lines


def import_archive(archive, dry_run: bool = False, root: Path | None = None) -> list[str]:
    """Unpack a gpu-batch archive into the result store (results/<preset>/, or `root`):
    results with their weights and manifest entries, checkpoints where store.run resumes
    them.  Raises ValueError, writing nothing, when any result is not an experiment of the
    preset, was made by code not accepted here, fails its checksum, or differs from a result
    already stored.  Returns the lines saying what was imported (or would be, `dry_run`)."""
    archive = Path(archive)
    files = _read_archive(archive)
    if META not in files:
        raise ValueError(f"{archive}: not a gpu-batch archive (no {META})")
    meta = json.loads(files[META])
    preset = meta.get("preset")
    if preset not in presets.NAMES:
        raise ValueError(f"{archive}: unknown preset {preset!r}; allowed: {', '.join(presets.NAMES)}")
    root = root or store.results_root()
    exps = {e.key(): e for e in experiments.all_experiments(preset)}
    manifest_name = f"results/{preset}/manifest.json"
    manifest = json.loads(files[manifest_name]) if manifest_name in files else {}
    accepted = store.accepted_versions(root)
    problems, plan, lines, same = [], [], [], set()
    for name, blob in sorted(files.items()):
        if name in (META, manifest_name) or _CHECKPOINT.match(name):
            if _CHECKPOINT.match(name) and _CHECKPOINT.match(name)["preset"] != preset:
                problems.append(f"{name}: not of preset {preset}")
            continue
        m = _RESULT.match(name)
        if not m or m["preset"] != preset:
            problems.append(f"{name}: not a result file of preset {preset}")
            continue
        exp = exps.get(m["key"])
        if exp is None or exp.name != m["name"]:
            problems.append(f"{name}: key {m['key']} is not an experiment of preset {preset} with the current "
                            "experiments.py (another recipe or data set)")
            continue
        entry = manifest.get(m["key"])
        digest = hashlib.sha256(blob).hexdigest()
        if entry is None or entry.get("sha256", {}).get(Path(name).name) != digest:
            problems.append(f"{name}: its checksum is not the one in the archive's manifest")
            continue
        if m["ext"] == "json":
            raw = json.loads(blob)
            if raw.get("key") != exp.key() or raw.get("schema") != store.SCHEMA:
                problems.append(f"{name}: made for another key or schema")
                continue
            made_by = raw.get("provenance", {}).get("code_version")
            if made_by not in accepted:
                problems.append(f"{name}: made by code {made_by}, not the current code {versions.code_version()} nor "
                                "one recorded as equivalent (scripts/check_equivalence.py)")
                continue
            dest = exp.path(root)
        else:
            if f"results/{preset}/{exp.name}-{exp.key()}.json" not in files:
                problems.append(f"{name}: weights without their result")
                continue
            dest = exp.weights_path(root)
        if dest.exists():
            if dest.read_bytes() == blob:
                same.add(exp.name)
                continue
            problems.append(f"{name}: refusing to overwrite {dest}, which holds a different result")
            continue
        plan.append((m["ext"], exp, dest, blob))
    if problems:
        raise ValueError(f"{archive}: nothing imported:\n  " + "\n  ".join(problems))
    verb = "would import" if dry_run else "imported"
    for ext, exp, dest, blob in sorted(plan, key=lambda x: x[0] == "json"):  # weights before their result
        if not dry_run:
            _write(dest, blob)
        lines.append(f"{verb}: {dest}")
    if not dry_run:
        for ext, exp, dest, blob in plan:
            if ext == "json":
                store.add_to_manifest(exp, json.loads(blob), root)
    if same:
        lines.append(f"unchanged: {len(same)} result(s) already stored with identical content")
    if any(ext == "json" for ext, *_ in plan):
        lines.append(f"{'would merge' if dry_run else 'merged'} {sum(ext == 'json' for ext, *_ in plan)} entries into "
                     f"{store.manifest_path(preset, root)}")
    lines += place_checkpoints(archive, root, exps, dry_run, files)
    if not plan and not any(line.startswith("checkpoint") and "kept" not in line for line in lines):
        lines.append("nothing to import: everything in the archive is stored already")
    else:
        lines.append(f"{'would import' if dry_run else 'imported'} {sum(ext == 'json' for ext, *_ in plan)} result(s) "
                     f"of preset {preset} into {root / preset}")
    return lines


def import_main(archive: str, dry_run: bool) -> int:
    if not Path(archive).is_file():
        raise SystemExit(f"import: {archive}: no such file")
    try:
        lines = import_archive(archive, dry_run=dry_run)
    except (ValueError, tarfile.TarError, OSError) as exc:
        raise SystemExit(f"import: {exc}")
    for line in lines:
        print(line)
    return 0
