"""Regenerate (or check) the example outputs in README.md and docs/*.md from the real CLI.

Each example is an HTML comment naming the command, followed by a fenced text block:

    <!-- vramcalc: infer llama-2-7b -->
    ```text
    ...output...
    ```

    python scripts/doc_examples.py          # rewrite the files in place
    python scripts/doc_examples.py --check  # exit 1 if any block is stale

A chart is an HTML comment naming a `sweep` command, followed by the image that shows it:

    <!-- vramcalc-chart: sweep llama-3.1-8b --seq-len 4k..128k --gpu rtx-4090 -->
    ![what it shows](docs/capacity.svg)

The default run redraws the image (`--plot docs/capacity.svg --force`); `--check` only checks that
it exists (its bytes depend on the matplotlib version; tests/test_sweep_docs.py compares labels).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- vramcalc: (?P<args>.+?) -->\n```text\n)(?P<body>.*?)(```)", re.S)
WIDTH = "100"
CHART = re.compile(r"<!-- vramcalc-chart: (?P<args>.+?) -->\n!\[[^\]]*\]\((?P<path>[^)\s]+)\)")


def run(args: str) -> str:
    env = {**os.environ, "COLUMNS": WIDTH, "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("VRAMCALC_GPUS", None)  # the shipped catalog, not this machine's user GPU file
    env["XDG_CONFIG_HOME"] = str(ROOT / ".no-config")
    out = subprocess.run(
        [sys.executable, "-m", "vramcalc", *shlex.split(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    text = out.stdout + (out.stderr if out.returncode else "")
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


def charts(text: str) -> list[tuple[str, str]]:
    """(sweep arguments, image path relative to the repository) of each chart in a document."""
    return [(m.group("args"), m.group("path")) for m in CHART.finditer(text)]


def draw(args: str, target: Path) -> None:
    """Draw one chart with the real CLI (`--plot`), replacing the generated image."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(ROOT / ".no-config")}
    env.pop("VRAMCALC_GPUS", None)  # the shipped catalog, as for the text examples
    cmd = [*shlex.split(args), "--plot", str(target), "--force", "--format", "json"]
    subprocess.run(
        [sys.executable, "-m", "vramcalc", *cmd],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )


def render(readme: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + run(m.group("args")) + m.group(4), readme)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main() -> int:
    stale = []
    for path in documents():
        old = path.read_text(encoding="utf-8")
        for args, image in charts(old):
            if "--check" not in sys.argv:
                draw(args, ROOT / image)
            elif not (ROOT / image).is_file():
                stale.append(image)
        new = render(old)
        if new == old:
            continue
        if "--check" in sys.argv:
            stale.append(path.name)
        else:
            path.write_text(new, encoding="utf-8")
    if stale:
        sys.stderr.write(
            f"stale examples in {', '.join(stale)}: run python scripts/doc_examples.py\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
