"""What counts as reaching one of quill's own listeners (engine.dapr.own_listeners), without sockets to them."""

from __future__ import annotations

import ipaddress

import pytest

from engine.config import Face, Listener
from engine.dapr.own_listeners import OwnListeners, is_local, reaches


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("target", "bind", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.1", True),  # loopback aliases are counted as one, conservatively
        ("::1", "127.0.0.1", True),
        ("0.0.0.0", "127.0.0.1", True),  # connecting to 0.0.0.0 connects to this host
        ("::", "10.1.2.3", True),
        ("::ffff:127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "0.0.0.0", True),
        ("::1", "::", True),
        ("192.0.2.10", "0.0.0.0", False),  # TEST-NET-1: not an address of this host
        ("192.0.2.10", "127.0.0.1", False),
        ("10.1.2.3", "10.1.2.4", False),
        ("10.1.2.3", "10.1.2.3", True),
    ],
)
def test_reaches(target: str, bind: str, expected: bool) -> None:
    assert reaches(ip(target), ip(bind)) is expected


def test_an_address_of_this_host_is_local() -> None:
    assert is_local(ip("127.0.0.1")) and is_local(ip("0.0.0.0"))
    assert not is_local(ip("192.0.2.10"))


async def test_urls_are_compared_by_resolved_host_and_port() -> None:
    own = OwnListeners([Listener(Face.INGRESS, "127.0.0.1", 8080), Listener(Face.ADMIN, "0.0.0.0", 9070)])
    assert (await own.reached_by("http://localhost:9070/deployments")) == Listener(Face.ADMIN, "0.0.0.0", 9070)
    assert (await own.reached_by("http://127.0.0.9:8080")) is not None
    assert (await own.reached_by("http://[::1]:9070")) is not None
    assert (await own.reached_by("http://127.0.0.1:8081")) is None  # another port
    assert (await own.reached_by("http://192.0.2.10:9070")) is None  # another host
    assert (await own.reached_by("https://127.0.0.1")) is None  # port 443
    assert (await own.reached_by("http://no-such-host.invalid:9070")) is None


def test_a_wildcard_listener_is_reached_through_every_address_of_this_host() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        except OSError:
            pytest.skip("no IPv4 route on this machine")
        address = probe.getsockname()[0]
    assert reaches(ip(address), ip("0.0.0.0"))
    assert not reaches(ip(address), ip("127.0.0.1")) or ip(address).is_loopback
