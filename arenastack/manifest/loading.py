"""Reading a manifest file: YAML, the experiment named after the file, lenient validation."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from arenastack.core import serialize
from arenastack.core.problems import ManifestError, Problem
from arenastack.manifest.document import Manifest
from arenastack.manifest.fields import EXPERIMENT_PATTERN
from arenastack.manifest.lenient import Loaded, validate_leniently


def load_manifest(path: Path) -> Loaded:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return Loaded(None, [Problem("", f"cannot read manifest {path}: {error.strerror}")], ())
    try:
        data = serialize.load(text)
    except yaml.YAMLError as error:
        where = ""
        if mark := getattr(error, "problem_mark", None):
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(error, "problem", None) or "cannot be parsed"
        message = f"not valid YAML{where}: {problem} (in {path})"
        return Loaded(None, [Problem("", message)], ())
    stem_problems = []
    if isinstance(data, dict) and "experiment" not in data:
        # A hidden file's leading dots are not part of the name (`.trial.yaml` is `trial`).
        stem = path.stem.lstrip(".")
        if re.match(EXPERIMENT_PATTERN, stem):
            data = {**data, "experiment": stem}
        else:
            message = (
                f"not set, and the manifest's file name {path.stem!r} is no safe folder name "
                "(letters, digits, _ . -): set it"
            )
            stem_problems.append(Problem("experiment", message))
    loaded = validate_leniently(data)
    if stem_problems:
        return Loaded(loaded.manifest, stem_problems + loaded.problems, loaded.pruned)
    return loaded


def experiment_of(manifest: Manifest) -> str:
    """The experiment's name; a manifest parsed without a file is the experiment 'arena'."""
    return manifest.experiment or "arena"


def parse_manifest(data: object) -> Manifest:
    """The manifest, or ManifestError listing every problem."""
    loaded = validate_leniently(data)
    if loaded.problems or loaded.manifest is None:
        raise ManifestError(loaded.problems)
    return loaded.manifest
