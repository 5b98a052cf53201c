"""`render.py leaderboard`: the experiment's leaderboard on the command line.

    render.py leaderboard [MANIFEST] [-o COMPOSE_FILE] [-p PROJECT] [--logs DIR]
                          [--json | --csv] [--plot PATH.png]

Without `--logs` it copies the running stack's votes for the manifest's experiment out of the web
UI container (`docker cp`) and rates them here; the container is found as `up` and `status`
find the stack, by its Compose project (stack_state.locate); with `--logs` it reads a folder of
FastChat logs recursively (a copy of the volume, say) and needs no stack. A manifest given with
`--logs` supplies the settings (`leaderboard:`) and the model names; without one every name in
the logs counts and the defaults apply.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from python_on_whales import DockerException

from arenastack.arena import leaderboard
from arenastack.arena.ratings import Settings
from arenastack.core.files import write_atomically
from arenastack.core.problems import ManifestError
from arenastack.manifest import Manifest, load_manifest, resolve_models
from arenastack.operate import stack_state
from arenastack.render import arena_json

DEFAULT_MANIFEST = Path("compose/models.yaml")


class StackError(Exception):
    """The running stack could not be read."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="render.py leaderboard",
        description="Rate the models from the arena's votes: Bradley–Terry with 95%% bootstrap "
        "intervals, online Elo, votes and win rate.",
    )
    p.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        help=f"manifest of the experiment (default {DEFAULT_MANIFEST}; with --logs, optional)",
    )
    p.add_argument("--logs", type=Path, metavar="DIR", help="read FastChat logs from DIR instead")
    p.add_argument(
        "--board",
        choices=leaderboard.BOARDS,
        default="human",
        help="with --json, --csv or --plot: people's votes (default), an LLM judge's "
        "(render.py judge), or both together; the table shows every board there is",
    )
    # -f/--compose-file: this command's spelling before `up` and `status` shared theirs.
    stack_state.add_location_options(p, "-f", "--compose-file")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the rows as JSON")
    output.add_argument("--csv", action="store_true", help="print the rows as CSV")
    p.add_argument("--plot", type=Path, metavar="PATH.png", help="write the picture there")
    return p


def settings_of(manifest: Manifest | None) -> tuple[Settings, bool]:
    if manifest is None:
        return Settings(), False
    board = manifest.leaderboard
    settings = Settings(
        bothbad=board.bothbad,
        include_named=board.include_named,
        bootstrap_rounds=board.bootstrap_rounds,
    )
    return settings, board.identity_filter


def copy_from_stack(location: stack_state.Location, folder: str, target: Path) -> None:
    """The experiment's log folder, copied out of the stack's web UI container (found by its
    project, as `status` finds the models)."""
    try:
        docker = location.client()
        webui = stack_state.look(docker, location.project).get("webui")
        if webui is None:
            raise StackError(
                f"the stack of project {location.project!r} has no webui container: is the stack "
                "up? (`render.py up MANIFEST`; -o/-p name another stack; --logs DIR reads a copy)"
            )
        docker.container.copy((webui.id, f"{folder}/."), target)
    except DockerException as error:
        detail = (error.stderr or error.stdout or str(error)).strip().splitlines()
        raise StackError(
            f"cannot copy {folder} from the stack's webui: {detail[-1] if detail else 'failed'}; "
            "is the stack up? --logs DIR reads a copy"
        ) from None


def board_for(args: argparse.Namespace) -> tuple[leaderboard.Boards, str]:
    manifest_path = args.manifest
    if manifest_path is None and args.logs is None:
        manifest_path = DEFAULT_MANIFEST
    manifest = None
    if manifest_path is not None:
        loaded = load_manifest(manifest_path)
        if loaded.problems or loaded.manifest is None:
            raise ManifestError(loaded.problems)
        manifest = loaded.manifest
    settings, identity_filter = settings_of(manifest)
    known: list[str] | None = None
    words: list[str] = []
    if manifest is not None:
        models = resolve_models(manifest, manifest_path.resolve().parent)
        known = [m.display_name for m in models]
        words = known + [m.model.rstrip("/").rsplit("/", 1)[-1] for m in models]
    title = f"Leaderboard: {manifest.experiment}" if manifest else f"Leaderboard: {args.logs}"
    if args.logs is not None:
        board = leaderboard.compute(args.logs, settings, known, identity_filter, words)
        return board, title
    assert manifest is not None
    with tempfile.TemporaryDirectory(prefix="arenastack-votes-") as temporary:
        location = stack_state.locate(manifest, args)
        copy_from_stack(location, arena_json.logs_folder(manifest), Path(temporary))
        board = leaderboard.compute(Path(temporary), settings, known, identity_filter, words)
    return board, title


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        boards, title = board_for(args)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    board = boards.board(args.board)
    if board is None:
        print(
            f"error: no {args.board} board: no judgment (render.py judge) was found",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(leaderboard.rows_json(board))
    elif args.csv:
        print(leaderboard.rows_csv(board), end="")
    else:
        leaderboard.print_table(
            boards.human, f"{title} (people's votes)" if boards.judge else title
        )
        for name in ("judge", "combined"):
            other = boards.board(name)
            if other is not None:
                who = ", ".join(boards.judges)
                heading = "the judge's votes" if name == "judge" else "people's and the judge's"
                leaderboard.print_table(other, f"{title} ({heading}; judge {who})")
        if (line := leaderboard.agreement_line(boards)) is not None:
            print(line)
    if args.json or args.csv:
        for note in board.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.plot is not None:
        write_atomically(args.plot, leaderboard.figure_png(board, title))
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
