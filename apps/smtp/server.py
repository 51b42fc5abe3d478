"""Mailhost's SMTP protocol: aiosmtpd's SMTP class with what a real server needs.

aiosmtpd keeps syntax and state; this subclass adds AUTH that knows implicit TLS (465)
and checks passwords off the event loop, DATA streamed to a spool with a time budget and
bounded memory, BDAT (RFC 3030), DSN parameters (RFC 3461), and limits. Decisions (who
may send, who may receive, what happens to a message) belong to the handler.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio.sslproto import SSLProtocol
from base64 import b64decode
from binascii import Error as Base64Error

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, TLSSetupException, syntax

from apps.mailserver.limits import ConnectionLimiter
from apps.smtp import replies
from apps.smtp.data import DataDecoder, Spool, read_piece
from apps.smtp.params import MailFrom, ParamError, parse_mail_from, parse_rcpt_to

log = logging.getLogger(__name__)


class MailEnvelope(Envelope):
    """One transaction: MAIL FROM with its parameters, the accepted recipients, the body."""

    def __init__(self) -> None:
        super().__init__()
        self.mail: MailFrom | None = None
        self.recipients: list[dict] = []  # as the handler accepted them
        self.bdat: Spool | None = None  # chunks so far (RFC 3030)
        self.bdat_failed: str | None = None  # a reply owed once LAST arrives


class MailSMTP(SMTP):
    # The StreamReader's buffer; command lines are still held to RFC 5321's limits.
    line_length_limit = 65536
    command_size_limit = replies.COMMAND_LINE_LIMIT

    def __init__(
        self,
        handler,
        *,
        listener: str,
        implicit_tls: bool,
        limiter: ConnectionLimiter,
        stop: asyncio.Event,
        **kwargs,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.listener = listener
        self.implicit_tls = implicit_tls
        self.limiter = limiter
        self.stop_event = stop
        self.errors = 0
        self._replies: list[bytes] = []  # replies waiting for the pipelined commands behind
        self._idle_deadline = 0.0  # loop time at which an idle session is closed
        self.admitted_ip: str | None = None
        self._session_timer: asyncio.TimerHandle | None = None

    # --- connection -------------------------------------------------------------------

    def _create_envelope(self) -> MailEnvelope:
        return MailEnvelope()

    def _set_post_data_state(self) -> None:
        """A new envelope (after a message, RSET, EHLO, HELO, STARTTLS): a BDAT body the
        old one was collecting is dropped with it (RFC 3030 §4: RSET or a new EHLO
        discards the transaction), its spool closed rather than left to the collector."""
        if getattr(self, "envelope", None) is not None:
            self._discard_bdat()
        super()._set_post_data_state()

    # Plain methods, not properties: aiosmtpd's __init__ runs inspect.getmembers(self),
    # which would evaluate properties before the session exists.
    def tx(self) -> MailEnvelope:
        assert isinstance(self.envelope, MailEnvelope)
        return self.envelope

    def sess(self) -> Session:
        assert self.session is not None
        return self.session

    def peer_ip(self) -> str:
        peer = self.sess().peer
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    def is_encrypted(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    async def _handle_client(self) -> None:
        ip = self.peer_ip()
        if self.implicit_tls and not await self._implicit_tls():
            return
        if self.stop_event.is_set() or not self.limiter.admit(ip):
            await self.push(replies.TOO_MANY_CONNECTIONS)
            self._close()
            return
        self.admitted_ip = ip
        self._session_timer = self.loop.call_later(
            replies.SESSION_TOTAL_TIMEOUT, self._session_expired
        )
        await super()._handle_client()

    async def _implicit_tls(self) -> bool:
        """RFC 8314 §3.3: the handshake before the greeting. Done here, as aiosmtpd does
        STARTTLS, rather than by the asyncio server, so that a failed one is logged with
        its peer; False when it failed and the connection is closed."""
        assert self.tls_context is not None and self.transport is not None
        waiter = self.loop.create_future()
        self._tls_protocol = SSLProtocol(
            self.loop,
            self,
            self.tls_context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=replies.TLS_HANDSHAKE_TIMEOUT,
        )
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter
        except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
            self._tls_failed(error)
            self.connection_lost(None)
            return False
        if self.transport is None or self.transport.is_closing():  # the client left
            self.connection_lost(None)
            return False
        return True

    def _tls_failed(self, error: BaseException | None) -> None:
        """Scanners and broken clients fail handshakes all day: one line, not a traceback."""
        log.info("TLS handshake with %s on %s failed: %s", self.peer_ip(), self.listener, error)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception no command handled. Its default tells the
        client the exception's name and text; the client gets a plain reply instead
        (RFC 5321 §4.2.1, RFC 3463), the log gets the traceback once."""
        if isinstance(error, TLSSetupException):  # aiosmtpd then closes the connection
            self._tls_failed(error.__cause__)
            return replies.TEMPORARY_FAILURE
        log.error("SMTP session with %s failed", self.peer_ip(), exc_info=error)
        if self.envelope is not None and self.tx().mail_from is not None:
            return replies.TEMPORARY_FAILURE
        return replies.INTERNAL_ERROR

    def _session_expired(self) -> None:
        if self.transport is not None:
            self._writer.write(replies.TIMEOUT.encode() + b"\r\n")
            self._close()

    def _timeout_cb(self) -> None:
        self._session_expired()

    def connection_lost(self, error: Exception | None) -> None:
        if self.admitted_ip is not None:
            self.limiter.release(self.admitted_ip)
            self.admitted_ip = None
        if self._session_timer is not None:
            self._session_timer.cancel()
        if self.envelope is not None:
            self._discard_bdat()
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Push the idle deadline back (aiosmtpd calls this for every command). aiosmtpd
        cancels and schedules a timer each time; here one timer stays and, firing early,
        re-arms itself for the deadline as it stands then."""
        self._idle_deadline = self.loop.time() + (duration or self._timeout_duration)
        timer = self._timeout_handle
        if timer is None or timer.cancelled() or timer.when() > self._idle_deadline:
            if timer is not None:
                timer.cancel()
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_timer)

    def _idle_timer(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_timer)
        else:
            self._timeout_cb()

    def _close(self) -> None:
        if self.transport is not None:
            if self._replies and self._writer is not None:  # close() sends it first
                self._writer.write(b"".join(self._replies))
                self._replies.clear()
            self.transport.close()

    async def push(self, status) -> None:
        # Every 5xx counts against the session: a client that keeps failing is dropped
        # (RFC 5321 §4.3.2 lets a server close after 421).
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        if text[:1] == "5":
            self.errors += 1
        self._replies.append(self._reply_bytes(status))
        # RFC 2920 §3.2: replies to pipelined commands may wait while the client's next
        # commands are already here, and go out in one write (as Postfix's smtpd flushes
        # only when its input is empty): a pipelined MAIL, RCPT, DATA gets one packet,
        # not three. Only 250s wait; 354, 334, 220 (STARTTLS) and every error go at
        # once, with whatever waited before them.
        if not (text.startswith("250") and self._input_waiting()):
            await self.flush_replies()
        if self.errors >= replies.MAX_BAD_COMMANDS and self.transport is not None:
            await super().push(replies.TOO_MANY_BAD_COMMANDS)
            self._close()

    def _reply_bytes(self, status: str | bytes) -> bytes:
        if isinstance(status, str):  # as aiosmtpd's own push encodes
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        return status + b"\r\n"

    def _input_waiting(self) -> bool:
        reader = self._reader
        return reader is not None and bool(reader._buffer)  # type: ignore[attr-defined]

    async def flush_replies(self) -> None:
        """Send the replies that waited for the commands pipelined behind them."""
        if self._replies and self._writer is not None:
            self._writer.write(b"".join(self._replies))
            self._replies.clear()
            await self._writer.drain()

    # --- greeting, STARTTLS, VRFY and AUTH --------------------------------------------

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        """RFC 3207 §4: no second TLS layer inside the first (587 after STARTTLS, 465)."""
        if self.is_encrypted():
            await self.push(replies.TLS_ALREADY_ACTIVE)
            return
        await super().smtp_STARTTLS(arg)

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str | None) -> None:
        """RFC 5321 §3.5.3: 252 neither confirms nor denies an address, which is all a
        stranger learns here; the argument is not even parsed (aiosmtpd's parser raised
        on some inputs, such as a lone quote)."""
        await self.push(replies.CANNOT_VRFY if arg else replies.SYNTAX_VRFY)

    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        self.sess().extended_smtp = True
        self.sess().host_name = hostname
        lines = [
            self.hostname,
            "PIPELINING",
            f"SIZE {self.data_size_limit}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "DSN",
        ]
        if self.tls_context and not self.is_encrypted():
            lines.append("STARTTLS")
        if self._auth_allowed():
            lines.append("AUTH PLAIN LOGIN")
        lines.append("HELP")
        # One write for the whole reply (RFC 5321 §4.2.1 multiline), not one per line.
        await self.push("\r\n".join([*(f"250-{line}" for line in lines[:-1]), f"250 {lines[-1]}"]))

    def _auth_allowed(self) -> bool:
        return self.is_encrypted() or self.event_handler.plaintext_auth_allowed(self.peer_ip())

    async def smtp_AUTH(self, arg: str | None) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        if not self._auth_allowed():
            await self.push(replies.AUTH_NEEDS_TLS)
            return
        if self.sess().authenticated:
            await self.push(replies.AUTH_ALREADY)
            return
        if self.tx().mail_from is not None:
            await self.push(replies.BAD_SEQUENCE)  # RFC 4954 §4: not during a transaction
            return
        args = (arg or "").split()
        if not args or len(args) > 2 or args[0].upper() not in ("PLAIN", "LOGIN"):
            await self.push(replies.AUTH_UNKNOWN_MECHANISM)
            return
        credentials = await self._read_credentials(args[0].upper(), args[1:])
        if credentials is None:
            return
        await self.push(await self.event_handler.authenticate(self, *credentials))

    async def _read_credentials(self, mechanism: str, initial: list[str]) -> tuple | None:
        """(login, password) from SASL PLAIN (RFC 4616) or LOGIN; None after an error reply."""
        if mechanism == "PLAIN":
            blob = await self._sasl_step(b"", initial[0] if initial else None)
            if blob is None:
                return None
            parts = blob.split(b"\0")
            if len(parts) != 3:
                await self.push(replies.AUTH_BAD_BASE64)
                return None
            return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
        login = await self._sasl_step(b"Username:", initial[0] if initial else None)
        if login is None:
            return None
        password = await self._sasl_step(b"Password:", None)
        if password is None:
            return None
        return login.decode("utf-8", "replace"), password.decode("utf-8", "replace")

    async def _sasl_step(self, challenge: bytes, initial: str | None) -> bytes | None:
        if initial is not None:
            if initial == "=":  # RFC 4954 §4: an empty initial response
                return b""
            try:
                return b64decode(initial, validate=True)
            except (Base64Error, ValueError):
                await self.push(replies.AUTH_BAD_BASE64)
                return None
        answer = await self.challenge_auth(challenge)
        return None if answer is MISSING else answer  # challenge_auth replied already

    # --- the transaction ------------------------------------------------------------------

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if self.tx().mail_from is not None:
            await self.push(replies.NESTED_MAIL)
            return
        try:
            mail = parse_mail_from(arg or "")
        except ParamError as error:
            await self.push(self._param_reply(error, replies.SYNTAX_MAIL))
            return
        if mail.size is not None and self.data_size_limit and mail.size > self.data_size_limit:
            await self.push(replies.TOO_MUCH_DATA)
            return
        status = await self.event_handler.handle_MAIL(self, self.sess(), self.tx(), mail)
        if status.startswith("250"):
            self.tx().mail = mail
            self.tx().mail_from = mail.address
            self.tx().smtp_utf8 = mail.smtputf8
        await self.push(status)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if self.tx().mail is None:
            await self.push(replies.NEED_MAIL)
            return
        try:
            rcpt = parse_rcpt_to(arg or "")
        except ParamError as error:
            await self.push(self._param_reply(error, replies.SYNTAX_RCPT))
            return
        if len(self.tx().recipients) >= replies.MAX_RECIPIENTS:
            await self.push(replies.TOO_MANY_RECIPIENTS)
            return
        status, accepted = await self.event_handler.handle_RCPT(self, self.sess(), self.tx(), rcpt)
        if accepted is not None:
            self.tx().recipients.append(accepted)
            self.tx().rcpt_tos.append(rcpt.address)
        await self.push(status)

    def _param_reply(self, error: ParamError, syntax_reply: str) -> str:
        reason = str(error)
        if reason == "address":
            return replies.BAD_ADDRESS
        if reason.startswith("parameter:"):
            return replies.BAD_PARAMETER.format(reason.partition(":")[2])
        return syntax_reply

    async def smtp_RSET(self, arg: str | None) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: RSET")
            return
        self._set_rset_state()
        await self.push(replies.OK)

    def _discard_bdat(self) -> None:
        envelope = self.envelope
        if isinstance(envelope, MailEnvelope) and envelope.bdat is not None:
            envelope.bdat.close()
            envelope.bdat = None

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        if self.tx().bdat is not None:
            await self.push(replies.BAD_SEQUENCE)  # RFC 3030 §2: no DATA after BDAT
            return
        if not self.tx().recipients:
            await self.push(replies.NEED_RCPT if self.tx().mail else replies.NEED_MAIL)
            return
        await self.push(replies.START_DATA)
        spool = self.event_handler.new_spool()
        try:
            ended = await self._read_data(spool)
            if not ended:
                return
            await self._finish(spool)
        finally:
            spool.close()

    async def _read_data(self, spool: Spool) -> bool:
        decoder = DataDecoder(spool)
        try:
            async with asyncio.timeout(replies.DATA_TOTAL_TIMEOUT):
                while not decoder.done:
                    # asyncio.timeout, not wait_for: that makes a task per read.
                    async with asyncio.timeout(replies.DATA_BLOCK_TIMEOUT):
                        piece = await read_piece(self._reader, decoder)
                    self._reset_timeout()
                    decoder.feed(piece)
        except TimeoutError:
            await self.push(replies.TIMEOUT)
            self._close()
            return False
        except asyncio.IncompleteReadError:
            self._close()  # the client went away: nothing was acknowledged
            return False
        return True

    async def smtp_BDAT(self, arg: str | None) -> None:
        """RFC 3030 §2: BDAT size [LAST]; the chunk is read even when it is refused."""
        words = (arg or "").split()
        if (
            not 1 <= len(words) <= 2
            or not words[0].isdigit()
            or (len(words) == 2 and words[1].upper() != "LAST")
        ):
            await self.push(replies.BAD_BDAT)
            self._close()  # the chunk size is unknown: the stream cannot be resynchronised
            return
        size, last = int(words[0]), len(words) == 2
        envelope = self.tx()
        if envelope.bdat is None:
            envelope.bdat = self.event_handler.new_spool()
            if not envelope.recipients:
                envelope.bdat_failed = replies.NEED_RCPT if envelope.mail else replies.NEED_MAIL
        if not await self._read_chunk(envelope.bdat, size):
            return
        if not last:
            await self.push(envelope.bdat_failed or f"250 2.0.0 {size} octets received")
            return
        spool, failure = envelope.bdat, envelope.bdat_failed
        envelope.bdat = None
        try:
            if failure:
                await self.push(failure)
                self._set_rset_state()
            else:
                await self._finish(spool)
        finally:
            spool.close()

    async def _read_chunk(self, spool: Spool, size: int) -> bool:
        remaining = size
        try:
            async with asyncio.timeout(replies.DATA_TOTAL_TIMEOUT):
                while remaining:
                    async with asyncio.timeout(replies.DATA_BLOCK_TIMEOUT):
                        piece = await self._reader.read(min(remaining, 1024 * 1024))
                    if not piece:
                        self._close()
                        return False
                    remaining -= len(piece)
                    spool.write(piece)
                    self._reset_timeout()
        except TimeoutError:
            await self.push(replies.TIMEOUT)
            self._close()
            return False
        return True

    async def _finish(self, spool: Spool) -> None:
        """The body is complete: refuse it if too big, else let the handler decide."""
        if spool.too_big:
            status = replies.TOO_MUCH_DATA
        else:
            status = await self.event_handler.handle_message(self, self.sess(), self.tx(), spool)
        self._set_post_data_state()
        await self.push(status)
        await self.flush_replies()  # an accepted message's 250 never waits (RFC 5321 §4.1.1.4)
