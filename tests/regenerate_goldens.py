"""Rewrite tests/fixtures/golden/*.yaml from the current renderer.

python -m tests.regenerate_goldens
"""

from tests.cases import CASES, render

if __name__ == "__main__":
    for case in CASES:
        case.expected.write_text(render(case), encoding="utf-8")
        print(f"wrote {case.expected}")
