"""The paper's claims, ours beside them, and a verdict computed from the two by a rule fit for
the kind of quantity.

A chapter's study turns its results into `Claim` values (`rows(study)` in each module of
cubelib.studies); `cubelib.summary` gathers them for the intro's table "paper vs this book".
The verdict is never written by hand: `verdict(claim)` applies the rules below, and every
chapter that states whether a claim holds glues `verdict` of a `Claim`.

Every rule must fail a network that ignores its input.  Each claim therefore carries `null`,
the value such a network scores on its quantity (measured: `analyses.null_network`), and
tests/test_claims.py checks that no claim holds when ours is replaced by it.  The kinds:

- "value": a number to reproduce (a resolution, a norm, a vulnerability split): holds when
  ours is within a factor TOLERANCE of the paper's, either way;
- "error": a test error e (%), lower is better: holds when ours <= TOLERANCE x the paper's;
  a network ignoring its input has e ~ 100 % (eq. 8 divides by the outputs' spread);
- "vulnerability": v_max or v_inv (%), lower is better.  All of them lie between ~20 and
  ~30 %, and a network ignoring its input has v_max = v_inv = the oracle's own invariance
  rate (~28 %), so a ratio of vulnerabilities cannot tell a method from no network.  The rule
  compares effects instead: ours reproduces the paper's claim when its drop below the null
  is at least 1/TOLERANCE of the paper's drop, (null - ours) / (null - paper) >= 0.8;
- "gain": a ratio the paper claims > 1: holds when ours >= paper ** (1 / TOLERANCE) (6.1
  needs 4.2), holds in direction when past NO_EFFECT (the largest seed-to-seed spread of our
  errors) but smaller, is reversed below 1 / NO_EFFECT; a network ignoring its input has
  ratio 1 and fails.  A gain measured on a smaller network or a shorter schedule than the
  paper's holds at most in direction: its size is not comparable;
- "qualitative": the paper states a direction without a number: holds in direction when ours
  is past `threshold` (named in the row) on the side `better`;
- `baseline=True` (a method the paper compares against, e.g. its Table 5): a baseline
  stronger than the paper's weakens the claim it is there for, so an error or vulnerability
  of a baseline is reproduced within the tolerance either way, not "lower holds";
- a comparison of ours that the paper does not make (`paper` is None): no claim in the paper;
- no number of ours: not measured.

"At this scale": a failing claim whose network is smaller than the paper's nearest one, or
trained on less data or for fewer epochs (the row names its schedule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

# a factor within which a number counts as reproduced.  The paper reports one run per
# network; ours vary by up to NO_EFFECT between seeds, so 1.25 leaves room for the paper's
# own spread, five times ours.  For vulnerabilities it applies to the effect (see above).
TOLERANCE = 1.25
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
PASSING = (HOLDS, DIRECTION)

RULES = (f"Verdicts are computed from the two numbers by a rule for each kind of quantity, with a tolerance "
         f"factor of {TOLERANCE}. A value to reproduce holds within that factor either way. A test error holds "
         f"when ours is at most {TOLERANCE}x the paper's. Every vulnerability lies between ~20 and ~30 %, and a "
         f"network that ignores its input has $\\bar v_{{\\max}}$ at the oracle's own rate (~28 %), so a "
         f"vulnerability holds when its drop below that level is at least 1/{TOLERANCE} of the paper's drop. "
         f"A gain (a ratio) holds when ours >= paper^(1/{TOLERANCE}) (6.1 needs 4.2), holds in direction when it "
         f"shows the effect (a ratio above {NO_EFFECT}, past the largest seed-to-seed spread of our test errors; "
         f"for a qualitative claim, past the threshold named in the row) but less, and is reversed below "
         f"1/{NO_EFFECT}; measured on a smaller network or a shorter schedule than the paper's, a gain holds at most "
         f"in direction. A baseline the paper compares against is reproduced within the tolerance either way: "
         f"a stronger baseline weakens the claim it is there for. Each rule fails a network that ignores its "
         f"input (except the few claims about a schedule or about two trainings agreeing, which such a "
         f"network would share). 'At this scale': our network is smaller than the paper's nearest one or trained on less data "
         f"or for fewer epochs. A row the paper gives no number for (a comparison of ours) says '{OURS_ONLY}'.")

Kind = Literal["value", "error", "vulnerability", "gain", "qualitative"]
KINDS = ("value", "error", "vulnerability", "gain", "qualitative")


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
    kind: Kind = "value"
    null: float | None = None  # what a network ignoring its input scores (None: no network is judged)
    better: Literal["lower", "higher"] | None = None  # qualitative claims: the side ours must be on
    threshold: float = NO_EFFECT  # gains and qualitative claims: ours must be past it to show the effect
    baseline: bool = False  # a method the paper compares against: reproduced either way
    smaller: bool = True  # our network is smaller than (or trained less than) the paper's
    digits: int = 3  # significant digits shown for ours

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "qualitative" and self.better not in ("lower", "higher"):
            raise ValueError(f"Claim {self.id}: a qualitative claim needs better='lower' or 'higher'")
        if isinstance(self.paper, str) and self.kind != "qualitative":
            raise ValueError(f"Claim {self.id}: the paper's statement {self.paper!r} needs kind='qualitative'")
        if self.kind == "vulnerability" and isinstance(self.paper, float | int) and self.null is None:
            raise ValueError(f"Claim {self.id}: a vulnerability is judged against the null network's; pass null")
        if self.kind == "vulnerability" and self.null is not None and isinstance(self.paper, float | int) \
                and not self.paper < self.null:
            raise ValueError(f"Claim {self.id}: the paper's {self.paper} is not below the null {self.null}")


def effect_share(c: Claim) -> float:
    """A vulnerability's drop below the null network's, as a share of the paper's drop."""
    return (c.null - c.ours) / (c.null - c.paper)


