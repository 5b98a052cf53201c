#!/usr/bin/env python3
"""Our ratings beside FastChat 0.2.36's own, on the same battles, in one Python process.

FastChat's `fastchat/serve/monitor/elo_analysis.py` imports torch and transformers (through
`fastchat.model`), and its Bradley–Terry fit needs scikit-learn: the FastChat image has all of
them. Run on a host, this script runs itself there, with the repository mounted at /src so the
image uses this checkout's `arenastack` package:

    python tools/fastchat_reference.py [--image TAG] compare BATTLES.json    # JSON of both
    python tools/fastchat_reference.py [--image TAG] compare --synthetic 4000 --models 8
    python tools/fastchat_reference.py [--image TAG] benchmark [--battles 5000 --rounds 100]

`compare` prints {"ours": {...}, "theirs": {...}}, each with `bt` (Bradley–Terry ratings) and
`elo` (online Elo) per model. `benchmark` times FastChat's path (its fit on the battles, 100
bootstrap rounds of it, online Elo — `report_elo_analysis_results` without its plots) against ours
(`arenastack.ratings.leaderboard`: the same three, plus counts) and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = "arenastack/fastchat:0.2.36"
# FastChat's name for each of our outcomes.
WINNERS = {"model_a": "model_a", "model_b": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}


def synthetic(battles: int, models: int, seed: int = 0) -> list[dict[str, Any]]:
    """Battles between models of known strength: ties 15 %, both-bad 5 %, uneven pairings."""
    import numpy as np

    rng = np.random.default_rng(seed)
    strength = np.linspace(-250, 250, models)
    popularity = rng.uniform(0.5, 2.0, models)
    found = []
    for t in range(battles):
        a, b = rng.choice(models, 2, replace=False, p=popularity / popularity.sum())
        p_a = 1 / (1 + 10 ** ((strength[b] - strength[a]) / 400))
        draw = rng.random()
        if draw < 0.15:
            winner = "tie"
        elif draw < 0.20:
            winner = "bothbad"
        else:
            winner = "model_a" if rng.random() < p_a else "model_b"
        found.append(
            {"tstamp": 1.7e9 + t, "model_a": f"model-{a}", "model_b": f"model-{b}",
             "winner": winner}
        )  # fmt: skip
    return found


def theirs(battles: list[dict[str, Any]], rounds: int = 0) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from fastchat.serve.monitor.elo_analysis import (
        compute_elo,
        compute_elo_mle_with_tie,
        get_bootstrap_result,
    )

    frame = pd.DataFrame(
        [{**b, "winner": WINNERS[b["winner"]], "anony": True} for b in battles]
    ).sort_values("tstamp", kind="stable")
    np.random.seed(42)  # as their elo_analysis main does
    started = time.perf_counter()
    elo = compute_elo(frame)
    bt = compute_elo_mle_with_tie(frame)
    if rounds:
        get_bootstrap_result(frame, compute_elo_mle_with_tie, num_round=rounds)
    seconds = time.perf_counter() - started
    return {
        "bt": {k: float(v) for k, v in bt.items()},
        "elo": {k: float(v) for k, v in elo.items()},
        "seconds": seconds,
    }


def ours(battles: list[dict[str, Any]], rounds: int = 0) -> dict[str, Any]:
    from arenastack.arena.ratings import Settings, leaderboard
    from arenastack.arena.votelog import Battle

    started = time.perf_counter()
    parsed = [Battle(b["tstamp"], b["model_a"], b["model_b"], b["winner"], True) for b in battles]
    board = leaderboard(parsed, Settings(bootstrap_rounds=rounds))
    seconds = time.perf_counter() - started
    return {
        "bt": {row.model: row.rating for row in board.rows},
        "elo": {row.model: row.elo for row in board.rows},
        "seconds": seconds,
    }


def _in_image(argv: list[str], image: str, mounts: list[Path]) -> int:
    """Run this script again inside the FastChat image, this checkout mounted at /src."""
    volumes = ["-v", f"{REPO}:/src:ro"]
    for path in mounts:
        volumes += ["-v", f"{path.resolve()}:{path.resolve()}:ro"]
    command = [
        "docker", "run", "--rm", "--network", "none", *volumes, "-w", "/src",
        "-e", "PYTHONPATH=/src", "-e", "ARENASTACK_IN_IMAGE=1", image,
        "python3", "tools/fastchat_reference.py", *argv,
    ]  # fmt: skip
    return subprocess.run(command, check=False).returncode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"default {DEFAULT_IMAGE}")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="both ratings of the battles in a JSON file")
    compare.add_argument("battles", type=Path, nargs="?", help="JSON list of battles")
    compare.add_argument("--synthetic", type=int, metavar="N", help="or N synthetic battles")
    compare.add_argument("--models", type=int, default=8, help="of this many models")
    bench = commands.add_parser("benchmark", help="time both on synthetic battles")
    bench.add_argument("--battles", type=int, default=5000)
    bench.add_argument("--models", type=int, default=8)
    bench.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    if not os.environ.get("ARENASTACK_IN_IMAGE"):
        mounts = [args.battles] if args.command == "compare" and args.battles else []
        rest = list(argv)
        if "--image" in rest:
            at = rest.index("--image")
            del rest[at : at + 2]
        rest = [a for a in rest if not a.startswith("--image=")]
        return _in_image(rest, args.image, mounts)
    if args.command == "compare":
        if args.synthetic:
            battles = synthetic(args.synthetic, args.models, seed=3)
        else:
            battles = json.loads(args.battles.read_text())
        print(json.dumps({"theirs": theirs(battles), "ours": ours(battles)}))
        return 0
    battles = synthetic(args.battles, args.models)
    mine = ours(battles, args.rounds)
    reference = theirs(battles, args.rounds)
    cpus = len(os.sched_getaffinity(0))
    print(
        json.dumps(
            {
                "battles": args.battles, "models": args.models, "rounds": args.rounds,
                "cpus": cpus, "ours_s": round(mine["seconds"], 3),
                "fastchat_s": round(reference["seconds"], 2),
                "speedup": round(reference["seconds"] / mine["seconds"], 1),
                "max_bt_difference": round(max(
                    abs(mine["bt"][m] - reference["bt"][m]) for m in reference["bt"]), 4),
            }
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
