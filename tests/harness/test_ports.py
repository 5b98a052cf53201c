import socket

import pytest

from tests.ports import free_port


class ProbeHandingOut:
    """A socket whose bind to port 0 gets the next of `ports`, as the kernel might hand them out."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports

    def __call__(self) -> "ProbeHandingOut":
        return self

    def __enter__(self) -> "ProbeHandingOut":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def bind(self, address: tuple[str, int]) -> None:
        self.port = self.ports.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_handed_out_twice_is_not_taken_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", ProbeHandingOut([53501, 53501, 53501, 40000]))
    first = free_port()
    second = free_port(taken={first})
    assert (first, second) == (53501, 40000)


def test_a_real_port_is_free_to_bind() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        assert server.getsockname()[1] == port
