"""The whole book builds with warnings as errors: at the smoke preset (every code path,
training included), and at the quick preset from the committed results alone (the book
readers see; training anything there fails), and that setting really catches a broken glue
key."""
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
JB = str(Path(sys.executable).with_name("jupyter-book"))


def build(source: Path, out: Path, timeout=1800, **env):
    env = dict(os.environ, **{"CUBELIB_PRESET": "smoke", **env})
    return subprocess.run([JB, "build", str(source), "-W", "-n", "--keep-going", "--path-output", str(out)],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_book_builds_at_smoke_with_warnings_as_errors(tmp_path):
    proc = build(ROOT, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    html = tmp_path / "_build" / "html" / "book"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for c in toc["chapters"]]
    for page in pages:
        assert (tmp_path / "_build" / "html" / f"{page}.html").exists(), page
    intro = (html / "intro.html").read_text()
    # every glued number of the summary table was pasted (no empty cells, no raw roles)
    assert "{glue" not in intro and "glue:text" not in intro
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", intro))
    # the summary table rendered, with our numbers computed at the smoke preset
    assert re.search(r"effective resolution .*? 28 28 any", text)
    assert "test e (%), first derivatives, L = 16" in text and "not computed" not in text
    # the chapters produced their figures
    for page, n_figures in [("rendering", 4), ("tangents", 5), ("accuracy", 1)]:
        assert (html / f"{page}.html").read_text().count("<img") >= n_figures, page


def test_book_builds_at_quick_from_the_committed_results_alone(tmp_path):
    """What readers read: the quick book from results/ (rendering data is allowed, training
    or recomputing an analysis raises store.TrainingDisabled and fails the build)."""
    proc = build(ROOT, tmp_path, timeout=3000, CUBELIB_PRESET="quick", CUBELIB_NO_TRAIN="1",
                 CUBELIB_RESULTS=str(ROOT / "results"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    html = tmp_path / "_build" / "html" / "book"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (html / "intro.html").read_text()))
    assert "test e (%), first derivatives, L = 128" in text and "not computed" not in text


def test_a_broken_glue_key_fails_the_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.pop("bibtex_bibfiles", None)
    (src / "_config.yml").write_text(yaml.safe_dump(config))
    (src / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (src / "page.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "# Page\n\n```{code-cell} ipython3\nfrom myst_nb import glue\nglue('good', 1.0, display=False)\n```\n\n"
        "Good {glue:text}`good:.1f`, broken {glue:text}`missing:.1f`.\n")
    proc = build(src, tmp_path / "out", timeout=600)
    assert proc.returncode != 0
    assert "missing" in proc.stdout + proc.stderr
