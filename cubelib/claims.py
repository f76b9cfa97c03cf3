"""The paper's claims, ours beside them, and a verdict computed from the two by a stated rule.

A chapter's study turns its results into `Claim` values (`rows(study)` in each module of
cubelib.studies); `cubelib.summary` gathers them for the intro's table "paper vs this book".
The verdict is never written by hand: `verdict(claim)` applies the rules below to the numbers.

The rules (`RULES`, printed under the table):

- a claim about a number that should be reproduced (`better=None`: a resolution, a norm)
  holds when ours is within a factor TOLERANCE of the paper's;
- a claim about an error or a vulnerability (`better="lower"`) holds when ours is at most
  TOLERANCE times the paper's; otherwise it does not hold, "at this scale" when our network
  is smaller than the paper's nearest one, or trained on less data or for fewer epochs;
- a claim about a gain (`better="higher"`: a ratio > 1) holds when ours is at least the
  paper's on a log scale divided by TOLERANCE (ours >= paper ** (1 / TOLERANCE): 6.1 needs
  4.2), holds in direction when it is past `threshold` (NO_EFFECT: 5 % above 1, the largest
  seed-to-seed spread of our errors) but smaller, is reversed below 1 / `threshold` (the
  opposite effect), and does not hold (at this scale) otherwise;
- a qualitative claim (the paper gives no number, `paper` is text) holds in direction when
  ours is past its threshold, else does not hold;
- a comparison of ours that the paper does not make (`paper` is None): no claim in the paper;
- no number of ours: not measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

TOLERANCE = 1.25  # a factor within which a number counts as reproduced (the seed spread of our errors: <= 5 %)
# a ratio below this shows no effect: the largest seed-to-seed spread measured (max / min over
# three seeds at quick: test error 5.0 % first-derivative, 2.8 % conventional, 1.3 % robust;
# robust v_max 0.9 %; tests/test_experiments.py checks it against the stored results)
NO_EFFECT = 1.05
NO_EFFECT_TEXT = f"{(NO_EFFECT - 1) * 100:.0f} %"  # as the book's texts quote it

HOLDS = "holds"
DIRECTION = "holds in direction"
FAILS = "does not hold"
FAILS_SMALL = "does not hold at this scale"  # our network smaller, or trained on less data or for fewer epochs
REVERSED = "reversed"  # a gain the paper claims, and ours shows the opposite effect
REVERSED_SMALL = "reversed at this scale"
NOT_MEASURED = "not measured"
OURS_ONLY = "no claim in the paper"

RULES = (f"Verdicts are computed from the two numbers with a tolerance factor of {TOLERANCE}: a value to "
         f"reproduce holds within that factor; an error or vulnerability holds when ours is at most "
         f"{TOLERANCE}x the paper's; a gain (a ratio) holds when ours >= paper^(1/{TOLERANCE}) (6.1 needs 4.2), "
         f"holds in direction when it shows the effect (a ratio above {NO_EFFECT}, past the largest seed-to-seed "
         f"spread of our test errors; for a qualitative claim, past the threshold named in the row) but less, "
         f"and is reversed when ours is below 1/{NO_EFFECT} (the opposite effect); otherwise the claim does not "
         f"hold. 'At this scale': our network is smaller than the paper's nearest one or trained on less data or "
         f"for fewer epochs. "
         f"A row the paper gives no number for (a comparison of ours) says '{OURS_ONLY}'.")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and our measurement of it."""

    id: str  # stable across presets: the intro keeps the largest preset's row of each id
    claim: str  # what is compared, with its unit
    paper: float | str | None  # the paper's number (of `paper_network`), a statement, or None
    paper_network: str  # which of the paper's networks, e.g. "0.6M"; "" when not a network
    ours: float | None
    network: str  # ours: e.g. "L = 128"; "" when not a network
    preset: str
    section: str  # the MyST label of the section that shows it
    better: Literal["lower", "higher"] | None = None
    threshold: float = NO_EFFECT  # gains and qualitative claims: ours must be past it to show the effect
    smaller: bool = True  # our network is smaller than (or trained less than) the paper's
    digits: int = 3  # significant digits shown for ours

    def __post_init__(self):
        if self.better not in (None, "lower", "higher"):
            raise ValueError(f"Claim {self.id}: better must be None, 'lower' or 'higher', got {self.better!r}")
        if isinstance(self.paper, str) and self.better is None:
            raise ValueError(f"Claim {self.id}: a qualitative claim needs better='lower' or 'higher'")


