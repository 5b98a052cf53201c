"""Lenient validation: every fault of a manifest in one run. Each round validates, reports the
errors and leaves out the fields that failed, until the rest validates or nothing is left."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from arenastack.core.problems import Problem, field_path
from arenastack.manifest.document import Manifest


@dataclass(frozen=True)
class Loaded:
    """A manifest as far as it validates: fields that failed are left out (their defaults apply)
    and listed in `pruned`, so that the checks after validation still run on the rest and every
    problem is reported in one run. `manifest` is None when nothing checkable is left."""

    manifest: Manifest | None
    problems: list[Problem]
    pruned: tuple[str, ...]  # manifest paths of the fields left out

    def derived_from_pruned(self, problem: Problem) -> bool:
        """A later check's complaint about a field that already failed validation (its default
        stood in) says nothing true about the manifest."""
        return any(problem.path == p or problem.path.startswith(p + ".") for p in self.pruned)


# Enough for any manifest: each round leaves out at least one field.
_MAX_ROUNDS = 200


def validate_leniently(data: object) -> Loaded:
    if not isinstance(data, dict):
        return Loaded(None, [Problem("", "the manifest must be a mapping with a `models` key")], ())
    data = copy.deepcopy(data)
    problems: list[Problem] = []
    pruned: list[Location] = []
    for _ in range(_MAX_ROUNDS):
        try:
            manifest = Manifest.model_validate(data)
        except ValidationError as error:
            details = error.errors(include_url=False)
        else:
            return Loaded(manifest, problems, tuple(field_path(*p) for p in pruned))
        progressed = False
        hopeless = False
        for detail in details:
            location = _location(detail["loc"])
            # Not an echo of a field already left out, nor of leaving it out (the last model
            # of `models` gone makes `models` empty).
            echo = any(location[: len(p)] == p or p[: len(location)] == location for p in pruned)
            if not echo:
                problems.append(_problem(detail))
            target = _prune_target(location, detail["type"])
            if target is None:
                # Nothing checkable remains, but the round's other errors (an unknown top-level
                # key comes after `models`) are still true: report them before stopping.
                hopeless = True
            elif _delete(data, target):
                pruned.append(target)
                progressed = True
        if hopeless or not progressed:
            break
    return Loaded(None, problems, tuple(field_path(*p) for p in pruned))


Location = tuple[str | int, ...]


def _location(loc: tuple[str | int, ...]) -> Location:
    return tuple(part for part in loc if part != "[key]")


def _prune_target(location: Location, kind: str) -> Location | None:
    """What to leave out so that the rest validates: the failing field; a whole list for one bad
    item; the entry holding a missing required field; None when nothing checkable would remain."""
    if kind == "missing":
        location = location[:-1]
    while location and isinstance(location[-1], int):
        location = location[:-1]
    if not location or location == ("models",):
        return None
    return location


def _delete(data: dict[str, Any], location: Location) -> bool:
    node: Any = data
    for part in location[:-1]:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if isinstance(node, dict) and location[-1] in node:
        del node[location[-1]]
        return True
    return False


def _problem(detail: Any) -> Problem:
    location = [str(part) for part in _location(detail["loc"])]
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = "unknown key (misspelled? the manifest reference lists the keys)"
    elif detail["loc"][0] == "models" and detail["loc"][2:] == ("[key]",):
        message = "is not a valid service name: use lowercase letters, digits, - and _"
    return Problem(field_path(*location), message)
