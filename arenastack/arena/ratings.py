"""Ratings from arena votes: Bradley–Terry with bootstrap intervals, online Elo, and counts.

The Bradley–Terry model says model i beats model j with probability
`1 / (1 + BASE ** ((R_j - R_i) / SCALE))`. The ratings maximise the likelihood of the votes with
a tie counted as half a win each way, as the Chatbot Arena's statistic does, and with the same
small ridge term as FastChat's own fit (scikit-learn's LogisticRegression with its default C = 1
over every battle written twice): `ridge / 2 · ‖β‖²` with `R = ANCHOR + SCALE · β`. With
thousands of votes the ridge moves ratings by hundredths of a point; with a handful it keeps them
finite when a model has never lost (the pure maximum-likelihood rating is then infinite). The
ridge also centres the ratings: their mean is ANCHOR.

The votes are first aggregated into counts per pair of models and outcome (a wins, b wins, tie):
the fit and each bootstrap round work on those few numbers instead of on every battle, and a
bootstrap round (resampling the battles with replacement) is one multinomial draw over the cells.
Newton's method on the counts converges in a handful of steps for all rounds at once.

Only numpy: the FastChat image runs this module in the leaderboard service.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from arenastack.arena.votelog import Battle, VoteLog

SCALE = 400.0
BASE = 10.0
ANCHOR = 1000.0
ELO_K = 4.0
# FastChat's fit: LogisticRegression(fit_intercept=False) keeps scikit-learn's default L2 penalty.
FASTCHAT_RIDGE = 1.0
LN_BASE = math.log(BASE)

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Settings:
    """How votes become ratings; the defaults suit a private arena."""

    # A "both are bad" vote: a tie (FastChat's choice) or left out of every count.
    bothbad: Literal["tie", "exclude"] = "tie"
    # Votes cast with the names showing (side-by-side tab) are biased; counted apart by default.
    include_named: bool = False
    bootstrap_rounds: int = 100
    seed: int = 42
    ridge: float = FASTCHAT_RIDGE
    confidence: float = 0.95


@dataclass(frozen=True)
class PairCounts:
    """Outcome counts per pair of models: `wins[i, j]` votes where i beat j, `ties[i, j]` ties."""

    models: list[str]
    wins: Floats
    ties: Floats

    @classmethod
    def from_battles(
        cls, battles: Sequence[Battle], models: Sequence[str] | None = None
    ) -> PairCounts:
        names = list(models) if models is not None else _models_of(battles)
        index = {name: i for i, name in enumerate(names)}
        size = len(names)
        wins = np.zeros((size, size))
        ties = np.zeros((size, size))
        for battle in battles:
            a, b = index[battle.model_a], index[battle.model_b]
            if battle.winner == "model_a":
                wins[a, b] += 1
            elif battle.winner == "model_b":
                wins[b, a] += 1
            else:
                ties[a, b] += 1
                ties[b, a] += 1
        return cls(names, wins, ties)

    @property
    def battles(self) -> Floats:
        """Battles between each pair (either order, any outcome)."""
        return self.wins + self.wins.T + self.ties


def _models_of(battles: Sequence[Battle]) -> list[str]:
    return sorted({b.model_a for b in battles} | {b.model_b for b in battles})


# --- Bradley–Terry -------------------------------------------------------------------------------


def _pairs(size: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    first, second = np.triu_indices(size, k=1)
    return first, second


def _cells(counts: PairCounts) -> Floats:
    """Per unordered pair (i < j): [i won, j won, tie] — the cells a bootstrap resamples."""
    i, j = _pairs(len(counts.models))
    return np.stack([counts.wins[i, j], counts.wins[j, i], counts.ties[i, j]], axis=-1)


def _fit(cells: Floats, size: int, ridge: float) -> Floats:
    """β maximising the penalised likelihood, for a batch of cell counts (rounds × pairs × 3).

    Each battle counts twice, as in FastChat's fit (a tie as one win each way), so that `ridge`
    weighs the same against the data as scikit-learn's C = 1 does there.
    """
    i, j = _pairs(size)
    rounds = cells.shape[0]
    successes = 2 * cells[..., 0] + cells[..., 2]  # i over j
    failures = 2 * cells[..., 1] + cells[..., 2]
    trials = successes + failures
    incidence = np.zeros((len(i), size))
    incidence[np.arange(len(i)), i] = 1.0
    incidence[np.arange(len(i)), j] = -1.0
    penalty = max(ridge, 0.0)
    # Without a ridge the ratings are defined only up to a constant: pin their mean instead.
    pin = 1e-9 if penalty == 0 else 0.0
    beta = np.zeros((rounds, size))

    def objective(b: Floats) -> Floats:
        z = LN_BASE * (b @ incidence.T)
        data = successes * np.logaddexp(0.0, -z) + failures * np.logaddexp(0.0, z)
        return np.asarray(data.sum(axis=1) + 0.5 * penalty * (b * b).sum(axis=1))

    current = objective(beta)
    for _ in range(100):
        z = LN_BASE * (beta @ incidence.T)
        p = 1.0 / (1.0 + np.exp(-z))
        slope = LN_BASE * (trials * p - successes)
        gradient = slope @ incidence + penalty * beta
        weight = LN_BASE**2 * trials * p * (1.0 - p)
        hessian = np.einsum("pa,rp,pb->rab", incidence, weight, incidence)
        hessian += (penalty + pin) * np.eye(size)
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        # Damped Newton: halve the step where it does not lower the objective.
        scale = np.ones(rounds)
        for _ in range(30):
            trial = beta - scale[:, None] * step
            value = objective(trial)
            worse = value > current + 1e-12 * np.abs(current)
            if not worse.any():
                break
            scale[worse] /= 2
        beta, current = trial, value
        if penalty == 0:
            beta -= beta.mean(axis=1, keepdims=True)
        if np.abs(scale[:, None] * step).max() < 1e-10:
            break
    return beta


def bradley_terry(counts: PairCounts, ridge: float = FASTCHAT_RIDGE) -> Floats:
    """Ratings in the order of `counts.models`."""
    size = len(counts.models)
    if size == 0:
        return np.zeros(0)
    fitted: Floats = ANCHOR + SCALE * _fit(_cells(counts)[None], size, ridge)[0]
    return fitted


def bootstrap(counts: PairCounts, rounds: int, seed: int, ridge: float = FASTCHAT_RIDGE) -> Floats:
    """Ratings of `rounds` resamples of the battles (rounds × models); same seed, same table."""
    size = len(counts.models)
    cells = _cells(counts)
    total = int(cells.sum().round())
    if size == 0 or rounds == 0 or total == 0:
        return np.full((rounds, size), ANCHOR)
    rng = np.random.default_rng(seed)
    flat = cells.reshape(-1)
    draws = rng.multinomial(total, flat / flat.sum(), size=rounds).astype(np.float64)
    return ANCHOR + SCALE * _fit(draws.reshape(rounds, *cells.shape), size, ridge)


# --- Elo ----------------------------------------------------------------------------------------


def online_elo(battles: Sequence[Battle], models: Sequence[str], k: float = ELO_K) -> Floats:
    """Elo updated vote by vote in the order given (a tie scores half)."""
    index = {name: i for i, name in enumerate(models)}
    rating = np.full(len(models), ANCHOR)
    for battle in battles:
        a, b = index[battle.model_a], index[battle.model_b]
        expected_a = 1.0 / (1.0 + BASE ** ((rating[b] - rating[a]) / SCALE))
        score_a = {"model_a": 1.0, "model_b": 0.0}.get(battle.winner, 0.5)
        rating[a] += k * (score_a - expected_a)
        rating[b] += k * ((1.0 - score_a) - (1.0 - expected_a))
    return rating


# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    rank: int
    model: str
    rating: float
    ci_low: float
    ci_high: float
    elo: float
    votes: int
    wins: int
    losses: int
    ties: int
    win_rate: float


@dataclass
class Leaderboard:
    rows: list[Row]
    models: list[str]  # in rank order, as the matrices are
    win_fraction: Floats  # [i, j]: share of the decisive votes between i and j that i won
    battle_count: Floats  # [i, j]: votes between i and j, ties included
    settings: Settings
    anonymous_votes: int = 0
    named_votes: int = 0
    counted_votes: int = 0
    bothbad_votes: int = 0
    last_vote: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def matrix(values: Floats) -> list[list[float | None]]:
            return [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in values]

        return {
            "rows": [row.__dict__ for row in self.rows],
            "models": self.models,
            "win_fraction": matrix(self.win_fraction),
            "battle_count": [[int(v) for v in row] for row in self.battle_count],
            "anonymous_votes": self.anonymous_votes,
            "named_votes": self.named_votes,
            "counted_votes": self.counted_votes,
            "bothbad_votes": self.bothbad_votes,
            "last_vote": self.last_vote,
            "notes": self.notes,
            "settings": self.settings.__dict__,
        }


def select(battles: Sequence[Battle], settings: Settings) -> list[Battle]:
    """The battles the ratings count: anonymous ones (and named ones if asked), both-bad by rule."""
    return [
        b
        for b in battles
        if (b.anonymous or settings.include_named)
        and not (b.winner == "bothbad" and settings.bothbad == "exclude")
    ]


def leaderboard(log: VoteLog | Sequence[Battle], settings: Settings | None = None) -> Leaderboard:
    """The whole table from what the vote reader found; an empty table when nothing counts."""
    settings = settings or Settings()
    battles = log.battles if isinstance(log, VoteLog) else list(log)
    used = select(battles, settings)
    counts = PairCounts.from_battles(used)
    ratings = bradley_terry(counts, settings.ridge)
    samples = bootstrap(counts, settings.bootstrap_rounds, settings.seed, settings.ridge)
    tail = (1.0 - settings.confidence) / 2
    if len(samples):
        low, high = np.quantile(samples, [tail, 1.0 - tail], axis=0)
    else:
        low = high = ratings
    elo = online_elo(used, counts.models)
    wins = counts.wins.sum(axis=1)
    losses = counts.wins.sum(axis=0)
    ties = counts.ties.sum(axis=1)
    total = wins + losses + ties
    order = sorted(range(len(counts.models)), key=lambda i: (-ratings[i], counts.models[i]))
    rows = [
        Row(
            rank=rank,
            model=counts.models[i],
            rating=round(float(ratings[i]), 2),
            ci_low=round(float(low[i]), 2),
            ci_high=round(float(high[i]), 2),
            elo=round(float(elo[i]), 2),
            votes=int(total[i]),
            wins=int(wins[i]),
            losses=int(losses[i]),
            ties=int(ties[i]),
            win_rate=round(float(wins[i] / total[i]), 4) if total[i] else 0.0,
        )
        for rank, i in enumerate(order, start=1)
    ]
    decisive = counts.wins + counts.wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(decisive > 0, counts.wins / decisive, np.nan)
    board = Leaderboard(
        rows=rows,
        models=[counts.models[i] for i in order],
        win_fraction=fraction[np.ix_(order, order)],
        battle_count=counts.battles[np.ix_(order, order)],
        settings=settings,
        anonymous_votes=sum(b.anonymous for b in battles),
        named_votes=sum(not b.anonymous for b in battles),
        counted_votes=len(used),
        bothbad_votes=sum(b.winner == "bothbad" for b in battles),
        last_vote=max((b.tstamp for b in battles), default=None),
    )
    if isinstance(log, VoteLog):
        board.notes.extend(log.messages())
    if board.named_votes and not settings.include_named:
        board.notes.append(f"{board.named_votes} side-by-side votes (names shown) are not counted")
    if not used:
        board.notes.append("no votes to count yet")
    return board
