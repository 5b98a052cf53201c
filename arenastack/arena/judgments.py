"""The votes of an LLM judge (`render.py judge`), kept beside an experiment's human votes as
`<judge>-judge.jsonl`, one JSON record a line, and never counted with them:

    {"tstamp": 1764700000.0, "type": "judgment", "judge": "tiny-a", "battle": "<key>",
     "prompt": "<id>", "category": "coding", "models": ["Tiny A", "Tiny B"],
     "verdicts": ["A>B", "B>A"],      # models[0] as A, then the order swapped; null: unparsed
     "outcome": "model_a",            # model_a, model_b, tie, or unparsed
     "contradiction": false,          # the two orders disagreed: counted as a tie
     "weight": 1,                     # 3 where both orders gave the strong verdict (A>>B)
     "style": [{"tokens": 120, "headers": 1, "lists": 3, "bold": 0}, {...}],
     "usage": {"prompt_tokens": 900, "completion_tokens": 80}}

A judgment counts as `weight` votes, as Arena-Hard-Auto weighs its strong verdicts; an unparsed
one counts as none and is reported. Like the vote reader, this one never raises on what it reads.
Standard library only: the FastChat image runs it in the leaderboard service.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arenastack.arena.votelog import Battle

JUDGE_FILE_SUFFIX = "-judge.jsonl"
OUTCOMES = ("model_a", "model_b", "tie", "unparsed")
STYLE_KEYS = ("tokens", "headers", "lists", "bold")


@dataclass(frozen=True)
class Judgment:
    tstamp: float
    judge: str
    battle: str
    models: tuple[str, str]
    outcome: str
    contradiction: bool
    weight: int
    # Per answer, in the order of `models`: its length and markdown (STYLE_KEYS).
    style: tuple[dict[str, float], dict[str, float]] | None = None

    @property
    def counted(self) -> bool:
        return self.outcome != "unparsed"


@dataclass
class JudgeLog:
    judgments: list[Judgment] = field(default_factory=list)
    files: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def battles(self) -> list[Battle]:
        """The votes the judge's board counts: each judgment `weight` times; unparsed ones none."""
        return [
            Battle(j.tstamp, j.models[0], j.models[1], j.outcome, anonymous=True)
            for j in self.judgments
            if j.counted
            for _ in range(j.weight)
        ]

    @property
    def unparsed(self) -> int:
        return sum(not j.counted for j in self.judgments)

    @property
    def contradictions(self) -> int:
        return sum(j.contradiction for j in self.judgments)

    @property
    def judges(self) -> list[str]:
        return sorted({j.judge for j in self.judgments})

    def messages(self) -> list[str]:
        found = []
        if self.unparsed:
            found.append(f"{self.unparsed} judgments whose verdict could not be read, not counted")
        if self.contradictions:
            found.append(
                f"{self.contradictions} judgments whose two orders disagreed, counted as ties"
            )
        found += [f"{count} judgment lines {reason}" for reason, count in self.skipped.items()]
        return found


def judgment_files(root: Path) -> list[Path]:
    """The `*-judge.jsonl` files under `root` (a folder, or one file), in name order."""
    if root.is_file():
        return [root] if root.name.endswith(JUDGE_FILE_SUFFIX) else []
    return sorted(p for p in root.rglob(f"*{JUDGE_FILE_SUFFIX}") if p.is_file())


def parse_record(record: Any) -> Judgment | str:
    """A judgment, or why the record is not one."""
    if not isinstance(record, dict) or record.get("type") != "judgment":
        return "that are not judgments"
    models = record.get("models")
    outcome = record.get("outcome")
    if (
        not isinstance(models, list)
        or len(models) != 2
        or not all(isinstance(m, str) and m for m in models)
        or models[0] == models[1]
        or outcome not in OUTCOMES
    ):
        return "missing fields a judgment needs"
    style = record.get("style")
    pair = None
    if isinstance(style, list) and len(style) == 2 and all(isinstance(s, dict) for s in style):
        pair = (_numbers(style[0]), _numbers(style[1]))
    weight = record.get("weight", 1)
    return Judgment(
        tstamp=float(record.get("tstamp") or 0.0),
        judge=str(record.get("judge") or "judge"),
        battle=str(record.get("battle") or ""),
        models=(models[0], models[1]),
        outcome=outcome,
        contradiction=bool(record.get("contradiction")),
        weight=weight if isinstance(weight, int) and 1 <= weight <= 3 else 1,
        style=pair,
    )


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(values.get(k) or 0) for k in STYLE_KEYS}


def read_judgments(paths: Iterable[Path], known: Sequence[str] | None = None) -> JudgeLog:
    log = JudgeLog()
    names = set(known) if known is not None else None
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            log.skipped["that could not be read"] += 1
            continue
        log.files += 1
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                parsed = parse_record(json.loads(line))
            except ValueError:
                log.skipped["that are not JSON (truncated or corrupt)"] += 1
                continue
            if isinstance(parsed, str):
                log.skipped[parsed] += 1
            elif names is not None and not set(parsed.models) <= names:
                log.skipped["naming a model the manifest does not have"] += 1
            else:
                log.judgments.append(parsed)
    return log


def judged_battles(paths: Iterable[Path], judge: str) -> set[str]:
    """The battle keys `judge` has already judged (for a run that resumes)."""
    return {j.battle for j in read_judgments(paths).judgments if j.judge == judge}
