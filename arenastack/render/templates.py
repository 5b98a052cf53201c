"""The templates' loader and the one way values reach them: JSON (which is YAML) that a YAML
reader reads back verbatim. Fragments are parsed back into data and dumped once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from arenastack.core import serialize

# Characters YAML readers reject or fold (line and paragraph separators, NEL, BOM, controls)
# are written as escapes; JSON escapes the rest.
UNSAFE_FOR_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")


def yaml_json(value: Any) -> str:
    """JSON that YAML reads back as the same value."""
    text = json.dumps(value, ensure_ascii=False)
    return UNSAFE_FOR_YAML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def compose_json(value: Any) -> str:
    """`yaml_json` with every `$` doubled, so Compose reads it back verbatim."""
    return yaml_json(escape_dollars(value))


def escape_dollars(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [escape_dollars(item) for item in value]
    if isinstance(value, dict):
        return {escape_dollars(k): escape_dollars(v) for k, v in value.items()}
    return value


def template_environment(folder: Path, tojson: Callable[[Any], str]) -> jinja2.Environment:
    """Templates that fail on a missing value and write every value through `tojson`: the
    compose fragments and the Kubernetes resources."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # A block tag's line leaves nothing behind, so a template's `{% if %}` around an optional
        # key reads like the fragment with or without it.
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["tojson"] = tojson
    return environment


def fragment(
    environment: jinja2.Environment, name: str, values: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """The template `<name>.yaml.j2` rendered and parsed back into data."""
    text = environment.get_template(f"{name}.yaml.j2").render(values, **more)
    data = serialize.load(text)
    assert isinstance(data, dict)
    return data


def dump(document: dict[str, Any], header: str) -> str:
    body = serialize.dump(document)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body
