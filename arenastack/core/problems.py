"""Problems found in a manifest, each tied to the manifest path of the field that causes it.

Every check in the package reports through these types so that the command line can print one
line per problem (`models.phi3.gpu_memory_utilization: ...`) and exit with status 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(Exception):
    """The manifest cannot be rendered; `problems` says why, field by field."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def field_path(*parts: str | int) -> str:
    return ".".join(str(p) for p in parts)


class RendererBug(Exception):
    """What the renderer produced breaks the Compose specification: a bug in arenastack, never
    the manifest's fault. The command line says so, with its own exit status."""

    def __init__(self, details: Iterable[str]) -> None:
        self.details = list(details)
        super().__init__("\n".join(self.details))
