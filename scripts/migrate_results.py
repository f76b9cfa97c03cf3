"""Carry the results of the flat results/ layout (schema 1, string-typed TrainConfig) into the
store (results/<preset>/, schema 2, typed recipes), without changing a number.

For every old result file: the experiment of that name is built by cubelib.experiments; its
data set must equal the old one and its recipe must mean the old config (same widths, batches,
seed, curve spacing, and per phase the same epochs, rate, term names and strengths), else the
script stops.  The new file holds the old metrics, curves and provenance verbatim, with the
old code hash as its code_version (the code that made it); the equivalence of that code with
the current code is recorded separately by scripts/check_equivalence.py.

    python scripts/migrate_results.py [--dry-run]
    python scripts/migrate_results.py --verify    # after the move: re-evaluate and compare

--verify re-evaluates every carried network from its stored weights with the current code
(cubelib.evaluate) and compares every metric with the old file, read from git at the commit
that held it: the numbers the book shows are then the numbers the current code computes.
Metrics are float32 evaluations: on another CPU than the one that made them (other BLAS
kernels) they may differ in the last bits, so the check reports how many are bit-identical
and fails only above a relative difference of 1e-5 (a change of method moves them by percent).
"""
import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cubelib import experiments, store  # noqa: E402
from cubelib import terms as T  # noqa: E402

LATER_DEFAULTS = {"noise_sigma": 0.0, "jacobian_weight": 1.0, "n_ij_rule": "scaled", "baseline_weight": 1.0,
                  "baseline_norm": "l1", "n_proj": 1, "adversarial_eps": 0.0}


def old_meaning(train: dict) -> dict:
    """What an old TrainConfig trains, in terms the new recipe can be compared with."""
    t = {**LATER_DEFAULTS, **train}
    phases = []
    for p in t["phases"]:
        terms = {}
        for name in p["terms"]:
            if name == "E0":
                terms[name] = (t["noise_sigma"], t["adversarial_eps"])
            elif name == "E2":
                terms[name] = t["n_ij_rule"]
            elif name.startswith("J_"):
                terms[name] = t["jacobian_weight"]
            elif name in ("IBP_loss", "IBP_pred", "TBP", "GR"):
                terms[name] = (t["baseline_weight"], t["baseline_norm"])
            elif name == "JR":
                terms[name] = (t["baseline_weight"], t["n_proj"])
            else:
                terms[name] = None
        phases.append((p["epochs"], p["lr"], terms))
    return dict(hidden=list(t["hidden"]), batches=t["batches"], seed=t["seed"], eval_every=t["eval_every"],
                tf32=t["tf32"], phases=phases)


def new_meaning(recipe) -> dict:
    phases = []
    for p in recipe.phases:
        terms = {}
        for term in p.terms:
            if isinstance(term, T.E0):
                terms["E0"] = (term.noise, term.adversarial_eps)
            elif isinstance(term, T.E2):
                terms["E2"] = term.n_ij_rule
            elif isinstance(term, T.Jacobian):
                terms[term.name] = term.weight
            elif isinstance(term, T.JacobianNorm):
                terms["JR"] = (term.weight, term.n_proj)
            elif isinstance(term, (T.LossIBP, T.PredictionIBP, T.TangentBP, T.GradientReg)):
                terms[term.name] = (term.weight, term.norm)
            else:
                terms[term.name] = None
        phases.append((p.epochs, p.lr, terms))
    return dict(hidden=list(recipe.hidden), batches=recipe.batches, seed=recipe.seed, eval_every=recipe.eval_every,
                tf32=recipe.tf32, phases=phases)


def old_results(preset: str):
    for path in sorted((ROOT / "results").glob(f"*-{preset}-*.json")):
        r = json.loads(path.read_text())
        if "config" in r:  # training results (the analyses are recomputed, not carried)
            yield path, r


def git_commit_of(path: Path) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--", str(path.relative_to(ROOT))],
                         capture_output=True, text=True)
    return out.stdout.strip()


