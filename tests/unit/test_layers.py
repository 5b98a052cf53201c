"""The architecture holds: each package of arenastack/ imports only the packages its __init__
docstring allows (its `May import:` paragraph), read from the code's own imports, function-level
ones included; the README's architecture table says the same; the layers have no cycle."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from arenastack.gateway import litellm
from arenastack.render import fetch_models, k8s_pod
from tests import images
from tests.conftest import REPO

PACKAGE = REPO / "arenastack"
PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def declared() -> dict[str, set[str]]:
    """Package → the packages it may import, from the `May import:` paragraph of its docstring."""
    rules = {}
    for name in PACKAGES:
        docstring = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        match = re.search(r"^May import: (.*?)(?:\n\n|\Z)", docstring or "", re.M | re.S)
        assert match, f"arenastack/{name}/__init__.py: its docstring has no 'May import:' line"
        text = " ".join(match.group(1).split())
        allowed = set() if text == "nothing" else {n.strip() for n in text.split(",")}
        assert all(a.startswith("arenastack.") for a in allowed), (name, allowed)
        rules[name] = {a.removeprefix("arenastack.") for a in allowed}
    return rules


def imported(source: str, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the source, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(dotted: str) -> str | None:
    """The subpackage (or top-level module, such as `cli`) an arenastack name belongs to."""
    parts = dotted.split(".")
    return parts[1] if parts[0] == "arenastack" and len(parts) > 1 else None


def test_every_package_states_what_it_may_import() -> None:
    assert set(declared()) == set(PACKAGES)
    for name, allowed in declared().items():
        assert allowed <= set(PACKAGES) - {name}, f"{name} names an unknown package: {allowed}"


def test_no_import_crosses_the_layers() -> None:
    rules = declared()
    crossings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer_of(module_name(path))
        if own not in rules:  # arenastack/__init__.py and cli.py, on top of every package
            continue
        for line, name in imported(path.read_text(), module_name(path)):
            target = layer_of(name)
            if target is not None and target != own and target not in rules[own]:
                crossings.append(
                    f"{path.relative_to(REPO)}:{line} imports {name}: arenastack.{own} may "
                    f"import {', '.join(sorted(rules[own])) or 'nothing'}"
                )
    assert not crossings, "\n".join(crossings)


def test_the_layers_have_no_cycle() -> None:
    try:
        order = list(TopologicalSorter(declared()).static_order())
    except CycleError as error:
        pytest.fail(f"the declared layers have a cycle: {error.args[1]}")
    assert order[0] == "core"


def test_nothing_imports_the_command_line() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, name in imported(path.read_text(), module_name(path)):
            assert layer_of(name) != "cli", f"{path.relative_to(REPO)}:{line} imports {name}"


@pytest.mark.parametrize(
    "source",
    [fetch_models.source(), k8s_pod.source(), litellm.auth_source()],
    ids=["fetch_models", "k8s_pod", "keys_auth"],
)
def test_files_mounted_into_containers_import_nothing_of_arenastack(source: str) -> None:
    """They run as single files beside the services (a compose config, a ConfigMap), where no
    arenastack package is installed."""
    assert [n for _, n in imported(source, "script") if layer_of(n) or n == "arenastack"] == []


def test_the_fastchat_image_carries_every_module_the_arena_imports() -> None:
    """The leaderboard service imports arenastack.arena in the FastChat image, whose build
    context sends only what the repository's .dockerignore lets through."""
    sent = {p.relative_to(REPO).as_posix() for p in images.sent_files(REPO)}
    seen: set[str] = set()
    todo = [module_name(p) for p in (PACKAGE / "arena").glob("*.py")]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = REPO / module.replace(".", "/") / "__init__.py"
        if not path.exists():  # `from package import name` where name is not a module
            continue
        relative = path.relative_to(REPO).as_posix()
        assert relative in sent, f"the arena needs {relative}, which the image's context leaves out"
        for _, name in imported(path.read_text(), module):
            if name.startswith("arenastack"):
                parts = name.split(".")
                todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def test_the_readme_states_the_same_layers() -> None:
    """The README's architecture table: `| arenastack.<package> | what it owns | may import |`."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `arenastack\.(\w+)/?` \|[^|]*\| ([^|]*) \|$", section, re.M)
    stated = {
        name: {n.strip(" `").removeprefix("arenastack.") for n in imports.split(",")} - {"—"}
        for name, imports in rows
    }
    assert stated == declared()
