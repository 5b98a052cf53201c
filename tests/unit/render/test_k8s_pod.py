"""The init containers' wait (arenastack/render/k8s_pod.py), against a server of this process:
it returns once the model is fetched and its neighbour answers, and its log says what it awaits
when that changes, not at every poll."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arenastack.render import k8s_pod

REPO = "org/model"


@pytest.fixture
def neighbour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A /health that answers 503 three times, marking REPO fetched at the second, then 200."""
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(k8s_pod, "POLL_SECONDS", 0.01)
    asked = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if len(asked) == 2:
                k8s_pod.mark(REPO).parent.mkdir(parents=True, exist_ok=True)
                k8s_pod.mark(REPO).write_text("fetched\n")
            self.send_response(200 if len(asked) > 3 else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    assert asked == ["/health"] * 4


def test_wait_returns_once_fetched_and_healthy_and_says_each_change_once(
    neighbour: str, capsys: pytest.CaptureFixture[str]
) -> None:
    k8s_pod.wait(["--fetched", REPO, "--healthy", neighbour])
    assert k8s_pod.mark(REPO).is_file()
    assert capsys.readouterr().out.splitlines() == [
        f"waiting for {REPO}, {neighbour}",
        f"waiting for {neighbour}",
        "ready",
    ]
