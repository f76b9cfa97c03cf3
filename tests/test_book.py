"""The whole book builds with warnings as errors: at the smoke preset (every code path,
training included), and at the quick preset from the committed results alone (the book
readers see; training anything there fails), and that setting really catches a broken glue
key. The quick book is then read in headless Chromium, offline (scripts/browser_check.py), with a
full-page screenshot of each page left in _build/screenshots/."""
import contextlib
import html as html_lib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from cubelib import claims, store, summary

ROOT = Path(__file__).resolve().parents[1]
JB = str(Path(sys.executable).with_name("jupyter-book"))


SCREENSHOTS = ROOT / "_build" / "screenshots"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="session")
def progress(pytestconfig):
    """A function that shows one line on the terminal while a test runs (past pytest's capture,
    so without -s)."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")

    def show(line: str):
        if reporter is not None:
            with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
                reporter.write_line(line)
    return show


def _progress_line(line: str, root: str):
    """What of jupyter-book's output is worth a line while it runs: each executed notebook, the
    stages, warnings and errors."""
    if "IPKernelApp" in line:
        return None
    if m := re.match(r"(\S+): Executed notebook in ([\d.]+) seconds", line):
        return f"executed {os.path.relpath(m.group(1), root)} in {float(m.group(2)):.0f} s"
    if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line) or re.match(r"([\w.]+\.)?[A-Z]\w*(Error|Exception|Result|Disabled|Expired|Interrupt): ", line):
        return line.replace(root + os.sep, "")[:240]  # a warning, or an exception's last line
    if line.startswith(("writing output... [", "build succeeded", "build finished")):
        return re.sub(r"writing output\.\.\. \[\s*\d+%\] ", "writing ", line)
    return None


def build(source: Path, out: Path, timeout=1800, progress=None, label="book", **env):
    """`jupyter-book build` with warnings as errors; its output in .stdout; with `progress`, a line per
    executed notebook, page written, warning and error while it runs (at most 20 of these shown)."""
    env = dict(os.environ, **{"CUBELIB_PRESET": "smoke", **env})
    cmd = [JB, "build", str(source), "-W", "-n", "--keep-going", "--path-output", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    killed = threading.Event()
    timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
    timer.start()
    lines, shown_warnings, t0 = [], 0, time.perf_counter()
    try:
        for line in proc.stdout:
            lines.append(line := ANSI.sub("", line))
            msg = progress and _progress_line(line.strip(), str(source))
            if msg and not msg.startswith(("executed ", "writing ", "build ")):
                shown_warnings += 1
                msg = msg if shown_warnings <= 20 else None
            if msg:
                progress(f"[{label} {time.perf_counter() - t0:4.0f} s] {msg}")
        proc.wait()
    finally:
        timer.cancel()
    if killed.is_set():
        raise subprocess.TimeoutExpired(cmd, timeout, output="".join(lines))
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def test_book_builds_at_smoke_with_warnings_as_errors(tmp_path, progress):
    proc = build(ROOT, tmp_path, progress=progress, label="smoke book")
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
    assert re.search(r"effective resolution .*? 28 28 \(any\) 1.00x holds", text)
    assert re.search(r"Table 2: test \\\(e\\\) \(%\), first-derivative training [\d.]+ \(0.6M\) [\d.]+ \(L = 16, smoke\)",
                     text) and "not measured" not in text
    # the chapters produced their figures
    for page, n_figures in [("rendering", 4), ("tangents", 5), ("accuracy", 1)]:
        assert (html / f"{page}.html").read_text().count("<img") >= n_figures, page


@pytest.fixture(scope="module")
def quick_book(tmp_path_factory, progress):
    """The quick book from results/ alone, built once: (the build's process, its output folder)."""
    out = tmp_path_factory.mktemp("quick-book")
    proc = build(ROOT, out, timeout=3000, progress=progress, label="quick book", CUBELIB_PRESET="quick",
                 CUBELIB_NO_TRAIN="1", CUBELIB_RESULTS=str(ROOT / "results"))
    return proc, out


def test_book_builds_at_quick_from_the_committed_results_alone(quick_book, monkeypatch):
    """What readers read: the quick book from results/ (rendering data is allowed, training
    or recomputing an analysis raises store.TrainingDisabled and fails the build)."""
    proc, tmp_path = quick_book
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    html = tmp_path / "_build" / "html" / "book"
    text = re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", (html / "intro.html").read_text())))
    assert r"Table 2: test \(e\) (%), first-derivative training 0.17 (0.6M) " in text
    assert "not measured" not in text
    # each row shows what the summary computes from the same results: at quick, or at the larger
    # preset whose networks of that chapter are all stored (paper-small's Tables 1-2 are)
    monkeypatch.setenv("CUBELIB_RESULTS", str(ROOT / "results"))  # as the build read them
    monkeypatch.setenv("CUBELIB_NO_TRAIN", "1")
    with store.training(False):
        rows = summary.rows("quick", compute=False)
    for c in rows:
        assert f"{claims.ours_cell(c)} {claims.compared(c)} {claims.verdict(c)}" in text, c


def _browser_check():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "scripts" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quick_book_loads_nothing_from_the_network(quick_book):
    """No page names a script, stylesheet, font or image on another host, and MathJax is the
    copy shipped with the book (sphinx-mathjax-offline), so the book reads the same offline."""
    proc, out = quick_book
    if proc.returncode != 0:
        pytest.skip("the quick book did not build: see test_book_builds_at_quick_from_the_committed_results_alone")
    check, html = _browser_check(), out / "_build" / "html"
    remote = {page.as_posix(): urls for page in check.pages(html) if (urls := check.static_remote_loads(html / page))}
    assert not remote, remote
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    with_maths = [p for p in check.pages(html) if 'class="math' in (html / p).read_text()]
    assert len(with_maths) >= 3, with_maths
    for page in with_maths:
        assert re.search(r'<script [^>]*src="(\.\./)*_static/mathjax/tex-chtml\.js"', (html / page).read_text()), page


def test_the_quick_book_reads_right_in_a_browser(quick_book, progress):
    """Every page of the quick book in headless Chromium, offline: maths typeset (no raw TeX left in
    the text), every image loaded, no unresolved reference, no console error, no request to another
    host. The full-page screenshots are kept in _build/screenshots/."""
    check = _browser_check()
    missing = [exe for exe in (check.CHROMIUM, check.CHROMEDRIVER) if not Path(exe).is_file()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the Python package selenium (requirements.txt)")
    if missing:
        why = f"no {' and no '.join(missing)}: apt-get install chromium chromium-driver"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser check, but there is {why}")
        pytest.skip(f"browser check skipped, there is {why}")
    proc, out = quick_book
    if proc.returncode != 0:
        pytest.skip("the quick book did not build: see test_book_builds_at_quick_from_the_committed_results_alone")
    shots = out / "screenshots"
    report = check.check(out / "_build" / "html", shots, log=lambda line: progress(f"[browser] {line.strip()}"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    for png in shots.glob("*.png"):
        shutil.copy2(png, SCREENSHOTS / png.name)
    (SCREENSHOTS / "report.txt").write_text(check.format_report(report) + "\n")
    if any(report.values()):
        pytest.fail(f"the browser check found problems (screenshots in {SCREENSHOTS}):\n"
                    + check.format_report(report), pytrace=False)


def test_a_broken_glue_key_fails_the_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(ROOT / "_config.yml", src / "_config.yml")  # the book's own configuration, whole
    for bib in yaml.safe_load((ROOT / "_config.yml").read_text()).get("bibtex_bibfiles", []):
        (src / bib).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / bib, src / bib)
    (src / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (src / "page.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "# Page\n\n```{code-cell} ipython3\nfrom myst_nb import glue\nglue('good', 1.0, display=False)\n```\n\n"
        "Good {glue:text}`good:.1f`, broken {glue:text}`missing:.1f`.\n")
    proc = build(src, tmp_path / "out", timeout=600)
    assert proc.returncode != 0
    assert "missing" in proc.stdout + proc.stderr
