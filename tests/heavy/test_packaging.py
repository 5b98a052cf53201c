"""arenastack installed as a wheel (pip builds it, with setuptools from PyPI or pip's cache)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from arenastack import cli
from tests.conftest import REPO


def test_an_installed_wheel_fails_at_once_in_one_clear_line(tmp_path: Path) -> None:
    """Without the checkout (templates, image contexts, catalog) there is nothing to render
    from: a non-editable install says how to install, in one line, before anything else."""
    # A copy of what the wheel is built from, so the build leaves nothing in the checkout.
    source = tmp_path / "source"
    shutil.copytree(REPO / "arenastack", source / "arenastack")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(source)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert (target / "bin" / "arenastack").is_file(), "the console script is installed"
    script = (
        "import sys, arenastack.cli as c; print(c.__file__, file=sys.stderr); "
        "sys.exit(c.main(['--gpus', '1x80@8.0']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
    )  # fmt: skip
    imported_from, *lines = result.stderr.splitlines()
    assert imported_from.startswith(str(target)), "the installed copy ran, not the checkout"
    assert result.returncode == cli.NOT_A_CHECKOUT
    assert len(lines) == 1 and "pip install -e ." in lines[0], lines
    assert not (tmp_path / "docker-compose.yml").exists()
