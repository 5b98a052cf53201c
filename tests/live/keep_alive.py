"""Idle keep-alive connections: the stack's servers must keep one open longer than their clients'
pools keep it (core/services.py SERVER_KEEP_ALIVE_S), or a client may send a request on a
connection the server is closing. A connection left idle past uvicorn's default of 5 s must still
carry the next request, on the same socket."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse

UVICORN_DEFAULT_S = 5
# Idle past the default with room to spare: a server on the default has closed by then (uvicorn
# closes on a timer, never early), one that keeps longer has not.
IDLE_S = UVICORN_DEFAULT_S + 3


class Connection:
    """One HTTP/1.1 connection to `base_url`, and the socket its first answer came on."""

    def __init__(self, base_url: str, path: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        assert parts.hostname, base_url
        self.path = path
        self.http = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.first = self.ask()
        self.socket: socket.socket | None = self.http.sock

    def ask(self) -> int:
        self.http.request("GET", self.path)
        answer = self.http.getresponse()
        answer.read()
        assert answer.getheader("connection", "").lower() != "close", "no keep-alive offered"
        return answer.status


def idle_then_ask(connections: dict[str, Connection]) -> dict[str, str]:
    """After IDLE_S of silence, what each connection's second request met: its status on the
    same socket, or why it failed."""
    time.sleep(IDLE_S)  # the idle time is what is tested, not a wait for some state
    met = {}
    for name, connection in connections.items():
        try:
            status = connection.ask()
            same = connection.http.sock is connection.socket
            met[name] = f"{status}" if same else f"{status} on a new socket"
        except (OSError, http.client.HTTPException) as error:
            met[name] = f"{type(error).__name__}: {error}"
        finally:
            connection.http.close()
    return met
