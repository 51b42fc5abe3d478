"""The two IMAP listeners: 143 with STARTTLS and 993 with implicit TLS (RFC 8314 §3.3).

Both share one node-wide view of open connections: in total, per client IP and per user.
At shutdown every session is told BYE (RFC 9051 §7.1.5) and cut off.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter

from django.conf import settings

from apps.imap import index_file, limits, responses
from apps.imap.connection import Connection
from apps.imap.session import Session
from apps.mailserver.limits import ConnectionLimiter, is_loopback
from apps.mailserver.listeners import ServerContext, handshake_first
from mailhost.threads import in_thread

log = logging.getLogger(__name__)

IMPLICIT_TLS = "imaps"
# StreamReader buffer: a whole command line must fit (reader.read_line needs it).
READ_LIMIT = limits.MAX_LINE + 1024


class ImapListener:
    """Connections of both IMAP listeners on this node, and who holds them."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        current = limits.current()
        self.limiter = ConnectionLimiter(current.max_connections, current.max_per_ip)
        self.max_per_user = current.max_per_user
        self.per_user: Counter[int] = Counter()
        self.sessions: set[Session] = set()
        self._stopper = asyncio.create_task(self._bye_at_stop())
        self._pruner = asyncio.create_task(self._prune_index_files())

    def handler(self, implicit_tls: bool):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = Connection(reader, writer, tls=False)
            if implicit_tls and not await handshake_first(conn, self.context.tls):
                return
            await self.serve(conn)

        return handle

    async def serve(self, conn: Connection) -> None:
        ip = conn.peer_ip
        if self.context.stop.is_set() or not self.limiter.admit(ip):
            await self._refuse(conn)
            return
        plaintext = getattr(settings, "ALLOW_PLAINTEXT_AUTH_LOOPBACK", False) and is_loopback(ip)
        session = Session(conn, self.context.tls, self, plaintext_login=plaintext)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.limiter.release(ip)
            if session.user is not None:
                self.release_user(session.user.pk)
            await conn.wait_closed()

    def admit_user(self, user_id: int) -> bool:
        if self.per_user[user_id] >= self.max_per_user:
            return False
        self.per_user[user_id] += 1
        return True

    def release_user(self, user_id: int) -> None:
        self.per_user[user_id] -= 1
        if self.per_user[user_id] <= 0:
            del self.per_user[user_id]

    async def _refuse(self, conn: Connection) -> None:
        try:
            # RFC 9051 §7.1.5: BYE as the greeting refuses the connection.
            await conn.send(responses.untagged("BYE [UNAVAILABLE] Too many connections"))
        except (ConnectionError, OSError, TimeoutError):
            pass
        conn.close()
        await conn.wait_closed()

    async def _prune_index_files(self) -> None:
        try:
            await in_thread(index_file.prune)
        except Exception:  # a cache: the server serves without it
            log.exception("could not prune IMAP index files")

    async def _bye_at_stop(self) -> None:
        await self.context.stop.wait()
        loop = asyncio.get_running_loop()
        for session in list(self.sessions):
            try:
                session.write(responses.untagged("BYE Server shutting down"))
                session.conn.close()  # flushes the BYE, then closes
            except (ConnectionError, OSError, RuntimeError):
                pass
            loop.call_later(1, session.conn.abort)  # if the BYE was not taken in time


def _shared(context: ServerContext) -> ImapListener:
    """One listener state for 143 and 993 together."""
    listener = context.extra.get("imap_listener")
    if listener is None:
        listener = context.extra["imap_listener"] = ImapListener(context)
    return listener


async def start(context: ServerContext, name: str, sock: socket.socket) -> asyncio.AbstractServer:
    listener = _shared(context)
    implicit = name == IMPLICIT_TLS
    return await asyncio.start_server(listener.handler(implicit), sock=sock, limit=READ_LIMIT)
