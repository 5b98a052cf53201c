"""A judge run: battles drawn over the prompts, each answered by its two models and judged in
both orders, each judgment written as soon as it is made.

Pairs are drawn as FastChat 0.2.36's arena draws them for models it has no weights for: two
different models, uniformly, in a random order; or every pair with `all_pairs`. The draws come
from a generator seeded by the run's seed, the prompt and the round, so a run started again
draws the same battles, and skips those its judge has already judged: interrupting a run loses
nothing that was written, and judges nothing twice.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from arenastack.judge.prompts import Prompt
from arenastack.judge.stack import Endpoint, EndpointError
from arenastack.judge.verdicts import combine, judge_messages, parse_verdict


class Journal(Protocol):
    def judged(self) -> set[str]: ...

    def append(self, record: dict[str, Any]) -> None: ...

    @property
    def where(self) -> str: ...


@dataclass(frozen=True)
class Battle:
    key: str
    prompt: Prompt
    round: int
    models: tuple[str, str]


def draw(
    prompts: list[Prompt], models: list[str], rounds: int, all_pairs: bool, seed: int
) -> list[Battle]:
    battles = []
    for round_, prompt in itertools.product(range(rounds), prompts):
        rng = random.Random(f"{seed}:{prompt.id}:{round_}")
        if all_pairs:
            pairs = [
                (x, y) if rng.random() < 0.5 else (y, x)
                for x, y in itertools.combinations(sorted(models), 2)
            ]
        else:
            first, second = rng.sample(sorted(models), 2)
            pairs = [(first, second)]
        for pair in pairs:
            identity = f"{prompt.id}\0{round_}\0{pair[0]}\0{pair[1]}"
            key = hashlib.sha256(identity.encode()).hexdigest()[:16]
            battles.append(Battle(key, prompt, round_, pair))
    return battles


@dataclass(frozen=True)
class Settings:
    judge: str  # the name the judgments carry
    max_tokens: int = 1024
    judge_max_tokens: int = 1024
    temperature: float = 0.7
    concurrency: int = 4
    # Each request is asked up to this many times while it fails transiently, waiting
    # retry_wait_s, then twice that, ...: one gateway hiccup in a run of hundreds of battles
    # should not cost a battle.
    attempts: int = 3
    retry_wait_s: float = 2.0


@dataclass
class Report:
    judge: str
    where: str
    prompts: int
    rounds: int
    battles: int
    already_judged: int
    self_preference: str | None
    judged: int = 0
    failed: int = 0
    unparsed: int = 0
    ties_from_contradiction: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    time_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    # Requests that failed transiently and were asked again (stack.TRANSIENT_STATUS), and why.
    retried: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "judgments_file": self.where,
            "prompts": self.prompts,
            "rounds": self.rounds,
            "battles": self.battles,
            "already_judged": self.already_judged,
            "judged": self.judged,
            # Each battle is judged twice, once in each order.
            "judgments": 2 * self.judged,
            "failed": self.failed,
            "unparsed": self.unparsed,
            "ties_from_contradiction": self.ties_from_contradiction,
            "outcomes": dict(self.outcomes),
            "self_preference": self.self_preference,
            "time_s": round(self.time_s, 1),
            "tokens": dict(self.tokens),
            "errors": self.errors[:10],
            "retried": len(self.retried),
            "retried_errors": self.retried[:10],
            "notes": self.notes(),
        }

    def notes(self) -> list[str]:
        """What a reader of the report must not miss."""
        found = [self.self_preference] if self.self_preference else []
        if self.failed:
            found.append(f"{self.failed} battles failed (run again to retry them)")
        if self.judged and self.unparsed > self.judged / 2:
            found.append(
                f"most verdicts could not be read ({self.unparsed} of {self.judged} battles): "
                "this judge does not end with a label such as [[A>B]]; a larger judge model "
                "is needed"
            )
        return found


def style_of(text: str, tokens: int) -> dict[str, int]:
    """An answer's length and markdown, the covariates of the style-controlled board."""
    lines = text.splitlines()
    return {
        "tokens": tokens or len(text.split()),
        "headers": sum(bool(re.match(r"\s*#{1,6}\s", line)) for line in lines),
        "lists": sum(bool(re.match(r"\s*(?:[-*+]|\d+[.)])\s", line)) for line in lines),
        "bold": len(re.findall(r"\*\*[^*\n]+\*\*|__[^_\n]+__", text)),
    }


