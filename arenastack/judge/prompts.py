"""The prompts a judge run asks: the user's own (JSON lines, YAML or CSV, each with a `prompt`
and an optional `category` and `id`), or the project's small default set,
arenastack/judge/default-prompts.yaml (written for this project; no benchmark's text)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenastack.core import serialize
from arenastack.core.problems import ManifestError, Problem

DEFAULT_PROMPTS = Path(__file__).with_name("default-prompts.yaml")


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str


def load(path: Path) -> list[Prompt]:
    """Every prompt of the file; a bad one is an error naming its place, and nothing runs."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestError(
            [Problem("--prompts", f"cannot read {path}: {error.strerror}")]
        ) from None
    try:
        records = _records(path, text)
    except ValueError as error:
        raise ManifestError([Problem("--prompts", f"{path}: {error}")]) from None
    prompts: list[Prompt] = []
    problems: list[Problem] = []
    for number, record in enumerate(records, start=1):
        where = f"--prompts {path.name}, prompt {number}"
        if not isinstance(record, dict) or not str(record.get("prompt") or "").strip():
            problems.append(Problem(where, "has no `prompt` text"))
            continue
        body = str(record["prompt"])
        given = record.get("id")
        identity = str(given) if given else hashlib.sha256(body.encode()).hexdigest()[:12]
        prompts.append(Prompt(identity, body, str(record.get("category") or "general")))
    seen: dict[str, int] = {}
    for number, prompt in enumerate(prompts, start=1):
        if prompt.id in seen:
            problems.append(
                Problem(f"--prompts {path.name}, prompt {number}", f"repeats id {prompt.id!r}")
            )
        seen[prompt.id] = number
    if not prompts and not problems:
        problems.append(Problem("--prompts", f"{path} holds no prompt"))
    if problems:
        raise ManifestError(problems)
    return prompts


def _records(path: Path, text: str) -> list[Any]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"line {number} is not JSON ({error.msg})") from None
        return records
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    if suffix in (".yaml", ".yml", ".json"):
        data = serialize.load(text)
        if isinstance(data, dict):
            data = data.get("prompts")
        if not isinstance(data, list):
            raise ValueError("must be a list of prompts (or a mapping with a `prompts` list)")
        return data
    raise ValueError("is not .jsonl, .yaml, .yml, .json or .csv")
