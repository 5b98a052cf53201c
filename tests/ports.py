"""Free host ports for the live runs."""

from __future__ import annotations

import socket
from collections.abc import Collection


def free_port(taken: Collection[int] = ()) -> int:
    """A port free now and not one of `taken`. The kernel may hand out a port it has just released
    again at once: a CI run drew the same port for two fields of one manifest, which the renderer
    then rightly refused as a clash."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in taken:
            return port
