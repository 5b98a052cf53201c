"""People's board, the judge's and both together, read from one experiment's folder: the judge's
votes never enter people's counts; agreement and style control."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arenastack.arena import leaderboard as lb
from arenastack.arena.comparison import agreement, style_controlled
from arenastack.arena.judgments import parse_record, read_judgments
from arenastack.arena.ratings import Settings, leaderboard
from arenastack.arena.votelog import Battle


def vote(kind: str, left: str, right: str) -> str:
    states = [
        {
            "model_name": name,
            "conv_id": f"{name}-{kind}",
            "messages": [["user", "hi"], ["assistant", "ok"]],
        }
        for name in (left, right)
    ]
    return json.dumps({"tstamp": 1.0, "type": kind, "models": ["", ""], "states": states}) + "\n"


def judgment(first: str, second: str, outcome: str, **more: Any) -> str:
    record = {"tstamp": 2.0, "type": "judgment", "judge": "j", "battle": first + second + outcome,
              "models": [first, second], "outcome": outcome, "weight": 1, **more}  # fmt: skip
    return json.dumps(record) + "\n"


def test_three_boards_count_what_was_sent_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "2026-12-02-conv.json").write_text(
        vote("leftvote", "A", "B") * 3 + vote("rightvote", "B", "C") * 2 + vote("tievote", "A", "C")
    )
    (folder / "j-judge.jsonl").write_text(
        judgment("A", "B", "model_a") * 4
        + judgment("C", "B", "model_b", weight=3)
        + judgment("A", "C", "tie", contradiction=True)
        + judgment("A", "C", "unparsed")
        + "{truncated"
    )
    boards = lb.compute(folder)
    assert boards.human.counted_votes == 6, "the judge's votes never enter people's"
    assert boards.judge is not None and boards.combined is not None
    # 4 + 3 (weighted) + 1; the unparsed one counts none.
    assert boards.judge.counted_votes == 8
    assert boards.combined.counted_votes == 6 + 8
    votes = {row.model: row.votes for row in boards.judge.rows}
    assert votes == {"A": 4 + 1, "B": 4 + 3, "C": 3 + 1}
    assert boards.judges == ["j"]
    notes = " ".join(boards.judge.notes)
    assert "1 judgments whose verdict could not be read" in notes
    assert "1 judgments whose two orders disagreed" in notes and "not JSON" in notes
    document = lb.result_document(boards, experiment="exp")
    assert document["rows"] == [row.__dict__ for row in boards.human.rows]
    assert document["judge"]["counted_votes"] == 8 and document["combined"]["counted_votes"] == 14
    assert document["agreement"]["pairs_compared"] >= 1


def test_no_judgment_no_judge_board(tmp_path: Path) -> None:
    (tmp_path / "x-conv.json").write_text(vote("leftvote", "A", "B"))
    boards = lb.compute(tmp_path)
    assert boards.judge is None and boards.combined is None
    assert "judge" not in lb.result_document(boards)


def test_agreement_is_the_share_of_pairs_and_the_rank_correlation() -> None:
    people = [Battle(1.0, "A", "B", "model_a", True)] * 5 + [
        Battle(1.0, "B", "C", "model_a", True)
    ] * 5
    same = leaderboard(people)
    shared = agreement(same, same)
    assert (shared["pairs_compared"], shared["pairs_agreeing"]) == (2, 2)
    assert shared["share_agreeing"] == 1.0 and shared["rank_correlation"] == 1.0
    reversed_ = leaderboard([Battle(1.0, b.model_b, b.model_a, "model_a", True) for b in people])
    opposite = agreement(same, reversed_)
    assert opposite["pairs_agreeing"] == 0 and opposite["rank_correlation"] == -1.0


def test_style_control_discounts_a_judge_that_likes_long_answers() -> None:
    """The judge always prefers the longer answer, and L writes longer: on the plain board L
    leads; with length as a covariate, the length takes the credit."""
    records = []
    for n in range(60):
        long_first = n % 2 == 0
        models = ["L", "S"] if long_first else ["S", "L"]
        styles = [{"tokens": 400 if m == "L" else 100, "headers": 0, "lists": 0, "bold": 0}
                  for m in models]  # fmt: skip
        records.append(parse_record({
            "type": "judgment", "judge": "j", "battle": str(n), "models": models,
            "outcome": "model_a" if long_first else "model_b", "style": styles,
        }))  # fmt: skip
    # Other battles where length does not decide: S beats M and M beats L at equal lengths.
    for n, (winner, loser) in enumerate([("S", "M"), ("M", "L")] * 10):
        styles = [{"tokens": 200, "headers": 0, "lists": 0, "bold": 0}] * 2
        records.append(parse_record({
            "type": "judgment", "judge": "j", "battle": f"x{n}", "models": [winner, loser],
            "outcome": "model_a", "style": styles,
        }))  # fmt: skip
    judgments = [r for r in records if not isinstance(r, str)]
    settings = Settings(bootstrap_rounds=20)
    plain = {row.model: row.rating for row in leaderboard(
        [Battle(0, j.models[0], j.models[1], j.outcome, True) for j in judgments], settings
    ).rows}  # fmt: skip
    controlled = style_controlled(judgments, settings)
    assert controlled is not None
    styled = {row["model"]: row["rating"] for row in controlled["rows"]}
    assert plain["L"] > plain["S"]
    assert styled["S"] > styled["L"], "with length held constant, S is the better model"
    assert controlled["coefficients"]["length"] > 0
    assert all(row["ci_low"] <= row["rating"] <= row["ci_high"] for row in controlled["rows"])


def test_a_bad_record_is_counted_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "j-judge.jsonl"
    path.write_text(
        judgment("A", "A", "model_a") + '{"type": "chat"}\n' + judgment("A", "Z", "tie")
    )
    log = read_judgments([path], known=["A", "B"])
    assert log.judgments == []
    assert sum(log.skipped.values()) == 3
