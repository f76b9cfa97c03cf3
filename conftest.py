"""Test-session setup shared by the unit tests and the notebook checks.

* Chapters run at the `smoke` preset unless CUBELIB_PRESET says otherwise; data sets are
  cached under .cache/cubelib and results written to .cache/results-test (both ignored by
  git) unless CUBELIB_CACHE / CUBELIB_RESULTS say otherwise.
* `pytest --nbval` (or --nbval-lax) also collects the book's chapters: nbval reads each
  jupytext MyST source book/*.md through jupytext (so `pytest --nbval book/oracle.md` works).
  The sources carry no stored outputs, so nbval checks that every cell runs; the real checks
  are the `assert` cells at the end of each chapter (tagged remove-cell).
"""
import os
from pathlib import Path

ROOT = Path(__file__).parent
os.environ.setdefault("CUBELIB_PRESET", "smoke")
os.environ.setdefault("CUBELIB_CACHE", str(ROOT / ".cache" / "cubelib"))
# results of test runs (smoke preset) stay out of the committed results/
SCRATCH = ROOT / ".cache" / "results-test"
os.environ.setdefault("CUBELIB_RESULTS", str(SCRATCH))


def pytest_sessionstart(session):
    """The scratch results are seconds of smoke training: when the training code has changed
    since they were made, start afresh instead of failing on them as stale."""
    if Path(os.environ["CUBELIB_RESULTS"]) != SCRATCH:
        return
    import shutil

    from cubelib import versions
    stamp = SCRATCH / "code_version"
    if SCRATCH.exists() and (not stamp.exists() or stamp.read_text() != versions.code_version()):
        shutil.rmtree(SCRATCH)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    stamp.write_text(versions.code_version())


def _is_chapter(path: Path) -> bool:
    if path.suffix != ".md" or path.parent != ROOT / "book":
        return False
    head = path.read_text(encoding="utf-8")[:400]
    return head.startswith("---") and "jupytext:" in head and "kernelspec:" in head


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if not _is_chapter(Path(file_path)):
        return None
    return _myst_notebook_class().from_parent(parent, path=file_path)


def _myst_notebook_class():
    """nbval's notebook collector, reading the jupytext MyST source instead of an .ipynb."""
    import jupytext
    import nbval.plugin
    from nbval.plugin import IPyNbFile

    class MystNotebook(IPyNbFile):
        def collect(self):
            read = nbval.plugin.nbformat.read
            nbval.plugin.nbformat.read = lambda path, as_version=4: jupytext.read(path)
            try:
                yield from super().collect()
            finally:
                nbval.plugin.nbformat.read = read

    return MystNotebook
