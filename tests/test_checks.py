"""Every bad manifest under fixtures/bad/ is rejected before anything is written.

Each file states what it must produce in header comments:
    # expect: <text of one error line, starting with the manifest path of the field>
    # args: <command-line arguments; default --gpus 1x80@8.0>
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

    errors = capsys.readouterr().err.splitlines()
    assert status == 2
    assert errors, "a rejected manifest says why"
    assert all(line.startswith(("error: ", "warning: ")) for line in errors), errors
    for expected in header(path, "expect"):
        assert any(expected in line for line in errors), f"{expected!r} not in {errors}"
    assert output.read_bytes() == before
    assert list(tmp_path.iterdir()) == [output], "no temporary file is left behind"
