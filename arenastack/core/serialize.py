"""All YAML in and out, through libyaml's C loader and emitter where PyYAML was built with them
(several times faster on big manifests and compose files), the pure-Python ones otherwise.
Safe loading only."""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(text: str) -> Any:
    return yaml.load(text, Loader=SafeLoader)


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line strings (generated configs, scripts) stay readable as block literals.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(document: Any) -> str:
    """Block style, keys in the order given, Unicode as is."""
    text: str = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return text
