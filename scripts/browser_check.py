"""Load every page of a built book in headless Chromium, offline, and list what a reader would see
broken: raw TeX that MathJax left unrendered (or TeX errors), images that did not load, figures
without a number and caption, unresolved references and raw MyST roles, console errors, and any
request to a host other than the local server. Saves a full-page screenshot of each page.

    python scripts/browser_check.py _build/html --screenshots _build/screenshots

Exit status 0 when no page has a problem, 1 otherwise (2 when the browser cannot be started).
Needs Chromium and its driver (Debian: `apt-get install chromium chromium-driver`) and selenium;
the driver is always the one given (default /usr/bin/chromedriver), so selenium downloads nothing.
Every host but 127.0.0.1 resolves to nothing in the browser, so a page is seen as it is offline.
"""
from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SKIP_PAGES = {"search.html", "genindex.html", "py-modindex.html"}
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static"}

# Raw TeX, raw MyST roles and unresolved references in text outside code and rendered maths.
PATTERNS = [
    ("raw TeX", re.compile(r"\\[()\[\]]")),                                  # \( \) \[ \]
    ("raw TeX", re.compile(r"\$[^$\s][^$]*?\$|\$\$")),                       # $...$, $$
    ("raw TeX", re.compile(r"\\(?:[a-zA-Z]{2,}|[,;!{}_^])(?![a-zA-Z])")),     # \frac, \mathcal, \,
    ("raw TeX", re.compile(r"[A-Za-z0-9)}]\s?[_^]\{")),                      # v_{max}, x^{2}
    ("plain-text subscript (maths belongs in $...$)",
     re.compile(r"(?<![\w/.-])[A-Za-z]{1,3}_[A-Za-z0-9]{1,5}(?![\w/.-])")),     # v_max, D_i, e_test
    ("raw MyST role", re.compile(r"\{(?:glue|glue:text|glue:md|numref|ref|doc|cite|cite:p|cite:t|eq|math|term)\}`")),
    ("unresolved reference", re.compile(r"\?\?")),
]

# Text nodes of the page outside code, scripts and MathJax output, with where they are.
JS_TEXT = r"""
const SKIP = new Set(["PRE", "CODE", "KBD", "SAMP", "SCRIPT", "STYLE", "NOSCRIPT", "TEXTAREA", "TEMPLATE",
                      "MJX-CONTAINER", "SVG", "MATH"]);
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
  acceptNode(node) {
    for (let el = node.parentElement; el; el = el.parentElement) {
      // code, and maths nodes (those MathJax left are reported as "maths not typeset")
      if (SKIP.has(el.tagName.toUpperCase()) || el.classList.contains("highlight") || el.classList.contains("math"))
        return NodeFilter.FILTER_REJECT;
    }
    return node.nodeValue.trim() ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
  }});
while (walker.nextNode()) {
  const node = walker.currentNode;
  let where = "";
  for (let el = node.parentElement; el; el = el.parentElement) {
    if (el.id) { where = "#" + el.id; break; }
  }
  // a paragraph's text, not its split nodes, so that $...$ across an element boundary is found too
  const block = node.parentElement.closest("p, li, dd, dt, td, th, figcaption, caption, h1, h2, h3, h4, h5, h6, blockquote")
                || node.parentElement;
  out.push([node.nodeValue, where, block]);
}
// join the text nodes of one block
const blocks = new Map();
const order = [];
for (const [text, where, block] of out) {
  const key = block;
  if (!blocks.has(key)) { blocks.set(key, [[], where]); order.push(key); }
  blocks.get(key)[0].push(text);
}
return order.map(k => [blocks.get(k)[0].join(""), blocks.get(k)[1]]);
"""

JS_MATHJAX = r"""
const done = arguments[arguments.length - 1];
const wanted = !!document.querySelector('script[src*="mathjax" i], script[src*="tex-chtml" i], script[src*="tex-mml" i]');
const start = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("typeset"), e => done("error: " + e));
  } else if (!wanted) {
    done("none");
  } else if (Date.now() - start > arguments_timeout) {
    done("MathJax did not start");
  } else {
    setTimeout(poll, 50);
  }
})();
"""

JS_MATH = r"""
const out = {containers: document.querySelectorAll("mjx-container").length, errors: [], undefined: [],
             unrendered: []};
for (const el of document.querySelectorAll("mjx-merror, [data-mjx-error]")) {
  out.errors.push((el.getAttribute("data-mjx-error") || el.textContent || "").slice(0, 120));
}
// noundefined shows an unknown macro's name in red text inside the maths
for (const el of document.querySelectorAll("mjx-container mjx-mtext[style*='color'], mjx-container [mathcolor='red']")) {
  const name = (el.textContent || "").trim().slice(0, 60);
  if (name && !out.undefined.includes(name)) out.undefined.push(name);
}
// Sphinx's maths nodes that MathJax did not replace
for (const el of document.querySelectorAll("span.math, div.math")) {
  if (!el.querySelector("mjx-container")) out.unrendered.push(el.textContent.replace(/\s+/g, " ").trim().slice(0, 80));
}
return out;
"""

