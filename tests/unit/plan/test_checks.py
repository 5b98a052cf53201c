"""Every bad manifest under fixtures/bad/ is rejected before anything is written.

Each file states what it must produce in header comments:
    # expect: <the start of one error line: the manifest path of the field, then the message>
    # args: <command-line arguments; default --gpus 1x80@8.0>
The error lines printed must be exactly the expected ones, one each: a missing line or an extra
one (a check that wrongly fires) fails the test.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from arenastack import cli
from tests.conftest import FIXTURES

BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


def header(path: Path, key: str) -> list[str]:
    prefix = f"# {key}:"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]


def test_there_are_many_distinct_bad_manifests() -> None:
    assert len(BAD) >= 25
    assert all(header(path, "expect") for path in BAD), "every bad manifest says what to expect"


@pytest.mark.parametrize("path", BAD, ids=lambda path: path.stem)
def test_bad_manifest_fails_with_field_path_and_keeps_previous_output(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "docker-compose.yml"
    output.write_bytes(b"# the previous render\nservices: {}\n")
    before = output.read_bytes()
    args = header(path, "args")
    extra = shlex.split(args[0]) if args else ["--gpus", "1x80@8.0"]

    status = cli.main([str(path), "-o", str(output), *extra])

    lines = capsys.readouterr().err.splitlines()
    assert status == 2
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), lines
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    assert matches(header(path, "expect"), errors), f"expected {header(path, 'expect')}"
    assert output.read_bytes() == before
    assert list(tmp_path.iterdir()) == [output], "no temporary file is left behind"


def matches(expected: list[str], errors: list[str]) -> bool:
    """Each error line starts with its own expected text, and there is no other error line."""
    unmatched = list(errors)
    for start in expected:
        line = next((line for line in unmatched if line.startswith(start)), None)
        if line is None:
            return False
        unmatched.remove(line)
    return not unmatched


def test_matching_fails_on_an_extra_or_a_missing_line() -> None:
    assert matches(["a.b: x"], ["a.b: x y"])
    assert not matches(["a.b: x"], ["a.b: x y", "models: every model is disabled"])
    assert not matches(["a.b: x", "c: y"], ["a.b: x y"])
    assert not matches(["a.b: x", "a.b: x"], ["a.b: x y"])
