"""YAML through libyaml's C loader and dumper where PyYAML was built with them (several times
faster on big manifests and compose files), the pure-Python ones otherwise. Safe loading only."""

from __future__ import annotations

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
