"""`render.py judge`: battles between the experiment's models over prompts, judged by an LLM.

render.py judge [MANIFEST] [--prompts FILE] (--judge NAME | --judge-url URL --judge-model M)
                [--rounds N] [--concurrency K] [--attempts N] [--all-pairs] [--json]
                [-o FILE] [-p PROJECT] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from arenastack.core.problems import ManifestError, Problem
from arenastack.judge import run
from arenastack.judge.prompts import DEFAULT_PROMPTS, load
from arenastack.judge.stack import Endpoint, FolderJournal, StackJournal, model_endpoints
from arenastack.manifest import load_manifest, resolve_models
from arenastack.operate import stack_state

DEFAULT_MANIFEST = Path("compose/models.yaml")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="render.py judge",
        description="Battles between the experiment's models over prompts, each judged by an "
        "LLM in both orders; the judgments land beside the human votes as votes of their own.",
    )
    p.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        default=DEFAULT_MANIFEST,
        help=f"manifest of the experiment (default {DEFAULT_MANIFEST})",
    )
    p.add_argument(
        "--prompts",
        type=Path,
        default=DEFAULT_PROMPTS,
        help="JSON lines, YAML or CSV with a `prompt` (and `category`, `id`) per prompt; "
        "default: the project's own 20 prompts in five categories",
    )
    judge = p.add_mutually_exclusive_group(required=True)
    judge.add_argument("--judge", metavar="MODEL", help="a model of the experiment (its key)")
    judge.add_argument(
        "--judge-url", metavar="URL", help="any OpenAI-compatible endpoint, e.g. .../v1"
    )
    p.add_argument("--judge-model", help="with --judge-url: the model name to ask for")
    p.add_argument(
        "--judge-key-env",
        metavar="VAR",
        help="with --judge-url: the environment variable that holds its key (read, not shown)",
    )
    p.add_argument("--rounds", type=int, default=1, help="battles per prompt (default 1)")
    p.add_argument("--all-pairs", action="store_true", help="every pair of models per prompt")
    p.add_argument("--concurrency", type=int, default=4, help="battles at once (default 4)")
    p.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="asks per request while it fails transiently: HTTP 408, 429 or 5xx, or a dropped "
        "connection (default 3)",
    )
    p.add_argument("--max-tokens", type=int, default=1024, help="of each answer (default 1024)")
    p.add_argument("--judge-max-tokens", type=int, default=1024, help="of each judgment")
    p.add_argument("--temperature", type=float, default=0.7, help="of the answers (default 0.7)")
    p.add_argument("--seed", type=int, default=0, help="of the draws (default 0)")
    p.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="write the judgments into DIR (a copy of the experiment's logs) instead of the "
        "running stack's volume",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    stack_state.add_location_options(p)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    problems = _check(args)
    if problems:
        raise ManifestError(problems)
    loaded = load_manifest(args.manifest)
    if loaded.problems or loaded.manifest is None:
        raise ManifestError(loaded.problems)
    manifest = loaded.manifest
    models = resolve_models(manifest, args.manifest.resolve().parent)
    prompts = load(args.prompts)
    location = stack_state.locate(manifest, args)
    endpoints = model_endpoints(manifest, models, location)
    self_preference = None
    if args.judge:
        by_key = {m.service: m.display_name for m in models}
        name = by_key.get(args.judge, args.judge)
        if name not in endpoints:
            choices = ", ".join(by_key)
            raise ManifestError([Problem("--judge", f"{args.judge!r} is not a model of {choices}")])
        judge = endpoints.pop(name)
        judge_name = args.judge
        self_preference = f"{name} judges, so it does not battle (self-preference)"
    else:
        key = os.environ.get(args.judge_key_env, "") if args.judge_key_env else None
        judge = Endpoint(args.judge_url.rstrip("/"), args.judge_model, key or None)
        judge_name = args.judge_model
    if len(endpoints) < 2:
        raise ManifestError([Problem("models", "a judge run needs two models to battle")])
    journal: run.Journal = (
        FolderJournal(args.logs, judge_name)
        if args.logs is not None
        else StackJournal(manifest, location, judge_name)
    )
    battles = run.draw(prompts, list(endpoints), args.rounds, args.all_pairs, args.seed)
    settings = run.Settings(
        judge=judge_name,
        max_tokens=args.max_tokens,
        judge_max_tokens=args.judge_max_tokens,
        temperature=args.temperature,
        concurrency=args.concurrency,
        attempts=args.attempts,
    )
    report = run.Report(
        judge=judge_name,
        where=journal.where,
        prompts=len(prompts),
        rounds=args.rounds,
        battles=len(battles),
        already_judged=0,
        self_preference=self_preference,
    )
    run.run(battles, endpoints, judge, journal, settings, report, run.printer())
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        _print(report)
    return 1 if report.failed and not report.judged else 0


def _check(args: argparse.Namespace) -> list[Problem]:
    problems = []
    if args.judge_url and not args.judge_model:
        problems.append(Problem("--judge-model", "--judge-url needs the model name to ask for"))
    if args.judge_key_env and not os.environ.get(args.judge_key_env):
        problems.append(
            Problem("--judge-key-env", f"the environment has no {args.judge_key_env} (the key)")
        )
    for flag in ("rounds", "concurrency", "attempts", "max_tokens", "judge_max_tokens"):
        if getattr(args, flag) < 1:
            problems.append(Problem(f"--{flag.replace('_', '-')}", "must be 1 or more"))
    return problems


def _print(report: run.Report) -> None:
    lines = [
        f"judge {report.judge}: {report.judged} battles judged now, {report.already_judged} "
        f"already judged, of {report.battles} ({report.prompts} prompts x {report.rounds} "
        "rounds), each in both orders",
        f"outcomes: {dict(report.outcomes)}; ties from contradicting orders: "
        f"{report.ties_from_contradiction}; unparsed (not counted): {report.unparsed}",
        f"written to {report.where}; {report.time_s:.0f} s; tokens {dict(report.tokens)}",
    ]
    lines += report.notes()
    if report.retried:
        lines.append(f"{len(report.retried)} requests asked again, the first after: "
                     f"{report.retried[0]}")  # fmt: skip
    if report.failed:
        lines.append(f"the first errors: {report.errors[:3]}")
    for line in lines:
        print(line)
