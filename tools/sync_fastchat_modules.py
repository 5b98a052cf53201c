#!/usr/bin/env python3
"""Copy the rating modules into the FastChat image's build context (images/fastchat/arenastack/).

The leaderboard service runs in the FastChat image, whose build context is images/fastchat/ and
cannot reach the repository's arenastack/ package. The copies are committed; a unit test fails
when they differ from the originals. Run after changing any of MODULES:

    python tools/sync_fastchat_modules.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "arenastack"
TARGET = REPO / "images" / "fastchat" / "arenastack"
# Standard library and numpy only (matplotlib and rich when drawn or printed).
MODULES = ("votelog.py", "ratings.py", "leaderboard.py", "leaderboard_service.py")
INIT = '"""Copies of arenastack/ modules, by tools/sync_fastchat_modules.py: do not edit."""\n'


def wanted() -> dict[Path, str]:
    files = {TARGET / "__init__.py": INIT}
    for name in MODULES:
        files[TARGET / name] = (SOURCE / name).read_text(encoding="utf-8")
    return files


def stale() -> list[Path]:
    found = [p for p, text in wanted().items() if not p.exists() or p.read_text() != text]
    extra = set(TARGET.glob("*.py")) - set(wanted())
    return sorted([*found, *extra])


def main() -> int:
    if "--check" in sys.argv[1:]:
        for path in stale():
            print(f"{path.relative_to(REPO)} is stale: run tools/sync_fastchat_modules.py")
        return 1 if stale() else 0
    TARGET.mkdir(exist_ok=True)
    files = wanted()
    for path in sorted(set(TARGET.glob("*.py")) - set(files)):
        path.unlink()
        print(f"removed {path.relative_to(REPO)}")
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
