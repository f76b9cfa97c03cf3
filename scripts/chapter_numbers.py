"""Every number a chapter shows, executed at a preset: its glued values, the numbers in its
Markdown outputs (tables) and in its printed text.  Used to show that a rewrite of a chapter
(or of the code under it) leaves what readers see unchanged.

    python scripts/chapter_numbers.py book/accuracy.md [--preset quick] -o before.json
    python scripts/chapter_numbers.py --compare before.json after.json
"""
import argparse
import collections
import json
import os
import re
import sys
from pathlib import Path

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def numbers(chapter: Path, preset: str) -> dict:
    import jupytext
    from nbclient import NotebookClient
    os.environ["CUBELIB_PRESET"] = preset
    os.environ.setdefault("TQDM_DISABLE", "1")
    nb = jupytext.read(chapter)
    NotebookClient(nb, kernel_name="python3", timeout=3600, resources={"metadata": {"path": str(chapter.parent)}}).execute()
    glued, tables, printed = {}, [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            data = out.get("data", {})
            if name is not None:  # glue(..., display=False) stores the value as a papermill record
                glued[name] = data.get("application/papermill.record/text/plain", data.get("text/plain"))
            elif "text/markdown" in data:
                tables += NUMBER.findall(data["text/markdown"])
            elif out.get("output_type") == "stream" and out.get("name") == "stdout":
                printed += NUMBER.findall(out["text"])
    return {"chapter": str(chapter), "preset": preset, "glued": glued, "table_numbers": sorted(tables),
            "printed_numbers": sorted(printed)}


def compare(a: dict, b: dict) -> list[str]:
    out = []
    for key in sorted(set(a["glued"]) | set(b["glued"])):
        if a["glued"].get(key) != b["glued"].get(key):
            out.append(f"glue {key}: {a['glued'].get(key)} -> {b['glued'].get(key)}")
    for kind in ("table_numbers", "printed_numbers"):
        ca, cb = collections.Counter(a[kind]), collections.Counter(b[kind])
        if ca != cb:
            out.append(f"{kind}: only before {sorted((ca - cb).elements())[:40]}, only after "
                       f"{sorted((cb - ca).elements())[:40]}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("chapter", nargs="?")
    p.add_argument("--preset", default="quick")
    p.add_argument("-o", "--output")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    a = p.parse_args()
    if a.compare:
        diff = compare(*(json.loads(Path(f).read_text()) for f in a.compare))
        print("\n".join(diff) if diff else "identical: every glued value and every number in tables and prints")
        return 1 if diff else 0
    if not a.chapter:
        p.error("give a chapter, or --compare BEFORE AFTER")
    found = numbers(Path(a.chapter), a.preset)
    text = json.dumps(found, indent=1)
    if a.output:
        Path(a.output).write_text(text)
    else:
        print(text)
    print(f"{len(found['glued'])} glued values, {len(found['table_numbers'])} numbers in tables, "
          f"{len(found['printed_numbers'])} printed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
