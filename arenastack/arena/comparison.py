"""How an LLM judge's board compares with people's, and ratings with style held constant.

- `agreement`: over the pairs of models both boards have decisive votes on, the share where both
  prefer the same model, and the Spearman correlation of the two boards' ratings.
- `style_controlled`: Bradley–Terry with an answer's length and markdown (headers, list items,
  bold) as covariates, as the Chatbot Arena and Arena-Hard-Auto control for style: a model that
  wins by writing longer or with more markdown rates lower here than on the plain board. The
  covariates are differences between the two answers, normalised as Arena-Hard-Auto does (length
  `(a - b) / (a + b)`; each markdown count per token `(a - b) / (a + b + 1)`), then standardised.

numpy only: the FastChat image runs it in the leaderboard service.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from arenastack.arena.judgments import STYLE_KEYS, Judgment
from arenastack.arena.ratings import (
    ANCHOR,
    LN_BASE,
    SCALE,
    Floats,
    Leaderboard,
    Settings,
)


def agreement(human: Leaderboard, judge: Leaderboard) -> dict[str, Any]:
    shared = [m for m in human.models if m in judge.models]
    agree = compared = 0
    for n, first in enumerate(shared):
        for second in shared[n + 1 :]:
            sides = [_preference(board, first, second) for board in (human, judge)]
            if 0 not in sides:
                compared += 1
                agree += sides[0] == sides[1]
    ratings = [
        [next(r.rating for r in board.rows if r.model == m) for m in shared]
        for board in (human, judge)
    ]
    return {
        "models": shared,
        "pairs_compared": compared,
        "pairs_agreeing": agree,
        "share_agreeing": round(agree / compared, 4) if compared else None,
        "rank_correlation": _spearman(*ratings) if len(shared) >= 2 else None,
    }


def _preference(board: Leaderboard, first: str, second: str) -> int:
    """+1 where `first` won more of their decisive votes, -1 where `second` did, 0 otherwise."""
    i, j = board.models.index(first), board.models.index(second)
    fraction = board.win_fraction[i, j]
    if math.isnan(fraction) or fraction == 0.5:
        return 0
    return 1 if fraction > 0.5 else -1


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    ranks = [_average_ranks(values) for values in (x, y)]
    if min(np.std(r) for r in ranks) == 0:
        return None
    return round(float(np.corrcoef(ranks[0], ranks[1])[0, 1]), 4)


def _average_ranks(values: Sequence[float]) -> Floats:
    array = np.asarray(values, dtype=float)
    order = array.argsort()
    ranks = np.empty(len(array))
    ranks[order] = np.arange(len(array), dtype=float)
    for value in np.unique(array):  # ties share their average rank
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks


# --- style control -------------------------------------------------------------------------------


def style_features(judgment: Judgment) -> list[float] | None:
    """The covariates of one judged battle: first answer's style less the second's."""
    if judgment.style is None:
        return None
    a, b = judgment.style
    features = [(a["tokens"] - b["tokens"]) / max(a["tokens"] + b["tokens"], 1.0)]
    for key in STYLE_KEYS[1:]:
        density_a = a[key] / max(a["tokens"], 1.0)
        density_b = b[key] / max(b["tokens"], 1.0)
        features.append((density_a - density_b) / (density_a + density_b + 1.0))
    return features


def style_controlled(judgments: Sequence[Judgment], settings: Settings) -> dict[str, Any] | None:
    """Ratings (and 95 % intervals) of the models with style held constant, and what each style
    covariate is worth; None when no counted judgment carries style."""
    usable = [j for j in judgments if j.counted and j.style is not None]
    if not usable:
        return None
    models = sorted({m for j in usable for m in j.models})
    index = {m: i for i, m in enumerate(models)}
    rows, outcomes, weights = [], [], []
    for judgment in usable:
        line = np.zeros(len(models))
        line[index[judgment.models[0]]] = 1.0
        line[index[judgment.models[1]]] = -1.0
        features = style_features(judgment) or []
        # A tie is half a win each way, as on the plain board.
        for outcome, share in _results(judgment.outcome):
            rows.append([*line, *features])
            outcomes.append(outcome)
            weights.append(share * judgment.weight)
    design = np.asarray(rows)
    style = design[:, len(models) :]
    spread = style.std(axis=0)
    design[:, len(models) :] = (style - style.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    y, w = np.asarray(outcomes), np.asarray(weights)
    fitted = _logistic(design, y, w, len(models), settings.ridge)
    rng = np.random.default_rng(settings.seed)
    samples = []
    for _ in range(settings.bootstrap_rounds):
        pick = rng.integers(0, len(y), len(y))
        samples.append(_logistic(design[pick], y[pick], w[pick], len(models), settings.ridge))
    tail = (1.0 - settings.confidence) / 2
    low, high = np.quantile(np.asarray(samples), [tail, 1.0 - tail], axis=0)

    def rating(values: Floats, i: int) -> float:
        return round(float(ANCHOR + SCALE * values[i]), 2)

    order = sorted(range(len(models)), key=lambda i: -fitted[i])
    return {
        "rows": [
            {
                "rank": rank,
                "model": models[i],
                "rating": rating(fitted, i),
                "ci_low": rating(low, i),
                "ci_high": rating(high, i),
            }
            for rank, i in enumerate(order, start=1)
        ],
        "coefficients": {
            key: round(float(fitted[len(models) + k]), 4)
            for k, key in enumerate(("length", "headers", "lists", "bold"))
        },
        "judgments": len(usable),
    }


def _results(outcome: str) -> list[tuple[float, float]]:
    """(1 when the first model won, its weight) rows of one judgment."""
    if outcome == "model_a":
        return [(1.0, 1.0)]
    if outcome == "model_b":
        return [(0.0, 1.0)]
    return [(1.0, 0.5), (0.0, 0.5)]


def _logistic(design: Floats, y: Floats, w: Floats, models: int, ridge: float) -> Floats:
    """Weighted logistic regression in base 10 with a ridge (as ratings._fit), by Newton."""
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        z = LN_BASE * design @ beta
        p = 1.0 / (1.0 + np.exp(-z))
        gradient = LN_BASE * design.T @ (w * (p - y)) + ridge * beta
        hessian = LN_BASE**2 * (design.T * (w * p * (1 - p))) @ design
        hessian += (ridge + 1e-9) * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    beta[:models] -= beta[:models].mean()
    return beta
