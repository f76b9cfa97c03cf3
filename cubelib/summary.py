"""The intro's table "paper vs this book": one row per headline number, ours beside the
paper's, with the preset ours was measured at.  Every row comes from a chapter's study
(cubelib.studies), so the intro shows what the chapters computed.  Printed as JSON by
`python -m cubelib summary`."""
from __future__ import annotations

from . import presets, report, store
from .studies import accuracy, baselines, rendering, robustness, second_order, tangents


def _rendering(p, device):
    return rendering.rows(rendering.study(p, device))


def _tangents(p, device):
    return tangents.rows(p)


def _accuracy(p, device):
    return accuracy.rows(accuracy.study(p, device))


def _robustness(p, device):
    return robustness.rows(robustness.study(p, device))


def _baselines(p, device):
    return baselines.rows(baselines.study(p, device))


def _second_order(p, device):
    return second_order.rows(second_order.study(p, device))


CHAPTERS = {"rendering": _rendering, "tangents": _tangents, "accuracy": _accuracy, "robustness": _robustness,
            "baselines": _baselines, "second order": _second_order}


def rows(preset, compute: bool = True, device="cpu") -> list[dict]:
    """All rows.  With compute=False nothing is trained or analysed: a chapter with a missing
    result shows as one row with ours = None."""
    p = presets.get(preset)
    out = []
    for chapter, make in CHAPTERS.items():
        try:
            with store.training(compute):
                out += make(p, device)
        except (store.TrainingDisabled, FileNotFoundError):
            out.append(report.row(f"{chapter} chapter", None, None, p.name, chapter))
    return out


def markdown(table: list[dict]) -> str:
    def fmt(v):
        return "not computed" if v is None else "-" if v == "" else str(v)
    lines = ["| quantity | paper | this book | preset | chapter |", "| --- | --- | --- | --- | --- |"]
    cell = lambda v: str(v).replace("|", "\\|")  # a pipe inside a cell would split it
    for r in table:
        paper_value = "-" if r["paper"] is None else r["paper"]
        lines.append(f"| {cell(r['quantity'])} | {cell(paper_value)} | {cell(fmt(r['ours']))} | {r['preset']} | "
                     f"{cell(r['chapter'])} |")
    return "\n".join(lines)
