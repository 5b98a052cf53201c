"""Experiments and the live leaderboard, against the running stack.

In order: our ratings equal FastChat's own on a synthetic set (FastChat's functions run in the
FastChat image); votes cast in Chromium and, at the same time, 50 through the UI's API reach the
Leaderboard tab without a restart, and the CLI agrees with the tab; the page shows this
experiment and loads nothing from any other origin; the live votes rate as FastChat rates them;
a second experiment rendered into the same folder starts empty, and swapping back finds the votes.
"""

from __future__ import annotations

import hashlib
import json
import queue
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from playwright.sync_api import expect

from arenastack.arena.leaderboard import RESULT_FOLDER, RESULT_JSON
from arenastack.arena.votelog import read_folder
from arenastack.core.services import WEBUI_PORT
from tests.conftest import REPO
from tests.live import vote_buttons
from tests.live.arena_api import (
    OUTCOMES,
    api_battle,
    cli_rows,
    connect,
    repo_python,
    revealed,
    tab_rows,
)
from tests.live.conftest import ARTIFACTS, LIVE, MANIFEST, RUN, SCREENSHOTS, Stack, artifact

pytestmark = pytest.mark.live

EXPERIMENT = "live"
TITLE = "Arena: live"
TOLERANCE = 0.5  # rating points
API_VOTES = 50
API_CONCURRENCY = 10
# The tab reloads every refresh_seconds (10) and the service looks twice as often: a vote must
# show within a minute.
SHOWS_WITHIN_S = 60
BUTTONS = {"leftvote": "👈  A is better", "rightvote": "👉  B is better", "tievote": "🤝  Tie"}

# What the tests of this file learn from each other (they run in order on one stack).
CAST: dict[str, Any] = {}


def fastchat_image() -> str:
    document = yaml.safe_load(RUN.compose_file.read_text())
    image: str = document["services"]["webui"]["image"]
    return image