def verdict(c: Claim) -> str:
    if c.ours is None or (isinstance(c.ours, float) and math.isnan(c.ours)):
        return NOT_MEASURED
    fail = FAILS_SMALL if c.smaller else FAILS
    if c.paper is None:
        return OURS_ONLY
    if isinstance(c.paper, str):
        past = c.ours > c.threshold if c.better == "higher" else c.ours < c.threshold
        return DIRECTION if past else fail
    ratio = c.ours / c.paper
    if c.better is None:
        return HOLDS if 1 / TOLERANCE <= ratio <= TOLERANCE else fail
    if c.better == "lower":
        return HOLDS if ratio <= TOLERANCE else fail
    if c.ours > 0 and math.log(c.ours) >= math.log(c.paper) / TOLERANCE:
        return HOLDS
    if c.ours < 1 / c.threshold:
        return REVERSED_SMALL if c.smaller else REVERSED
    return DIRECTION if c.ours > c.threshold else fail


def _number(v, digits: int) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        return "-"
    return f"{v:.{digits}g}"


def markdown(claims: list[Claim]) -> str:
    """The table: claim, the paper's number (its network), ours (network, preset), verdict,
    and a link to the section that shows it."""
    lines = ["| claim | paper | this book | verdict | shown in |", "| --- | --- | --- | --- | --- |"]
    esc = lambda s: str(s).replace("|", "\\|")  # a pipe inside a cell would split it
    for c in claims:
        paper = _number(c.paper, 3) + (f" ({c.paper_network})" if c.paper_network and c.paper is not None else "")
        where = f"{{ref}}`{c.section}`" if c.section else "-"
        lines.append(f"| {esc(c.claim)} | {esc(paper)} | {esc(ours_cell(c))} | **{verdict(c)}** | {where} |")
    return "\n".join(lines)


def ours_cell(c: Claim) -> str:
    """Our number with the network and preset it comes from, as the table shows it."""
    where = ", ".join(x for x in (c.network, c.preset) if x)
    return "-" if c.ours is None else f"{_number(c.ours, c.digits)} ({where})"


def as_dict(c: Claim) -> dict:
    """For JSON (the command line's `summary`): the claim's fields and its verdict."""
    from dataclasses import asdict
    return {**asdict(c), "verdict": verdict(c)}


PAPER_WIDTHS = (256, 512, 1024, 2048)
PAPER_EPOCHS = 2000  # §3.5: every network of the paper is trained for 2000 epochs
FULL_SETUP = ("paper-small", "paper")  # presets with the paper's data and schedule
LARGER = "paper-small"  # the full-setup preset whose stored networks a smaller build shows beside its own


def nearest(width: int) -> int:
    """The paper's network nearest to ours: the smallest of its widths >= ours (its largest
    otherwise), so our small networks are compared with the paper's 0.6M one."""
    return next((w for w in PAPER_WIDTHS if w >= width), PAPER_WIDTHS[-1])


def smaller(preset: str, width: int, epochs: int | None = None) -> bool:
    """Is our network smaller, or trained on less data or for fewer epochs (`epochs`, when
    given), than the paper's nearest one?"""
    short = epochs is not None and epochs < PAPER_EPOCHS
    return short or preset not in FULL_SETUP or width < nearest(width)


def network(preset: str, width: int, epochs: int | None = None) -> str:
    """Our network as the table names it: "L = 256", with its epochs where a preset with the
    paper's data trains it for fewer than the paper (elsewhere the preset's name says so)."""
    short = preset in FULL_SETUP and epochs is not None and epochs < PAPER_EPOCHS
    return f"L = {width}, {epochs} epochs" if short else f"L = {width}"
