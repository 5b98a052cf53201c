"""The manifest's JSON Schema, for editors (yaml-language-server) and the README's reference."""

from __future__ import annotations

import json

from arenastack.manifest import Manifest


def schema() -> dict[str, object]:
    document = Manifest.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **document}


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
