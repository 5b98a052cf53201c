"""Atomic output: readers, and the user after a failed render, see the old file (or folder) or
the new one whole, never half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_atomically(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        # Keep the permissions an existing file had; a new one gets the usual 0644.
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def replace_directory(directory: Path, files: dict[str, str]) -> None:
    """Replace the folder whole with `files` (name → text), or leave it as it was: the files are
    written into a temporary folder beside it, which then takes its place."""
    directory = Path(os.path.abspath(directory))
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(
        tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp")
    )
    try:
        for name, text in files.items():
            with open(temporary / name, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary / name, 0o644)
        os.chmod(temporary, 0o755)
        if not directory.exists():
            os.rename(temporary, directory)
            return
        previous = Path(
            tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".old")
        )
        os.rmdir(previous)
        os.rename(directory, previous)
        try:
            os.rename(temporary, directory)
        except BaseException:
            os.rename(previous, directory)
            raise
        shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
