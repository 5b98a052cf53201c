"""python -m arenastack.residency --config FILE [--host 0.0.0.0] [--port 8000] [--keep-alive S]"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from arenastack.residency.config import ConfigError, load
from arenastack.residency.service import create_app


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arenastack.residency",
        description="OpenAI-compatible proxy that keeps some vLLM servers of each GPU asleep.",
    )
    parser.add_argument("--config", type=Path, required=True, help="the service's JSON config")
    # In its container the service is reached by the web UI over the stack's network.
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=5,
        help="seconds an idle client connection stays open (default: uvicorn's 5)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as error:
        print(f"residency: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uvicorn.run(
        create_app(config), host=args.host, port=args.port, timeout_keep_alive=args.keep_alive
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