JS_IMAGES = r"""
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
for (const img of imgs) img.loading = "eager";
const start = Date.now();
(function poll() {
  const pending = imgs.filter(i => !i.complete);
  if (pending.length && Date.now() - start < 10000) { setTimeout(poll, 50); return; }
  done(imgs.filter(i => !i.complete || i.naturalWidth === 0)
           .map(i => [i.getAttribute("src") || "", i.complete ? "did not load" : "still loading after 10 s",
                      (i.closest("[id]") || {}).id || ""]));
})();
"""

# Figures of the chapters (images in cell outputs) that are not numbered figures with a caption.
JS_UNCAPTIONED = r"""
return Array.from(document.querySelectorAll("article .cell_output img, main .cell_output img"))
  .filter(i => { const f = i.closest("figure"); return !f || !f.querySelector("figcaption"); })
  .map(i => (i.closest("[id]") || {}).id || i.getAttribute("src") || "");
"""

# Unresolved cross-references: sphinx leaves the xref node without its link.
JS_XREFS = r"""
return Array.from(document.querySelectorAll(".xref, .pending_xref"))
  .filter(el => !el.closest("a"))
  .map(el => [el.textContent.trim().slice(0, 80), el.className]);
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    failures: list  # set per server

    def log_message(self, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        if self.path.split("?")[0] == "/favicon.ico":  # asked for by the browser, not by the page
            self.send_response(204)
            self.end_headers()
            return
        self.failures.append(f"{self.path} answered {code}")
        super().send_error(code, message, explain)


def serve(root: Path):
    """An HTTP server for root on 127.0.0.1 at a free port, in a thread; (server, base url, failures)."""
    failures: list = []
    handler = type("Handler", (_Handler,), {"failures": failures})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/", failures


def pages(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or rel.name in SKIP_PAGES or rel.parts[0].startswith("."):
            continue
        out.append(rel)
    return out


def redirect_target(path: Path) -> str | None:
    """The target of a page that is only a meta refresh (jupyter-book's root index.html)."""
    text = path.read_text(errors="replace")
    m = re.search(r'<meta[^>]+http-equiv="refresh"[^>]+content="\d+;\s*url=([^"]+)"', text, re.I)
    if m and len(re.sub(r"<[^>]+>|\s", "", text)) < 200:
        return m.group(1)
    return None


def static_remote_loads(path: Path) -> list[str]:
    """script src / link href (stylesheets, fonts, preloads, icons) / img src pointing off this machine."""
    text = path.read_text(errors="replace")
    found = []
    for tag in re.findall(r"<(?:script|link|img|iframe|source|video|audio|embed)\b[^>]*>", text, re.I):
        if tag.lower().startswith("<link") and not re.search(
                r'rel="[^"]*(stylesheet|preload|icon|prefetch|modulepreload|manifest)', tag, re.I):
            continue
        for url in re.findall(r'\b(?:src|href)="([^"]+)"', tag):
            if re.match(r"(https?:)?//", url, re.I):
                found.append(url)
    for url in re.findall(r"@import\s+(?:url\()?['\"]?((?:https?:)?//[^'\")\s]+)", text, re.I):
        found.append(url)
    return found


def start_browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: selenium manager never runs
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                "--metrics-recording-only", "--disable-default-apps",
                # offline: no host but the local server resolves
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(90)
    return driver


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        try:
            msg = json.loads(entry["message"])["message"]
        except (KeyError, ValueError):
            continue
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def screenshot(driver, path: Path):
    """The whole page: the viewport is made as tall as the page, then shot (Chrome's DevTools
    protocol; selenium has no full-page shot for Chrome). `captureBeyondViewport` instead lays
    some pages out shifted sideways."""
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight]")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))


