"""The leaderboard as people read it: rich text, JSON, CSV, a picture, and the files the
leaderboard service leaves on the logs volume for the web UI.

Three boards where an LLM judge has voted too (`render.py judge`): people's votes alone (the
board of every earlier release, at the top level of the result), the judge's alone, and both
together; with the agreement of the first two, and the judge's ratings with style held constant.

Standard library and numpy at import time (matplotlib and rich only when asked for), so the
FastChat image can run it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arenastack.arena.comparison import agreement, style_controlled
from arenastack.arena.judgments import JudgeLog, judgment_files, read_judgments
from arenastack.arena.ratings import Leaderboard, Settings, leaderboard, select
from arenastack.arena.votelog import conv_files, read_votes
from arenastack.core.files import write_atomically

# Where the service writes, inside an experiment's log folder.
RESULT_FOLDER = "leaderboard"
RESULT_JSON = "leaderboard.json"
RESULT_PNG = "leaderboard.png"
JSON_FIELDS = ("rank", "model", "rating", "ci_low", "ci_high", "elo", "votes", "wins", "losses",
               "ties", "win_rate")  # fmt: skip


BOARDS = ("human", "judge", "combined")


@dataclass
class Boards:
    """People's board, and where a judge has voted, its own and the two together."""

    human: Leaderboard
    judge: Leaderboard | None = None
    combined: Leaderboard | None = None
    judges: list[str] = field(default_factory=list)
    agreement: dict[str, Any] | None = None
    style: dict[str, Any] | None = None

    def board(self, name: str) -> Leaderboard | None:
        return {"human": self.human, "judge": self.judge, "combined": self.combined}[name]


def compute(
    logs: Path,
    settings: Settings | None = None,
    known_models: Sequence[str] | None = None,
    identity_filter: bool = False,
    identity_words: Sequence[str] = (),
) -> Boards:
    """Read every `*-conv.json` (people's votes) and `*-judge.jsonl` (a judge's) under `logs`,
    recursively, and rate the models."""
    settings = settings or Settings()
    log = read_votes(conv_files(logs), known_models, identity_filter, identity_words)
    human = leaderboard(log, settings)
    if not log.files:
        human.notes.insert(0, f"no conversation logs (*-conv.json) under {logs}")
    judged = read_judgments(judgment_files(logs), known_models)
    if not judged.judgments:
        return Boards(human)
    return judge_boards(human, log.battles, judged, settings)


def judge_boards(
    human: Leaderboard, votes: Sequence[Any], judged: JudgeLog, settings: Settings
) -> Boards:
    judge = leaderboard(judged.battles, settings)
    judge.notes = [n for n in judge.notes if n != "no votes to count yet"] + judged.messages()
    combined = leaderboard([*select(votes, settings), *judged.battles], settings)
    shared = agreement(human, judge) if human.rows and judge.rows else None
    return Boards(
        human,
        judge,
        combined,
        judges=judged.judges,
        agreement=shared,
        style=style_controlled(judged.judgments, settings),
    )


def rows_json(board: Leaderboard) -> str:
    return json.dumps([{k: row.__dict__[k] for k in JSON_FIELDS} for row in board.rows], indent=2)


def rows_csv(board: Leaderboard) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=JSON_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in board.rows:
        writer.writerow({k: row.__dict__[k] for k in JSON_FIELDS})
    return out.getvalue()


def plus_minus(rating: float, low: float, high: float) -> str:
    return f"+{high - rating:.0f}/-{rating - low:.0f}"


def summary(board: Leaderboard) -> str:
    counted = "anonymous and side-by-side" if board.settings.include_named else "anonymous"
    text = (
        f"{board.counted_votes} {counted} votes counted "
        f"({board.anonymous_votes} anonymous, {board.named_votes} side-by-side"
        f"{', ' + str(board.bothbad_votes) + ' both-bad' if board.bothbad_votes else ''}); "
        f"95% intervals from {board.settings.bootstrap_rounds} bootstrap rounds"
    )
    return text


def print_table(board: Leaderboard, title: str = "Leaderboard") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=summary(board))
    for name in ("rank", "model", "rating", "95% CI", "Elo", "votes", "W/L/T", "win rate"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in board.rows:
        table.add_row(
            str(row.rank),
            row.model,
            f"{row.rating:.0f}",
            plus_minus(row.rating, row.ci_low, row.ci_high),
            f"{row.elo:.0f}",
            str(row.votes),
            f"{row.wins}/{row.losses}/{row.ties}",
            f"{row.win_rate:.0%}",
        )
    console = Console()
    console.print(table)
    for note in board.notes:
        console.print(f"note: {note}", style="yellow")


def figure_png(board: Leaderboard, title: str = "") -> bytes:
    """Ratings with their intervals beside the win-fraction matrix, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(len(board.models), 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(6 + 0.9 * size, 3 + 0.45 * size), dpi=100)
    if board.rows:
        names = [row.model for row in board.rows]
        ratings = [row.rating for row in board.rows]
        below = [row.rating - row.ci_low for row in board.rows]
        above = [row.ci_high - row.rating for row in board.rows]
        positions = list(range(len(names)))
        left.errorbar(positions, ratings, yerr=[below, above], fmt="o", capsize=4)
        for x, y in zip(positions, ratings, strict=True):
            left.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(6, 0))
        left.set_xticks(positions, names, rotation=30, ha="right")
        left.axhline(1000, color="grey", linewidth=0.5)
        matrix = board.win_fraction
        image = right.imshow(matrix, cmap="RdBu", vmin=0, vmax=1)
        right.set_xticks(positions, names, rotation=30, ha="right")
        right.set_yticks(positions, names)
        for i in positions:
            for j in positions:
                value = matrix[i, j]
                if not math.isnan(value):
                    color = "white" if abs(value - 0.5) > 0.3 else "black"
                    right.text(j, i, f"{value:.2f}", ha="center", va="center", color=color)
        fig.colorbar(image, ax=right, fraction=0.046)
    else:
        left.text(0.5, 0.5, "no votes yet", ha="center", va="center")
        right.set_axis_off()
    left.set_title("Rating (95% CI)")
    left.set_ylabel("Bradley–Terry rating")
    right.set_title("Row beats column (share of decisive votes)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def result_document(boards: Boards, **extra: Any) -> dict[str, Any]:
    """People's board at the top level, as before; the judge's and the combined one beside."""
    document = {**boards.human.as_dict(), "summary": summary(boards.human), **extra}
    for name in ("judge", "combined"):
        board = boards.board(name)
        if board is not None:
            document[name] = {**board.as_dict(), "summary": summary(board)}
    if boards.judges:
        document["judges"] = boards.judges
        document["agreement"] = boards.agreement
        document["judge_style_controlled"] = boards.style
    return document


def write_result(folder: Path, boards: Boards, title: str = "", **extra: Any) -> None:
    """The picture first, then the JSON naming it: a reader of the JSON finds a current picture."""
    write_atomically(folder / RESULT_PNG, figure_png(boards.human, title))
    document = result_document(boards, **extra)
    write_atomically(folder / RESULT_JSON, json.dumps(document, indent=1).encode())


def agreement_line(boards: Boards) -> str | None:
    shared = boards.agreement
    if shared is None:
        return None
    share = shared["share_agreeing"]
    correlation = shared["rank_correlation"]
    return (
        f"people and the judge agree on {shared['pairs_agreeing']} of "
        f"{shared['pairs_compared']} pairs of models"
        + ("" if share is None else f" ({share:.0%})")
        + ("" if correlation is None else f"; rank correlation {correlation:+.2f}")
    )
