"""Where a judge run meets the stack: the endpoints the contestants and the judge answer on, and
the experiment's vote folder the judgments go to.

Contestants answer through the stack's own endpoints: the gateway when it is on (with its master
key, from the shell or the `.env` beside the compose file), else each model's server (its
published port, or its container's address). The judgments are appended, one line at a time and
flushed to disk, to `<judge>-judge.jsonl` in the experiment's folder of the logs volume, beside
the human votes: inside the web UI's container (`docker exec`), or in a local copy (`--logs`).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenastack.arena.judgments import JUDGE_FILE_SUFFIX, judged_battles, judgment_files
from arenastack.core.problems import ManifestError, Problem
from arenastack.gateway.checks import master_key
from arenastack.manifest import Manifest, Model
from arenastack.operate import stack_state
from arenastack.render import arena_json

REQUEST_TIMEOUT_S = 600


# What a gateway or a server answers while it is briefly unable to (a timeout, a restart, a full
# queue): worth asking again. Anything else (a bad request, a wrong key) fails at once.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class EndpointError(Exception):
    """A request to a model failed; `transient` when asking again may succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat endpoint and the model name it is asked for."""

    base_url: str  # ends in /v1
    model: str
    key: str | None = None

    def chat(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float
    ) -> tuple[str, dict[str, int]]:
        """The reply's text and its token usage."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
                reply: dict[str, Any] = json.load(answer)
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise EndpointError(
                f"{self.model}: HTTP {error.code} {detail}", error.code in TRANSIENT_STATUS
            ) from None
        except TimeoutError as error:  # REQUEST_TIMEOUT_S is long already: not again
            raise EndpointError(f"{self.model}: {error}") from None
        except OSError as error:  # refused, reset, closed before the answer
            raise EndpointError(f"{self.model}: {error}", transient=True) from None
        except ValueError as error:
            raise EndpointError(f"{self.model}: {error}") from None
        try:
            text = str(reply["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.model}: no reply in {str(reply)[:200]}") from None
        usage = reply.get("usage") or {}
        return text, {
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        }


def model_endpoints(
    manifest: Manifest, models: list[Model], location: stack_state.Location
) -> dict[str, Endpoint]:
    """Display name → where that model answers, through the gateway when the stack has one."""
    if manifest.gateway.enabled:
        host = stack_state.host_of(manifest.gateway.bind_address or manifest.bind_address)
        base = f"http://{host}:{manifest.gateway.port}/v1"
        key = master_key(location.compose_file.parent / ".env")
        return {m.display_name: Endpoint(base, m.served_model_name, key) for m in models}
    containers = stack_state.look(location.client(), location.project)
    found = {}
    for model in models:
        address = stack_state.server_address(manifest, model, containers.get(model.service))
        if address is None:
            raise ManifestError(
                [
                    Problem(
                        model.path_of("port"),
                        f"{model.service} is neither published nor running here: is the stack "
                        "up? (a published port, or its container's address, is how it is asked)",
                    )
                ]
            )
        found[model.display_name] = Endpoint(f"{address}/v1", model.served_model_name)
    return found


def file_name(judge: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", judge).strip("-.") + JUDGE_FILE_SUFFIX


class FolderJournal:
    """Judgments in a local folder (a copy of the experiment's logs)."""

    def __init__(self, folder: Path, judge: str) -> None:
        self.path = folder / file_name(judge)
        self.judge = judge
        self.lock = threading.Lock()

    def judged(self) -> set[str]:
        return judged_battles(judgment_files(self.path.parent), self.judge)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_line(str(self.path), line)

    @property
    def where(self) -> str:
        return str(self.path)


def append_line(path: str, line: str) -> None:
    """Append one whole line and flush it to disk. A line cut short (a run killed while its
    `docker exec` was writing) is not written; a file left ending mid-line gets its line ended
    first, so that one broken record never swallows the next."""
    if not line.endswith("\n"):
        raise ValueError("a line cut short")
    # a+: every write goes to the end, and the last byte can be read on the same handle.
    with open(path, "a+b") as stream:
        if stream.seek(0, os.SEEK_END) > 0:
            stream.seek(-1, os.SEEK_END)
            if stream.read(1) != b"\n":
                stream.write(b"\n")
        stream.write(line.encode("utf-8"))
        stream.flush()
        os.fsync(stream.fileno())


# Run in the web UI's container, which has Python but not this package's judge module: append
# stdin (one line, as append_line does) to the file; or print the file.
APPEND = (
    "import os, sys; p = sys.argv[1]; os.makedirs(os.path.dirname(p), exist_ok=True)\n"
    + inspect.getsource(append_line)
    + "append_line(p, sys.stdin.read())"
)
READ = (
    "import sys\ntry:\n    print(open(sys.argv[1], encoding='utf-8').read(), end='')\n"
    "except OSError:\n    pass"
)


class StackJournal:
    """Judgments in the experiment's folder of the logs volume, through the web UI container."""

    def __init__(self, manifest: Manifest, location: stack_state.Location, judge: str) -> None:
        docker = location.client()
        webui = stack_state.look(docker, location.project).get("webui")
        if webui is None or webui.status != "running":
            raise ManifestError(
                [
                    Problem(
                        "webui",
                        f"the stack of project {location.project!r} has no running webui "
                        "container, whose volume keeps the votes: is the stack up? (--logs DIR "
                        "writes the judgments to a folder instead)",
                    )
                ]
            )
        self.exec = [*docker.client_config.docker_cmd, "exec", "-i", webui.id]
        self.path = f"{arena_json.logs_folder(manifest)}/{file_name(judge)}"
        self.judge = judge
        self.lock = threading.Lock()

    def _run(self, script: str, text: str = "") -> str:
        command = [*self.exec, "python3", "-c", script, self.path]
        result = subprocess.run(command, input=text, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise EndpointError(f"cannot reach {self.path} in the webui container: {result.stderr}")
        return result.stdout

    def judged(self) -> set[str]:
        with TemporaryCopy(self._run(READ)) as copy:
            return judged_battles([copy], self.judge)

    def append(self, record: dict[str, Any]) -> None:
        with self.lock:
            self._run(APPEND, json.dumps(record, ensure_ascii=False) + "\n")

    @property
    def where(self) -> str:
        return f"webui:{self.path}"


class TemporaryCopy:
    """The text in a temporary `*-judge.jsonl` file, for the judgment reader."""

    def __init__(self, text: str) -> None:
        import tempfile

        handle, name = tempfile.mkstemp(suffix=JUDGE_FILE_SUFFIX)
        os.close(handle)
        self.path = Path(name)
        self.path.write_text(text, encoding="utf-8")

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
