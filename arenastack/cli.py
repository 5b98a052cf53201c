"""The command line behind render.py.

    render.py [MANIFEST] [-o docker-compose.yml] [--gpus 2x80@8.0]
    render.py --target kubernetes [MANIFEST] [-o kubernetes] [--gpu-sharing whole|hami]
    render.py plan [MANIFEST] [--gpus SPEC] [--sequences N] [--json]
    render.py schema [--check]
    render.py up [MANIFEST] [-o docker-compose.yml]      (render, build, start, watch)
    render.py status [MANIFEST] [-o docker-compose.yml] [--json]
    render.py leaderboard [MANIFEST] [--logs DIR] [--json | --csv] [--plot PATH.png]
    render.py judge [MANIFEST] --judge MODEL [--prompts FILE] [--rounds N] [--json]

Exit status: 0 done; 1 arenastack is not installed from a checkout; 2 the manifest (or the
command line) has problems, each printed as one line naming the field; 3 a bug in arenastack (the
rendered file breaks the Compose specification). Nothing is written unless everything is right.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arenastack.core.files import write_atomically
from arenastack.core.paths import (
    INSTALL_HINT,
    MANIFEST_REFERENCE,
    MANIFEST_SCHEMA,
    missing_from_checkout,
)
from arenastack.core.problems import ManifestError, Problem, RendererBug
from arenastack.gateway import checks as gateway_checks
from arenastack.manifest.reference import reference_markdown, schema_text
from arenastack.plan import report
from arenastack.render.pipeline import compose_text, prepare

DEFAULT_MANIFEST = Path("compose/models.yaml")
DEFAULT_OUTPUT = Path("docker-compose.yml")
DEFAULT_KUBERNETES_OUTPUT = Path("kubernetes")
NOT_A_CHECKOUT = 1
USAGE_ERROR = 2
RENDERER_BUG = 3


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if missing_from_checkout():
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return NOT_A_CHECKOUT
    command = (
        argv[0]
        if argv and argv[0] in ("plan", "schema", "up", "status", "leaderboard", "judge")
        else "render"
    )
    arguments = argv[1:] if command != "render" else argv
    try:
        if command == "leaderboard":
            from arenastack.operate import leaderboard_cli

            return leaderboard_cli.main(arguments)
        if command == "judge":
            from arenastack.judge import cli as judge_cli

            return judge_cli.main(arguments)
        if command == "plan":
            return _plan(_plan_parser().parse_args(arguments))
        if command == "schema":
            return _schema(_schema_parser().parse_args(arguments))
        if command == "up":
            return _up(operator_parser("up").parse_args(arguments))
        if command == "status":
            return _status(operator_parser("status").parse_args(arguments))
        return _render(_render_parser().parse_args(arguments))
    except ManifestError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return USAGE_ERROR
    except RendererBug as bug:
        print(
            "internal error: the rendered file breaks the Compose specification. This is a bug "
            "in arenastack, not in your manifest; nothing was written. Please report it with "
            "the manifest. Details:",
            file=sys.stderr,
        )
        for detail in bug.details:
            print(f"  {detail}", file=sys.stderr)
        return RENDERER_BUG


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
    parser.add_argument(
        "--host-memory",
        metavar="GIB",
        type=float,
        help="with residency: the host's memory, where sleeping weights go, instead of reading "
        "/proc/meminfo (for rendering on another machine)",
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
        default=None,
        help=f"compose file to write (default {DEFAULT_OUTPUT}); with --target kubernetes the "
        f"folder (default {DEFAULT_KUBERNETES_OUTPUT})",
    )
    parser.add_argument(
        "--target",
        choices=("compose", "kubernetes"),
        default="compose",
        help="compose: a docker-compose file; kubernetes: a kustomization folder",
    )
    parser.add_argument(
        "--gpu-sharing",
        choices=("whole", "hami"),
        help="with --target kubernetes: whole GPUs per model, or HAMi memory slices "
        "(default: the manifest's kubernetes.gpu_sharing)",
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
        "reference into docs/manifest.md.",
    )
    parser.add_argument(
        "--check", action="store_true", help="fail if the file is not current; write nothing"
    )
    return parser


def _warn(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)


def _render(args: argparse.Namespace) -> int:
    if args.target == "kubernetes":
        return _render_kubernetes(args)
    if args.gpu_sharing is not None:
        raise ManifestError([Problem("--gpu-sharing", "only applies with --target kubernetes")])
    args.output = args.output or DEFAULT_OUTPUT
    prepared = prepare(args.manifest, args.gpus, host_memory_gib=args.host_memory)
    _warn(prepared.warnings)
    # Compose reads .env from the compose file's folder.
    _warn(gateway_checks.warnings(prepared.manifest, args.output.parent / ".env"))
    text = compose_text(prepared, args.output)
    write_atomically(args.output, text)
    models = ", ".join(m.service for m in prepared.plan.models)
    print(f"wrote {args.output} ({models}; vLLM dialect {prepared.dialect.label})")
    return 0


def _render_kubernetes(args: argparse.Namespace) -> int:
    from arenastack.render import kubernetes

    prepared, sharing = kubernetes.prepare(
        args.manifest, args.gpus, args.gpu_sharing, host_memory_gib=args.host_memory
    )
    _warn(prepared.warnings + kubernetes.warnings(prepared))
    files = kubernetes.build(prepared, sharing, args.manifest.as_posix())
    output = args.output or DEFAULT_KUBERNETES_OUTPUT
    kubernetes.write_directory(output, files)
    models = ", ".join(m.service for m in prepared.plan.models)
    print(
        f"wrote {output}/ ({len(files)} files: {models}; GPU sharing {sharing}; "
        f"vLLM dialect {prepared.dialect.label})"
    )
    print("images the cluster pulls: " + ", ".join(kubernetes.images_pulled(prepared)))
    return 0


def _plan(args: argparse.Namespace) -> int:
    if args.sequences is not None and args.sequences < 1:
        raise ManifestError([Problem("--sequences", "must be 1 or more")])
    prepared = prepare(
        args.manifest, args.gpus, args.sequences, explain=True, host_memory_gib=args.host_memory
    )
    if args.json:
        print(json.dumps(report.as_json(prepared.plan), indent=2))
    else:
        report.print_table(prepared.plan, prepared.manifest.device)
    _warn(prepared.warnings)
    return 0


REFERENCE_START = "<!-- manifest-reference:start -->\n"
REFERENCE_END = "<!-- manifest-reference:end -->"


def _with_reference(page: str) -> str:
    start = page.index(REFERENCE_START) + len(REFERENCE_START)
    return page[:start] + reference_markdown() + page[page.index(REFERENCE_END) :]


def _schema(args: argparse.Namespace) -> int:
    wanted = {
        MANIFEST_SCHEMA: schema_text(),
        MANIFEST_REFERENCE: _with_reference(MANIFEST_REFERENCE.read_text()),
    }
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run `python render.py schema`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        write_atomically(path, wanted[path])
        print(f"wrote {path}")
    return 0


# --- operating the stack (arenastack/operate/) ---------------


def operator_parser(command: str) -> argparse.ArgumentParser:
    description = {
        "up": "Render, build missing images, start the stack and watch every model come up.",
        "status": "State, health and load of every model of the running stack.",
    }[command]
    from arenastack.operate import stack_state

    parser = argparse.ArgumentParser(prog=f"render.py {command}", description=description)
    _common(parser)
    stack_state.add_location_options(parser)
    if command == "up":
        parser.add_argument(
            "--max-restarts",
            type=int,
            default=2,
            metavar="N",
            help="a model that restarts N times has failed (default 2)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=3600,
            metavar="S",
            help="give up when not all healthy after S seconds (default 3600)",
        )
    else:
        parser.add_argument("--json", action="store_true", help="print the status as JSON")
        parser.add_argument(
            "--window",
            type=float,
            default=5,
            metavar="S",
            help="seconds between two reads of each server's token counter "
            "when Prometheus is not there to ask (default 5)",
        )
    return parser


def _up(args: argparse.Namespace) -> int:
    from arenastack.operate import live_view, stack_state

    prepared = prepare(args.manifest, args.gpus, host_memory_gib=args.host_memory)
    _warn(prepared.warnings)
    write_atomically(args.output, compose_text(prepared, args.output))
    print(f"wrote {args.output} (vLLM dialect {prepared.dialect.label})", flush=True)
    location = stack_state.locate(prepared.manifest, args)
    return live_view.up(
        prepared.manifest,
        prepared.plan.models,
        location,
        args.max_restarts,
        args.timeout,
        together=prepared.plan.together,
    )


def _status(args: argparse.Namespace) -> int:
    from arenastack.operate import stack_state, stack_status
    from arenastack.plan.vllm_metrics import metric_names

    prepared = prepare(args.manifest, args.gpus, host_memory_gib=args.host_memory)
    status = stack_status.collect(
        prepared.manifest,
        prepared.plan.models,
        metric_names(prepared.dialect.version),
        stack_state.locate(prepared.manifest, args),
        prepared.gpus,
        args.window,
        {e.model.service: e.footprint_bytes for e in prepared.plan.entries if e.footprint_bytes},
    )
    if args.json:
        print(json.dumps(status.as_json(), indent=2))
    else:
        stack_status.print_table(status, prepared.manifest.device)
    return 0
