"""The leaderboard service: watch one experiment's vote logs, keep its table and picture current.

    python -m arenastack.leaderboard_service [--arena /etc/arenastack/arena.json] [--once]

Runs in its own container (the FastChat image, without FastChat): every `refresh_seconds` it
compares the size and mtime of the experiment's `*-conv.json` files (and a judge's
`*-judge.jsonl`) with what it last read, and
when they changed it reads them again, rates the models and replaces `leaderboard.json` and
`leaderboard.png` in `<logs>/leaderboard/` atomically. The web UI only reads those two files, so
neither a slow computation nor a crash here can delay a chat or lose a vote: the UI appends votes
to the logs itself, and this service never writes to them.

Votes at the top of the volume (written before experiments had folders) belong to no experiment;
the result reports how many there are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from arenastack.arena.judgments import judgment_files
from arenastack.arena.leaderboard import compute, write_result
from arenastack.arena.ratings import Settings
from arenastack.arena.votelog import conv_files, count_votes, legacy_files, snapshot

DEFAULT_ARENA = Path("/etc/arenastack/arena.json")


def settings_of(arena: dict[str, Any]) -> Settings:
    board = arena.get("leaderboard", {})
    return Settings(
        bothbad=board.get("bothbad", "tie"),
        include_named=bool(board.get("include_named", False)),
        bootstrap_rounds=int(board.get("bootstrap_rounds", 100)),
    )


def identity_words(arena: dict[str, Any]) -> list[str]:
    words = []
    for model in arena.get("models", []):
        words.append(str(model["name"]))
        words.append(str(model["source"]).rstrip("/").rsplit("/", 1)[-1])
    return words


def update(arena: dict[str, Any]) -> dict[str, Any]:
    """Compute and write the leaderboard once; returns the document written."""
    logs = Path(arena["logs"])
    board_settings = arena.get("leaderboard", {})
    boards = compute(
        logs,
        settings_of(arena),
        known_models=[str(m["name"]) for m in arena.get("models", [])],
        identity_filter=bool(board_settings.get("identity_filter", False)),
        identity_words=identity_words(arena),
    )
    legacy = count_votes(legacy_files(Path(arena.get("volume", logs.parent))))
    if legacy:
        boards.human.notes.append(
            f"{legacy} older votes at the top of the logs volume predate experiments and are "
            "not counted here (`render.py leaderboard --logs` reads a copy of them)"
        )
    extra = {"experiment": arena["experiment"], "legacy_votes": legacy, "updated": time.time()}
    write_result(Path(arena["result"]), boards, arena.get("title", ""), **extra)
    return {**boards.human.as_dict(), **extra}


def watch(arena: dict[str, Any], once: bool = False) -> None:
    logs = Path(arena["logs"])
    volume = Path(arena.get("volume", logs.parent))
    interval = float(arena.get("leaderboard", {}).get("refresh_seconds", 10))
    seen: object = None
    while True:
        state = snapshot([*conv_files(logs), *judgment_files(logs), *legacy_files(volume)])
        if state != seen:
            try:
                written = update(arena)
                seen = state
                print(
                    f"leaderboard: {written['counted_votes']} votes counted, "
                    f"{len(written['rows'])} models",
                    flush=True,
                )
            except Exception:  # a bad day for the statistics must not stop the service
                traceback.print_exc()
        if once:
            return
        time.sleep(interval / 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arenastack.arena.leaderboard_service")
    parser.add_argument("--arena", type=Path, default=DEFAULT_ARENA)
    parser.add_argument("--once", action="store_true", help="update once and exit")
    args = parser.parse_args(argv)
    arena = json.loads(args.arena.read_text(encoding="utf-8"))
    watch(arena, once=args.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