def reference(*arguments: str) -> dict[str, Any]:
    """FastChat's ratings and ours, computed in the FastChat image (tools/fastchat_reference.py)."""
    result = repo_python(
        "tools/fastchat_reference.py", "--image", fastchat_image(), "compare", *arguments
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def assert_equal_ratings(found: dict[str, Any]) -> float:
    ours, theirs = found["ours"], found["theirs"]
    assert set(ours["bt"]) == set(theirs["bt"])
    worst = 0.0
    for kind in ("bt", "elo"):
        for model, value in theirs[kind].items():
            worst = max(worst, abs(ours[kind][model] - value))
            assert ours[kind][model] == pytest.approx(value, abs=TOLERANCE), (kind, model)
    return worst


def test_ratings_equal_fastchats_own_on_a_synthetic_set(stack: Stack) -> None:
    """4,000 battles of 8 models with ties and both-bad votes: FastChat 0.2.36's
    compute_elo_mle_with_tie and compute_elo against ours, on the same battles."""
    found = reference("--synthetic", "4000", "--models", "8")
    assert len(found["theirs"]["bt"]) == 8
    stack.report.figures["ratings_vs_fastchat_max_difference_synthetic"] = round(
        assert_equal_ratings(found), 4
    )


def test_the_leaderboard_service_runs_the_repository_s_own_code(stack: Stack) -> None:
    """The image holds no copies to go stale: the packages it carries are, file for file, the
    repository's arenastack.arena and arenastack.residency (and the core modules they use)."""
    listing = stack.exec(
        "leaderboard",
        ["python3", "-c", RUNNING_PACKAGE_FILES, "arenastack.arena.leaderboard_service"],
    )
    in_image = json.loads(listing)
    assert in_image["module"] == "/opt/arenastack/arenastack/arena/leaderboard_service.py"
    package = REPO / "arenastack"
    carried = [*(package / "arena").glob("*.py"), *(package / "residency").glob("*.py")]
    carried += [package / "__init__.py", package / "core" / "__init__.py"]
    carried += [package / "core" / "files.py", package / "core" / "problems.py"]
    in_repo = {
        path.relative_to(REPO).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in carried
    }
    assert in_image["files"] == in_repo


# Run in the container: import the module as the service does, then digest every .py file of
# the arenastack package it was imported from, by its path relative to the folder holding it.
RUNNING_PACKAGE_FILES = """
import hashlib, importlib, json, pathlib, sys
module = importlib.import_module(sys.argv[1])
root = pathlib.Path(importlib.import_module("arenastack").__file__).parent.parent
files = {
    p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
    for p in root.glob("arenastack/**/*.py")
}
print(json.dumps({"module": module.__file__, "files": files}))
"""


# --- casting votes --------------------------------------------------------------------------


def ask_for_short_replies(page: Any) -> None:
    """The visible tab's "Max output tokens" at its least, 16, as the API battles ask. At the
    default 1,024 the two replies, queued behind fifty API battles, took more than five minutes
    on a loaded machine: the work is made smaller rather than waited for longer."""
    page.get_by_text("Parameters", exact=True).locator("visible=true").first.click()
    tokens = page.get_by_label("number input for Max output tokens").locator("visible=true")
    tokens.fill("16")
    tokens.press("Enter")
    slider = page.get_by_label("range slider for Max output tokens").locator("visible=true")
    expect(slider).to_have_value("16")


def browser_battle(browser: Any, url: str, outcome: str, requests: list[str]) -> tuple[str, str]:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.on("request", lambda request: requests.append(request.url))
    page.set_default_timeout(180_000)
    page.goto(url)
    page.get_by_role("tab", name="Direct Chat").and_(page.locator(":enabled")).wait_for()
    expect(page.locator(".wrap.default:not(.hide)")).to_have_count(0, timeout=180_000)
    ask_for_short_replies(page)
    vote_buttons.watch(page)
    box = page.get_by_placeholder("👉 Enter your prompt and press ENTER").locator("visible=true")
    box.fill(f"Browser vote: {outcome}")
    box.press("Enter")
    button = page.get_by_role("button", name=BUTTONS[outcome]).locator("visible=true")
    # FastChat enables the vote buttons once both replies are complete (the API votes load the
    # models meanwhile).
    expect(button).to_be_enabled(timeout=300_000)
    button.click()
    shown = page.locator("#model_selector_md").locator("visible=true")
    # The vote waits in gradio's queue behind the API battles: the same bound as the replies.
    shown.first.get_by_text("Model A:").wait_for(timeout=300_000)
    a, b = revealed(shown.all_inner_texts())
    assert vote_buttons.history(page) == vote_buttons.ONE_VOTE
    page.close()
    return a, b


def expected_counts(battles: list[tuple[str, str, str]]) -> Counter[str]:
    votes: Counter[str] = Counter()
    for a, b, _ in battles:
        votes[a] += 1
        votes[b] += 1
    return votes


@pytest.mark.arena_load
def test_votes_show_on_the_leaderboard_tab_and_the_cli_agrees(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    url = stack.url("webui", WEBUI_PORT)
    before = Counter({row["model"]: row["votes"] for row in cli_rows(stack.manifest)})
    requests: list[str] = []
    # 50 votes through the API, 10 at a time, while the browser casts its own.
    clients: queue.Queue[Any] = queue.Queue()
    for _ in range(API_CONCURRENCY):
        clients.put(connect(url))
    pool = ThreadPoolExecutor(max_workers=API_CONCURRENCY)
    started = time.monotonic()
    api_futures = [pool.submit(api_battle, clients, i) for i in range(API_VOTES)]
    browser_battles = []
    try:
        for outcome in ("leftvote", "rightvote", "tievote"):
            a, b = browser_battle(browser, url, outcome, requests)
            browser_battles.append((a, b, outcome))
        api_results = [future.result(timeout=600) for future in api_futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        # The UI's own log, tracebacks included (gradio hides them from its clients).
        artifact("webui.log").write_text(stack.logs("webui"))
    api_seconds = time.monotonic() - started
    api_battles = [(a, b, outcome) for a, b, outcome, _ in api_results]
    stack.report.figures["api_battles_fought_again"] = sum(r[3] for r in api_results)
    last_vote = time.monotonic()
    battles = browser_battles + api_battles
    expected = before + expected_counts(battles)
    CAST["battles"] = battles
    stack.report.figures["api_votes"] = API_VOTES
    stack.report.figures["api_votes_per_s_at_10_concurrent"] = round(API_VOTES / api_seconds, 2)

    # Every vote landed in the experiment's logs exactly once.
    log = read_folder(copy_logs(stack))
    assert len(log.battles) == sum(expected.values()) // 2
    ids = record_ids(stack)
    assert len(set(ids)) == len(ids) == len(log.battles)

    # The tab shows them without a restart: wait on its content.
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.on("request", lambda request: requests.append(request.url))
    page.set_default_timeout(180_000)
    page.goto(url + "/?leaderboard")
    page.get_by_role("tab", name="Leaderboard").and_(page.locator(":enabled")).wait_for()
    page.get_by_role("tab", name="Leaderboard").click()
    deadline = time.monotonic() + SHOWS_WITHIN_S
    shown: dict[str, int] = {}
    while time.monotonic() < deadline:
        shown = {row[1]: int(row[5]) for row in tab_rows(page) if len(row) >= 7}
        if shown == dict(expected):
            break
        page.wait_for_timeout(1000)
    stack.report.figures["last_vote_to_leaderboard_tab_s"] = round(time.monotonic() - last_vote, 1)
    page.screenshot(path=SCREENSHOTS / "leaderboard-tab.png", full_page=True)
    assert shown == dict(expected)
    expect(page.locator("#arenastack_leaderboard_plot img")).to_be_visible()

    # The CLI reads the same votes and prints the same table.
    rows = cli_rows(stack.manifest)
    table = {row[1]: row for row in tab_rows(page)}
    assert {row["model"]: row["votes"] for row in rows} == dict(expected)
    for row in rows:
        cells = table[row["model"]]
        assert int(cells[0]) == row["rank"]
        assert int(cells[2]) == round(row["rating"])
        assert int(cells[4]) == round(row["elo"])
        assert cells[6] == f"{row['win_rate']:.0%}"

    # The page is this experiment's, and everything it loaded came from the stack.
    body = page.locator("body").inner_text()
    page.close()
    assert TITLE in body
    for foreign in ("Chatbot Arena", "lmsys", "200K+", "Bard"):
        assert foreign not in body, foreign
    origin = urlsplit(url)
    others = sorted(
        {
            u for u in requests
            if urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and (urlsplit(u).hostname, urlsplit(u).port) != (origin.hostname, origin.port)
        }
    )  # fmt: skip
    assert requests and others == [], others
    stack.report.figures["browser_requests_all_same_origin"] = len(requests)


def copy_logs(stack: Stack) -> Path:
    """The experiment's folder, copied out of the web UI container."""
    target = ARTIFACTS / "leaderboard-logs"
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["docker", "compose", "-f", str(RUN.compose_file), "-p", RUN.project, "cp",
         f"webui:/logs/{EXPERIMENT}/.", str(target)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return target


def record_ids(stack: Stack) -> list[str]:
    """The conversation id of every vote record: each vote is written once."""
    ids = []
    for path in copy_logs(stack).glob("*-conv.json"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("type") in OUTCOMES:
                ids.append(record["states"][0]["conv_id"] + record["states"][1]["conv_id"])
    return ids


@pytest.mark.arena_load
def test_live_votes_rate_as_fastchat_rates_them(stack: Stack) -> None:
    log = read_folder(copy_logs(stack))
    anonymous = [b for b in log.battles if b.anonymous]
    assert len(anonymous) >= API_VOTES + 3
    battles = [
        {"tstamp": b.tstamp, "model_a": b.model_a, "model_b": b.model_b, "winner": b.winner}
        for b in anonymous
    ]
    path = artifact("live-battles.json")
    path.write_text(json.dumps(battles))
    worst = assert_equal_ratings(reference(str(path)))
    stack.report.figures["ratings_vs_fastchat_max_difference_live"] = round(worst, 4)


# --- experiments ---------------------------------------------------------------------------


def result_of(stack: Stack, experiment: str) -> dict[str, Any]:
    path = f"/logs/{experiment}/{RESULT_FOLDER}/{RESULT_JSON}"
    document: dict[str, Any] = json.loads(stack.exec("leaderboard", ["cat", path]))
    return document


OWN_VOTES = 4


def test_a_second_experiment_starts_empty_and_the_first_comes_back(stack: Stack) -> None:
    # Votes of its own, so that "comes back" has something to compare whichever tests ran before.
    before = sum(row["votes"] for row in cli_rows(stack.manifest)) // 2
    clients: queue.Queue[Any] = queue.Queue()
    clients.put(connect(stack.url("webui", WEBUI_PORT)))
    for index in range(OWN_VOTES):
        api_battle(clients, index)
    votes = {row["model"]: row["votes"] for row in cli_rows(stack.manifest)}
    assert sum(votes.values()) == 2 * (before + OWN_VOTES)
    data = yaml.safe_load(MANIFEST.read_text())
    data["experiment"] = "second"
    source = LIVE / f".run-{RUN.project}-second-source.yaml"
    source.write_text(yaml.safe_dump(data, sort_keys=False))
    second = RUN.render(source)
    try:
        stack.docker.compose.up(detach=True, wait=True, wait_timeout=300, pull="never")
        assert cli_rows(second) == []
        assert result_of(stack, "second")["counted_votes"] == 0
        # The new UI has served no page yet; its API must still draw battles (FastChat fills
        # the arena's model list only on a page load: arenastack_fastchat fills it at start).
        clients = queue.Queue()
        clients.put(connect(stack.url("webui", WEBUI_PORT)))
        api_battle(clients, 0)
        assert sum(row["votes"] for row in cli_rows(second)) == 2
        assert stack.inspect("webui")["Config"]["Env"].count("LOGDIR=/logs/second") == 1
    finally:
        RUN.render(MANIFEST)
        stack.docker.compose.up(detach=True, wait=True, wait_timeout=300, pull="never")
    assert {row["model"]: row["votes"] for row in cli_rows(stack.manifest)} == votes
    assert result_of(stack, EXPERIMENT)["counted_votes"] == sum(votes.values()) // 2
