"""`render.py judge` against the running stack: contestants answer through the gateway, the
judgments land in the experiment's vote folder beside the human votes, and the CLI and the
Leaderboard tab show the human, judge and combined boards.

A scripted judge (an OpenAI-compatible server in this process that answers with chosen verdicts)
checks the whole path with exact counts; a tiny model of the stack judges for real, and the
report must say that its verdicts mostly cannot be read; a run killed halfway and started again
judges nothing twice.
"""

from __future__ import annotations

import csv
import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from arenastack.arena.judgments import read_judgments
from arenastack.core.services import WEBUI_PORT
from arenastack.judge import run
from arenastack.judge.prompts import DEFAULT_PROMPTS, load
from tests.conftest import REPO
from tests.live.arena_api import DISPLAY, api_battle, cli_rows, connect, repo_python, tab_rows
from tests.live.conftest import SCREENSHOTS, Stack, artifact

pytestmark = pytest.mark.live

FOLDER = "/logs/live"  # the experiment's folder on the logs volume (tests/live/manifest.yaml)
SHOWS_WITHIN_S = 60  # the tab reloads every 10 s
HUMAN_VOTES = 4
# Until this many battles are done, the killed run is let through; then its judge holds.
KILL_AFTER_BATTLES = 4

# What the scripted judge says for the prompt at index i % 5 of the default prompts: its text
# with the battle's first model shown as A, then with it shown as B; and what that must count as
# (the battle's first model's result, and how many votes it weighs).
SCRIPT = [
    ("A is right. [[A>B]]", "B is right. [[B>A]]", "model_a", 1),
    ("B is far better. [[B>>A]]", "A is far better. [[A>>B]]", "model_b", 3),
    ("Equal. [[A=B]]", "Equal. [[A=B]]", "tie", 1),
    ("A first. [[A>B]]", "A again. [[A>B]]", "tie", 1),  # contradiction: a tie
    ("I cannot tell which is better.", "[[A>B]]", "unparsed", 0),
]


# --- the scripted judge ---------------------------------------------------------------------

JUDGED = re.compile(
    r"<\|User Prompt\|>\n(.*?)\n\n<\|The Start of Assistant A's Answer\|>\n(.*?)\n"
    r"<\|The End of Assistant A's Answer\|>\n\n<\|The Start of Assistant B's Answer\|>\n(.*?)\n"
    r"<\|The End of Assistant B's Answer\|>",
    re.DOTALL,
)


@dataclass
class Judge:
    """What the scripted judge says, per judge model name, and what it has seen."""

    script: dict[str, tuple[str, str]] = field(default_factory=dict)  # prompt → both texts
    # A first-order call waits for its swapped one: the prompt and the answers it showed.
    pending: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    completed: Counter[str] = field(default_factory=Counter)  # battles judged, per model name
    hold_after: dict[str, int] = field(default_factory=dict)  # model name → battles let through
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, model: str, user: str) -> str:
        found = JUDGED.search(user)
        assert found, user[:300]
        prompt, shown_a, shown_b = found.groups()
        with self.lock:
            if model in self.hold_after and self.completed[model] >= self.hold_after[model]:
                self.holding.set()
                held = True
            else:
                held = False
                swapped = self.pending.get((model, prompt)) == (shown_b, shown_a)
                if swapped:
                    del self.pending[(model, prompt)]
                    self.completed[model] += 1
                else:
                    self.pending[(model, prompt)] = (shown_a, shown_b)
        if held:
            self.release.wait(timeout=600)
            return "[[A=B]]"
        first, second = self.script.get(prompt, ("[[A=B]]", "[[A=B]]"))
        return second if swapped else first


def serve(judge: Judge) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = judge.answer(body["model"], body["messages"][-1]["content"])
            data = json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 7},
                }
            ).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # a killed run's request: nobody reads the answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def judge(stack: Stack) -> Iterator[tuple[Judge, str]]:
    """The scripted judge and its URL; at the end, the experiment's judgments are removed, so
    that the files after this one find its votes as they left them."""
    scripted = Judge()
    server = serve(scripted)
    try:
        yield scripted, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        scripted.release.set()
        server.shutdown()
        stack.exec("webui", ["sh", "-c", f"rm -f {FOLDER}/*-judge.jsonl"])


# --- running the CLI ------------------------------------------------------------------------


def judge_args(stack: Stack, *args: str) -> list[str]:
    return ["render.py", "judge", str(stack.manifest), "--json", *args]