def check_page(driver, base: str, rel: Path, shots: Path | None, failures: list, timeout: float) -> list[str]:
    problems = []
    url = base + rel.as_posix()
    driver.get_log("browser"), driver.get_log("performance")  # drain what the previous page left
    failures.clear()
    driver.get(url)
    state = driver.execute_async_script(JS_MATHJAX.replace("arguments_timeout", str(int(timeout * 1000))))
    if state not in ("typeset", "none"):
        problems.append(f"MathJax: {state}")
    images = driver.execute_async_script(JS_IMAGES)
    driver.execute_async_script("const done = arguments[0]; document.fonts.ready.then(() => done(1));")

    math = driver.execute_script(JS_MATH)
    for err in math["errors"]:
        problems.append(f"TeX error: {err}")
    for name in math["undefined"]:
        problems.append(f"undefined TeX macro: {name}")
    for tex in math["unrendered"]:
        problems.append(f"maths not typeset: {tex}")

    found: dict = {}  # (kind, what) -> [count, first place, first snippet]
    for text, where in driver.execute_script(JS_TEXT):
        text = re.sub(r"\s+", " ", text)
        for kind, pattern in PATTERNS:
            for m in pattern.finditer(text):
                entry = found.setdefault((kind, m.group(0)), [0, where, text[max(0, m.start() - 40):m.end() + 40]])
                entry[0] += 1
    for (kind, what), (count, where, snippet) in found.items():
        times = f" ({count} times)" if count > 1 else ""
        problems.append(f"{kind} {what!r}{times}{' at ' + where if where else ''}: ...{snippet.strip()}...")
    for text, classes in driver.execute_script(JS_XREFS):
        problems.append(f"unresolved reference: {text!r} ({classes})")
    for src, why, where in images:
        problems.append(f"image {why}: {src}{' at #' + where if where else ''}")
    for where in dict.fromkeys(driver.execute_script(JS_UNCAPTIONED)):
        problems.append(f"figure without a number and caption at #{where}")

    # every request the page made, and what the browser logged as an error
    for req in requested_urls(driver):
        parts = urlsplit(req)
        if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if parts.hostname not in ("127.0.0.1",) or parts.port != urlsplit(base).port:
            problems.append(f"request to a non-local host: {req}")
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append(f"console error: {entry.get('message', '')[:300]}")
    for failure in failures:
        problems.append(f"local request failed: {failure}")

    if shots is not None:
        out = shots / (rel.with_suffix("").as_posix().replace("/", "__") + ".png")
        screenshot(driver, out)
    return problems


def check(root: Path, shots: Path | None = None, width: int = 1400, height: int = 1000,
          timeout: float = 10, log=print) -> dict[str, list[str]]:
    """{page: [problem, ...]} for every page under root (pages with no problem map to [])."""
    root = Path(root).resolve()
    if shots is not None:
        shots = Path(shots)
        shots.mkdir(parents=True, exist_ok=True)
        for old in shots.glob("*.png"):
            old.unlink()
    report: dict[str, list[str]] = {}
    todo = []
    for rel in pages(root):
        problems = [f"remote load in the HTML: {u}" for u in static_remote_loads(root / rel)]
        target = redirect_target(root / rel)
        if target is not None:
            if not (root / rel).parent.joinpath(target.split("#")[0]).resolve().is_file():
                problems.append(f"redirects to a missing page: {target}")
            report[rel.as_posix()] = problems
        else:
            report[rel.as_posix()] = problems
            todo.append(rel)
    if not todo:
        raise SystemExit(f"no HTML pages under {root}")
    server, base, failures = serve(root)
    driver = start_browser(width, height)
    try:
        for rel in todo:
            t0 = time.perf_counter()
            try:
                report[rel.as_posix()] += check_page(driver, base, rel, shots, failures, timeout)
            except Exception as exc:  # a page that hangs or crashes the tab is a problem, not the end
                report[rel.as_posix()].append(f"could not check the page: {type(exc).__name__}: {exc}".strip()[:400])
            n = len(report[rel.as_posix()])
            log(f"  {rel.as_posix()}: {'ok' if not n else f'{n} problem(s)'} ({time.perf_counter() - t0:.1f} s)")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    return report


def format_report(report: dict[str, list[str]]) -> str:
    lines = []
    for page, problems in report.items():
        if problems:
            lines.append(f"{page}: {len(problems)} problem(s)")
            lines += [f"    {p}" for p in problems]
    bad = sum(bool(p) for p in report.values())
    lines.append(f"{len(report)} page(s) checked, {bad} with problems, "
                 f"{sum(len(p) for p in report.values())} problem(s) in all")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built HTML folder, e.g. _build/html")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"),
                        help="where the full-page screenshots go (default: %(default)s)")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--timeout", type=float, default=10,
                        help="seconds MathJax may take to start once a page has loaded (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).is_file():
            print(f"{exe} not found: install chromium and chromium-driver "
                  "(or set CHROMIUM / CHROMEDRIVER)", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    report = check(args.html, None if args.no_screenshots else args.screenshots, width=args.width,
                   timeout=args.timeout)
    print(format_report(report))
    print(f"browser check: {time.perf_counter() - t0:.0f} s"
          + ("" if args.no_screenshots else f", screenshots in {args.screenshots}"))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if any(report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
