"""The README and docs/ stay true.

The README is a short front door that links every page of docs/; every relative link and
`#anchor` in them resolves; and every `render.py` / `arenastack` command line shown in a fenced
code block parses with the real parsers of arenastack/cli.py, so a misspelled or removed flag
fails here. The commands that need neither Docker nor a GPU (a render or a plan with `--gpus` or
of a manifest that needs no NVML, `schema --check`) are also run, with their output redirected
into a temporary folder so that nothing in the checkout is written.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from arenastack import cli
from arenastack.judge import cli as judge_cli
from arenastack.operate import leaderboard_cli
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_MOST_LINES = 300

# The parser of each subcommand, as cli.main dispatches them (checked below).
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "render": cli._render_parser,
    "plan": cli._plan_parser,
    "schema": cli._schema_parser,
    "up": lambda: cli.operator_parser("up"),
    "status": lambda: cli.operator_parser("status"),
    "leaderboard": leaderboard_cli.parser,
    "judge": judge_cli.parser,
}
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
# Programs that run render.py, as the docs may show them.
PYTHONS = {"python", "python3", ".venv/bin/python", ".venv/bin/python3"}
ARENASTACKS = {"arenastack", ".venv/bin/arenastack"}


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


# --- Markdown ------------------------------------------------------------------------------------


def _fences(text: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """(language, [(line number, line)]) of each fenced code block."""
    block: list[tuple[int, str]] | None = None
    language = ""
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            if block is None:
                language, block = line.lstrip()[3:].strip().lower(), []
            else:
                yield language, block
                block = None
        elif block is not None:
            block.append((number, line))


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans, blanked out in place (so
    offsets and line numbers are kept)."""
    lines = text.split("\n")
    for _, block in _fences(text):
        for number, line in block:
            lines[number - 1] = " " * len(line)
    fence_lines = [i for i, line in enumerate(lines) if line.lstrip().startswith("```")]
    for i in fence_lines:
        lines[i] = ""
    return re.sub(
        r"(`+)(.+?)\1",
        lambda m: re.sub(r"[^\n]", " ", m.group(0)),
        "\n".join(lines),
        flags=re.S,
    )


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: link syntax reduced to its text, lowercase, punctuation
    other than - and _ dropped, spaces to -."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings (outside code blocks; a repeated one gets -1, -2...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = path.read_text()
    original = text.split("\n")
    for number, line in enumerate(_prose(text).split("\n")):
        if re.match(r" {0,3}#{1,6}\s", line):
            # The heading's own text: _prose blanked its inline code out.
            match = re.match(r" {0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$", original[number])
            assert match
            base = anchor(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{_relative(self.page)}:{self.line}: ({self.target})"


def links(page: Path) -> list[Link]:
    prose = _prose(page.read_text())
    return [
        Link(page, prose.count("\n", 0, match.start()) + 1, match.group(1))
        for match in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    ]


def broken(link: Link) -> str | None:
    """Why the link does not resolve, or None."""
    if re.match(r"[a-z][a-z0-9+.-]*:", link.target):  # https:, mailto:
        return None
    path_part, _, fragment = link.target.partition("#")
    target = (link.page.parent / path_part).resolve() if path_part else link.page
    if not target.exists():
        return f"{path_part} does not exist"
    if REPO.resolve() not in target.resolve().parents and target.resolve() != REPO.resolve():
        return f"{path_part} is outside the repository"
    if fragment and target.suffix == ".md" and fragment not in anchors(target):
        return f"{_relative(target)} has no heading with the anchor #{fragment}"
    return None


# --- command lines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A render.py command line shown in a code block."""

    page: Path
    line: int
    text: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{_relative(self.page)}:{self.line}: {self.text.strip()}"

    @property
    def id(self) -> str:
        return f"{_relative(self.page)}:{self.line}"


def _without_comment(line: str) -> str:
    """The line up to a shell comment: a # at a word's start, outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _usage_optional(match: re.Match[str]) -> str:
    """A usage placeholder `[--flag VALUE|OTHER]` as the first form it offers."""
    return match.group(1).split("|")[0]


def _words(line: str) -> list[str]:
    line = _without_comment(line.strip().removeprefix("$ "))
    line = re.sub(r"\$\([^()]*\)", "SUBSTITUTED", line)  # $(...) is one word's worth
    line = re.sub(r"\[([^\[\]]*)\]", _usage_optional, line)  # [MANIFEST], [--check]
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _commands(words: list[str]) -> Iterator[tuple[str, ...]]:
    """The arguments of each render.py / arenastack command among the shell's words."""
    segment: list[str] = []
    for word in [*words, ";"]:
        if word and set(word) <= set("&|;<>()"):
            while segment and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", segment[0]):
                segment.pop(0)  # VAR=value before the command
            if (
                len(segment) >= 2
                and segment[0] in PYTHONS
                and segment[1]
                in (
                    "render.py",
                    "./render.py",
                )
            ):
                yield tuple(segment[2:])
            elif segment and segment[0] in ARENASTACKS:
                yield tuple(segment[1:])
            segment = []
        else:
            segment.append(word)


def shown_commands(page: Path) -> list[Shown]:
    found = []
    for language, block in _fences(page.read_text()):
        if language not in SHELL_LANGUAGES:
            continue
        start, joined = 0, ""
        for number, line in block:
            if not joined:
                start = number
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            joined += line
            if "render.py" in joined or "arenastack" in joined:
                try:
                    words = _words(joined)
                except ValueError as error:  # unbalanced quotes
                    pytest.fail(f"{_relative(page)}:{start}: cannot read {joined!r}: {error}")
                found += [Shown(page, start, joined, argv) for argv in _commands(words)]
            joined = ""
    return found


SHOWN = [shown for page in PAGES for shown in shown_commands(page)]


def subcommand(argv: tuple[str, ...]) -> tuple[str, list[str]]:
    """The subcommand and its arguments, as cli.main splits them."""
    if argv and argv[0] in PARSERS and argv[0] != "render":
        return argv[0], list(argv[1:])
    return "render", list(argv)


def parse(shown: Shown) -> tuple[str, argparse.Namespace]:
    """The command line through its real parser; pytest.fail names it when argparse refuses."""
    command, arguments = subcommand(shown.argv)
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint), contextlib.redirect_stdout(io.StringIO()):
            args = PARSERS[command]().parse_args(arguments)
    except SystemExit as exit:
        pytest.fail(
            f"{shown}\n  does not parse (exit status {exit.code}): {complaint.getvalue().strip()}",
            pytrace=False,
        )
    return command, args


