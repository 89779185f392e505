"""Regenerate (or check) the README's example outputs from the real CLI.

Each example is an HTML comment naming the command, followed by a fenced text block:

    <!-- vramcalc: infer llama-2-7b -->
    ```text
    ...output...
    ```

    python scripts/readme_examples.py          # rewrite README.md in place
    python scripts/readme_examples.py --check  # exit 1 if any block is stale (CI)
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


def run(args: str) -> str:
    env = {**os.environ, "COLUMNS": WIDTH, "NO_COLOR": "1", "TERM": "dumb"}
    out = subprocess.run(
        [sys.executable, "-m", "vramcalc", *shlex.split(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    text = out.stdout + (out.stderr if out.returncode else "")
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


def render(readme: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + run(m.group("args")) + m.group(4), readme)


def main() -> int:
    path = ROOT / "README.md"
    old = path.read_text(encoding="utf-8")
    new = render(old)
    if "--check" in sys.argv:
        if new != old:
            sys.stderr.write(
                "README.md examples are stale: run python scripts/readme_examples.py\n"
            )
            return 1
        return 0
    path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
