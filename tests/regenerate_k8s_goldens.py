"""Rewrite tests/fixtures/golden-kubernetes/<case>/ from the current renderer, or check them.

    python -m tests.regenerate_k8s_goldens           # rewrite; review `git diff` afterwards
    python -m tests.regenerate_k8s_goldens --check   # exit 1 and show a diff where one is stale

As with the compose goldens, the diff compares parsed data with sorted keys; a file that is
missing or left over shows as wholly added or removed.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
from pathlib import Path

from tests.k8s_cases import CASES, render
from tests.regenerate_goldens import normalised


def stale_files(expected: Path, rendered: dict[str, str]) -> list[str]:
    """A unified diff of every file of one case that differs from what renders now."""
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in sorted(expected.glob("*.yaml"))}
    diff: list[str] = []
    for name in sorted(on_disk.keys() | rendered.keys()):
        old, new = on_disk.get(name, ""), rendered.get(name, "")
        diff += difflib.unified_diff(
            normalised(old) if old else [],
            normalised(new) if new else [],
            f"{expected / name} (golden)",
            f"{expected.name}/{name} (rendered now)",
            lineterm="",
        )
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.regenerate_k8s_goldens")
    parser.add_argument("--check", action="store_true", help="write nothing; diff stale goldens")
    check = parser.parse_args(argv).check
    stale = 0
    for case in CASES:
        rendered = render(case)
        if check:
            diff = stale_files(case.expected, rendered)
            if diff:
                stale += 1
                print("\n".join(diff))
            continue
        shutil.rmtree(case.expected, ignore_errors=True)
        case.expected.mkdir(parents=True)
        for name, text in rendered.items():
            (case.expected / name).write_text(text, encoding="utf-8")
        print(f"wrote {case.expected}/")
    if check and stale:
        print(f"{stale} golden folder(s) stale: run `python -m tests.regenerate_k8s_goldens`")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
