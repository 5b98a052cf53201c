"""A judge run against OpenAI-compatible endpoints served here: battles drawn as the arena draws
them, judged in both orders, written as they are made; a run started again judges nothing twice."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from arenastack.arena.judgments import judgment_files, read_judgments
from arenastack.judge import run
from arenastack.judge.prompts import DEFAULT_PROMPTS, load
from arenastack.judge.stack import APPEND, Endpoint, FolderJournal

MODELS = ["Alpha", "Beta", "Gamma"]
# The scripted judge prefers Alpha to Beta to Gamma, whichever side it is shown on.
ORDER = {"Alpha": 3, "Beta": 2, "Gamma": 1}


class Scripted(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[Counter[str]] = Counter()
    # Per model, what its first requests get instead of an answer: an HTTP status, or "drop"
    # (the connection closed before any answer).
    faults: ClassVar[dict[str, list[int | str]]] = {}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        Scripted.calls[model] += 1
        faults = Scripted.faults.get(model)
        if faults:
            fault = faults.pop(0)
            if fault == "drop":
                self.close_connection = True
                return
            self.send_error(int(fault), "scripted fault")
            return
        if model == "judge":
            user = body["messages"][-1]["content"]
            a, b = re.findall(r"I am (\w+)", user)
            text = "Reasons...\n[[A>B]]" if ORDER[a] > ORDER[b] else "Reasons...\n[[B>A]]"
        else:
            text = f"I am {model}.\n- a list item\n**bold**"
        reply = {
            "choices": [{"message": {"content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    Scripted.calls = Counter()
    Scripted.faults = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


# Retries wait milliseconds here, not the CLI's seconds.
QUICK_RETRY_S = 0.01


def judge_once(base_url: str, folder: Path, battles: list[run.Battle]) -> run.Report:
    contestants = {name: Endpoint(base_url, name) for name in MODELS}
    journal = FolderJournal(folder, "judge")
    report = run.Report("judge", journal.where, 20, 1, len(battles), 0, None)
    settings = run.Settings(judge="judge", concurrency=3, retry_wait_s=QUICK_RETRY_S)
    judge = Endpoint(base_url, "judge")
    return run.run(battles, contestants, judge, journal, settings, report, lambda *a: None)


def test_every_battle_is_judged_in_both_orders_and_written(base_url: str, tmp_path: Path) -> None:
    prompts = load(DEFAULT_PROMPTS)
    battles = run.draw(prompts, MODELS, rounds=1, all_pairs=False, seed=0)
    assert len(battles) == len(prompts) == 20
    report = judge_once(base_url, tmp_path, battles)
    assert (report.judged, report.failed, report.unparsed) == (20, 0, 0)
    assert report.as_dict()["judgments"] == 40 and Scripted.calls["judge"] == 40
    assert report.ties_from_contradiction == 0
    log = read_judgments(judgment_files(tmp_path))
    assert len(log.judgments) == 20 and {j.battle for j in log.judgments} == {
        b.key for b in battles
    }
    for judgment in log.judgments:
        better = max(judgment.models, key=ORDER.__getitem__)
        assert judgment.outcome == ("model_a" if judgment.models[0] == better else "model_b")
        assert judgment.style is not None and judgment.style[0]["lists"] == 1
    assert report.tokens["completion_tokens"] == 20 * 4 * 5


def test_the_draws_are_the_arena_s_and_the_same_each_time() -> None:
    prompts = load(DEFAULT_PROMPTS)
    first = run.draw(prompts, MODELS, rounds=3, all_pairs=False, seed=7)
    assert first == run.draw(prompts, MODELS, rounds=3, all_pairs=False, seed=7)
    assert len({b.key for b in first}) == 60
    pairs = Counter(frozenset(b.models) for b in first)
    assert len(pairs) == 3, "every pair is drawn"
    assert Counter(b.models[0] for b in first).keys() == set(MODELS), "either side"
    every = run.draw(prompts, MODELS, rounds=1, all_pairs=True, seed=7)
    assert len(every) == 20 * 3


def test_a_run_started_again_judges_nothing_twice(base_url: str, tmp_path: Path) -> None:
    """A run killed halfway has written what it judged; the next skips those battles."""
    battles = run.draw(load(DEFAULT_PROMPTS), MODELS, rounds=1, all_pairs=False, seed=0)
    judge_once(base_url, tmp_path, battles[:9])
    calls_before = Scripted.calls["judge"]
    again = judge_once(base_url, tmp_path, battles)
    assert (again.already_judged, again.judged) == (9, 11)
    assert Scripted.calls["judge"] - calls_before == 2 * 11
    keys = [j.battle for j in read_judgments(judgment_files(tmp_path)).judgments]
    assert len(keys) == len(set(keys)) == 20
    assert judge_once(base_url, tmp_path, battles).judged == 0


def test_a_model_that_fails_fails_its_battles_only(base_url: str, tmp_path: Path) -> None:
    battles = run.draw(load(DEFAULT_PROMPTS), MODELS, rounds=1, all_pairs=False, seed=0)
    contestants = {name: Endpoint(base_url, name) for name in MODELS}
    contestants["Gamma"] = Endpoint("http://127.0.0.1:9/v1", "Gamma")  # nothing listens there
    journal = FolderJournal(tmp_path, "judge")
    report = run.Report("judge", journal.where, 20, 1, len(battles), 0, None)
    settings = run.Settings(judge="judge", retry_wait_s=QUICK_RETRY_S)
    run.run(battles, contestants, Endpoint(base_url, "judge"), journal, settings, report,
            lambda *a: None)  # fmt: skip
    with_gamma = sum("Gamma" in b.models for b in battles)
    assert (report.failed, report.judged) == (with_gamma, 20 - with_gamma)
    assert len(read_judgments(judgment_files(tmp_path)).judgments) == 20 - with_gamma
    # Refused connections were asked again, up to the attempts, before the battle failed.
    assert len(report.retried) == with_gamma * 2
    assert all("Gamma" in error and "refused" in error for error in report.retried)


def test_transient_failures_are_asked_again_and_cost_no_battle(
    base_url: str, tmp_path: Path
) -> None:
    """A gateway's 503 or 500, a dropped connection: asked again, and every battle is judged;
    a 400 is not transient and fails its battle at once."""
    battles = run.draw(load(DEFAULT_PROMPTS), MODELS, rounds=1, all_pairs=False, seed=0)
    Scripted.faults = {"Alpha": [503, "drop"], "judge": [500], "Beta": [400]}
    report = judge_once(base_url, tmp_path, battles)
    assert (report.failed, report.judged) == (1, 19)
    assert len(report.retried) == 3 and report.as_dict()["retried"] == 3
    assert sum("503" in e for e in report.retried) == sum("500" in e for e in report.retried) == 1
    assert len(report.errors) == 1 and report.errors[0].startswith("Beta: HTTP 400"), report
    assert Scripted.calls["Beta"] == sum("Beta" in b.models for b in battles), "no 400 again"


def test_a_request_failing_on_every_attempt_fails_its_battle(base_url: str, tmp_path: Path) -> None:
    battles = run.draw(load(DEFAULT_PROMPTS), MODELS, rounds=1, all_pairs=False, seed=0)[:1]
    Scripted.faults = {name: [502, 502, 502] for name in MODELS}
    report = judge_once(base_url, tmp_path, battles)
    assert (report.failed, report.judged, len(report.retried)) == (1, 0, 2)
    assert "HTTP 502" in report.errors[0]


def test_style_is_counted_from_the_answer() -> None:
    text = "# Title\n\n- one\n- two\n1. three\n**bold** and __also__"
    assert run.style_of(text, 0) == {"tokens": 11, "headers": 1, "lists": 3, "bold": 2}


@pytest.mark.parametrize("writer", ["folder", "container script"])
def test_a_record_cut_short_by_a_kill_never_swallows_the_next(tmp_path: Path, writer: str) -> None:
    """A run killed while writing leaves a line without its end; the next run's first record
    still lands on a line of its own (the web UI container runs the same code, as a script)."""
    whole = {"type": "judgment", "judge": "judge", "battle": "one", "models": ["A", "B"],
             "outcome": "model_a"}  # fmt: skip
    path = tmp_path / "judge-judge.jsonl"
    path.write_text(json.dumps(whole) + "\n" + json.dumps({**whole, "battle": "two"})[:40])
    record = {**whole, "battle": "three"}
    if writer == "folder":
        FolderJournal(tmp_path, "judge").append(record)
    else:
        subprocess.run(
            [sys.executable, "-c", APPEND, str(path)],
            input=json.dumps(record) + "\n", text=True, check=True,
        )  # fmt: skip
        cut = subprocess.run(
            [sys.executable, "-c", APPEND, str(path)], input='{"type": "judg', text=True
        )
        assert cut.returncode != 0, "a line cut short is refused, not written"
    log = read_judgments([path])
    assert [j.battle for j in log.judgments] == ["one", "three"]
    assert log.skipped == {"that are not JSON (truncated or corrupt)": 1}


def test_the_report_says_when_most_verdicts_could_not_be_read() -> None:
    report = run.Report("tiny", "here", 20, 1, 20, 0, "Tiny judges, so it does not battle")
    report.judged, report.unparsed = 20, 10
    assert report.as_dict()["notes"] == ["Tiny judges, so it does not battle"]
    report.unparsed = 11
    notes = report.as_dict()["notes"]
    assert len(notes) == 2 and notes[1].startswith("most verdicts could not be read (11 of 20")
