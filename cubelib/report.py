"""What chapters show, as values: tables that render as Markdown, and named numbers to glue.

A study (cubelib.studies) returns its tables as `Table` values and its numbers in a dict;
a chapter displays a table by naming it (Jupyter renders `_repr_markdown_`) and glues all
numbers with one call to `glue_all`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    """A Markdown table: a bold `title` followed by `subtitle` (plain), `columns`, `rows` of
    cells, and an optional `note` below.  Cells are shown as given (str), with `formats[column]` (floats), or "-"
    (None)."""

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    formats: dict[int, str] = field(default_factory=dict)
    note: str = ""
    subtitle: str = ""

    def add(self, *cells):
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {self.title!r} needs {len(self.columns)} cells, got {len(cells)}")
        self.rows.append(list(cells))

    def cell(self, value, column: int) -> str:
        if value is None:
            return "-"
        if isinstance(value, float) and column in self.formats:
            return format(value, self.formats[column])
        return str(value).replace("|", "\\|")  # a pipe inside a cell would split it

    def markdown(self) -> str:
        lines = [f"**{self.title}**{self.subtitle}", ""] if self.title else []
        lines += ["| " + " | ".join(self.columns) + " |", "|" + " --- |" * len(self.columns)]
        lines += ["| " + " | ".join(self.cell(v, i) for i, v in enumerate(row)) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def tables(*tables: Table):
    """Several tables as one IPython Markdown output, a blank line apart."""
    # the book's tools (IPython, myst_nb) are imported only when a chapter calls: the
    # package itself runs where only torch is installed (a GPU box, the command line)
    from IPython.display import Markdown
    return Markdown("\n\n".join(t.markdown() for t in tables))


def glue_all(numbers: dict, markdown=()):
    """Glue every named number (or text) of a study for the chapter's prose; the texts named in
    `markdown` carry symbols ($...$) and are glued as Markdown, for the chapter's {glue:md}."""
    from IPython.display import Markdown
    from myst_nb import glue
    for key, value in numbers.items():
        glue(key, Markdown(value) if key in markdown else value, display=False)
