"""The arena's vote buttons as the browser sees them, for the tests that vote in Chromium."""

from __future__ import annotations

from typing import Any

# Records each change of "the visible A-is-better button can be clicked", from the moment it is
# installed: gradio toggles `disabled` and visibility on the same element it keeps.
WATCH = """() => {
    const clickable = () => {
        const button = [...document.querySelectorAll("button")].find(
            (b) => b.textContent.includes("A is better") && b.offsetParent !== null);
        return Boolean(button && !button.disabled);
    };
    window.arenastackVoteButton = [clickable()];
    new MutationObserver(() => {
        const now = clickable();
        if (now !== window.arenastackVoteButton.at(-1)) window.arenastackVoteButton.push(now);
    }).observe(document.body, {
        subtree: true, childList: true, attributes: true,
        attributeFilter: ["disabled", "class", "style"],
    });
}"""

# Disabled while both models answer, enabled once when both are done, disabled by the vote. A
# click lands only on an enabled button: had it been disabled again before the click (FastChat's
# "flash"), the browser could have dropped the vote.
ONE_VOTE = [False, True, False]


def watch(page: Any) -> None:
    page.evaluate(WATCH)


def history(page: Any) -> list[bool]:
    states: list[bool] = page.evaluate("window.arenastackVoteButton")
    return states
