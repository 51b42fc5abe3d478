"""The listener registry: each protocol app registers how to serve a bound socket.

The supervisor binds every socket itself (so port 0 works in tests and it can print the
real ports), then hands each to the protocol registered under the listener's name.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

MX_LISTENER = "smtp"


@dataclass
class ServerContext:
    """What every listener shares: names, TLS, and the stop signal."""

    hostname: str
    tls: ssl.SSLContext  # the client ports' (MAILHOST_TLS_PROFILE)
    stop: asyncio.Event
    extra: dict = field(default_factory=dict)
    mx_tls: ssl.SSLContext | None = None  # port 25's, when it differs: MX peers are old

    def tls_for(self, listener: str) -> ssl.SSLContext:
        if listener == MX_LISTENER and self.mx_tls is not None:
            return self.mx_tls
        return self.tls


# A starter gets the context, the listener's name and a bound, listening socket, and
# returns the asyncio server it runs on that socket.
Starter = Callable[[ServerContext, str, socket.socket], Awaitable[asyncio.AbstractServer]]

_starters: dict[str, Starter] = {}


def register(name: str, starter: Starter) -> None:
    """Called from a protocol app's AppConfig.ready(): smtp, submission, imap, ..."""
    _starters[name] = starter


def starter_for(name: str) -> Starter | None:
    return _starters.get(name)


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket; with `reuse_port`, one of several (a process each) on the same
    port, among which the kernel spreads new connections (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only turns Nagle's algorithm off (TCP_NODELAY) on
    # sockets whose protocol says TCP, and a reply written after untagged data would
    # otherwise wait ~40 ms for the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class TlsConnection(Protocol):
    """What `handshake_first` needs of a protocol's connection (IMAP's, POP3's)."""

    async def start_tls(self, context: ssl.SSLContext) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


async def handshake_first(conn: TlsConnection, context: ssl.SSLContext) -> bool:
    """RFC 8314 §3.3 implicit TLS: the handshake before anything else. Done by the session
    rather than by the asyncio server, which drops a failed one without saying from whom
    (the connection logs it). False, and the connection closed, when it failed."""
    try:
        await conn.start_tls(context)
    except (OSError, TimeoutError):
        conn.close()
        await conn.wait_closed()
        return False
    return True
