"""vLLM's sleep mode, as the service calls it over HTTP.

Read in vLLM's own source (the 0.8.2 wheel's `vllm/entrypoints/openai/api_server.py`; the 0.32.0
wheel's `vllm/entrypoints/serve/dev/sleep/api_router.py`, registered by
`vllm/entrypoints/launchers/api_server/routers.py` only when `VLLM_SERVER_DEV_MODE` is set):

- `POST /sleep?level=N` (level 1 or 2; 0.32 also takes `mode`, default `abort`, which aborts
  the requests the engine is running: the reason the policy never puts a busy model to sleep);
- `POST /wake_up` (0.32 also takes `tags`; without them everything wakes);
- `GET /is_sleeping` → `{"is_sleeping": bool}`;
- `GET /health` → 200, or 503 once the engine is dead.

The bodies of /sleep and /wake_up changed between versions (empty in 0.8.2, JSON in 0.32), so
only their status is read, and a wake is believed when /is_sleeping says false.
"""

from __future__ import annotations

import httpx


class SleepModeError(Exception):
    """A sleep-mode call did not do what it should; the message says what happened."""


async def healthy(client: httpx.AsyncClient, url: str, timeout_s: float) -> bool:
    try:
        response = await client.get(f"{url}/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def is_sleeping(client: httpx.AsyncClient, url: str) -> bool:
    response = await _call(client, "GET", f"{url}/is_sleeping")
    try:
        answer = response.json()["is_sleeping"]
    except (ValueError, KeyError, TypeError) as error:
        raise SleepModeError(f"GET /is_sleeping answered {response.text[:200]!r}") from error
    if not isinstance(answer, bool):
        raise SleepModeError(f"GET /is_sleeping answered {response.text[:200]!r}")
    return answer


async def sleep(client: httpx.AsyncClient, url: str, level: int) -> None:
    await _call(client, "POST", f"{url}/sleep", params={"level": str(level)})


async def wake_up(client: httpx.AsyncClient, url: str) -> None:
    await _call(client, "POST", f"{url}/wake_up")
    if await is_sleeping(client, url):
        raise SleepModeError("POST /wake_up answered, but GET /is_sleeping still says true")


async def _call(
    client: httpx.AsyncClient, method: str, url: str, params: dict[str, str] | None = None
) -> httpx.Response:
    path = httpx.URL(url).path
    try:
        response = await client.request(method, url, params=params)
    except httpx.TimeoutException as error:
        raise SleepModeError(f"{method} {path}: no answer in time ({error!r})") from error
    except httpx.HTTPError as error:
        raise SleepModeError(f"{method} {path}: {type(error).__name__}: {error}") from error
    if response.status_code != 200:
        body = response.text[:200]
        raise SleepModeError(f"{method} {path} answered {response.status_code}: {body!r}")
    return response
