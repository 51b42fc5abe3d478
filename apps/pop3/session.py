"""A POP3 session: the states of RFC 1939 §3, the command loop, and the way out.

AUTHORIZATION until a login takes the maildrop lock, TRANSACTION while the client works,
UPDATE at QUIT, where marked messages are removed in one store transaction. A session
that ends any other way (dropped connection, autologout, shutdown) removes nothing.
Commands live in authorization.py and transaction.py; this module runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from collections.abc import Awaitable, Callable

from apps.mailstore import services
from apps.pop3 import authorization, locks, replies, transaction
from apps.pop3.connection import Connection, LineTooLong
from apps.pop3.maildrop import Maildrop, load_maildrop
from apps.pop3.parser import Command, CommandError, parse_command
from mailhost.threads import in_thread

log = logging.getLogger(__name__)


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


Handler = Callable[["Session", Command], Awaitable[None]]


class Session:
    def __init__(
        self, conn: Connection, tls: ssl.SSLContext, *, plaintext_allowed_here: bool
    ) -> None:
        self.conn = conn
        self.tls = tls
        self.plaintext_allowed_here = plaintext_allowed_here  # loopback, and settings allow
        self.state = State.AUTHORIZATION
        self.pending_user: str | None = None  # from USER, waiting for PASS
        self.user_id: int | None = None
        self.maildrop: Maildrop | None = None
        self.holder = locks.new_holder()
        self.lock_lost = False
        self.lock_released = False
        self.bad_commands = 0
        self.closing = False
        self._lock_keeper: asyncio.Task[None] | None = None

    # --- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.conn.send(replies.GREETING)
            while not self.closing:
                try:
                    line = await self.conn.read_line()
                except LineTooLong:
                    await self.reject(replies.LINE_TOO_LONG)
                    continue
                if line is None:
                    break
                await self.handle(line)
        except TimeoutError:
            pass  # RFC 1939 §3: autologout closes without a response and without UPDATE
        except OSError:
            pass  # the client went away (reset, TLS failure); nothing is removed
        except Exception:  # a bug costs this session, never the server, and is not shown
            log.exception("POP3 session with %s failed", self.conn.peer_ip)
            with contextlib.suppress(OSError, TimeoutError):
                await self.conn.send(replies.INTERNAL_ERROR)
        finally:
            await self.end()

    async def handle(self, line: bytes) -> None:
        try:
            command = parse_command(line)
        except CommandError as error:
            await self.reject(error.reply)
            return
        handler, states = COMMANDS[command.name]
        if self.state not in states:
            await self.reject(replies.WRONG_STATE)
            return
        try:
            await handler(self, command)
        except OSError:  # the connection's, not the command's (TimeoutError is one too)
            raise
        except Exception:
            log.exception("POP3 %s failed", command.name)
            await self.conn.send(replies.STORE_UNAVAILABLE)
            self.closing = True

    async def reject(self, reply: str) -> None:
        """A protocol error; too many of them and the client is shown the door."""
        self.bad_commands += 1
        if self.bad_commands >= replies.MAX_BAD_COMMANDS:
            await self.conn.send(replies.TOO_MANY_BAD_COMMANDS)
            self.closing = True
            return
        await self.conn.send(reply)

    # --- authorization to transaction ----------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        """Passwords only over TLS (RFC 2595 §2.1), or from loopback when configured."""
        return self.conn.is_tls or self.plaintext_allowed_here

    async def open_maildrop(self, user_id: int) -> None:
        """After a good login: take the lock (RFC 1939 §4), load INBOX, enter TRANSACTION."""
        if not await in_thread(locks.acquire, user_id, self.holder):
            await self.conn.send(replies.IN_USE)
            return
        try:
            maildrop = await in_thread(load_maildrop, user_id)
        except Exception:
            log.exception("POP3 could not load the maildrop of user %s", user_id)
            await in_thread(locks.release, user_id, self.holder)
            await self.conn.send(replies.STORE_UNAVAILABLE)
            return
        self.user_id, self.maildrop = user_id, maildrop
        self.state = State.TRANSACTION
        self._lock_keeper = asyncio.create_task(self._keep_lock(user_id))
        await self.conn.send(replies.LOGGED_IN)

    async def _keep_lock(self, user_id: int) -> None:
        while not self.lock_lost:
            await asyncio.sleep(locks.REFRESH_EVERY.total_seconds())
            try:
                self.lock_lost = not await in_thread(locks.refresh, user_id, self.holder)
            except Exception:  # a database hiccup; the next refresh may work
                log.warning("POP3 could not refresh a maildrop lock", exc_info=True)

    # --- UPDATE and the end ----------------------------------------------------------------

    async def quit(self) -> None:
        """RFC 1939 §6: remove the marked messages, then say goodbye either way. The lock
        goes before the reply, so a client that reconnects at once finds the maildrop free."""
        self.closing = True
        if self.state is not State.TRANSACTION:
            await self.conn.send(replies.BYE)
            return
        self.state = State.UPDATE
        reply = await self._update()
        await self._release_lock()
        await self.conn.send(reply)

    async def _update(self) -> str:
        assert self.maildrop is not None and self.user_id is not None
        uids = self.maildrop.deleted_uids()
        if uids:
            if self.lock_lost or not await in_thread(locks.refresh, self.user_id, self.holder):
                return replies.LOCK_LOST
            try:
                await in_thread(
                    services.delete_messages, self.user_id, self.maildrop.folder_id, uids
                )
            except Exception:
                log.exception("POP3 could not remove messages of user %s", self.user_id)
                return replies.DELETE_FAILED
        left = len(self.maildrop.entries) - len(uids)
        return f"{replies.BYE} ({left} messages left)" if left else replies.BYE_EMPTY

    async def end(self) -> None:
        """Whatever happened: stop refreshing and give the lock back."""
        await self._release_lock()

    async def _release_lock(self) -> None:
        if self._lock_keeper is not None:
            self._lock_keeper.cancel()
            self._lock_keeper = None
        if self.user_id is None or self.lock_released:
            return
        self.lock_released = True
        try:
            await asyncio.shield(in_thread(locks.release, self.user_id, self.holder))
        except Exception:  # it goes stale and is taken over
            log.warning("POP3 could not release a maildrop lock", exc_info=True)


async def _quit(session: Session, command: Command) -> None:
    await session.quit()


AUTHORIZATION = frozenset({State.AUTHORIZATION})
TRANSACTION = frozenset({State.TRANSACTION})
BOTH = AUTHORIZATION | TRANSACTION

# Which handler runs each command, and in which states (RFC 1939 §4, §5; RFC 2449 §5).
COMMANDS: dict[str, tuple[Handler, frozenset[State]]] = {
    "CAPA": (authorization.capa, BOTH),
    "STLS": (authorization.stls, AUTHORIZATION),
    "USER": (authorization.user, AUTHORIZATION),
    "PASS": (authorization.pass_, AUTHORIZATION),
    "AUTH": (authorization.auth, AUTHORIZATION),
    "APOP": (authorization.apop, AUTHORIZATION),
    "QUIT": (_quit, BOTH),
    "STAT": (transaction.stat, TRANSACTION),
    "LIST": (transaction.list_, TRANSACTION),
    "UIDL": (transaction.uidl, TRANSACTION),
    "RETR": (transaction.retr, TRANSACTION),
    "TOP": (transaction.top, TRANSACTION),
    "DELE": (transaction.dele, TRANSACTION),
    "NOOP": (transaction.noop, TRANSACTION),
    "RSET": (transaction.rset, TRANSACTION),
}
