"""The arena page of this experiment, not of LMSYS: texts, model descriptions, leaderboard tab.

FastChat 0.2.36 builds its page with the public Chatbot Arena's texts (its title, "We collect
200K+ human votes", links to LMSYS's blog and Discord, terms of service about Bard), sponsor
logos from storage.googleapis.com, a script from cdnjs.cloudflare.com, and gradio's default
theme loads its fonts from fonts.googleapis.com. `install(arena)` replaces, before FastChat's
entry point runs:

- the texts: the experiment's title and description from arena.json (rendered from the
  manifest), FastChat's rules kept, our own terms, no third-party links or images;
- the model descriptions: name, hub id or local path, context length, GPU and fraction;
- the Leaderboard tab: it reads the table and picture the leaderboard service writes to the logs
  volume and reloads them by itself (gr.Timer), so a vote shows up within `refresh_seconds`
  twice over; it never computes anything, and never raises;
- the theme's fonts with the system's, and the page head without external scripts;

so the page loads nothing from any host but its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import jinja2

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_PNG = "leaderboard.png"
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "Consolas", "monospace"]
TABLE_HEADERS = ["Rank", "Model", "Rating", "95% CI", "Elo", "Votes", "Win rate"]

ARENA_RULES = """## 📜 Rules
- Ask any question to two anonymous models and vote for the better one!
- You can continue chatting until you identify a winner.
- Vote won't be counted if model identity is revealed during conversation.

## 🏆 [Leaderboard](?leaderboard)
The **Leaderboard** tab ranks the models from the votes of this experiment.

## 👇 Chat now!
"""
SIDE_BY_SIDE_RULES = """## 📜 Rules
- Chat with any two models side-by-side and vote!
- You can continue chatting for multiple rounds.
- Click "Clear history" to start a new round.

Votes cast here, with the names showing, are counted apart from the anonymous arena's.

## 🤖 Choose two models to compare
"""
TERMS = """### Terms of use
This arena runs on its operator's own machines. Conversations and votes are stored there, in the
experiment's folder of the arena's logs, and nowhere else. The models may produce wrong or
offensive text; do not enter personal or confidential data.
"""


def load_arena() -> dict[str, Any] | None:
    path = os.environ.get("ARENASTACK_ARENA")
    if not path or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        arena: dict[str, Any] = json.load(stream)
    return arena


def heading(arena: dict[str, Any]) -> str:
    return f"# ⚔️ {arena['title']}\n\n{arena.get('description', '')}\n"


def model_descriptions(arena: dict[str, Any], names: list[str]) -> str:
    known = {model["name"]: model for model in arena.get("models", [])}
    lines = ["| model | weights | context | runs on |", "|---|---|---|---|"]
    for name in names:
        model = known.get(name)
        if model is None:
            lines.append(f"| {name} | | | |")
            continue
        context = f"{model['context']:,} tokens" if model.get("context") else "model default"
        lines.append(f"| **{name}** | `{model['source']}` | {context} | {model['placement']} |")
    return "\n".join(lines) + "\n"


def about(arena: dict[str, Any]) -> str:
    models = ", ".join(model["name"] for model in arena.get("models", []))
    return (
        f"# About this arena\n\n{heading(arena)}\n"
        f"Experiment **{arena['experiment']}** compares {models}. Its conversations and votes "
        f"are kept in `{arena['logs']}` on the arena's logs volume.\n\n"
        "The leaderboard fits a Bradley–Terry model to the anonymous votes (ratings on the "
        "Elo scale, 1000 on average; a tie counts as half a win each way), with 95% intervals "
        "from a bootstrap, and shows online Elo (K = 4) beside it.\n\n"
        "Built with FastChat and vLLM.\n"
    )


# --- the leaderboard tab ---------------------------------------------------------------------


class Result:
    """The service's last result, read again only when the file changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stamp: tuple[int, int] | None = None
        self.document: dict[str, Any] | None = None
        self.problem = ""

    def read(self) -> dict[str, Any] | None:
        path = self.folder / LEADERBOARD_JSON
        try:
            status = path.stat()
            stamp = (status.st_mtime_ns, status.st_size)
            if stamp != self.stamp:
                self.document = json.loads(path.read_text(encoding="utf-8"))
                self.stamp = stamp
            self.problem = ""
        except FileNotFoundError:
            self.problem = "The leaderboard service has not written a table yet."
        except (OSError, ValueError) as error:
            self.problem = f"The leaderboard could not be read ({error}); showing the last one."
        return self.document


