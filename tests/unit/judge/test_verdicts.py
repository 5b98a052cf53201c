"""Verdicts as Arena-Hard-Auto reads them (its gen_judgment.get_score and show_result, read in
its source): the one label a judgment gives; none, or two different ones, is no verdict; the
same label twice is that label. Both orders of a battle make one vote."""

from __future__ import annotations

import pytest

from arenastack.judge.verdicts import LABELS, combine, parse_verdict

REAL_LOOKING = {
    # Every label, bracketed as asked.
    "Both are correct, but A explains the complexity.\n\nMy final verdict is: [[A>B]]": "A>B",
    "Assistant A is wrong about the tides. Assistant B is right.\n\n[[B>>A]]": "B>>A",
    "A ignores the format entirely; B follows it.\n**Final verdict: [[B>A]]**": "B>A",
    "Equally good and equally brief.\n\nFinal verdict: [[A=B]]": "A=B",
    "A is complete, B stops halfway.\nVerdict: [[A>>B]]": "A>>B",
    # Single brackets, bare labels, spaces, mirrored spellings.
    "My verdict: [B>A]": "B>A",
    "The better answer is A. Final verdict: A>B.": "A>B",
    "Verdict: [[ A>B ]]": "A>B",
    "Final verdict: [[B<A]]": "A>B",
    "Final verdict: [[A<<B]]": "B>>A",
    "Tie: [[B=A]]": "A=B",
    # The same label twice is that label.
    "Early on I lean [[A>B]]. After the second read, still [[A>B]].": "A>B",
}
NO_VERDICT = [
    # Refusals and ramblings.
    "I cannot judge this comparison.",
    "Both answers have merits, and it depends on what the user wants.",
    "",
    # Two different verdicts in one text: none, not the first or the last.
    "At first [[A>B]], but on reflection [[B>A]].",
    "Verdict: [[A>B]] or perhaps [[A=B]]",
    # Not a label.
    "[[A>C]]",
    "The model said BA>B",
]


@pytest.mark.parametrize(("text", "label"), list(REAL_LOOKING.items()))
def test_a_verdict_is_the_one_label_the_judge_gives(text: str, label: str) -> None:
    assert parse_verdict(text) == label


@pytest.mark.parametrize("text", NO_VERDICT)
def test_no_label_or_two_different_ones_is_no_verdict(text: str) -> None:
    assert parse_verdict(text) is None


def test_the_five_labels() -> None:
    assert set(LABELS) == {"A>>B", "A>B", "A=B", "B>A", "B>>A"}
    for label in LABELS:
        assert parse_verdict(f"[[{label}]]") == label


def test_the_two_orders_agree_or_make_a_tie() -> None:
    """`first` has the battle's first model as A; `swapped` has it as B."""
    # The first model better in both orders: A>B first, then B>A with the answers swapped.
    assert combine("A>B", "B>A").outcome == "model_a"
    assert combine("B>A", "A>B").outcome == "model_b"
    assert combine("A=B", "A=B").outcome == "tie" and not combine("A=B", "A=B").contradiction
    # The judge preferred whichever answer it saw first: a position bias, not a preference.
    contradiction = combine("A>B", "A>B")
    assert (contradiction.outcome, contradiction.contradiction) == ("tie", True)
    assert combine("A>B", "A=B").contradiction
    # Strong in both orders weighs 3, as Arena-Hard-Auto's weight for >>.
    assert combine("A>>B", "B>>A").weight == 3 and combine("A>>B", "B>A").weight == 1
    assert combine("A>>B", "B>>A").outcome == "model_a"
    # An unreadable order is no vote at all: recorded, reported, never guessed.
    assert combine(None, "B>A").outcome == "unparsed"
    assert combine("A>B", None).outcome == "unparsed"
