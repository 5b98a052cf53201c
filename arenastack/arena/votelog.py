"""Read the votes FastChat's web UI writes: one JSON record a line in `<date>-conv.json` files.

A vote record (FastChat 0.2.36, `vote_last_response`):

    {"tstamp": 1732540000.1, "type": "leftvote" | "rightvote" | "tievote" | "bothbad_vote",
     "models": ["", ""],                       # anonymous battle: names hidden when voting
     "states": [{"model_name": "Tiny A", "conv_id": ..., "messages": [[role, text], ...],
                 "offset": 0, ...}, {...}],
     "ip": "..."}

Side-by-side (named) votes carry the shown names in `models`; chat lines of other types (`chat`,
`upvote`, ...) share the files and are skipped. The reader never raises on what it reads: a
truncated or corrupt line, a record without the fields a vote needs, or an unknown model name is
counted under a reason in `VoteLog.skipped`, and the caller shows those counts.

Only the standard library is used: the FastChat image runs this module in the leaderboard service.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CONV_FILE_SUFFIX = "-conv.json"
# FastChat's vote types, and the outcome each one records.
OUTCOMES = {
    "leftvote": "model_a",
    "rightvote": "model_b",
    "tievote": "tie",
    "bothbad_vote": "bothbad",
}
# Words that reveal which model answered. With `identity_filter` on, a vote whose conversation
# mentions one of these (or a model name of the arena) is left out, as the public arena does.
IDENTITY_WORDS = (
    "openai",
    "chatgpt",
    "gpt-3",
    "gpt-4",
    "anthropic",
    "claude",
    "google",
    "gemini",
    "gemma",
    "bard",
    "palm",
    "meta ai",
    "llama",
    "mistral",
    "mixtral",
    "qwen",
    "alibaba",
    "deepseek",
    "phi-3",
    "microsoft",
    "vicuna",
    "lmsys",
    "stablelm",
    "stability ai",
)

# Reasons a line is not counted, as shown to people.
REASONS = {
    "corrupt": "lines that are not JSON (truncated or corrupt)",
    "malformed": "vote records missing fields a vote needs",
    "half_anonymous": "records naming one side only",
    "name_mismatch": "named votes whose shown and recorded names differ",
    "empty": "votes on an empty conversation",
    "unknown_model": "votes naming a model the manifest does not have",
    "identity": "votes whose conversation names a model (identity filter)",
    "unreadable": "files that could not be read",
}


@dataclass(frozen=True)
class Battle:
    """One vote between two models. `winner` is model_a, model_b, tie or bothbad."""

    tstamp: float
    model_a: str
    model_b: str
    winner: str
    anonymous: bool


@dataclass
class VoteLog:
    """Everything read from a set of conversation logs."""

    battles: list[Battle] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unknown_models: Counter[str] = field(default_factory=Counter)

    @property
    def anonymous(self) -> int:
        return sum(b.anonymous for b in self.battles)

    @property
    def named(self) -> int:
        return sum(not b.anonymous for b in self.battles)

    def messages(self) -> list[str]:
        """One line per reason something was not counted."""
        found = [f"{count} {REASONS[reason]}" for reason, count in sorted(self.skipped.items())]
        if self.unknown_models:
            names = ", ".join(sorted(self.unknown_models))
            found.append(f"unknown model names: {names}")
        return found


def conv_files(root: Path, recursive: bool = True) -> list[Path]:
    """The `*-conv.json` files under `root` (a folder, or one file), in name order."""
    if root.is_file():
        return [root]
    pattern = f"*{CONV_FILE_SUFFIX}"
    found = root.rglob(pattern) if recursive else root.glob(pattern)
    return sorted(path for path in found if path.is_file())


def read_votes(
    paths: Iterable[Path],
    known_models: Sequence[str] | None = None,
    identity_filter: bool = False,
    identity_words: Sequence[str] = (),
) -> VoteLog:
    """Read every vote record of `paths` (files), in time order.

    `known_models`: when given, a vote naming any other model is skipped (`unknown_model`).
    `identity_filter`: skip votes whose conversation mentions an identity word, the built-in
    list plus `identity_words` (the arena's own model names, typically).
    """
    log = VoteLog()
    known = None if known_models is None else set(known_models)
    words = [w.lower() for w in (*IDENTITY_WORDS, *identity_words) if w] if identity_filter else []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as stream:
                log.files += 1
                for line in stream:
                    log.lines += 1
                    _read_line(line, log, known, words)
        except OSError:
            log.skipped["unreadable"] += 1
    log.battles.sort(key=lambda battle: battle.tstamp)
    return log


def read_folder(root: Path, **options: object) -> VoteLog:
    """`read_votes` over every conversation log under `root`, recursively."""
    return read_votes(conv_files(root), **options)  # type: ignore[arg-type]


def _read_line(line: str, log: VoteLog, known: set[str] | None, words: list[str]) -> None:
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except ValueError:
        log.skipped["corrupt"] += 1
        return
    if not isinstance(record, dict) or record.get("type") not in OUTCOMES:
        return  # a chat line, a flag, an upvote: not a vote between two models
    try:
        battle = _battle(record, words)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        log.skipped["malformed"] += 1
        return
    if isinstance(battle, str):
        log.skipped[battle] += 1
        return
    if known is not None:
        unknown = [name for name in (battle.model_a, battle.model_b) if name not in known]
        if unknown:
            log.skipped["unknown_model"] += 1
            log.unknown_models.update(unknown)
            return
    log.battles.append(battle)


def _shown_name(value: object) -> str:
    """A name as the UI showed it: FastChat's older UIs wrapped it in `<h3>...: NAME</h3>`."""
    text = str(value)
    if text.startswith("<h3>") and ": " in text:
        return text[text.index(": ") + 2 :].removesuffix("\n").removesuffix("</h3>")
    return text


def _battle(record: dict[str, object], words: list[str]) -> Battle | str:
    """The battle a vote record describes, or the reason it does not count."""
    shown = record["models"]
    states = record["states"]
    if not isinstance(shown, list) or not isinstance(states, list):
        raise TypeError("models and states must be lists")
    if len(shown) != 2 or len(states) != 2 or None in shown:
        raise ValueError("a vote is between two models")
    public = [_shown_name(name) for name in shown]
    hidden = [str(state["model_name"]) for state in states]
    if (public[0] == "") != (public[1] == ""):
        return "half_anonymous"
    anonymous = public[0] in ("", "Model A")
    if not anonymous and public != hidden:
        return "name_mismatch"
    if any(not name for name in hidden):
        raise ValueError("no model name")
    conversations = [state["messages"][int(state.get("offset", 0)) :] for state in states]
    if not conversations[0]:
        return "empty"
    if words:
        text = " ".join(
            str(message[1]).lower() for turns in conversations for message in turns if message[1]
        )
        if any(word in text for word in words):
            return "identity"
    tstamp = float(record["tstamp"])  # type: ignore[arg-type]
    return Battle(tstamp, hidden[0], hidden[1], OUTCOMES[str(record["type"])], anonymous)


def legacy_files(volume_root: Path) -> list[Path]:
    """Conversation logs at the top of the logs volume: written before experiments had folders."""
    if not volume_root.is_dir():
        return []
    return sorted(p for p in volume_root.glob(f"*{CONV_FILE_SUFFIX}") if p.is_file())


def count_votes(paths: Iterable[Path]) -> int:
    """How many vote records (of any kind) `paths` hold, without interpreting them."""
    total = 0
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as stream:
                total += sum(1 for line in stream if any(f'"{kind}"' in line for kind in OUTCOMES))
        except OSError:
            continue
    return total


def snapshot(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of each file: cheap to compare before reading everything again."""
    found = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            continue
        found.append((str(path), status.st_size, status.st_mtime_ns))
    return tuple(found)
