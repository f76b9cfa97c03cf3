"""The intro's table "paper vs this book": one row per claim of the paper (cubelib.claims),
ours beside the paper's nearest network, with a verdict computed by the rules of
`claims.RULES`.  Every row comes from a chapter's study (cubelib.studies), so the intro shows
what the chapters computed, at the largest preset whose results are all stored.  Printed as
JSON by `python -m cubelib summary`."""
from __future__ import annotations

import torch

from . import claims, experiments, paper, presets, store
from .report import Table
from .claims import Claim
from .experiments import Robust
from .studies import accuracy, baselines, rendering, robustness, second_order, tangents

# chapter -> (its claims at a preset, the networks they need: None for chapters without networks)
CHAPTERS = {
    "rendering": (lambda p, device: rendering.rows(p), None),
    "tangents": (lambda p, device: tangents.rows(p), None),
    "accuracy": (lambda p, device: accuracy.rows(accuracy.study(p, device)), experiments.accuracy_experiments),
    "robustness": (lambda p, device: robustness.rows(robustness.study(p, device)), experiments.robust_experiments),
    "baselines": (lambda p, device: baselines.rows(baselines.study(p, device)), experiments.baseline_experiments),
    "second order": (lambda p, device: second_order.rows(second_order.study(p, device)),
                     experiments.second_order_experiments),
}
# chapter -> its claims at a preset from the stored networks alone, for a preset whose chapter
# is still training (the rest of the chapter is one "not measured" row)
PARTIAL = {"robustness": robustness.stored_rows}
# the presets whose stored results replace a build's own, largest first
LARGER_PRESETS = {"smoke": (), "quick": ("paper", "paper-small"), "paper-small": ("paper",), "paper": ()}


def _stored(preset: str, needs) -> bool:
    """Are all of a chapter's networks at `preset` stored (so its study trains nothing)?"""
    try:
        return all(store.load(e) is not None for e in needs(preset))
    except store.StaleResult:
        return False


def chapter_claims(chapter: str, preset, compute: bool = True, device="cpu") -> list[Claim]:
    """The claims of `chapter` at the largest preset that has all its results stored, and at
    `preset` (computing what is missing if `compute`) those the larger preset has no row for.
    A chapter that cannot be shown at `preset` yields the claims its stored networks allow
    (PARTIAL) and one row with ours = None ("not measured") for the rest."""
    p = presets.get(preset)
    make, needs = CHAPTERS[chapter]
    larger = []
    if needs is not None:
        for name in LARGER_PRESETS[p.name]:
            if _stored(name, needs):
                try:
                    with store.training(False):
                        larger = make(presets.get(name), device)
                    break
                except (store.TrainingDisabled, FileNotFoundError):
                    pass  # an analysis of that preset is missing: fall back to the build's preset
    try:
        if not compute and needs is not None and not _stored(p.name, needs):
            # a study may load its data set (an hour to render at the paper's sizes) before
            # it asks for a network: without compute, don't start what cannot finish
            raise store.TrainingDisabled(f"{chapter}: networks missing at {p.name}")
        with store.training(compute):
            own = make(p, device)
    except (store.TrainingDisabled, FileNotFoundError):
        shown = PARTIAL[chapter](p) if chapter in PARTIAL else []
        rest = f"{chapter} chapter" + (", the rest" if shown else "")
        own = shown + [Claim(chapter, rest, None, "", None, "", p.name, "")]
    if not larger:
        return own
    # the larger preset's row of each id; the build's own where the larger preset has none
    # (e.g. the capacity claim needs two widths, and paper-small has one)
    ids = {c.id for c in larger}
    return larger + [c for c in own if c.id not in ids and c.ours is not None]


def rows(preset, compute: bool = True, device="cpu") -> list[Claim]:
    """Every claim of the book, chapter by chapter."""
    return [c for chapter in CHAPTERS for c in chapter_claims(chapter, preset, compute, device)]


def markdown(table: list[Claim]) -> str:
    return claims.markdown(table)


def rows_by_preset(table: list[Claim]) -> str:
    """How many rows each preset gives, largest first, e.g. "21 rows from paper-small, 14 from quick"."""
    order = {name: k for k, name in enumerate(("paper", "paper-small", "quick", "smoke", "any"))}
    counts = {}
    for c in table:
        counts[c.preset] = counts.get(c.preset, 0) + 1
    parts = [f"{n} from {p}" for p, n in sorted(counts.items(), key=lambda kv: order.get(kv[0], 9))]
    return (f"{sum(counts.values())} rows: " + ", ".join(parts)).replace("from any", "independent of the preset")


