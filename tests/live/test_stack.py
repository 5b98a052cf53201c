"""The running stack, checked the way a user would use it. Tests run in file order: read-only
checks first, then the browser, then fault and swap, and teardown last."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
import yaml
from openai import OpenAI
from playwright.sync_api import expect
from python_on_whales import DockerException

from arenastack.core.services import GATEWAY_PORT, VLLM_PORT, WEBUI_PORT
from arenastack.gateway.litellm import HEALTH_PATH
from arenastack.render.pipeline import prepare
from tests.live import vote_buttons
from tests.live.conftest import LIVE, MANIFEST, RUN, SCREENSHOTS, SWAP_MANIFEST, Stack, _epoch
from tests.live.keep_alive import Connection, idle_then_ask

pytestmark = pytest.mark.live

MODELS = ["tiny-a", "tiny-b", "tiny-q"]
DISPLAY = {"tiny-a": "Tiny A", "tiny-b": "Tiny B", "tiny-q": "Tiny Qwen"}


def client(stack: Stack, service: str) -> OpenAI:
    return OpenAI(base_url=stack.url(service, VLLM_PORT) + "/v1", api_key="none", timeout=120)


def chat(stack: Stack, service: str, prompt: str = "Hello! How are you today?") -> str:
    reply = client(stack, service).chat.completions.create(
        model=service, messages=[{"role": "user", "content": prompt}], max_tokens=16
    )
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize("service", MODELS)
def test_model_lists_its_name_and_answers(stack: Stack, service: str) -> None:
    assert [m.id for m in client(stack, service).models.list()] == [service]
    assert chat(stack, service).strip()


def test_web_ui_answered_as_soon_as_up_returned(stack: Stack) -> None:
    assert stack.report.figures["webui_status_right_after_up"] == 200


@pytest.mark.parametrize("service", MODELS)
def test_logs_hold_one_model_only(stack: Stack, service: str) -> None:
    logs = stack.logs(service)
    assert f"/models/{service}" in logs, "its own start-up lines"
    assert "KV cache size" in logs and "Application startup complete" in logs
    for other in set(MODELS) - {service}:
        assert f"/models/{other}" not in logs
        assert f"{other}-1 " not in logs


def test_co_located_models_start_one_after_another(stack: Stack) -> None:
    """tiny-b waits for tiny-a's healthcheck, which passes only once tiny-a serves; tiny-q has
    a slot of its own and starts while tiny-a is still loading."""
    a_serving = stack.logged("tiny-a", "Application startup complete")
    # Each container's first start, read when the stack was up (a later test restarts tiny-b).
    b_start, q_start, a_start = (stack.first_started[s] for s in ("tiny-b", "tiny-q", "tiny-a"))
    assert b_start >= a_serving, "tiny-b shares slot 0 with tiny-a and waits for it"
    assert q_start < a_serving, "tiny-q has slot 1 to itself and does not wait"
    stack.report.figures["tiny_a_start_to_serving_s"] = round(a_serving - a_start, 1)
    # The chain's latency: tiny-a's healthcheck seeing it serve, then Compose starting tiny-b.
    stack.report.figures["tiny_b_start_after_tiny_a_serving_s"] = round(b_start - a_serving, 2)
    # What the earlier figure included: tiny-b's imports before its first log line.
    stack.report.figures["tiny_b_first_log_after_start_s"] = round(
        stack.logged("tiny-b") - b_start, 2
    )
    stack.report.figures["tiny_q_start_minus_tiny_a_start_s"] = round(q_start - a_start, 2)


def test_servers_keep_an_idle_connection_open_longer_than_clients_pool_it(stack: Stack) -> None:
    """vLLM (VLLM_HTTP_TIMEOUT_KEEP_ALIVE) and the gateway (--keepalive_timeout): a connection
    idle past uvicorn's 5 s still carries a request. With the default, LiteLLM's pool sent a
    judge's request on a connection tiny-b was closing, and the battle failed."""
    connections = {
        "tiny-a": Connection(stack.url("tiny-a", VLLM_PORT), "/health"),
        "gateway": Connection(stack.url("gateway", GATEWAY_PORT), HEALTH_PATH),
    }
    assert {name: c.first for name, c in connections.items()} == {"tiny-a": 200, "gateway": 200}
    assert idle_then_ask(connections) == {"tiny-a": "200", "gateway": "200"}


