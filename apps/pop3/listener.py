"""The two POP3 listeners: 110 with STLS and 995 with implicit TLS (RFC 8314 §3.3).

Both share one connection limiter per node. At shutdown every open session is cut off,
which leaves its maildrop untouched (no UPDATE) and gives its lock back; the server's
wait_closed() waits for that, so no session is left half-done when the loop ends.
"""

from __future__ import annotations

import asyncio
import socket

from django.conf import settings

from apps.mailserver.limits import ConnectionLimiter, is_loopback
from apps.mailserver.listeners import ServerContext, handshake_first
from apps.pop3 import replies
from apps.pop3.connection import Connection
from apps.pop3.session import Session

IMPLICIT_TLS = "pop3s"


class Pop3Listener:
    """Accepts connections for one listener and runs a Session on each."""

    def __init__(self, context: ServerContext, name: str, limiter: ConnectionLimiter) -> None:
        self.context = context
        self.implicit_tls = name == IMPLICIT_TLS
        self.limiter = limiter
        self.sessions: dict[Session, asyncio.Task] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, tls=False)
        if self.implicit_tls and not await handshake_first(conn, self.context.tls):
            return
        ip = conn.peer_ip
        if self.context.stop.is_set():
            await self._refuse(conn, replies.SHUTTING_DOWN)
            return
        if not self.limiter.admit(ip):
            await self._refuse(conn, replies.TOO_MANY_CONNECTIONS)
            return
        session = Session(
            conn,
            self.context.tls,
            plaintext_allowed_here=settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK and is_loopback(ip),
        )
        task = asyncio.current_task()
        assert task is not None
        self.sessions[session] = task
        try:
            await session.run()
        finally:
            del self.sessions[session]
            self.limiter.release(ip)
            conn.close()
            await conn.wait_closed()

    async def _refuse(self, conn: Connection, reply: str) -> None:
        try:
            await conn.send(reply)
        except (ConnectionError, OSError, TimeoutError):
            pass
        conn.close()
        await conn.wait_closed()

    def cut_off(self) -> None:
        for session in list(self.sessions):
            session.conn.abort()

    async def wait_finished(self) -> None:
        await asyncio.gather(*self.sessions.values(), return_exceptions=True)


class Pop3Server(asyncio.AbstractServer):
    """The asyncio server with its sessions: close() also ends them."""

    def __init__(self, server: asyncio.Server, listener: Pop3Listener) -> None:
        self.server = server
        self.listener = listener

    def close(self) -> None:
        self.server.close()
        self.listener.cut_off()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()
        await self.listener.wait_finished()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.server.get_loop()

    def is_serving(self) -> bool:
        return self.server.is_serving()

    async def start_serving(self) -> None:
        await self.server.start_serving()

    async def serve_forever(self) -> None:
        await self.server.serve_forever()


def _shared_limiter(context: ServerContext) -> ConnectionLimiter:
    """One limiter for 110 and 995 together: a client's connections count on both."""
    limiter = context.extra.get("pop3_limiter")
    if limiter is None:
        limiter = ConnectionLimiter(settings.POP3_MAX_CONNECTIONS, settings.POP3_MAX_PER_IP)
        context.extra["pop3_limiter"] = limiter
    return limiter


async def start(context: ServerContext, name: str, sock: socket.socket) -> asyncio.AbstractServer:
    listener = Pop3Listener(context, name, _shared_limiter(context))
    server = await asyncio.start_server(listener.handle, sock=sock)
    return Pop3Server(server, listener)
