"""The intro's table "paper vs this book": one row per claim of the paper (cubelib.claims),
ours beside the paper's nearest network, with a verdict computed by the rules of
`claims.RULES`.  Every row comes from a chapter's study (cubelib.studies), so the intro shows
what the chapters computed, at the largest preset whose results are all stored.  Printed as
JSON by `python -m cubelib summary`."""
from __future__ import annotations

from . import claims, experiments, presets, store
from .claims import Claim
from .studies import accuracy, baselines, rendering, robustness, second_order, tangents

# chapter -> (its claims at a preset, the networks they need: None for chapters without networks)
CHAPTERS = {
    "rendering": (lambda p, device: rendering.rows(rendering.study(p, device)), None),
    "tangents": (lambda p, device: tangents.rows(p), None),
    "accuracy": (lambda p, device: accuracy.rows(accuracy.study(p, device)), experiments.accuracy_experiments),
    "robustness": (lambda p, device: robustness.rows(robustness.study(p, device)), experiments.robust_experiments),
    "baselines": (lambda p, device: baselines.rows(baselines.study(p, device)), experiments.baseline_experiments),
    "second order": (lambda p, device: second_order.rows(second_order.study(p, device)),
                     experiments.second_order_experiments),
}
# the presets whose stored results replace a build's own, largest first
LARGER = {"smoke": (), "quick": ("paper", "paper-small"), "paper-small": ("paper",), "paper": ()}


def _stored(preset: str, needs) -> bool:
    """Are all of a chapter's networks at `preset` stored (so its study trains nothing)?"""
    try:
        return all(store.load(e) is not None for e in needs(preset))
    except store.StaleResult:
        return False


def chapter_claims(chapter: str, preset, compute: bool = True, device="cpu") -> list[Claim]:
    """The claims of `chapter` at the largest preset that has all its results stored, else at
    `preset` (computing what is missing if `compute`).  A chapter that cannot be shown yields
    one row with ours = None ("not measured")."""
    p = presets.get(preset)
    make, needs = CHAPTERS[chapter]
    if needs is not None:
        for larger in LARGER[p.name]:
            if _stored(larger, needs):
                try:
                    with store.training(False):
                        return make(presets.get(larger), device)
                except (store.TrainingDisabled, FileNotFoundError):
                    pass  # an analysis of that preset is missing: fall back to the build's preset
    try:
        with store.training(compute):
            return make(p, device)
    except (store.TrainingDisabled, FileNotFoundError):
        return [Claim(chapter, f"{chapter} chapter", None, "", None, "", p.name, "")]


def rows(preset, compute: bool = True, device="cpu") -> list[Claim]:
    """Every claim of the book, chapter by chapter."""
    return [c for chapter in CHAPTERS for c in chapter_claims(chapter, preset, compute, device)]


def markdown(table: list[Claim]) -> str:
    return claims.markdown(table)


def provenance_table(preset):
    """Per chapter, the stored networks it shows at `preset`: how many, where and when they
    were trained, with which code, and their training time (for the execution page)."""
    from .report import Table
    p = presets.get(preset)
    t = Table("", ["chapter", "networks", "stored", "trained on", "training time (h)", "code versions", "dates"],
              formats={4: ".1f"})
    for chapter, (_, needs) in CHAPTERS.items():
        if needs is None:
            t.add(chapter, 0, "-", "-", None, "-", "-")
            continue
        found = [r for r in (store.load(e) for e in needs(p)) if r is not None]
        prov = [r.provenance for r in found]
        dates = sorted(x["date"][:10] for x in prov)
        t.add(chapter, len(needs(p)), len(found), ", ".join(sorted({x["device"] for x in prov})) or "-",
              sum(x["train_seconds"] for x in prov) / 3600 if prov else None,
              ", ".join(sorted({x["code_version"] for x in prov})) or "-",
              f"{dates[0]} to {dates[-1]}" if dates else "-")
    t.note = (f"Networks the chapters load from `results/{p.name}/` (each with its full provenance in its JSON "
              f"file); a network is shared by chapters that show it, so the counts overlap.")
    return t