def verdict(c: Claim) -> str:
    if c.ours is None or (isinstance(c.ours, float) and math.isnan(c.ours)):
        return NOT_MEASURED
    if c.paper is None:
        return OURS_ONLY
    fail = FAILS_SMALL if c.smaller else FAILS
    if c.kind == "qualitative":
        past = c.ours > c.threshold if c.better == "higher" else c.ours < c.threshold
        return DIRECTION if past else fail
    if c.kind == "gain":
        # a gain of a smaller network or shorter schedule than the paper's shows at most the
        # direction: the size of a gain depends on both, and not monotonically
        if c.ours > 0 and math.log(c.ours) >= math.log(c.paper) / TOLERANCE:
            return DIRECTION if c.smaller else HOLDS
        if c.ours < 1 / c.threshold:
            return REVERSED_SMALL if c.smaller else REVERSED
        return DIRECTION if c.ours > c.threshold else fail
    ratio = effect_share(c) if c.kind == "vulnerability" else c.ours / c.paper
    if c.kind == "value" or c.baseline:
        return HOLDS if 1 / TOLERANCE <= ratio <= TOLERANCE else fail
    if c.kind == "error":
        return HOLDS if ratio <= TOLERANCE else fail
    return HOLDS if ratio >= 1 / TOLERANCE else fail  # vulnerability: the share of the paper's effect


def over_seeds(first, second) -> str:
    """How method `second` compares with `first` by test error over seeds (lower is better):
    it beats it when its worst seed beats the other's best, loses when its best seed is worse
    than the other's worst, and ties within the seed spread otherwise."""
    if max(second) < min(first):
        return "beats it with every seed"
    if min(second) > max(first):
        return "loses to it"
    return "ties with it within the seed spread"


def as_null(c: Claim) -> Claim:
    """The claim as a network that ignores its input would score it (for the rules' test)."""
    return replace(c, ours=c.null)


def compared(c: Claim) -> str:
    """What the rule compares, as the table shows it: ours / paper, or the share of the
    paper's drop below the null network's vulnerability."""
    if c.ours is None or c.paper is None or isinstance(c.paper, str) or \
            (isinstance(c.ours, float) and math.isnan(c.ours)):
        return "-"
    if math.isinf(c.ours):
        return "outside the measured range"
    if c.kind == "vulnerability":
        return f"{100 * effect_share(c):.0f} % of the drop below {c.null:.1f}"
    return f"{c.ours / c.paper:.2f}x"


def _number(v, digits: int) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        return "-"
    return f"{v:.{digits}g}"


def markdown(claims: list[Claim]) -> str:
    """The table: claim, the paper's number (its network), ours (network, preset), verdict,
    and a link to the section that shows it."""
    lines = ["| claim | paper | this book | compared | verdict | shown in |", "| --- | --- | --- | --- | --- | --- |"]
    esc = lambda s: str(s).replace("|", "\\|")  # a pipe inside a cell would split it
    for c in claims:
        paper = _number(c.paper, 3) + (f" ({c.paper_network})" if c.paper_network and c.paper is not None else "")
        where = f"{{ref}}`{c.section}`" if c.section else "-"
        lines.append(f"| {esc(c.claim)} | {esc(paper)} | {esc(ours_cell(c))} | {esc(compared(c))} | **{verdict(c)}** "
                     f"| {where} |")
    return "\n".join(lines)


def ours_cell(c: Claim) -> str:
    """Our number with the network and preset it comes from, as the table shows it."""
    where = ", ".join(x for x in (c.network, c.preset) if x)
    return "-" if c.ours is None else f"{_number(c.ours, c.digits)} ({where})"


def as_dict(c: Claim) -> dict:
    """For JSON (the command line's `summary`): the claim's fields and its verdict."""
    from dataclasses import asdict
    return {**asdict(c), "compared": compared(c), "verdict": verdict(c)}


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
