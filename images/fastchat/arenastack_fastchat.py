"""Start FastChat's web UI so that every registered model gets only the system prompt it asks for.

FastChat 0.2.36 picks a conversation template by matching the model's display name against its
model adapters. Names it does not know fall through to `one_shot`, whose system prompt ("A chat
between a curious human and an artificial intelligence assistant. ...") is then sent to the API
with every conversation; names that merely contain "qwen", "vicuna", "stablelm", ... get that
family's prompt. This launcher puts one adapter in front of all others that claims the models of
api_endpoints.json and gives them an empty system prompt, or the `system_prompt` their entry
carries (a key FastChat itself ignores), then runs FastChat's own entry point unchanged.
With ARENASTACK_ARENA naming the experiment's arena.json, the page is the experiment's
(arenastack_arena: texts, model descriptions, the live Leaderboard tab, nothing from other hosts).
The vote buttons, once enabled after a reply, stay enabled (`steady_vote_buttons`), and the
arena's API draws battles before any page was loaded (`battles_before_any_page_load`):

    python -m arenastack_fastchat gradio_web_server_multi --register-api-endpoint-file F [flags]
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any

import arenastack_arena
from fastchat.conversation import (
    Conversation,
    SeparatorStyle,
    get_conv_template,
    register_conv_template,
)
from fastchat.model import model_adapter
from fastchat.serve import gradio_block_arena_anony, gradio_block_arena_named
from fastchat.serve.gradio_web_server import enable_btn

UIS = ("gradio_web_server_multi", "gradio_web_server")
TEMPLATE = "arenastack-plain"


class RegisteredModelAdapter(model_adapter.BaseModelAdapter):  # type: ignore[misc]
    """Claims the display names of api_endpoints.json (FastChat also tries their basenames)."""

    def __init__(self, system_prompts: dict[str, str]) -> None:
        self.system_prompts = system_prompts
        self.names = set(system_prompts) | {
            os.path.basename(os.path.normpath(n)) for n in system_prompts
        }

    def match(self, model_path: str) -> bool:
        return model_path in self.names

    def get_default_conv_template(self, model_path: str) -> Conversation:
        conversation = get_conv_template(TEMPLATE)
        conversation.set_system_message(self.system_prompts.get(model_path, ""))
        return conversation


def endpoint_file(flags: list[str]) -> str:
    for position, flag in enumerate(flags):
        if flag == "--register-api-endpoint-file" and position + 1 < len(flags):
            return flags[position + 1]
        if flag.startswith("--register-api-endpoint-file="):
            return flag.split("=", 1)[1]
    raise SystemExit("arenastack_fastchat: --register-api-endpoint-file is required")


def install(system_prompts: dict[str, str]) -> None:
    # Roles and separators matter only for local prompts; API models get a list of messages.
    register_conv_template(
        Conversation(
            name=TEMPLATE,
            system_message="",
            roles=("user", "assistant"),
            sep_style=SeparatorStyle.ADD_COLON_SINGLE,
            sep="\n",
        )
    )
    model_adapter.model_adapters.insert(0, RegisteredModelAdapter(system_prompts))
    model_adapter.get_model_adapter.cache_clear()


def enable_buttons() -> list[Any]:
    """The four vote buttons, regenerate and clear: FastChat's order in both arena tabs."""
    return [enable_btn] * 6


def steady_vote_buttons() -> None:
    """FastChat "flashes" the buttons after each reply: four updates 0.3 s apart that disable
    the vote buttons, enable them, then disable and enable them again. The browser drops a click
    on a disabled button, so a vote cast during the flash is lost without a word; under load the
    updates arrive late and bunched, and the live test lost a browser vote in two runs of four.
    The buttons are enabled once instead. The tabs look the function up when they are built."""
    gradio_block_arena_anony.flash_buttons = enable_buttons
    gradio_block_arena_named.flash_buttons = enable_buttons


def battles_before_any_page_load() -> None:
    """FastChat's arena draws each battle's pair from a module-level list that only a browser's
    page load fills (`load_demo`). A script calling the arena's API before anyone opened the
    page gets numpy's "a must be greater than 0" from `add_text`: the live load test lost its
    first ten API battles that way while the browser's page was slow to load. The list is
    filled when the tab is built, from the models it is built with."""
    build = gradio_block_arena_anony.build_side_by_side_ui_anony

    def build_with_models(models: list[str], *args: Any, **kwargs: Any) -> Any:
        gradio_block_arena_anony.models = list(models)
        return build(models, *args, **kwargs)

    gradio_block_arena_anony.build_side_by_side_ui_anony = build_with_models


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in UIS:
        raise SystemExit(
            f"usage: python -m arenastack_fastchat {{{','.join(UIS)}}} [FastChat flags]"
        )
    ui, flags = argv[0], argv[1:]
    with open(endpoint_file(flags), encoding="utf-8") as stream:
        endpoints = json.load(stream)
    install({name: entry.get("system_prompt") or "" for name, entry in endpoints.items()})
    steady_vote_buttons()
    battles_before_any_page_load()
    arena = arenastack_arena.load_arena()
    if arena is not None:
        arenastack_arena.install(arena)
        if ui == "gradio_web_server_multi":
            flags += arenastack_arena.leaderboard_flags(arena)
    sys.argv = [ui, *flags]
    runpy.run_module(f"fastchat.serve.{ui}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
