"""Talking to the running arena as its users do: votes through the web UI's own API
(gradio_client), the leaderboard from the CLI, and the Leaderboard tab's tables."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO

DISPLAY = {"Tiny A", "Tiny B", "Tiny Qwen"}
# A bound on one request to the loaded UI (replies of 16 tokens behind nine other battles).
REPLY_TIMEOUT_S = 300
OUTCOMES = ["leftvote", "rightvote", "tievote", "bothbad_vote"]


def repo_python(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def cli_rows(manifest: Path, board: str = "human") -> list[dict[str, Any]]:
    """As a user asks after `render.py up MANIFEST -o FILE`: by the manifest alone, whose
    project finds the stack (the run's compose file is not the default docker-compose.yml)."""
    command = ["render.py", "leaderboard", str(manifest), "--board", board, "--json"]
    result = repo_python(*command, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def revealed(names: list[str], display: set[str] = DISPLAY) -> tuple[str, str]:
    found = [re.search(r"Model [AB]: (.+)", str(name)) for name in names]
    assert all(found), names
    a, b = (match.group(1).strip() for match in found if match)
    assert {a, b} <= display, (a, b)
    return a, b


def connect(url: str) -> Any:
    """A gradio_client for the UI. Its requests wait for a loaded UI as long as the replies may
    take: gradio_client's httpx calls otherwise give up after httpx's default 5 s, and a vote
    whose POST timed out on the client may still have been counted by the server."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={"timeout": REPLY_TIMEOUT_S})


def api_battle(
    clients: queue.Queue[Any], index: int, display: set[str] = DISPLAY
) -> tuple[str, str, str, int]:
    """One battle and vote through the UI's own API, as a script would (gradio_client).

    The tiny random models answer with arbitrary characters; gradio_client 1.3.0 splits its
    event stream at Unicode line separators inside a reply and then fails to parse it. Such a
    battle casts no vote (the vote is the last call), so it is fought again in a new session;
    the vote itself is never retried, so no vote can be counted twice. Returns the names, the
    outcome and the number of battles fought again."""
    client = clients.get()
    try:
        for retries in range(5):
            client.reset_session()  # a new FastChat conversation, no HTTP request
            try:
                client.predict("", "", f"Question {index}: name a colour.", api_name="/add_text")
                client.predict(0.0, 1.0, 16, api_name="/bot_response_multi")
                break
            except Exception:
                if retries == 4:
                    raise
        outcome = OUTCOMES[index % len(OUTCOMES)]
        result = client.predict("", "", api_name=f"/{outcome}_last_response")
    finally:
        clients.put(client)
    a, b = revealed(list(result[:2]), display)
    return a, b, outcome, retries


def tab_rows(page: Any, table: str = "leaderboard") -> list[list[str]]:
    """The cells of the Leaderboard tab's table: `leaderboard` (people's votes), `judge` or
    `combined`."""
    rows = page.locator(f"#arenastack_{table}_table tbody tr")
    return [
        [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
        for i in range(rows.count())
    ]