@pytest.mark.parametrize("service", MODELS)
def test_kv_cache_size_agrees_with_the_planner(stack: Stack, service: str) -> None:
    """vLLM states its KV cache in tokens; the planner's bytes per token times that count must
    give back the KV space the manifest set (1 GiB), within 10 %."""
    logs = stack.logs(service)
    match = re.search(r"KV cache size: ([0-9,]+) tokens", logs)
    assert match, "vLLM logs its KV cache size"
    tokens = int(match.group(1).replace(",", ""))
    entry = next(e for e in prepare(stack.manifest).plan.entries if e.model.service == service)
    assert entry.kv_bytes_per_token and entry.kv_cache_bytes
    ratio = tokens * entry.kv_bytes_per_token / entry.kv_cache_bytes
    stack.report.figures[f"{service}_kv_tokens_vllm"] = tokens
    stack.report.figures[f"{service}_kv_tokens_planner"] = entry.kv_tokens
    assert 0.9 <= ratio <= 1.1, f"vLLM {tokens} tokens vs planner {entry.kv_tokens}"


# --- the browser ---------------------------------------------------------------------------

# A bound on two replies of up to 1,024 tokens from CPU servers on a loaded 2-core machine; the
# tests wait on the page's state and return as soon as it is reached.
GENERATION_TIMEOUT_MS = 300_000


def open_ui(stack: Stack, browser):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(180_000)
    page.goto(stack.url("webui", WEBUI_PORT))
    # The tabs become clickable once the page's start-up call (the model list) has returned.
    page.get_by_role("tab", name="Direct Chat").and_(page.locator(":enabled")).wait_for()
    settle(page)
    return page


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until no component shows gradio's loading status (its overlay swallows clicks, and
    the page's start-up call selects the first tab when it returns)."""
    expect(page.locator(".wrap.default:not(.hide)")).to_have_count(0, timeout=180_000)


def pick(page, dropdown, name: str) -> None:  # type: ignore[no-untyped-def]
    """Choose a model. Choosing fires FastChat's `clear_history` on the server; it must have run
    before a prompt is sent, or it can wipe the replies after they arrived (gradio runs a
    session's events concurrently). So wait for the event to be queued, then for no component to
    show a pending status."""
    dropdown.click()
    # The options of this dropdown: the list in its nearest enclosing block.
    block = dropdown.locator("xpath=ancestor::*[.//ul[@role='listbox']][1]")
    # Every option's text starts with a check mark (shown only on the selected one).
    option = block.get_by_role("option").filter(
        has_text=re.compile(rf"^[✓\s]*{re.escape(name)}\s*$")
    )
    with page.expect_response(lambda r: "/queue/join" in r.url and r.request.method == "POST"):
        option.click()
    page.keyboard.press("Escape")
    settle(page)