def _is_placeholder(path: Path) -> bool:
    return path.name.isupper()  # MANIFEST, DIR


def _needs_no_gpu(manifest: Path) -> bool:
    """The manifest says what its GPUs are, or has none: no NVML needed to render it."""
    if not (REPO / manifest).is_file():
        return False  # test_shown_command_parses says so
    document = yaml.safe_load((REPO / manifest).read_text()) or {}
    return document.get("device") == "cpu" or document.get("gpus", "auto") != "auto"


def runnable(command: str, args: argparse.Namespace) -> bool:
    """Needs neither Docker nor a GPU: safe and quick to run here."""
    if command == "schema":
        return bool(args.check)
    if command in ("render", "plan"):
        return args.gpus is not None or _needs_no_gpu(args.manifest)
    return False  # up, status, leaderboard, judge: a running stack


def with_output_in(argv: list[str], folder: Path, target: str) -> list[str]:
    """The render command line with -o/--output pointing into folder."""
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in ("-o", "--output"):
            skip = True
        elif not word.startswith(("--output=", "-o")) or word.startswith("--"):
            kept.append(word)
    name = "kubernetes" if target == "kubernetes" else "docker-compose.yml"
    return [*kept, "-o", str(folder / name)]


# --- tests ---------------------------------------------------------------------------------------