def _relative(a, b) -> float:
    """Largest relative difference between two metric values (numbers, lists or dicts)."""
    if isinstance(a, dict):
        return max((_relative(a[k], b.get(k)) for k in a), default=0.0)
    if isinstance(a, list):
        return max((_relative(x, y) for x, y in zip(a, b)), default=0.0) if len(a) == len(b) else float("inf")
    if b is None:
        return float("inf")
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def verify(preset: str) -> int:
    from cubelib import data, evaluate
    differ, checked, identical, worst = [], 0, 0, 0.0
    datasets = {}  # one load per data set: its oracle gradients are then computed once too
    for exp in experiments.all_experiments(preset):
        res = store.load(exp)
        if res is None or not exp.weights_path().exists():
            continue
        old = res.provenance["carried_from"]
        raw = subprocess.run(["git", "-C", str(ROOT), "show", f"{old['commit']}:{old['file']}"], capture_output=True,
                             check=True).stdout
        if hashlib.sha256(raw).hexdigest() != old["sha256"]:
            raise SystemExit(f"{exp.name}: the old file at {old['commit'][:12]} is not the one carried")
        before = json.loads(raw)["metrics"]
        if before != res.metrics:
            differ.append(f"{exp.name}: the carried metrics differ from the old file")
        if exp.data not in datasets:
            datasets[exp.data] = data.load(exp.data, progress=False)
        ds = datasets[exp.data]
        now = evaluate.metrics(store.model(exp), ds, "cpu")
        rel = {k: _relative(before[k], now.get(k)) for k in before}
        bad = [k for k, r in rel.items() if r > 1e-5]
        if bad:
            differ.append(f"{exp.name}: " + ", ".join(f"{k} {before[k]} -> {now.get(k)}" for k in bad))
        checked += 1
        identical += all(r == 0 for r in rel.values())
        worst = max(worst, max(rel.values()))
        print(f"{exp.name}: {len(before)} metrics, largest relative difference {max(rel.values()):.1e}", flush=True)
    print(f"{checked} networks re-evaluated: {identical} bit-identical in every metric, largest relative "
          f"difference {worst:.1e}; {len(differ)} above 1e-5")
    for line in differ:
        print(" ", line)
    return 1 if differ else 0


def main() -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--preset", default="quick")
    a.add_argument("--dry-run", action="store_true")
    a.add_argument("--verify", action="store_true")
    args = a.parse_args()
    if args.verify:
        return verify(args.preset)
    by_name = {e.name: e for e in experiments.all_experiments(args.preset)}
    moved = 0
    for path, r in old_results(args.preset):
        exp = by_name.get(r["name"])
        if exp is None:
            raise SystemExit(f"{path.name}: no experiment of that name is built any more")
        if r["config"]["data"] != json.loads(json.dumps(exp.data.__dict__)):
            raise SystemExit(f"{path.name}: data {r['config']['data']} != {exp.data}")
        old, new = old_meaning(r["config"]["train"]), new_meaning(exp.recipe)
        if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
            raise SystemExit(f"{path.name}: the recipe differs\n old {old}\n new {new}")
        raw = {"schema": store.SCHEMA, "name": exp.name, "key": exp.key(),
               "config": {"data": r["config"]["data"], "recipe": exp.recipe.describe()},
               "metrics": r["metrics"], "curves": r["curves"],
               "provenance": {**r["provenance"], "code_version": r["provenance"]["source_hash"],
                              "carried_from": {"file": f"results/{path.name}", "key": r["key"],
                                               "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                               "commit": git_commit_of(path)}}}
        if not args.dry_run:
            store.write_json(exp.path(), raw)
            weights = path.with_suffix(".pt")
            if weights.exists():
                shutil.copyfile(weights, exp.weights_path())
            store.add_to_manifest(exp, raw)
        moved += 1
    print(f"{moved} results of {args.preset} carried into results/{args.preset}/ "
          f"({len(by_name) - moved} experiments of the preset have none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
