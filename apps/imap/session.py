"""One IMAP connection: the state machine of RFC 9051 §3 and the command loop.

States are not authenticated, authenticated, selected and logout. Each command is read
(`reader.read_command`), parsed (`parser.parse_command`), checked against the states it
is valid in, run by its handler from `apps.imap.commands`, and answered with a tagged
status line; before that line, in the selected state, the session brings the client up
to date with what other sessions changed (RFC 9051 §7: EXISTS, EXPUNGE, FETCH FLAGS).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apps.imap import capabilities, limits, query, responses
from apps.imap.connection import Connection
from apps.imap.parser import Command, ParseError, Select, parse_command
from apps.imap.reader import CommandRejected, ConnectionClosed, MustDisconnect, read_command
from apps.imap.selected import BadSequence, SelectedMailbox
from apps.mailstore import events
from apps.mailstore.services import StoreError

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.imap.listener import ImapListener

log = logging.getLogger(__name__)

GREETING_TEXT = "Mailhost IMAP4rev2 server ready"
# RFC 9051 §7.5.1: no EXPUNGE while answering these (the UID forms may carry them).
NO_EXPUNGE_DURING = frozenset({"FETCH", "STORE", "SEARCH", "SORT", "THREAD"})
# Dovecot's words for a mailbox argument that is not modified UTF-7 (RFC 3501 §5.1.3).
INVALID_MAILBOX_NAME = "Mailbox name is not valid mUTF-7"


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass(frozen=True)
class Reply:
    """The tagged completion of a command (RFC 9051 §7.1)."""

    status: str = "OK"
    text: str = ""
    code: str | None = None


class CommandError(Exception):
    """Raised by a handler to end its command with NO or BAD."""

    def __init__(self, text: str, code: str | None = None, *, status: str = "NO") -> None:
        super().__init__(text)
        self.reply = Reply(status, text, code)


class Session:
    def __init__(
        self,
        conn: Connection,
        tls: ssl.SSLContext,
        listener: ImapListener,
        *,
        plaintext_login: bool,
    ) -> None:
        self.conn = conn
        self.tls = tls
        self.listener = listener
        self.limits = limits.current()
        self.plaintext_login = plaintext_login  # loopback exception in development
        self.state = State.NOT_AUTHENTICATED
        self.user: User | None = None
        self.selected: SelectedMailbox | None = None
        self.subscription: events.Subscription | None = None
        self.enabled: set[str] = set()
        self.condstore = False  # RFC 7162 §3.1: a CONDSTORE-enabling command was seen
        self.saved: list[int] | None = None  # RFC 5182 SEARCHRES result, as UIDs
        self.dirty = False  # a change event for the selected folder is waiting
        self.bad_commands = 0
        self.failed_logins = 0
        self.closing: str | None = None  # BYE with this text after the tagged response
        self.bucket = limits.TokenBucket(
            self.limits.commands_per_second, self.limits.command_burst, time.monotonic()
        )

    # -- what the session is ------------------------------------------------------------

    @property
    def utf8(self) -> bool:
        """Mailbox names in UTF-8: RFC 6855 §3 UTF8=ACCEPT, or IMAP4rev2 (RFC 9051 §5.1)."""
        return bool(self.enabled & {"UTF8=ACCEPT", "IMAP4REV2"})

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def login_allowed(self) -> bool:
        """RFC 9051 §6.2.3 / §11.1: passwords only over TLS (loopback may be exempt)."""
        return self.conn.is_tls or self.plaintext_login

    def capability_text(self) -> str:
        return capabilities.advertise(
            tls=self.conn.is_tls,
            authenticated=self.user is not None,
            login_allowed=self.login_allowed,
            compressed=self.conn.compressed,
            appendlimit=self.limits.max_literal,
        )

    # -- output -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.conn.write(data)

    def untagged(self, text: str) -> None:
        self.conn.write(responses.untagged(text))

    async def flush(self) -> None:
        await self.conn.drain()

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.conn.send(
                responses.untagged(f"OK [CAPABILITY {self.capability_text()}] {GREETING_TEXT}")
            )
            while self.state is not State.LOGOUT:
                raw = await self._read()
                if raw is not None:
                    await self.execute(raw)
        except (ConnectionClosed, MustDisconnect, TimeoutError, ssl.SSLError, OSError):
            pass  # the client went away, or was sent away
        except query.FolderGone:
            await self.bye("Selected mailbox was deleted")
        except Exception:  # a bug must cost this session, never the server
            log.exception("IMAP session failed")
            await self.bye("Internal error")
        finally:
            self.close()

    async def _read(self) -> bytes | None:
        authenticated = self.user is not None
        timeout = self.limits.idle_timeout if authenticated else self.limits.login_timeout
        max_literal = (
            self.limits.max_literal if authenticated else limits.MAX_LITERAL_UNAUTHENTICATED
        )
        try:
            async with asyncio.timeout(timeout):
                return await read_command(
                    self.conn.reader,
                    self.conn,
                    max_line=self.limits.max_line,
                    max_literal=max_literal,
                )
        except CommandRejected:
            await self._count_bad()
            return None
        except TimeoutError:
            await self.bye("Autologout; idle for too long")  # RFC 9051 §5.4
            raise

    async def execute(self, raw: bytes) -> None:
        """Parse, check, run and answer one command."""
        try:
            command = parse_command(raw, utf8=self.utf8)
        except ParseError as err:
            self.write(err.response())
            await self.flush()
            if err.status == "BAD":
                await self._count_bad()
            return
        await self._pace()
        from apps.imap.commands import DISPATCH

        entry = DISPATCH[type(command.args)]
        if self.state not in entry.states:
            await self.answer(command, Reply("BAD", f"{command.name} not allowed now"))
            return
        if command.invalid_mailbox:
            await self.answer(command, self._refuse_invalid_mailbox(command))
            return
        reply = await self._run_handler(entry.handler, command)
        if reply is None:  # the handler answered itself (LOGOUT, STARTTLS, COMPRESS)
            return
        if entry.sync and self.state is State.SELECTED:
            await self.sync(expunge=command.name not in NO_EXPUNGE_DURING)
        await self.answer(command, reply)
        if self.closing:
            await self.bye(self.closing)

    def _refuse_invalid_mailbox(self, command: Command) -> Reply:
        """RFC 3501 §5.1.3: the command is well-formed, but no mailbox can have a name that
        is not modified UTF-7: NO, as Dovecot answers, never BAD (which counts towards a
        disconnect)."""
        if isinstance(command.args, Select) and self.selected is not None:
            # RFC 9051 §6.3.2: a failed SELECT or EXAMINE leaves no mailbox selected.
            self.select(None)
            self.untagged("OK [CLOSED] Previous mailbox closed")  # RFC 7162 §3.2.11
        return Reply("NO", INVALID_MAILBOX_NAME, "CANNOT")

    async def _run_handler(self, handler, command: Command) -> Reply | None:
        try:
            return await handler(self, command)
        except CommandError as err:
            return err.reply
        except BadSequence:
            return Reply("BAD", "Invalid message sequence number")
        except StoreError as err:
            return Reply("NO", str(err))
        except query.FolderGone:
            await self.bye("Selected mailbox was deleted")
            return None
        except (ConnectionError, TimeoutError, ssl.SSLError, MustDisconnect, ConnectionClosed):
            raise
        except Exception:
            log.exception("IMAP %s failed", command.name)
            return Reply("NO", "Internal error; try again later", "SERVERBUG")

    async def answer(self, command: Command, reply: Reply) -> None:
        text = reply.text or f"{command.name} completed"
        self.write(responses.tagged(command.tag, reply.status, text, reply.code))
        await self.flush()

    async def _pace(self) -> None:
        delay = self.bucket.delay(time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    async def _count_bad(self) -> None:
        self.bad_commands += 1
        if self.bad_commands >= self.limits.max_bad_commands:
            await self.bye("Too many invalid commands")

    async def bye(self, text: str) -> None:
        self.state = State.LOGOUT
        try:
            await self.conn.send(responses.untagged(f"BYE {text}"))
        except (ConnectionError, OSError, TimeoutError):
            pass

    # -- selected mailbox ---------------------------------------------------------------

    def take_events(self) -> None:
        """Note whether a change event for the selected folder has arrived."""
        if self.subscription is None:
            return
        selected = self.selected
        for change in self.subscription.drain():
            if selected is not None and change.folder_id == selected.folder_id:
                self.dirty = True

    async def sync(self, *, expunge: bool, force: bool = False) -> None:
        """Tell the client what changed in the selected mailbox (see selected.py)."""
        selected = self.selected
        if selected is None:
            return
        self.take_events()
        lines: list[bytes] = []
        if force or self.dirty:
            self.dirty = False
            lines = await selected.sync(
                expunge=expunge, vanished=self.qresync, condstore=self.condstore
            )
        elif expunge and selected.pending:
            lines = selected.announce_expunges(vanished=self.qresync)
        for line in lines:
            self.write(line)

    def select(self, selected: SelectedMailbox | None) -> None:
        self.selected = selected
        self.saved = None  # RFC 5182 §2.1: SELECT/EXAMINE/CLOSE/UNSELECT reset "$"
        self.state = State.AUTHENTICATED if selected is None else State.SELECTED
        self.dirty = False
        if self.subscription is not None:
            self.subscription.drain()

    def enable_condstore(self) -> None:
        """RFC 7162 §3.1: after a CONDSTORE-enabling command, untagged FETCH responses
        carry MODSEQ. The first one issued in a mailbox selected without CONDSTORE also
        announces the mailbox's HIGHESTMODSEQ, before the command's own responses: the
        highest modseq this session has told the client about: expunges it has read but
        may not announce yet (RFC 9051 §7.5.1) do not count."""
        if self.condstore:
            return
        self.condstore = True
        selected = self.selected
        if selected is not None:
            highest = selected.message_mark
            if not selected.pending:
                highest = max(highest, selected.expunge_mark)
            self.untagged(f"OK [HIGHESTMODSEQ {highest}] Highest")

    # -- login and teardown -------------------------------------------------------------

    def logged_in(self, user: User) -> None:
        self.user = user
        self.state = State.AUTHENTICATED
        self.subscription = events.subscribe(user.pk)

    def close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        self.conn.close()
