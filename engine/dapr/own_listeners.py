"""Which URLs quill may proxy a Dapr call (or register a Dapr app) to: never its own listeners.

A URL that reaches quill's own admin API through the ingress would let anyone who can reach the
ingress administer the server, so a target (a URL given as app id, or the URI of an app or HTTP
endpoint being registered) is refused when it resolves to one of quill's listening addresses.
The comparison is by resolved address and port, and counts what the kernel would actually
connect: ``0.0.0.0`` and ``::`` as a target reach this host; any loopback address reaches a
loopback listener (``localhost``, ``127.0.0.2``, ``::1`` alike, conservatively); a wildcard
listener is reached through every address of this host. A host name is resolved when the call
is checked; a name whose DNS answer changes before the connection (rebinding) is not covered, one
more reason URL targets are off unless an operator turns them on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from engine.config import Listener

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OwnListeners:
    def __init__(self, listeners: Iterable[Listener]) -> None:
        self._listeners = list(listeners)

    async def reached_by(self, url: str) -> Listener | None:
        """The listener of quill that ``url`` would connect to, if any."""
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None  # not a valid port: the request will fail on its own
        if not any(listener.port == port for listener in self._listeners):
            return None
        targets = await _resolve(parts.hostname or "")
        for listener in self._listeners:
            if listener.port != port:
                continue
            binds = await _resolve(listener.host)
            if any(reaches(target, bind) for target in targets for bind in binds):
                return listener
        return None


def reaches(target: Address, bind: Address) -> bool:
    """Whether connecting to ``target`` can reach a socket bound to ``bind`` (same port)."""
    target, bind = _unmapped(target), _unmapped(bind)
    if target.is_unspecified:
        return True  # connecting to 0.0.0.0 or :: connects to this host
    if bind.is_unspecified:
        return is_local(target)
    if bind.is_loopback and target.is_loopback:
        return True
    return target == bind


def is_local(address: Address) -> bool:
    """An address of this host: loopback, or one a socket can bind to."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _resolve(host: str) -> list[Address]:
    """The addresses ``host`` resolves to (a literal resolves to itself; none when unknown)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # an unknown host reaches nothing of ours; the request fails on its own
    found: list[Address] = []
    for *_, sockaddr in infos:
        found.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return found
