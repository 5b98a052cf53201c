"""Rewrite tests/fixtures/golden-kubernetes/<case>/ from the current renderer.

python -m tests.regenerate_k8s_goldens
"""

import shutil

from tests.k8s_cases import CASES, render

if __name__ == "__main__":
    for case in CASES:
        shutil.rmtree(case.expected, ignore_errors=True)
        case.expected.mkdir(parents=True)
        for name, text in render(case).items():
            (case.expected / name).write_text(text, encoding="utf-8")
        print(f"wrote {case.expected}/")