def provenance_table(preset):
    """Per chapter, the stored networks it shows at `preset`: how many, where and when they
    were trained, with which code, and their training time (for the execution page)."""
    p = presets.get(preset)
    t = Table(f"Preset {p.name}", ["chapter", "networks", "stored", "trained on", "training time (h)",
                                   "code versions", "dates"], formats={4: ".1f"})
    for chapter, (_, needs) in CHAPTERS.items():
        if needs is None:
            t.add(chapter, 0, "-", "-", None, "-", "-")
            continue
        found = [r for r in (store.load(e) for e in needs(p)) if r is not None]
        prov = [r.provenance for r in found]
        dates = sorted(x["date"][:10] for x in prov)
        t.add(chapter, len(needs(p)), len(found), ", ".join(sorted({store.device_text(x) for x in prov})) or "-",
              sum(x["train_seconds"] for x in prov) / 3600 if prov else None,
              ", ".join(sorted({x["code_version"] for x in prov})) or "-",
              f"{dates[0]} to {dates[-1]}" if dates else "-")
    t.note = (f"Networks the chapters load from `results/{p.name}/` (each with its full provenance in its JSON "
              f"file); a network is shared by chapters that show it, so the counts overlap.")
    return t


def provenance_tables(preset) -> list[Table]:
    """The provenance table of `preset` and of each larger preset that has networks stored
    (the intro and the chapters show those where a chapter is stored whole there)."""
    out = [provenance_table(preset)]
    for larger in reversed(LARGER_PRESETS[presets.get(preset).name]):
        t = provenance_table(larger)
        if any(row[2] for row in t.rows):
            out.append(t)
    return out


# How a row of one of the paper's tables gives (training, test) of a quantity
def _pair(row, quantity):  # Tables 1, 2, 6: (training e, test e)
    return row[0], row[1]


def _test_only(row, quantity):  # Tables 3, 7: (test e, test v_max)
    return None, row[("e", "v_max").index(quantity)]


def _by_quantity(row, quantity):  # Tables 4, 5, 8: quantity -> (training, test)
    return row[quantity]


# Tables 1-8: the networks of each at a width, the paper's table, the quantities it shows, and
# how its rows hold them
_VUL = ("e", "v_max", "v_sen", "v_inv")
PAPER_TABLES = (
    ("Table 1", lambda p, w: [experiments.accuracy(p, "conventional", w)] +  # and on the shortened schedule
     [e for e in [experiments.conventional_short(p, w)] if e is not None], paper.TABLE1, ("e",), _pair),
    ("Table 2", lambda p, w: [experiments.accuracy(p, "first", w)], paper.TABLE2, ("e",), _pair),
    ("Table 3", lambda p, w: [experiments.robust(p, Robust(), w)], paper.TABLE3, ("e", "v_max"), _test_only),
    ("Table 4", lambda p, w: [experiments.robust(p, Robust(tradeoff=True), w)], paper.TABLE4, _VUL, _by_quantity),
    ("Table 5", lambda p, w: [experiments.gaussian(p, experiments.TABLE5_SIGMA, w)], paper.TABLE5, _VUL,
     _by_quantity),
    ("Table 6", lambda p, w: [experiments.accuracy(p, "second", w)] + (
        [experiments.accuracy(p, "second", w, e2_weight=p.e2_weight)] if p.e2_weight else []), paper.TABLE6, ("e",),
     _pair),
    ("Table 7", lambda p, w: [experiments.robust(p, Robust(second=True), w)], paper.TABLE7, ("e", "v_max"),
     _test_only),
    ("Table 8", lambda p, w: [experiments.robust(p, Robust(second=True, tradeoff=True), w)], paper.TABLE8, _VUL,
     _by_quantity),
)


def _progress(exp) -> str:
    """How far a network without a result is: its checkpoint's epoch, or not started."""
    path = exp.checkpoint_path()
    if not path.exists():
        return "not trained"
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
        return f"checkpoint: epoch {state['epoch']} of {exp.recipe.epochs}"
    except Exception as exc:  # a checkpoint being written, or corrupt: say so, never fail the table
        return f"checkpoint unreadable ({type(exc).__name__})"


def paper_tables(preset) -> Table:
    """Tables 1-8 at `preset`, from stored results only (nothing is trained): ours at each width
    of the preset beside the paper's nearest network, with each network's name (which carries
    any deviation from the paper's recipe, e.g. "-e500" for a shortened schedule)."""
    p = presets.get(preset)
    t = Table(f"Tables 1-8 of the paper at preset {p.name}",
              ["table", "network", "epochs", "quantity (%)", "train", "test", "paper", "paper train", "paper test"],
              formats={4: ".3g", 5: ".3g", 7: ".3g", 8: ".3g"})
    for title, networks, table, quantities, pair in PAPER_TABLES:
        for width in p.widths:
            L = claims.nearest(width)
            for exp in networks(p, width):
                try:
                    res = store.load(exp)
                    epochs = res.epochs if res else _progress(exp)
                except store.StaleResult:  # stored, but by code not recorded as equivalent
                    res, epochs = None, "stale (other code; see `python -m cubelib status`)"
                for q in quantities:
                    theirs = pair(table[L], q)
                    ours = (res.metrics[f"{q}_train"], res.metrics[f"{q}_test"]) if res else (None, None)
                    t.add(title, exp.name, epochs, q, *ours, f"{paper.WEIGHTS_MILLIONS[L]}M (L = {L})", *theirs)
    t.note = ("Ours from results/ (never trained by this table); the paper's from its Tables 1-8 at its nearest "
              "network. A name's suffix is a deviation from the paper's recipe: -e<N> a schedule of N epochs "
              "(the paper: 2000), -w<w> E2 multiplied by w.")
    return t
