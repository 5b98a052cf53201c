"""Ratings on cases small enough to check by hand, and the vote reader on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from arenastack.arena import leaderboard as lb
from arenastack.arena.ratings import (
    ANCHOR,
    SCALE,
    PairCounts,
    Settings,
    bootstrap,
    bradley_terry,
    leaderboard,
    online_elo,
)
from arenastack.arena.votelog import Battle, read_votes


def battle(a: str, b: str, winner: str, t: float = 0.0, anonymous: bool = True) -> Battle:
    return Battle(t, a, b, winner, anonymous)


def test_one_model_always_wins() -> None:
    """Two models, A wins all n: with FastChat's ridge (½β² per model, each battle counted twice)
    β_A = −β_B = u solves u = 2n·ln10·σ(−2u·ln10); without it the rating would be infinite."""
    n = 10
    board = leaderboard([battle("A", "B", "model_a", t) for t in range(n)])
    a, b = board.rows
    assert (a.model, b.model) == ("A", "B")
    u = (a.rating - ANCHOR) / SCALE
    k = math.log(10)
    assert u == pytest.approx(2 * n * k / (1 + math.exp(2 * u * k)), abs=1e-4)
    assert a.rating + b.rating == pytest.approx(2 * ANCHOR, abs=0.01)
    assert (a.wins, a.losses, a.ties, a.votes, a.win_rate) == (n, 0, 0, n, 1.0)
    assert (b.wins, b.losses, b.win_rate) == (0, n, 0.0)
    # Every resample is the same n wins: the interval is the point.
    assert a.ci_low == a.ci_high == a.rating
    # Elo by hand: each vote moves A up by K·(1 − expected); the first by 4 · 0.5 = 2.
    elo = ANCHOR
    for _ in range(n):
        elo += 4 * (1 - 1 / (1 + 10 ** ((2 * ANCHOR - elo - elo) / SCALE)))
    assert a.elo == pytest.approx(elo, abs=0.01)
    assert board.win_fraction[0, 1] == 1.0 and board.win_fraction[1, 0] == 0.0
    assert board.battle_count[0, 1] == board.battle_count[1, 0] == n


def test_three_model_cycle_is_even() -> None:
    cycle = [battle("A", "B", "model_a"), battle("B", "C", "model_a"), battle("C", "A", "model_a")]
    board = leaderboard(cycle * 4)
    for row in board.rows:
        assert row.rating == pytest.approx(ANCHOR, abs=1e-6)
        assert (row.wins, row.losses, row.votes) == (4, 4, 8)
        assert row.ci_low < ANCHOR < row.ci_high


def test_all_ties_are_even() -> None:
    ties = [battle("A", "B", "tie"), battle("B", "C", "bothbad"), battle("A", "C", "tie")]
    board = leaderboard(ties * 3)
    for row in board.rows:
        assert row.rating == row.ci_low == row.ci_high == row.elo == ANCHOR
        assert (row.ties, row.wins, row.win_rate) == (6, 0, 0.0)
    assert np.isnan(board.win_fraction).all()


def test_a_tie_is_half_a_win_each_way() -> None:
    """One win and two ties for A equal two wins for A and one for B (both: 2 successes, 1
    failure counted twice over), so the two tables rate alike."""
    with_ties = PairCounts.from_battles(
        [battle("A", "B", "model_a"), battle("A", "B", "tie"), battle("B", "A", "tie")]
    )
    wins_only = PairCounts.from_battles(
        [battle("A", "B", "model_a"), battle("A", "B", "model_a"), battle("B", "A", "model_a")]
    )
    # 2·W + T: with ties A has 2 + 2 = 4 successes, 0 + 2 = 2 failures; with wins 4 and 2.
    assert bradley_terry(with_ties) == pytest.approx(bradley_terry(wins_only), abs=1e-6)


def test_without_ridge_it_is_the_plain_maximum_likelihood() -> None:
    """A beat B 3 times of 4: plain MLE gives 10^(d/400) = 3, i.e. d = 400·log10(3)."""
    counts = PairCounts.from_battles(
        [battle("A", "B", "model_a")] * 3 + [battle("A", "B", "model_b")]
    )
    a, b = bradley_terry(counts, ridge=0.0)
    assert a - b == pytest.approx(SCALE * math.log10(3), abs=1e-6)
    assert (a + b) / 2 == pytest.approx(ANCHOR)


def test_bootstrap_is_deterministic_and_seeded() -> None:
    rng = np.random.default_rng(7)
    names = ["A", "B", "C", "D"]
    battles = [
        battle(str(a), str(b), str(rng.choice(["model_a", "model_b", "tie"])))
        for a, b in (rng.choice(names, 2, replace=False) for _ in range(300))
    ]
    counts = PairCounts.from_battles(battles)
    first = bootstrap(counts, 50, seed=1)
    assert first.shape == (50, 4)
    assert np.array_equal(first, bootstrap(counts, 50, seed=1))
    assert not np.array_equal(first, bootstrap(counts, 50, seed=2))
    assert leaderboard(battles).rows == leaderboard(battles).rows


def test_named_votes_and_both_bad_follow_the_settings() -> None:
    battles = [
        battle("A", "B", "model_a"),
        battle("A", "B", "bothbad"),
        battle("A", "B", "model_b", anonymous=False),
    ]
    default = leaderboard(battles)
    assert (default.counted_votes, default.anonymous_votes, default.named_votes) == (2, 2, 1)
    assert any("side-by-side" in note for note in default.notes)
    assert leaderboard(battles, Settings(include_named=True)).counted_votes == 3
    excluded = leaderboard(battles, Settings(bothbad="exclude"))
    assert excluded.counted_votes == 1
    assert {row.votes for row in excluded.rows} == {1}


def test_online_elo_follows_the_order() -> None:
    first = [battle("A", "B", "model_a"), battle("A", "B", "model_b")]
    forward = online_elo(first, ["A", "B"])
    backward = online_elo(first[::-1], ["A", "B"])
    assert forward[0] < ANCHOR < backward[0]  # the last result weighs more
    assert forward.sum() == pytest.approx(2 * ANCHOR)


def test_no_votes_is_an_empty_table() -> None:
    board = leaderboard([])
    assert board.rows == [] and board.counted_votes == 0
    assert "no votes to count yet" in board.notes
    assert json.loads(lb.rows_json(board)) == []
    assert lb.figure_png(board).startswith(b"\x89PNG")


# --- the vote reader ------------------------------------------------------------------------------


def vote(kind: str, a: str, b: str, shown: tuple[str, str] = ("", ""), t: float = 1.0) -> str:
    states = [
        {
            "model_name": name,
            "conv_id": "x",
            "offset": 0,
            "messages": [["USER", "hi"], ["ASSISTANT", "hello"]],
        }
        for name in (a, b)
    ]
    return json.dumps(
        {"tstamp": t, "type": kind, "models": list(shown), "states": states, "ip": "1"}
    )


def test_reader_skips_bad_lines_and_counts_them(tmp_path: Path) -> None:
    folder = tmp_path / "exp" / "nested"
    folder.mkdir(parents=True)
    good = [vote("leftvote", "A", "B", t=2), vote("rightvote", "B", "C", t=1)]
    lines = [
        *good,
        vote("tievote", "A", "B")[:40],  # truncated by a crash mid-write
        "{not json",
        json.dumps({"type": "chat", "model": "A"}),  # not a vote
        json.dumps({"type": "leftvote", "models": ["", ""]}),  # no states
        vote("leftvote", "A", "B", shown=("", "B")),  # one side named
        vote("bothbad_vote", "A", "B", shown=("A", "B")),  # named, counted apart
        vote("leftvote", "A", "Z"),  # a model the manifest lacks
        "",
    ]
    (folder / "2026-11-25-conv.json").write_text("\n".join(lines) + "\n")
    (tmp_path / "exp" / "other.json").write_text(vote("leftvote", "A", "B"))  # not a conv log
    log = read_votes(sorted((tmp_path / "exp").rglob("*-conv.json")), known_models=["A", "B", "C"])
    assert [(b.model_a, b.winner) for b in log.battles] == [
        ("B", "model_b"), ("A", "bothbad"), ("A", "model_a"),
    ]  # fmt: skip
    assert log.named == 1
    assert log.skipped == {"corrupt": 2, "malformed": 1, "half_anonymous": 1, "unknown_model": 1}
    assert dict(log.unknown_models) == {"Z": 1}
    board = lb.compute(tmp_path).human
    assert board.counted_votes == 3  # no manifest: Z is just another model
    assert any("not JSON" in note for note in board.notes)


def test_identity_filter_is_off_unless_asked(tmp_path: Path) -> None:
    text = vote("leftvote", "A", "B").replace("hello", "I am Llama, made by Meta")
    path = tmp_path / "2026-01-01-conv.json"
    path.write_text(text + "\n")
    assert len(read_votes([path]).battles) == 1
    filtered = read_votes([path], identity_filter=True)
    assert filtered.battles == [] and filtered.skipped == {"identity": 1}
    named = read_votes([path], identity_filter=True, identity_words=["tiny a"])
    assert named.skipped == {"identity": 1}


def test_missing_folder_gives_a_note_not_a_crash(tmp_path: Path) -> None:
    board = lb.compute(tmp_path / "nothing-here").human
    assert board.rows == []
    assert "no conversation logs" in board.notes[0]


def test_outputs(tmp_path: Path) -> None:
    battles = [battle("A", "B", "model_a"), battle("B", "C", "tie"), battle("C", "A", "model_b")]
    board = leaderboard(battles)
    rows = json.loads(lb.rows_json(board))
    assert {"model", "rating", "ci_low", "ci_high", "elo", "votes", "win_rate"} <= set(rows[0])
    assert lb.rows_csv(board).splitlines()[0].startswith("rank,model,rating,ci_low,ci_high")
    lb.write_result(tmp_path, lb.Boards(board), title="t", experiment="x")
    document = json.loads((tmp_path / lb.RESULT_JSON).read_text())
    assert document["experiment"] == "x" and document["rows"][0]["model"] == "A"
    assert (tmp_path / lb.RESULT_PNG).read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
