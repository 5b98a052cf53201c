"""The command line behind render.py.

    render.py [MANIFEST] [-o docker-compose.yml] [--gpus 2x80@8.0]
    render.py plan [MANIFEST] [--gpus SPEC] [--sequences N] [--json]
    render.py schema [--check]
    render.py leaderboard [MANIFEST] [--logs DIR] [--json | --csv] [--plot PATH.png]

Exit status: 0 done, 2 the manifest (or the command line) has problems, each printed as one
line naming the field. Nothing is written unless everything is right.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arenastack import report
from arenastack.output import write_atomically
from arenastack.paths import MANIFEST_SCHEMA, README
from arenastack.pipeline import compose_text, prepare
from arenastack.problems import ManifestError, Problem
from arenastack.schema import reference_markdown, schema_text

DEFAULT_MANIFEST = Path("compose/models.yaml")
DEFAULT_OUTPUT = Path("docker-compose.yml")
USAGE_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in ("plan", "schema", "leaderboard") else "render"
    arguments = argv[1:] if command != "render" else argv
    try:
        if command == "leaderboard":
            from arenastack import leaderboard_cli

            return leaderboard_cli.main(arguments)
        if command == "plan":
            return _plan(_plan_parser().parse_args(arguments))
        if command == "schema":
            return _schema(_schema_parser().parse_args(arguments))
        return _render(_render_parser().parse_args(arguments))
    except ManifestError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return USAGE_ERROR


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        default=DEFAULT_MANIFEST,
        help=f"model manifest (default {DEFAULT_MANIFEST})",
    )
    parser.add_argument(
        "--gpus",
        metavar="SPEC",
        help="declare the GPUs instead of reading them with NVML: COUNTxGIB@CAPABILITY, "
        "e.g. 2x80@8.0 or 1x80@8.0,1x24@8.9",
    )


def _render_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="render.py",
        description="Render a model manifest into a docker-compose file. "
        "Also: `render.py plan` (memory plan), `render.py schema` (manifest JSON Schema).",
    )
    _common(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"compose file to write (default {DEFAULT_OUTPUT})",
    )
    return parser


def _plan_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="render.py plan", description="Show the GPU memory plan of a manifest."
    )
    _common(parser)
    parser.add_argument(
        "--sequences",
        type=int,
        metavar="N",
        help="full-length sequences each 'auto' KV cache must hold (default: the manifest's "
        "planner.full_length_sequences, 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def _schema_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="render.py schema",
        description="Write the manifest's JSON Schema to compose/manifest.schema.json and its "
        "reference into README.md.",
    )
    parser.add_argument(
        "--check", action="store_true", help="fail if the file is not current; write nothing"
    )
    return parser


def _warn(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)


def _render(args: argparse.Namespace) -> int:
    prepared = prepare(args.manifest, args.gpus)
    _warn(prepared.warnings)
    text = compose_text(prepared, args.output)
    write_atomically(args.output, text)
    models = ", ".join(m.service for m in prepared.plan.models)
    print(f"wrote {args.output} ({models}; vLLM dialect {prepared.dialect.label})")
    return 0


def _plan(args: argparse.Namespace) -> int:
    if args.sequences is not None and args.sequences < 1:
        raise ManifestError([Problem("--sequences", "must be 1 or more")])
    prepared = prepare(args.manifest, args.gpus, args.sequences, explain=True)
    if args.json:
        print(json.dumps(report.as_json(prepared.plan), indent=2))
    else:
        report.print_table(prepared.plan, prepared.manifest.device)
    _warn(prepared.warnings)
    return 0


REFERENCE_START = "<!-- manifest-reference:start -->\n"
REFERENCE_END = "<!-- manifest-reference:end -->"


def _with_reference(readme: str) -> str:
    start = readme.index(REFERENCE_START) + len(REFERENCE_START)
    return readme[:start] + reference_markdown() + readme[readme.index(REFERENCE_END) :]


def _schema(args: argparse.Namespace) -> int:
    wanted = {MANIFEST_SCHEMA: schema_text(), README: _with_reference(README.read_text())}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run `python render.py schema`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        write_atomically(path, wanted[path])
        print(f"wrote {path}")
    return 0