def table_rows(document: dict[str, Any] | None) -> list[list[Any]]:
    if not document:
        return []
    return [
        [
            row["rank"],
            row["model"],
            round(row["rating"]),
            f"+{row['ci_high'] - row['rating']:.0f}/-{row['rating'] - row['ci_low']:.0f}",
            round(row["elo"]),
            row["votes"],
            f"{row['win_rate']:.0%}",
        ]
        for row in document.get("rows", [])
    ]


def status_text(result: Result, document: dict[str, Any] | None) -> str:
    lines = []
    if document:
        updated = time.strftime("%H:%M:%S", time.localtime(document.get("updated", 0)))
        lines.append(f"{document.get('summary', '')}. Updated {updated}.")
        lines += [f"- {note}" for note in document.get("notes", [])]
    if result.problem:
        lines.append(result.problem)
    return "\n".join(lines) or "No votes yet."


def judge_text(document: dict[str, Any] | None) -> str:
    """What the judge's and the combined boards are, and how far people and the judge agree."""
    if not document or "judge" not in document:
        return "No judge has voted yet (`render.py judge`)."
    judges = ", ".join(document.get("judges", []))
    lines = [f"Judge {judges}: {document['judge'].get('summary', '')}."]
    lines += [f"- {note}" for note in document["judge"].get("notes", [])]
    shared = document.get("agreement")
    if shared and shared.get("pairs_compared"):
        share = shared.get("share_agreeing")
        # A paragraph of its own: right after the notes' list it would read as their last item.
        lines.append(
            f"\nPeople and the judge agree on {shared['pairs_agreeing']} of "
            f"{shared['pairs_compared']} pairs ({share:.0%})"
            + (
                f"; rank correlation {shared['rank_correlation']:+.2f}."
                if shared.get("rank_correlation") is not None
                else "."
            )
        )
    return "\n".join(lines)


def build_leaderboard_tab(arena: dict[str, Any]) -> None:
    result = Result(Path(arena["result"]))
    refresh = float(arena.get("leaderboard", {}).get("refresh_seconds", 10))

    def safe_document() -> dict[str, Any] | None:
        try:
            return result.read()
        except Exception as error:  # the tab must never break the page
            result.problem = f"The leaderboard could not be read: {error}"
            return result.document

    def status() -> str:
        return status_text(result, safe_document())

    def rows() -> list[list[Any]]:
        return table_rows(safe_document())

    def picture() -> str | None:
        # gradio serves files from its working directory or the temp dir only: copy it there.
        try:
            source = result.folder / LEADERBOARD_PNG
            status = source.stat()
            target = Path(tempfile.gettempdir()) / f"arenastack-{status.st_mtime_ns}.png"
            if not target.exists():
                shutil.copyfile(source, target)
                for older in target.parent.glob("arenastack-*.png"):
                    if older != target:
                        older.unlink(missing_ok=True)
            return str(target)
        except OSError:
            return None

    timer = gr.Timer(refresh)
    gr.Markdown(f"## 🏆 Leaderboard: {arena['title']}", elem_id="arenastack_leaderboard_title")
    gr.Markdown(status, every=timer, elem_id="arenastack_leaderboard_status")
    gr.Dataframe(
        rows,
        every=timer,
        headers=TABLE_HEADERS,
        datatype=["number", "str", "number", "str", "number", "number", "str"],
        interactive=False,
        wrap=True,
        elem_id="arenastack_leaderboard_table",
    )

    gr.Image(
        picture,
        every=timer,
        type="filepath",
        interactive=False,
        show_label=False,
        show_download_button=False,
        elem_id="arenastack_leaderboard_plot",
    )

    def judge_rows() -> list[list[Any]]:
        return table_rows((safe_document() or {}).get("judge"))

    def combined_rows() -> list[list[Any]]:
        return table_rows((safe_document() or {}).get("combined"))

    gr.Markdown("### 🧑‍⚖️ An LLM judge's votes, and both together")
    gr.Markdown(lambda: judge_text(safe_document()), every=timer, elem_id="arenastack_judge_status")
    for rows_of, elem_id in ((judge_rows, "judge"), (combined_rows, "combined")):
        gr.Dataframe(
            rows_of,
            every=timer,
            headers=TABLE_HEADERS,
            datatype=["number", "str", "number", "str", "number", "number", "str"],
            interactive=False,
            wrap=True,
            label="the judge's votes" if elem_id == "judge" else "people's and the judge's votes",
            elem_id=f"arenastack_{elem_id}_table",
        )


