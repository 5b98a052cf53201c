"""tests/images.py: two runs on one host never build the same image at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests import images


def waits_for_flock(path: Path) -> bool:
    """Whether someone waits for the flock on `path`: /proc/locks lists a waiter as
    `N: -> FLOCK ADVISORY WRITE pid major:minor:inode start end`."""
    inode = path.stat().st_ino if path.exists() else None
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "->" and fields[2] == "FLOCK" and int(fields[6].split(":")[2]) == inode:
            return True
    return False


class RecordingEngine:
    """Stands in for the engine: records builds, and holds each one open until released."""

    def __init__(self) -> None:
        self.builds: list[list[str]] = []
        self.building = 0
        self.overlapped = False
        self.started = threading.Event()
        self.release = threading.Event()

    def client(self, compose_files: list[Path]) -> Any:
        """What DockerClient(compose_files=...) returns: `.compose.build`, `.image.exists`."""
        return type("Client", (), {"compose": self, "image": self})()

    def exists(self, tag: str) -> bool:
        return any(tag == f"img-{s}" for build in self.builds for s in build)

    def build(self, services: list[str]) -> None:
        self.building += 1
        self.overlapped |= self.building > 1
        self.started.set()
        self.release.wait(timeout=30)
        self.builds.append(services)
        self.building -= 1


def test_a_second_run_waits_for_the_first_build_and_builds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = RecordingEngine()
    monkeypatch.setattr(images, "BUILT", tmp_path / "built-images.json")
    monkeypatch.setattr(images, "DockerClient", engine.client)
    monkeypatch.setattr(images, "recipes", lambda _: {"img-vllm": ("vllm", "digest-1")})
    results: dict[str, list[str]] = {}

    def run(name: str) -> None:
        results[name] = images.build_stale_images(tmp_path / "compose.yml")

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert engine.started.wait(timeout=30)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    # Wait on state: the second run queued on the lock (the kernel lists it as a waiter), or,
    # without a lock, building beside the first.
    lock = (tmp_path / "built-images.json").with_suffix(".lock")
    deadline = time.monotonic() + 60
    while not (waits_for_flock(lock) or engine.overlapped) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waits_for_flock(lock) or engine.overlapped, "the second run never reached the lock"
    engine.release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert not engine.overlapped
    assert engine.builds == [["vllm"]]
    assert results == {"first": ["img-vllm"], "second": []}