def send(page, prompt: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_placeholder("👉 Enter your prompt and press ENTER").locator("visible=true")
    box.fill(prompt)
    box.press("Enter")


def bot_replies(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The last reply in each visible chat pane (Model A, Model B)."""
    panes = page.locator("#chatbot").locator("visible=true")
    replies = []
    for index in range(panes.count()):
        reply = panes.nth(index).locator("[data-testid='bot']").last
        reply.wait_for()
        replies.append(reply.inner_text())
    return replies


def wait_for_votes(page) -> None:  # type: ignore[no-untyped-def]
    # FastChat enables the vote buttons once both replies are complete.
    vote = page.get_by_role("button", name="👈  A is better").locator("visible=true")
    expect(vote).to_be_enabled(timeout=GENERATION_TIMEOUT_MS)


def test_side_by_side_gets_replies_from_two_chosen_models(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(stack, browser)
    tab = page.get_by_role("tab", name="Arena (side-by-side)")
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    settle(page)
    chosen = ["Tiny Qwen", "Tiny B"]
    dropdowns = page.locator("input[role='listbox']").locator("visible=true")
    dropdowns.first.wait_for()
    assert dropdowns.count() == 2
    for index, name in enumerate(chosen):
        pick(page, dropdowns.nth(index), name)
    assert [dropdowns.nth(i).input_value() for i in range(2)] == chosen
    send(page, "Write a short poem about the sea")
    wait_for_votes(page)
    replies = bot_replies(page)
    page.screenshot(path=SCREENSHOTS / "side-by-side.png", full_page=True)
    assert len(replies) == 2 and all(reply.strip() for reply in replies), replies
    chats = [r for r in conversation_log(stack) if r.get("type") == "chat"]
    assert {r["model"] for r in chats[-2:]} == set(chosen)


def test_arena_battle_gets_two_replies_and_a_vote(stack: Stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = open_ui(stack, browser)
    vote_buttons.watch(page)
    send(page, "What is the capital of France?")
    wait_for_votes(page)
    replies = bot_replies(page)
    assert len(replies) == 2 and all(reply.strip() for reply in replies), replies
    page.screenshot(path=SCREENSHOTS / "battle-replies.png", full_page=True)
    page.get_by_role("button", name="👈  A is better").locator("visible=true").click()
    revealed = page.locator("#model_selector_md").locator("visible=true")
    revealed.first.get_by_text("Model A:").wait_for()
    names = "\n".join(revealed.all_inner_texts())
    page.screenshot(path=SCREENSHOTS / "battle-vote.png", full_page=True)
    shown = re.findall(r"Model [AB]: (.+)", names)
    assert len(shown) == 2 and set(shown) <= set(DISPLAY.values()), names
    assert vote_buttons.history(page) == vote_buttons.ONE_VOTE
    votes = [r for r in conversation_log(stack) if r.get("type") == "leftvote"]
    assert votes, "the vote is recorded in the conversation log on the volume"
    assert {state["model_name"] for state in votes[-1]["states"]} == set(shown)


def test_votes_survive_a_new_web_ui_container(stack: Stack) -> None:
    """Conversations and votes are user data: they live on the arena-logs volume, not in the
    container (`docker compose down` keeps the volume; only `down -v` removes it)."""
    before = [r for r in conversation_log(stack) if r.get("type") == "leftvote"]
    old = stack.container_id("webui")
    stack.docker.compose.rm(services=["webui"], stop=True)
    stack.docker.compose.up(services=["webui"], detach=True, wait=True, pull="never")
    assert stack.container_id("webui") != old
    after = [r for r in conversation_log(stack) if r.get("type") == "leftvote"]
    assert before and after == before


def conversation_log(stack: Stack) -> list[dict[str, Any]]:
    text = stack.exec("webui", ["sh", "-c", "cat /logs/live/*-conv.json"])
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_registered_models_get_no_system_prompt(stack: Stack) -> None:
    """FastChat's generic `one_shot` prompt ("A chat between a curious human ...") must not be
    sent: the launcher gives every registered model an empty one unless the manifest sets it."""
    chats = [record for record in conversation_log(stack) if record.get("type") == "chat"]
    assert chats, "the browser tests chatted"
    for record in chats:
        state = record["state"]
        assert isinstance(state, dict)
        assert state["template_name"] == "arenastack-plain"
        assert state["system_message"] == ""


# --- fault and swap ------------------------------------------------------------------------

KILL_ENGINE = (
    "import os, signal\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "    except OSError:\n"
    "        continue\n"
    "    if b'EngineCore' in cmdline:\n"
    "        os.kill(int(pid), signal.SIGKILL)\n"
    "        print('killed', pid)\n"
)


def kill_engine(stack: Stack, service: str) -> None:
    """Kill vLLM's engine process: the server exits with it, taking this exec down with it
    (status 137), and Docker restarts the container."""
    try:
        output = stack.exec(service, ["python3", "-c", KILL_ENGINE])
    except DockerException as error:
        output = str(error.stdout)
    assert "killed" in output, output


def wait_until_restarted_and_healthy(stack: Stack, service: str, restarts_before: int) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 600:
        # One inspection: restart count and health must describe the same moment.
        now = stack.inspect(service)
        restarted = now["RestartCount"] > restarts_before
        if restarted and now["State"].get("Health", {}).get("Status") == "healthy":
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"{service} did not come back healthy within 10 minutes")


def test_crashed_engine_comes_back_while_the_others_keep_answering(stack: Stack) -> None:
    before = stack.inspect("tiny-b")["RestartCount"]
    kill_engine(stack, "tiny-b")

    failures: list[str] = []
    answered = {"tiny-a": 0, "tiny-q": 0}
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            for service in answered:
                try:
                    assert chat(stack, service, "Hello!").strip()
                    answered[service] += 1
                except Exception as error:  # any failure of a healthy model counts
                    failures.append(f"{service}: {error}")
            time.sleep(1)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        recovered_s = wait_until_restarted_and_healthy(stack, "tiny-b", before)
    finally:
        done.set()
        asker.join()
    assert chat(stack, "tiny-b").strip()
    assert not failures, failures
    assert all(count > 0 for count in answered.values()), answered
    stack.report.figures["tiny_b_crash_to_healthy_s"] = round(recovered_s, 1)
    stack.report.figures["answers_from_others_during_recovery"] = answered


def test_swap_recreates_only_the_changed_model_and_builds_nothing(stack: Stack) -> None:
    ids = {service: stack.container_id(service) for service in stack.services}
    images = {image.id for image in stack.docker.image.list()}
    RUN.render(SWAP_MANIFEST)
    try:
        started = time.monotonic()
        stack.docker.compose.up(detach=True, wait=True, wait_timeout=600, pull="never")
        stack.report.figures["swap_up_s"] = round(time.monotonic() - started, 1)
        changed = {s for s in stack.services if stack.container_id(s) != ids[s]}
        assert changed == {"tiny-q"}
        assert {image.id for image in stack.docker.image.list()} == images, "nothing was built"
        command = stack.inspect("tiny-q")["Config"]["Cmd"]
        assert command[command.index("--max-num-seqs") + 1] == "8"
        assert chat(stack, "tiny-q").strip()
    finally:
        RUN.render(stack.manifest.parent / "manifest.yaml")


def test_a_slot_set_to_start_together_starts_together(stack: Stack) -> None:
    """planner.start: parallel: tiny-b no longer waits for tiny-a, its neighbour in slot 0. Both
    containers made anew start at once: tiny-b's starts before tiny-a serves, read from the
    engine's own start times and log timestamps (not from how long anything took)."""
    data = yaml.safe_load(MANIFEST.read_text())
    data["planner"] = {"start": "parallel"}
    source = LIVE / f".run-{RUN.project}-parallel-source.yaml"
    source.write_text(yaml.safe_dump(data, sort_keys=False))
    RUN.render(source)
    try:
        depends = yaml.safe_load(RUN.compose_file.read_text())["services"]["tiny-b"]["depends_on"]
        assert set(depends) == {"fetch-models"}
        stack.docker.compose.rm(services=["tiny-a", "tiny-b"], stop=True)
        stack.docker.compose.up(
            services=["tiny-a", "tiny-b"], detach=True, wait=True, wait_timeout=600, pull="never"
        )
        started = {s: _epoch(stack.inspect(s)["State"]["StartedAt"]) for s in ("tiny-a", "tiny-b")}
        serving = {s: stack.logged(s, "Application startup complete") for s in started}
        assert started["tiny-b"] < serving["tiny-a"] and started["tiny-a"] < serving["tiny-b"]
        stack.report.figures["parallel_slot_start_apart_s"] = round(
            abs(started["tiny-b"] - started["tiny-a"]), 2
        )
        stack.report.figures["parallel_slot_both_serving_after_s"] = round(
            max(serving.values()) - min(started.values()), 1
        )
        assert chat(stack, "tiny-b").strip() and chat(stack, "tiny-a").strip()
    finally:
        RUN.render(MANIFEST)


def test_teardown_leaves_nothing_of_the_project(stack: Stack) -> None:
    stack.docker.compose.down(volumes=True, remove_orphans=True)
    label = f"com.docker.compose.project={stack.project}"
    assert stack.docker.container.list(all=True, filters=[("label", label)]) == []
    assert stack.docker.network.list(filters=[("label", label)]) == []
    assert stack.docker.volume.list(filters=[("label", label)]) == []
    assert not [v for v in stack.docker.volume.list() if stack.project in v.name]


def test_screenshots_were_kept(stack: Stack) -> None:
    assert {p.name for p in SCREENSHOTS.glob("*.png")} >= {
        "side-by-side.png", "battle-replies.png", "battle-vote.png"
    }  # fmt: skip
