"""The residency config: what it accepts, and errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from arenastack.residency import __main__ as command
from arenastack.residency.config import Config, ConfigError, ModelConfig, load, parse

EXAMPLE: dict[str, Any] = {
    "awake_per_gpu": 2,
    "sleep_level": 1,
    "wake_timeout_s": 60,
    "models": {
        "a": {"url": "http://tiny-a:8000/", "gpu": "0", "names": ["a-served", "Display A"]},
        "b": {"url": "http://tiny-b:8000", "gpu": "1", "names": ["b-served"], "wave": 1},
    },
}


def test_the_example_is_read_into_frozen_dataclasses() -> None:
    config = parse(EXAMPLE)
    assert config.models == (
        ModelConfig("a", "http://tiny-a:8000", "0", ("a-served", "Display A")),
        ModelConfig("b", "http://tiny-b:8000", "1", ("b-served",), wave=1),
    )
    assert (config.awake_per_gpu, config.sleep_level, config.wake_timeout_s) == (2, 1, 60.0)
    assert config.models[0].served_name == "a-served"
    assert {n: m.key for n, m in config.routes().items()} == {
        "a-served": "a",
        "Display A": "a",
        "b-served": "b",
    }
    with pytest.raises(AttributeError):
        config.awake_per_gpu = 3  # type: ignore[misc]


def test_what_is_left_out_takes_the_dataclass_defaults() -> None:
    minimal = {"awake_per_gpu": 1, "models": EXAMPLE["models"]}
    assert parse(minimal) == Config(models=parse(EXAMPLE).models, awake_per_gpu=1)


def changed(path: str, value: Any) -> dict[str, Any]:
    """EXAMPLE with the field at the dotted `path` set to `value` (deleted for DELETE)."""
    data = copy.deepcopy(EXAMPLE)
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("awake_per_gpu", DELETE, "awake_per_gpu: required"),
        ("awake_per_gpu", 0, "awake_per_gpu: must be a whole number ≥ 1, not 0"),
        ("awake_per_gpu", 1.5, "awake_per_gpu: must be a whole number ≥ 1, not 1.5"),
        ("awake_per_gpu", True, "awake_per_gpu: must be a whole number ≥ 1, not true"),
        ("sleep_level", 3, "sleep_level: must be 1 or 2"),
        ("wake_timeout_s", -1, "wake_timeout_s: must be a number of seconds > 0, not -1"),
        ("wake_timeout_s", "60", 'wake_timeout_s: must be a number of seconds > 0, not "60"'),
        ("read_timeout_s", 0, "read_timeout_s: must be null (no timeout) or a number"),
        ("awake", 2, "awake: unknown field"),
        ("models", DELETE, "models: required"),
        ("models", {}, "models: required"),
        ("models.a", "http://tiny-a:8000", "models.a: must be an object"),
        ("models.a.gpu", 0, 'models.a.gpu: must be a string such as "0", not 0'),
        ("models.a.url", "tiny-a:8000", 'models.a.url: must be an http(s) URL, not "tiny-a:8000"'),
        ("models.a.url", DELETE, "models.a.url: must be an http(s) URL, not null"),
        ("models.a.names", [], "models.a.names: must be a list of names"),
        ("models.a.names", ["ok", ""], "models.a.names: must be a list of names"),
        ("models.a.port", 8000, "models.a.port: unknown field"),
        ("models.a.wave", -1, "models.a.wave: must be a whole number ≥ 0, not -1"),
        ("models.a.wave", "1", 'models.a.wave: must be a whole number ≥ 0, not "1"'),
        ("models.b.names", ["Display A"], 'models.b.names: "Display A" is already a name of a'),
    ],
)
def test_a_fault_is_reported_with_its_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(changed(path, value))
    assert any(str(p).startswith(message) for p in caught.value.problems), caught.value


def test_every_fault_is_reported_at_once() -> None:
    data = changed("sleep_level", 0) | {"extra": 1}
    data["models"]["b"]["gpu"] = 1
    with pytest.raises(ConfigError) as caught:
        parse(data)
    assert [p.path for p in caught.value.problems] == ["extra", "sleep_level", "models.b.gpu"]
    assert str(caught.value).splitlines()[0] == "residency config:"


def test_a_file_that_cannot_be_read_or_is_not_json_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not JSON"):
        load(broken)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(EXAMPLE), encoding="utf-8")
    assert load(good) == parse(EXAMPLE)


def test_the_command_line_prints_the_faults_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "residency.json"
    config.write_text(json.dumps(changed("models.a.gpu", 0)), encoding="utf-8")
    assert command.main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert f"{config}:" in error and "models.a.gpu" in error