# --- installing it into FastChat -------------------------------------------------------------

# gradio 4.44's page template loads iframeResizer from cdnjs.cloudflare.com and preconnects to
# Google's font hosts; the page works without them.
EXTERNAL_TAG = re.compile(
    r"<(?:link|script)\b[^>]*\b(?:href|src)=\"https?://[^\"]*\"[^>]*>(?:\s*</script>)?"
)


def own_origin_only(html: str) -> str:
    return EXTERNAL_TAG.sub("", html)


class OwnOriginLoader(jinja2.BaseLoader):
    """gradio's template loader, with every tag that would fetch from another host removed."""

    def __init__(self, inner: jinja2.BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        source, filename, uptodate = self.inner.get_source(environment, template)
        return own_origin_only(source), filename, uptodate


def _local_fonts_theme(original: Any) -> Any:
    def theme(**settings: Any) -> Any:
        settings.setdefault("font", SYSTEM_FONTS)
        settings.setdefault("font_mono", SYSTEM_MONO_FONTS)
        return original(**settings)

    return theme


def _rebrand(demo: Any, arena: dict[str, Any]) -> None:
    """FastChat writes its notices inline in the functions that build each tab: replace them."""
    demo.head = None  # FastChat's head loads html2canvas from cdnjs.cloudflare.com
    demo.title = arena["title"]
    for block in demo.blocks.values():
        if not isinstance(block, gr.Markdown) or not isinstance(block.value, str):
            continue
        text = block.value
        if "Chatbot Arena" in text and "Rules" in text:
            rules = ARENA_RULES if "anonymous" in text else SIDE_BY_SIDE_RULES
            block.value = heading(arena) + "\n" + rules
        elif "Chat with Open Large" in text:  # direct chat, and the (hidden) vision tab
            block.value = heading(arena) + "\n## 🤖 Choose any model to chat\n"


def install(arena: dict[str, Any]) -> None:
    from fastchat.serve import (
        gradio_block_arena_anony,
        gradio_block_arena_named,
        gradio_block_arena_vision,
        gradio_web_server,
    )
    from fastchat.serve.monitor import monitor

    def describe(models: list[str]) -> str:
        return model_descriptions(arena, models)

    def build_about() -> None:
        gr.Markdown(about(arena), elem_id="about_markdown")

    tabs = (
        gradio_web_server,
        gradio_block_arena_anony,
        gradio_block_arena_named,
        gradio_block_arena_vision,
    )
    for module in tabs:
        module.acknowledgment_md = TERMS
        module.get_model_description_md = describe
    gradio_web_server.build_about = build_about
    monitor.build_leaderboard_tab = lambda *args, **kwargs: build_leaderboard_tab(arena)
    gr.themes.Default = _local_fonts_theme(gr.themes.Default)
    from gradio import routes

    routes.templates.env.loader = OwnOriginLoader(routes.templates.env.loader)

    launch = gr.Blocks.launch

    def rebranded_launch(self: Any, *args: Any, **kwargs: Any) -> Any:
        _rebrand(self, arena)
        return launch(self, *args, **kwargs)  # launch recomputes the page's config

    gr.Blocks.launch = rebranded_launch


def leaderboard_flags(arena: dict[str, Any]) -> list[str]:
    """FastChat builds its Leaderboard tab (id 4, `?leaderboard`) only when given this flag."""
    if not arena.get("leaderboard", {}).get("enabled"):
        return []
    return ["--elo-results-file", str(Path(arena["result"]) / LEADERBOARD_JSON)]
