"""A receiving SMTP server for relay tests: aiosmtpd on 127.0.0.1 port 0, with STARTTLS,
optional AUTH, and replies a test scripts per recipient. It records every transaction."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

OK = "250 2.0.0 OK"
DROP = "drop"  # what `before_data` returns to make the sink hang up instead of replying
TOO_MANY = "452 4.5.3 Too many recipients"  # RFC 5321 §4.5.3.1.10


@dataclass
class Received:
    """One transaction the sink accepted."""

    mail_from: str
    recipients: list[str]
    data: bytes
    mail_options: list[str]
    rcpt_options: list[list[str]]
    tls: bool
    login: str | None
    tls_resumed: bool = False
    at: float = field(default_factory=time.time)

    def header(self, name: str) -> str:
        import email

        return str(email.message_from_bytes(self.data).get(name, ""))


def _rcpt_options(envelope: Envelope) -> list[list[str]]:
    """The envelope's RCPT TO parameters, one list per accepted recipient. aiosmtpd's own
    RCPT handling flattens them into one list of strings (and annotates the attribute so);
    this sink's handle_RCPT keeps them per recipient instead."""
    return cast(list[list[str]], envelope.rcpt_options)


def _resumed(session: Session) -> bool:
    """Whether the client resumed an earlier TLS session (RFC 8446 §2.2)."""
    extra = cast(dict[str, Any], session.ssl or {})
    ssl_object = extra.get("ssl_object")
    return bool(ssl_object is not None and ssl_object.session_reused)


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:
            responses.insert(1, "250-PIPELINING")  # RFC 2920 §3
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        limit = self.sink.rcpt_limit
        if limit and len(envelope.rcpt_tos) >= limit:
            return TOO_MANY
        reply = self.sink.next_reply(address)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
            _rcpt_options(envelope).append(options)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        hook = self.sink.before_data
        if hook is not None:
            override = hook(envelope)
            if override == DROP:
                assert server.transport is not None
                server.transport.close()  # gone with the message read, before any reply
                return "421 4.4.2 gone"
            if override:
                return override
        assert isinstance(envelope.content, bytes)
        self.sink.record(
            Received(
                mail_from=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                data=envelope.content,
                mail_options=list(envelope.mail_options),
                rcpt_options=[list(o) for o in _rcpt_options(envelope)],
                tls=session.ssl is not None,
                tls_resumed=_resumed(session),
                login=session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
            )
        )
        return self.sink.data_reply


class _CountingSMTP(SMTP):
    """aiosmtpd's protocol, telling the sink of each chunk read from the network."""

    def __init__(self, sink: Sink, *args: Any, **kwargs: Any) -> None:
        self.sink = sink
        super().__init__(*args, **kwargs)

    def data_received(self, data: bytes) -> None:
        self.sink.observe(data)
        super().data_received(data)


class Sink:
    """Start with `start()`; `received` lists what arrived; `script(address, replies)`
    makes RCPT TO for that address answer `replies` in turn, then accept.

    It counts connections, and envelopes that came pipelined (RFC 2920): MAIL, RCPT and
    DATA read from the network at once. With `pipelining` it offers PIPELINING; with
    `rcpt_limit` it takes that many recipients per transaction and answers 452 past it.
    """

    def __init__(
        self,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        credentials: tuple[str, str] | None = None,
        size_limit: int = 33554432,
        smtputf8: bool = True,
        hostname: str = "sink.test",
    ) -> None:
        self.tls = None
        if cert and key:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(cert, key)
        self.credentials = credentials
        self.size_limit = size_limit
        self.smtputf8 = smtputf8
        self.hostname = hostname
        self.port = 0
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.scripts: dict[str, list[str]] = {}
        self.connections = 0
        self.pipelined = 0
        self.pipelining = False
        self.rcpt_limit = 0
        self.data_reply = OK
        self.before_data: Callable[[Envelope], str | None] | None = None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._protocols: list[SMTP] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="sink", daemon=True)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.credentials:
            ok = (data.login.decode(), data.password.decode()) == self.credentials
            return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)
        return AuthResult(success=False, handled=False)

    def _protocol(self) -> SMTP:
        with self.lock:
            self.connections += 1
        protocol = _CountingSMTP(
            self,
            _Handler(self),
            hostname=self.hostname,
            data_size_limit=self.size_limit,
            enable_SMTPUTF8=self.smtputf8,
            tls_context=self.tls,
            authenticator=self._authenticate if self.credentials else None,
            auth_required=bool(self.credentials),
            auth_require_tls=True,
            loop=self._loop,
        )
        self._protocols.append(protocol)
        return protocol

    def start(self) -> Sink:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(self._protocol, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _shutdown(self) -> None:
        """Close the listener and every connection, so no socket outlives the sink."""
        if self._server is not None:
            self._server.close()
        for protocol in self._protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the transports finish closing

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # --- what the tests use ---------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.scripts.clear()
            self.connections = 0
            self.pipelined = 0
            self.pipelining = False
            self.rcpt_limit = 0
            self.data_reply = OK
            self.before_data = None

    def observe(self, chunk: bytes) -> None:
        """Count a chunk that holds a whole envelope, MAIL to DATA: a pipelined one."""
        upper = chunk.upper()
        if upper.startswith(b"MAIL FROM:") and upper.endswith(b"\r\nDATA\r\n"):
            with self.lock:
                self.pipelined += 1

    def script(self, address: str, replies: list[str]) -> None:
        with self.lock:
            self.scripts[address.lower()] = list(replies)

    def next_reply(self, address: str) -> str:
        with self.lock:
            replies = self.scripts.get(address.lower())
            return replies.pop(0) if replies else OK

    def record(self, received: Received) -> None:
        with self.lock:
            self.received.append(received)

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """What arrived, once at least `count` transactions have (or the time is up)."""
        deadline = time.monotonic() + timeout
        while len(self.messages()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages()
