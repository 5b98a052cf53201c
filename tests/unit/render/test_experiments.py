"""Experiments: each manifest's votes in its own folder; the leaderboard service and its config;
`render.py leaderboard` on a folder of logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack import cli
from arenastack.arena.leaderboard_service import update
from arenastack.render.pipeline import compose_text, prepare
from tests import images
from tests.conftest import REPO

CPU_MANIFEST = REPO / "compose" / "cpu.yaml"


def render_with(tmp_path: Path, name: str, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(CPU_MANIFEST.read_text())
    for key, value in changes.items():
        data[key] = value
    manifest = tmp_path / name
    manifest.write_text(yaml.safe_dump(data))
    output = tmp_path / "docker-compose.yml"
    document = yaml.safe_load(compose_text(prepare(manifest), output))
    assert isinstance(document, dict)
    return document


def arena_of(document: dict[str, Any]) -> dict[str, Any]:
    config = json.loads(document["configs"]["arena"]["content"].replace("$$", "$"))
    assert isinstance(config, dict)
    return config


def test_experiment_defaults_to_the_file_stem(tmp_path: Path) -> None:
    document = render_with(tmp_path, "june-run.yaml")
    assert document["services"]["webui"]["environment"]["LOGDIR"] == "/logs/june-run"
    arena = arena_of(document)
    assert (arena["experiment"], arena["logs"]) == ("june-run", "/logs/june-run")
    assert arena["title"] == "Arena: june-run"
    assert arena["result"] == "/logs/june-run/leaderboard"
    service = document["services"]["leaderboard"]
    assert service["image"] == document["services"]["webui"]["image"]
    assert service["volumes"] == document["services"]["webui"]["volumes"]
    assert "ports" not in service and "depends_on" not in service


def test_experiment_title_and_description_from_the_manifest(tmp_path: Path) -> None:
    webui = {"title": "Which small model?", "description": "Qwen vs SmolLM on $HOME"}
    document = render_with(tmp_path, "x.yaml", experiment="small-2026.1", webui=webui)
    arena = arena_of(document)
    assert arena["experiment"] == "small-2026.1"
    assert (arena["title"], arena["description"]) == (webui["title"], webui["description"])
    assert [m["name"] for m in arena["models"]] and all(m["source"] for m in arena["models"])


@pytest.mark.parametrize("name", ["../up", ".hidden", "a/b", "", "x" * 64])
def test_unsafe_experiment_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(Exception, match="experiment"):
        render_with(tmp_path, "ok.yaml", experiment=name)


def test_an_unsafe_file_name_asks_for_the_field(tmp_path: Path, capsys: Any) -> None:
    manifest = tmp_path / "my models.yaml"
    manifest.write_text(CPU_MANIFEST.read_text())
    assert cli.main([str(manifest), "-o", str(tmp_path / "out.yml")]) == 2
    assert "error: experiment: not set, and the manifest's file name 'my models'" in (
        capsys.readouterr().err
    )


def test_leaderboard_service_can_be_turned_off(tmp_path: Path) -> None:
    off = render_with(tmp_path, "a.yaml", leaderboard={"enabled": False})
    assert "leaderboard" not in off["services"]
    single = render_with(tmp_path, "b.yaml", webui={"mode": "single"})
    assert "leaderboard" not in single["services"]


def vote_line(kind: str, a: str, b: str, t: float) -> str:
    states = [
        {"model_name": n, "conv_id": "c", "offset": 0, "messages": [["U", "q"], ["A", "r"]]}
        for n in (a, b)
    ]
    return json.dumps({"tstamp": t, "type": kind, "models": ["", ""], "states": states}) + "\n"


def test_service_writes_the_experiment_alone_and_reports_older_votes(tmp_path: Path) -> None:
    volume = tmp_path / "logs"
    (volume / "one").mkdir(parents=True)
    (volume / "two").mkdir()
    (volume / "one" / "2026-11-25-conv.json").write_text(
        vote_line("leftvote", "A", "B", 1) + vote_line("tievote", "A", "B", 2)
    )
    (volume / "two" / "2026-11-25-conv.json").write_text(vote_line("rightvote", "C", "D", 3))
    (volume / "2026-11-01-conv.json").write_text(vote_line("leftvote", "A", "B", 0))
    arena = {
        "experiment": "one",
        "title": "t",
        "models": [{"name": "A", "source": "x/a"}, {"name": "B", "source": "./b"}],
        "volume": str(volume),
        "logs": str(volume / "one"),
        "result": str(volume / "one" / "leaderboard"),
        "leaderboard": {"bootstrap_rounds": 20},
    }
    written = update(arena)
    on_disk = json.loads((volume / "one" / "leaderboard" / "leaderboard.json").read_text())
    assert on_disk["rows"] == written["rows"]
    assert {r["model"]: r["votes"] for r in on_disk["rows"]} == {"A": 2, "B": 2}
    assert on_disk["legacy_votes"] == 1 and on_disk["experiment"] == "one"
    assert any("predate experiments" in note for note in on_disk["notes"])


def test_cli_reads_a_folder_of_logs(tmp_path: Path, capsys: Any) -> None:
    logs = tmp_path / "copy" / "deep"
    logs.mkdir(parents=True)
    (logs / "2026-11-25-conv.json").write_text(
        vote_line("leftvote", "A", "B", 1) + vote_line("leftvote", "A", "C", 2) + "{trunc"
    )
    picture = tmp_path / "board.png"
    assert cli.main(["leaderboard", "--logs", str(tmp_path / "copy"), "--json",
                     "--plot", str(picture)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert rows[0]["model"] == "A"
    assert {r["model"]: r["votes"] for r in rows} == {"A": 2, "B": 1, "C": 1}
    assert "not JSON" in captured.err
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert cli.main(["leaderboard", "--logs", str(tmp_path / "copy"), "--csv"]) == 0
    assert capsys.readouterr().out.startswith("rank,model,rating")
    assert cli.main(["leaderboard", "--logs", str(tmp_path / "empty")]) == 0
    assert "no conversation logs" in capsys.readouterr().out


def test_cli_without_a_stack_says_so(tmp_path: Path, capsys: Any) -> None:
    code = cli.main(
        ["leaderboard", str(CPU_MANIFEST), "-f", str(tmp_path / "missing.yml"), "--json"]
    )
    assert code == 1
    assert "is the stack up?" in capsys.readouterr().err


def test_the_fastchat_image_is_built_from_the_repository_s_own_arena_package() -> None:
    """No copies: the FastChat image's context is the repository's root, and of it Docker sends
    the arena and residency packages, the core modules they import, and the image's own
    folder."""
    document = render_with_default_output()
    build = document["services"]["controller"]["build"]
    assert (build["context"], build["dockerfile"]) == (".", "images/fastchat/Dockerfile")
    sent = {p.relative_to(REPO).as_posix() for p in images.sent_files(REPO)}
    for name in ("arena", "residency"):
        package = {
            p.relative_to(REPO).as_posix() for p in (REPO / "arenastack" / name).glob("*.py")
        }
        assert package <= sent, name
    assert {"arenastack/__init__.py", "arenastack/core/files.py"} <= sent
    assert "arenastack/core/problems.py" in sent
    outside = {
        path
        for path in sent
        if not path.startswith(("arenastack/arena/", "arenastack/residency/", "images/fastchat/"))
        and path not in {".dockerignore", "arenastack/__init__.py"}
        and not path.startswith("arenastack/core/")
    }
    assert not outside, f"the FastChat image's context sends more than it copies: {outside}"
    assert not any("__pycache__" in path or path.startswith(".venv") for path in sent)
    # The service runs the package by its module path, which the image's PYTHONPATH resolves.
    assert "arenastack.arena.leaderboard_service" in document["services"]["leaderboard"]["command"]


def render_with_default_output() -> dict[str, Any]:
    """The CPU manifest rendered as `python render.py compose/cpu.yaml` writes it."""
    document = yaml.safe_load(compose_text(prepare(CPU_MANIFEST), REPO / "docker-compose.yml"))
    assert isinstance(document, dict)
    return document