def judge_report(stack: Stack, *args: str) -> dict[str, Any]:
    result = repo_python(*judge_args(stack, *args), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def judgments_in_stack(stack: Stack, judge_name: str) -> Path:
    """The judge's file, copied out of the web UI container."""
    text = stack.exec("webui", ["sh", "-c", f"cat {FOLDER}/{judge_name}-judge.jsonl || true"])
    copy = artifact(f"judgments/{judge_name}-judge.jsonl")
    copy.write_text(text)
    return copy


def lines_in_stack(stack: Stack, judge_name: str) -> int:
    return len(judgments_in_stack(stack, judge_name).read_text().splitlines())


def expected_board(battles: list[tuple[str, str, str, int]]) -> dict[str, dict[str, int]]:
    """Votes, wins, losses and ties per model of (first model, second, outcome, weight)."""
    board: dict[str, Counter[str]] = {}
    for first, second, outcome, weight in battles:
        for model in (first, second):
            counts = board.setdefault(model, Counter())
            counts["votes"] += weight
            if outcome == "tie":
                counts["ties"] += weight
            else:
                won = (outcome == "model_a") == (model == first)
                counts["wins" if won else "losses"] += weight
    return {model: {k: counts[k] for k in ("votes", "wins", "losses", "ties")}
            for model, counts in board.items()}  # fmt: skip


def counts_of(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {row["model"]: {k: row[k] for k in ("votes", "wins", "losses", "ties")} for row in rows}


# --- the tests ------------------------------------------------------------------------------


def test_a_scripted_judge_s_verdicts_count_exactly_on_every_board(
    stack: Stack,
    judge: tuple[Judge, str],
    browser: Any,
) -> None:
    scripted, url = judge
    prompts = load(DEFAULT_PROMPTS)
    for index, prompt in enumerate(prompts):
        first, second, _, _ = SCRIPT[index % len(SCRIPT)]
        scripted.script[prompt.text] = (first, second)

    # People's votes first, so that the combined board and the agreement have both.
    before = {row["model"]: row["votes"] for row in cli_rows(stack.manifest)}
    clients: queue.Queue[Any] = queue.Queue()
    clients.put(connect(stack.url("webui", WEBUI_PORT)))
    human = Counter(before)
    for index in range(HUMAN_VOTES):
        a, b, _, _ = api_battle(clients, index)
        human.update([a, b])

    report = judge_report(stack, "--judge-url", url, "--judge-model", "scripted",
                          "--max-tokens", "16")  # fmt: skip
    # The battles the CLI fought are the arena's draws over the three models.
    drawn = run.draw(prompts, sorted(DISPLAY), rounds=1, all_pairs=False, seed=0)
    sent = [
        (*battle.models, SCRIPT[index % len(SCRIPT)][2], SCRIPT[index % len(SCRIPT)][3])
        for index, battle in enumerate(drawn)
    ]
    outcomes = Counter(outcome for _, _, outcome, _ in sent)
    stack.report.figures["judge_scripted_retried"] = report["retried_errors"]
    assert (report["failed"], report["already_judged"]) == (0, 0), report
    assert report["battles"] == report["judged"] == 20 and report["judgments"] == 40
    assert report["unparsed"] == outcomes["unparsed"] == 4
    assert report["ties_from_contradiction"] == 4
    assert report["outcomes"] == dict(outcomes)
    assert report["tokens"]["completion_tokens"] >= 40 * 7
    assert report["judgments_file"] == f"webui:{FOLDER}/scripted-judge.jsonl"

    # The file holds one judgment per battle, with the verdicts the judge gave.
    written = read_judgments([judgments_in_stack(stack, "scripted")])
    assert not written.skipped
    by_battle = {j.battle: j for j in written.judgments}
    assert set(by_battle) == {b.key for b in drawn}
    for battle, (_, _, outcome, weight) in zip(drawn, sent, strict=True):
        assert (by_battle[battle.key].outcome, by_battle[battle.key].models) == (
            outcome,
            battle.models,
        )
        assert by_battle[battle.key].weight == max(weight, 1)

    # The CLI's three boards: each one's counts are what was sent.
    judge_board = expected_board([s for s in sent if s[2] != "unparsed"])
    human_rows = cli_rows(stack.manifest)
    judge_rows = cli_rows(stack.manifest, "judge")
    combined_rows = cli_rows(stack.manifest, "combined")
    assert {row["model"]: row["votes"] for row in human_rows} == dict(human)
    assert counts_of(judge_rows) == judge_board
    combined = {m: human[m] + judge_board.get(m, {"votes": 0})["votes"] for m in DISPLAY}
    assert {row["model"]: row["votes"] for row in combined_rows} == combined
    for row in judge_rows:
        assert row["ci_low"] <= row["rating"] <= row["ci_high"]
        assert row["ci_low"] < row["ci_high"], "a board with intervals"

    # The tab shows the three boards (it reloads on its own: wait on its content).
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    page.set_default_timeout(180_000)
    page.goto(stack.url("webui", WEBUI_PORT) + "/?leaderboard")
    page.get_by_role("tab", name="Leaderboard").and_(page.locator(":enabled")).wait_for()
    page.get_by_role("tab", name="Leaderboard").click()
    wanted = {
        "leaderboard": dict(human),
        "judge": {m: c["votes"] for m, c in judge_board.items()},
        "combined": combined,
    }
    deadline = time.monotonic() + SHOWS_WITHIN_S
    shown: dict[str, dict[str, int]] = {}
    while time.monotonic() < deadline:
        shown = {
            table: {row[1]: int(row[5]) for row in tab_rows(page, table) if len(row) >= 7}
            for table in wanted
        }
        if shown == wanted:
            break
        page.wait_for_timeout(1000)
    status = page.locator("#arenastack_judge_status").inner_text()
    # The agreement is a paragraph of its own, not read as the last of the judge's notes.
    agreement = page.locator("#arenastack_judge_status p", has_text="People and the judge agree")
    agreement_shown = agreement.count()
    page.screenshot(path=SCREENSHOTS / "leaderboard-judge.png", full_page=True)
    page.close()
    assert shown == wanted
    assert "Judge scripted" in status and "agree on" in status, status
    assert agreement_shown == 1, status
    stack.report.figures["judge_scripted_battles_s"] = report["time_s"]


def test_a_tiny_model_of_the_stack_judges_and_the_report_says_it_cannot_be_read(
    stack: Stack,
) -> None:
    """Tiny random models never end with a verdict label: their judgments are recorded as
    unparsed, counted in the report, and never guessed into votes."""
    report = judge_report(
        stack, "--judge", "tiny-q", "--max-tokens", "16", "--judge-max-tokens", "24"
    )
    assert report["judged"] + report["failed"] == report["battles"] == 20
    assert report["judged"] >= 1, report["errors"]
    assert report["unparsed"] > report["judged"] / 2, report
    assert any(note.startswith("most verdicts could not be read") for note in report["notes"])
    assert report["self_preference"] and "Tiny Qwen" in report["self_preference"]
    written = read_judgments([judgments_in_stack(stack, "tiny-q")]).judgments
    assert len(written) == report["judged"]
    # The judge's own model does not battle.
    assert {model for j in written for model in j.models} == {"Tiny A", "Tiny B"}
    stack.report.figures["judge_tiny_unparsed_of_judged"] = [report["unparsed"], report["judged"]]
    stack.report.figures["judge_tiny_battles_s"] = report["time_s"]


def test_a_run_killed_halfway_and_started_again_judges_nothing_twice(
    stack: Stack, judge: tuple[Judge, str], tmp_path: Path
) -> None:
    """The user's own prompts (CSV); the run is killed (SIGKILL) while its judge holds the
    battles after the first few, and the run started again judges only the others."""
    scripted, url = judge
    prompts = tmp_path / "prompts.csv"
    with prompts.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["prompt", "category"])
        writer.writerows([f"Name {n} colours, one per line.", "writing"] for n in range(2, 12))
    scripted.hold_after["resumed"] = KILL_AFTER_BATTLES
    args = ["--prompts", str(prompts), "--judge-url", url, "--judge-model", "resumed",
            "--max-tokens", "8", "--concurrency", "2"]  # fmt: skip
    killed = subprocess.Popen(
        [sys.executable, *judge_args(stack, *args)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert scripted.holding.wait(timeout=600), "the run never reached its judge's hold"
        # Every battle the judge finished is written before the kill: wait for the file.
        deadline = time.monotonic() + 120
        while lines_in_stack(stack, "resumed") < KILL_AFTER_BATTLES:
            assert time.monotonic() < deadline, "the judged battles were never written"
            time.sleep(0.5)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=60)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
        del scripted.hold_after["resumed"]
        scripted.release.set()
    written_before = lines_in_stack(stack, "resumed")
    assert written_before == KILL_AFTER_BATTLES

    again = judge_report(stack, *args)
    assert (again["already_judged"], again["judged"]) == (written_before, 10 - written_before)
    log = read_judgments([judgments_in_stack(stack, "resumed")])
    assert not log.skipped
    keys = [j.battle for j in log.judgments]
    assert len(keys) == len(set(keys)) == 10
    assert judge_report(stack, *args)["judged"] == 0