class Asker:
    """Asks an endpoint, again while it fails transiently, and notes each retry."""

    def __init__(self, settings: Settings, retried: Callable[[str], None]) -> None:
        self.retrying = Retrying(
            stop=stop_after_attempt(settings.attempts),
            wait=wait_exponential(multiplier=settings.retry_wait_s),
            retry=retry_if_exception(lambda e: isinstance(e, EndpointError) and e.transient),
            before_sleep=lambda state: retried(str(state.outcome and state.outcome.exception())),
            reraise=True,
        )

    def chat(
        self, endpoint: Endpoint, messages: list[dict[str, str]], max_tokens: int, temp: float
    ) -> tuple[str, dict[str, int]]:
        # A copy per request: the threads of a run must not share one retry's state.
        return self.retrying.copy()(endpoint.chat, messages, max_tokens, temp)


def judge_battle(
    battle: Battle,
    contestants: dict[str, Endpoint],
    judge: Endpoint,
    settings: Settings,
    asker: Asker,
) -> dict[str, Any]:
    """The judgment record of one battle (arena/judgments.py has its fields)."""
    usage: Counter[str] = Counter()
    answers, style = [], []
    for name in battle.models:
        messages = [{"role": "user", "content": battle.prompt.text}]
        text, used = asker.chat(
            contestants[name], messages, settings.max_tokens, settings.temperature
        )
        usage.update(used)
        answers.append(text)
        style.append(style_of(text, used["completion_tokens"]))
    verdicts, judgments = [], []
    for first, second in ((0, 1), (1, 0)):
        messages = judge_messages(battle.prompt.text, answers[first], answers[second])
        text, used = asker.chat(judge, messages, settings.judge_max_tokens, 0.0)
        usage.update(used)
        judgments.append(text)
        verdicts.append(parse_verdict(text))
    vote = combine(verdicts[0], verdicts[1])
    return {
        "tstamp": time.time(),
        "type": "judgment",
        "judge": settings.judge,
        "battle": battle.key,
        "prompt": battle.prompt.id,
        "category": battle.prompt.category,
        "round": battle.round,
        "models": list(battle.models),
        "verdicts": verdicts,
        "outcome": vote.outcome,
        "contradiction": vote.contradiction,
        "weight": vote.weight,
        "style": style,
        "usage": dict(usage),
        # The judge's own words, cut short: to read why, and what an unparsed verdict said.
        "judge_texts": [text[-2000:] for text in judgments],
    }


def run(
    battles: list[Battle],
    contestants: dict[str, Endpoint],
    judge: Endpoint,
    journal: Journal,
    settings: Settings,
    report: Report,
    progress: Callable[[int, int, float], None],
) -> Report:
    done = journal.judged()
    todo = [b for b in battles if b.key not in done]
    report.already_judged = len(battles) - len(todo)
    started = time.monotonic()
    lock = threading.Lock()

    def retried(error: str) -> None:
        with lock:
            report.retried.append(error)

    asker = Asker(settings, retried)
    progress(0, len(todo), 0.0)
    with ThreadPoolExecutor(max_workers=max(1, settings.concurrency)) as pool:
        futures = {
            pool.submit(judge_battle, b, contestants, judge, settings, asker): b for b in todo
        }
        for count, future in enumerate(as_completed(futures), start=1):
            try:
                record = future.result()
            except EndpointError as error:
                with lock:
                    report.failed += 1
                    report.errors.append(str(error))
            else:
                journal.append(record)
                with lock:
                    report.judged += 1
                    report.unparsed += record["outcome"] == "unparsed"
                    report.ties_from_contradiction += record["contradiction"]
                    report.outcomes[record["outcome"]] += 1
                    report.tokens.update(record["usage"])
            progress(count, len(todo), time.monotonic() - started)
    report.time_s = time.monotonic() - started
    return report


def printer(stream: Any = sys.stderr) -> Callable[[int, int, float], None]:
    """Battles done and to do, the rate and the time left: a bar on a terminal, else a line
    every tenth of the run."""
    if stream.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("judging"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        task = bar.add_task("judging", total=None, rate="")

        def show_bar(done: int, total: int, elapsed: float) -> None:
            if done == 0:
                bar.start()
            rate = f"{done / elapsed * 60:.1f} battles/min" if elapsed > 0 and done else ""
            bar.update(task, completed=done, total=total, rate=rate)
            if done >= total:
                bar.stop()

        return show_bar

    def show_line(done: int, total: int, elapsed: float) -> None:
        step = max(1, total // 10)
        if done % step and done != total:
            return
        rate = done / elapsed if elapsed > 0 and done else 0.0
        left = f", ~{(total - done) / rate:.0f} s left" if rate else ""
        print(f"judged {done}/{total} ({rate * 60:.1f}/min{left})", file=stream, flush=True)

    return show_line
