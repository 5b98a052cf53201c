"""Rewrite tests/fixtures/golden/*.yaml from the current renderer, or check them.

    python -m tests.regenerate_goldens           # rewrite; review `git diff` afterwards
    python -m tests.regenerate_goldens --check   # exit 1 and show a diff where one is stale

The diff compares parsed data with sorted keys, as the golden test does, so it shows what
changed and not how YAML happened to lay it out.
"""

from __future__ import annotations

import argparse
import difflib
import sys

import yaml

from tests.cases import CASES, render


def normalised(text: str) -> list[str]:
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=True, allow_unicode=True).splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.regenerate_goldens")
    parser.add_argument("--check", action="store_true", help="write nothing; diff stale goldens")
    check = parser.parse_args(argv).check
    stale = 0
    for case in CASES:
        text = render(case)
        old = case.expected.read_text(encoding="utf-8") if case.expected.exists() else ""
        if check:
            diff = list(
                difflib.unified_diff(
                    normalised(old) if old else [],
                    normalised(text),
                    f"{case.expected} (golden)",
                    f"{case.name} (rendered now)",
                    lineterm="",
                )
            )
            if diff:
                stale += 1
                print("\n".join(diff))
        elif text != old:
            case.expected.write_text(text, encoding="utf-8")
            print(f"wrote {case.expected}")
    if check and stale:
        print(f"{stale} golden file(s) stale: run `python -m tests.regenerate_goldens`")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
