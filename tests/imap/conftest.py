"""IMAP test helpers: the IMAP listeners on 127.0.0.1 port 0, imaplib clients logged in
over TLS, raw-command access for what imaplib has no method for, and mail put in through
the store."""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
from dataclasses import dataclass, field

import pytest

from apps.mailstore import services
from tests.mailclient import client_tls
from tests.servers import RunningServer

TIMEOUT = 15


def message(n: int = 1, *, subject: str | None = None, body: str = "", extra: str = "") -> bytes:
    body = body or f"Hello {n}.\r\nThis is message {n}.\r\n"
    return (
        f"From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\n"
        f"Subject: {subject or f'Message {n}'}\r\nMessage-ID: <m{n}@example.org>\r\n"
        f"Date: Mon, 30 Nov 2026 12:00:{n % 60:02d} +0000\r\n{extra}\r\n{body}"
    ).encode()


def deliver(persona, raw: bytes, folder: str = "") -> int:
    """Put `raw` into the persona's INBOX (or the folder with that special use), as the
    pipeline files mail (a small message's bytes in the database); its UID."""
    result = services.deliver(services.NewMessage.writing(raw), [persona.id], special_use=folder)
    return result.delivered[0][2]


def deliver_many(persona, count: int, start: int = 1) -> None:
    """Messages whose bytes are blob files (as APPEND's were before they moved into the
    database): FETCH must read both kinds."""
    batch = [
        (services.NewMessage.from_bytes(message(n)), [persona.id])
        for n in range(start, start + count)
    ]
    services.deliver_many(batch)


@dataclass
class Raw:
    """A bare-socket client: send lines, read responses up to a tagged one."""

    sock: ssl.SSLSocket | socket.socket
    buffer: bytes = b""
    tag_number: int = field(default=0)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        literal = re.search(rb"\{(\d+)\}$", line)
        if literal:
            size = int(literal.group(1))
            while len(self.buffer) < size:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buffer += chunk
            line += b"\r\n" + self.buffer[:size]
            self.buffer = self.buffer[size:]
            line += self.line()
        return line

    def until_tagged(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def command(self, text: str | bytes) -> list[bytes]:
        """Send "tN text", return every response line through the tagged one."""
        self.tag_number += 1
        tag = f"t{self.tag_number}"
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.until_tagged(tag)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Imap:
    server: RunningServer
    opened: list = field(default_factory=list)  # closed at teardown

    @property
    def port(self) -> int:
        return self.server.port("imap")

    @property
    def tls_port(self) -> int:
        return self.server.port("imaps")

    def connect(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", self.tls_port, ssl_context=client_tls(), timeout=TIMEOUT
        )
        self.opened.append(client)
        return client

    def plain(self) -> imaplib.IMAP4:
        """imaplib on port 143, before STARTTLS."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT)
        self.opened.append(client)
        return client

    def login(self, persona) -> imaplib.IMAP4_SSL:
        client = self.connect()
        client.login(persona.address, persona.password)
        return client

    def close_all(self) -> None:
        for client in self.opened:
            with contextlib.suppress(OSError):
                (client.shutdown if isinstance(client, imaplib.IMAP4) else client.close)()

    def raw(self, persona=None, *, tls: bool = True) -> Raw:
        """A raw client on 993 (or plain 143), logged in if a persona is given."""
        sock = socket.create_connection(("127.0.0.1", self.tls_port if tls else self.port), TIMEOUT)
        if tls:
            sock = client_tls().wrap_socket(sock, server_hostname="localhost")
        raw = Raw(sock)
        self.opened.append(raw)
        raw.line()  # greeting
        if persona is not None:
            lines = raw.command(f'LOGIN "{persona.address}" "{persona.password}"')
            assert b" OK " in lines[-1], lines
        return raw


@pytest.fixture
def imap(transactional_db):
    server = RunningServer(("imap", "imaps")).start()
    running = Imap(server)
    yield running
    running.close_all()
    server.stop()


@pytest.fixture
def alice(live_personas):
    return live_personas["alice"]


@pytest.fixture
def bob(live_personas):
    return live_personas["bob"]


def untagged(lines: list[bytes], word: str) -> list[bytes]:
    """Untagged responses whose first word (after "* " or "* n ") is `word`."""
    pattern = re.compile(rb"\* (?:\d+ )?" + word.encode() + rb"\b")
    return [line for line in lines if pattern.match(line)]


def status(lines: list[bytes]) -> str:
    """The status of the tagged response that ends `lines`, with its code: "NO [TRYCREATE]"."""
    words = lines[-1].decode("utf-8", "replace").split(" ", 2)
    code = re.match(r"\[[^\]]*\]", words[2]) if len(words) > 2 else None
    return words[1] + (f" {code.group()}" if code else "")


def ok(response: tuple[str, list]) -> list:
    typ, data = response
    assert typ == "OK", data
    return data


__all__ = [
    "Imap",
    "Raw",
    "deliver",
    "deliver_many",
    "imaplib",
    "message",
    "ok",
    "status",
    "untagged",
]
