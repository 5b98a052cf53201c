"""What the judge is asked, and how its answer becomes a vote.

The judge sees the user's prompt and two answers, A and B, and ends with one of five labels:
`[[A>>B]]` (A much better), `[[A>B]]`, `[[A=B]]`, `[[B>A]]`, `[[B>>A]]` — the labels and the
reading rules of Arena-Hard-Auto (its `gen_judgment.get_score` and `show_result` read in its
source): a verdict is the one label the text gives; none, or two different ones, is no verdict
(here: unparsed, recorded and reported, never guessed), and the same label twice is that label.
Labels are read in double brackets first, then single ones, then bare, so a judge that drops the
brackets still counts; mirrored spellings (`A<B`, `B=A`, `B<<A`) mean what they say.

Each battle is judged twice, the second time with the answers swapped, to cancel the judge's
preference for a position. Where the two orders name different outcomes the battle is a tie
("ties from contradiction" in the report). Where both give the strong verdict for the same
answer the vote weighs 3, as Arena-Hard-Auto weighs strong verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
MIRRORED = {"A<<B": "B>>A", "A<B": "B>A", "B=A": "A=B", "B<A": "A>B", "B<<A": "A>>B"}
STRONG_WEIGHT = 3
_LABEL = r"(A>>B|A>B|A=B|B>A|B>>A|A<<B|A<B|B=A|B<A|B<<A)"
PATTERNS = (
    re.compile(r"\[\[\s*" + _LABEL + r"\s*\]\]"),
    re.compile(r"(?<!\[)\[\s*" + _LABEL + r"\s*\](?!\])"),
    re.compile(r"(?<![\w<>=\[])" + _LABEL + r"(?![\w<>=\]])"),
)

SYSTEM_PROMPT = (
    "You judge two AI assistants' answers to the same user prompt. Read the prompt, then both "
    "answers. Say briefly what each gets right and wrong: correctness first, then whether it "
    "does what was asked, then clarity. Do not prefer an answer for its length or its "
    "formatting, nor for the order in which it is shown. End with exactly one verdict label:\n"
    "[[A>>B]] Assistant A is much better\n[[A>B]] Assistant A is better\n"
    "[[A=B]] they are about the same\n[[B>A]] Assistant B is better\n"
    "[[B>>A]] Assistant B is much better"
)
USER_TEMPLATE = (
    "<|User Prompt|>\n{prompt}\n\n"
    "<|The Start of Assistant A's Answer|>\n{answer_a}\n<|The End of Assistant A's Answer|>\n\n"
    "<|The Start of Assistant B's Answer|>\n{answer_b}\n<|The End of Assistant B's Answer|>"
)


def judge_messages(prompt: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    user = USER_TEMPLATE.format(prompt=prompt, answer_a=answer_a, answer_b=answer_b)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> str | None:
    """The one label the text gives (normalised to LABELS), or None."""
    for pattern in PATTERNS:
        found: set[str] = {MIRRORED.get(label, label) for label in pattern.findall(text)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None  # two verdicts: no verdict, as Arena-Hard-Auto reads it
    return None


@dataclass(frozen=True)
class Vote:
    outcome: str  # model_a (the battle's first model), model_b, tie, unparsed
    contradiction: bool
    weight: int


# A verdict as a score of the answer shown as A: 2 much better ... -2 much worse.
_SCORE = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": -1, "B>>A": -2}


def combine(first: str | None, swapped: str | None) -> Vote:
    """The vote of a battle from its two verdicts: `first` with the battle's first model as A,
    `swapped` with it as B."""
    if first is None or swapped is None:
        return Vote("unparsed", contradiction=False, weight=1)
    a, b = _SCORE[first], -_SCORE[swapped]  # both from the first model's side
    side_a, side_b = (a > 0) - (a < 0), (b > 0) - (b < 0)
    if side_a != side_b:
        return Vote("tie", contradiction=True, weight=1)
    outcome = {1: "model_a", -1: "model_b", 0: "tie"}[side_a]
    strong = abs(a) == 2 and abs(b) == 2
    return Vote(outcome, contradiction=False, weight=STRONG_WEIGHT if strong else 1)
