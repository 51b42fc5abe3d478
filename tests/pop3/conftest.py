"""POP3 test helpers: a client that speaks STLS or implicit TLS, mail put in through
the store, and a look at what the store holds afterwards."""

from __future__ import annotations

import poplib
import socket
import ssl
import time
from dataclasses import dataclass

import pytest
from django.conf import settings

from apps.mailstore import services
from apps.mailstore.models import Message

TIMEOUT = 15


def message(n: int, body: str = "") -> bytes:
    """A small CRLF message; `body` defaults to a few lines, one starting with a dot."""
    body = body or f"Hello {n}.\r\n.a line that starts with a dot\r\n.\r\n..two dots\r\nBye\r\n"
    return (
        f"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Message {n}\r\n"
        f"Message-ID: <pop{n}@example.org>\r\n\r\n{body}"
    ).encode()


def deliver(persona, raw: bytes, kept_in: str = "file") -> int:
    """Put `raw` in the persona's INBOX; returns its UID. `kept_in` "database": the bytes
    go into a StoredBlob row, as the pipeline files small messages."""
    kept = services.NewMessage.writing if kept_in == "database" else services.NewMessage.from_bytes
    result = services.deliver(kept(raw), [persona.id])
    return result.delivered[0][2]


def inbox_uids(persona) -> list[int]:
    rows = Message.objects.filter(folder__user_id=persona.id, folder__name="INBOX")
    return list(rows.order_by("uid").values_list("uid", flat=True))


def client_tls() -> ssl.SSLContext:
    """Trusts the server's self-signed certificate and checks it names 127.0.0.1."""
    return ssl.create_default_context(cafile=str(settings.TLS_CERT_FILE))


@dataclass
class Pop3:
    """Where the POP3 listeners are, and poplib clients for them."""

    server: object

    @property
    def port(self) -> int:
        return self.server.port("pop3")  # type: ignore[attr-defined]

    @property
    def tls_port(self) -> int:
        return self.server.port("pop3s")  # type: ignore[attr-defined]

    def connect(self, kind: str = "stls") -> poplib.POP3:
        """ "stls": port 110 upgraded with STLS; "pop3s": implicit TLS; "plain": no TLS."""
        if kind == "pop3s":
            return poplib.POP3_SSL(
                "127.0.0.1", self.tls_port, context=client_tls(), timeout=TIMEOUT
            )
        client = poplib.POP3("127.0.0.1", self.port, timeout=TIMEOUT)
        if kind == "stls":
            client.stls(client_tls())
        return client

    def login(self, persona, kind: str = "stls") -> poplib.POP3:
        client = self.connect(kind)
        try:
            client.user(persona.address)
            client.pass_(persona.password)
        except poplib.error_proto:
            client.close()
            raise
        return client

    def login_when_free(self, persona, kind: str = "stls", wait: float = 10) -> poplib.POP3:
        """Log in, retrying while a session that just went away still holds the lock."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self.login(persona, kind)
            except poplib.error_proto as error:
                if b"[IN-USE]" not in error.args[0] or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def pop3(mailserver) -> Pop3:
    return Pop3(mailserver)


@pytest.fixture
def alice(live_personas):
    return live_personas["alice"]


class RawClient:
    """Bytes on the wire, for what poplib hides (dot-stuffing, pipelining, garbage)."""

    def __init__(self, port: int, tls: bool = True) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = client_tls().wrap_socket(sock, server_hostname="127.0.0.1") if tls else sock
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.line()

    def multiline(self) -> bytes:
        """Everything up to and including the terminating ".\\r\\n", as sent."""
        out = b""
        while not out.endswith(b"\r\n.\r\n") and out != b".\r\n":
            chunk = self.line()
            if not chunk:
                raise EOFError(out)
            out += chunk
        return out

    def login(self, persona) -> None:
        assert self.command(b"USER " + persona.address.encode()).startswith(b"+OK")
        assert self.command(b"PASS " + persona.password.encode()).startswith(b"+OK")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw_client(pop3):
    clients: list[RawClient] = []

    def connect(tls: bool = True) -> RawClient:
        client = RawClient(pop3.tls_port if tls else pop3.port, tls)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