def test_readme_is_a_short_front_door() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MOST_LINES, f"README.md has {lines} lines; move the manual to docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    linked = {(README.parent / link.target.partition("#")[0]).resolve() for link in links(README)}
    missing = [_relative(page) for page in pages if page.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_relative_links_resolve(page: Path) -> None:
    problems = [f"{link}: {why}" for link in links(page) if (why := broken(link))]
    assert not problems, "\n".join(problems)


def test_each_page_has_a_title_and_a_link_back_to_the_readme() -> None:
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text().split("\n")
        assert lines[0].startswith("# "), f"{_relative(page)}:1: no `# Title`"
        assert "](../README.md)" in "\n".join(lines[1:4]), f"{_relative(page)}: no back link"


def test_commands_are_found_where_they_are_shown() -> None:
    """The extraction finds the commands of the README and of the pages: if it found none, every
    other command test would pass on nothing."""
    assert any(shown.page == README for shown in SHOWN)
    assert len({shown.page for shown in SHOWN}) >= 4
    assert RUNNABLE


@pytest.mark.parametrize("shown", SHOWN, ids=lambda shown: shown.id)
def test_shown_command_parses(shown: Shown) -> None:
    _, args = parse(shown)
    manifest = getattr(args, "manifest", None)
    if manifest and not _is_placeholder(manifest) and not (REPO / manifest).is_file():
        pytest.fail(f"{shown}\n  no manifest {manifest}", pytrace=False)


def _runnable(shown: Shown) -> bool:
    try:
        return runnable(*parse(shown))
    except pytest.fail.Exception:
        return False  # test_shown_command_parses says why


RUNNABLE = [shown for shown in SHOWN if _runnable(shown)]


@pytest.mark.parametrize("shown", RUNNABLE, ids=lambda shown: shown.id)
def test_shown_command_runs(
    shown: Shown,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command, args = parse(shown)
    argv = list(shown.argv)
    if command == "render":
        argv = with_output_in(argv, tmp_path, args.target)
    monkeypatch.chdir(REPO)  # the docs' paths are relative to the checkout
    outputs = [REPO / "docker-compose.yml", REPO / "kubernetes"]
    before = {path: path.exists() and path.stat().st_mtime_ns for path in outputs}
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert status == 0, f"{shown}\n  exit status {status}:\n{captured.err}"
    assert {path: path.exists() and path.stat().st_mtime_ns for path in outputs} == before, (
        f"{shown} wrote into the checkout"
    )


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_the_parsers_are_the_ones_main_uses(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [] if command == "render" else [command]
    with pytest.raises(SystemExit) as exit:
        cli.main([*argv, "--no-such-flag"])
    assert exit.value.code == 2
    assert f"usage: {PARSERS[command]().prog} " in capsys.readouterr().err


def test_a_misspelled_flag_fails(tmp_path: Path) -> None:
    """The checker itself: a page showing a flag that does not exist fails, naming the line."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```bash\n"
        "python render.py compose/cpu.yaml && docker compose up   # fine\n"
        "echo x | .venv/bin/python render.py plan --gpus 1x80@8.0 \\\n"
        "  --sequencs 2\n"
        "```\n"
    )
    first, second = shown_commands(page)
    assert first.argv == ("compose/cpu.yaml",)
    parse(first)
    assert (second.line, second.argv) == (5, ("plan", "--gpus", "1x80@8.0", "--sequencs", "2"))
    misspelled = r"(?s)page.md:5: .*unrecognized arguments: --sequencs"
    with pytest.raises(pytest.fail.Exception, match=misspelled):
        parse(second)


def test_shell_parts_are_stripped() -> None:
    words = _words(
        "$ A=1 python render.py up [MANIFEST] -o x.yml && docker compose ps | head # --nope"
    )
    assert list(_commands(words)) == [("up", "MANIFEST", "-o", "x.yml")]
    words = _words("echo KEY=sk-$(openssl rand -hex 32) >> .env; arenastack --gpus 1x80@8.0")
    assert list(_commands(words)) == [("--gpus", "1x80@8.0")]
    assert with_output_in(["--target", "kubernetes", "-o", "k8s"], Path("/t"), "kubernetes") == [
        "--target",
        "kubernetes",
        "-o",
        "/t/kubernetes",
    ]


def test_anchors_follow_githubs_rule() -> None:
    assert anchor("Operating the stack: `up`, `status`, metrics") == (
        "operating-the-stack-up-status-metrics"
    )
    assert anchor("One OpenAI endpoint over every model (gateway)") == (
        "one-openai-endpoint-over-every-model-gateway"
    )
    assert anchor("vLLM for CPU (`images/vllm-cpu/Dockerfile`, `device: cpu`)") == (
        "vllm-for-cpu-imagesvllm-cpudockerfile-device-cpu"
    )
