"""AUTHORIZATION state commands: CAPA, STLS, USER/PASS, AUTH PLAIN, APOP.

RFC 1939 §4 and §7, RFC 2449 (CAPA), RFC 2595 §4 (STLS), RFC 5034 (AUTH). Passwords are
taken only over TLS, or from loopback when ALLOW_PLAINTEXT_AUTH_LOOPBACK is on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from apps.accounts import services as accounts
from apps.pop3 import replies
from apps.pop3.connection import LineTooLong
from apps.pop3.parser import Command, CommandError, decode_sasl_plain
from mailhost.threads import in_thread

if TYPE_CHECKING:
    from apps.pop3.session import Session

log = logging.getLogger(__name__)


def capabilities(session: Session) -> list[str]:
    """RFC 2449 §5: what this session offers now. USER and SASL appear only where a
    password may be given, so a client is not invited to send one in the clear."""
    caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
    if session.plaintext_allowed:
        caps += ["USER", "SASL " + " ".join(replies.SASL_MECHANISMS)]
    if not session.conn.is_tls:
        caps.append("STLS")
    caps.append("IMPLEMENTATION " + replies.IMPLEMENTATION)
    return caps


async def capa(session: Session, command: Command) -> None:
    await session.conn.send("+OK Capability list follows", *capabilities(session), ".")


async def stls(session: Session, command: Command) -> None:
    """RFC 2595 §4. Anything the client sent after STLS arrived in the clear and could
    have been injected (CVE-2011-0411 for SMTP); such a pipeline ends the session."""
    if session.conn.is_tls:
        await session.reject(replies.ALREADY_TLS)
        return
    if session.conn.has_pending_input():
        await session.conn.send(replies.STLS_PIPELINED)
        session.closing = True
        return
    await session.conn.start_tls(session.tls, replies.BEGIN_TLS)
    session.pending_user = None  # RFC 2595 §4: start afresh under TLS


async def user(session: Session, command: Command) -> None:
    if not session.plaintext_allowed:
        await session.conn.send(replies.PLAINTEXT_DISALLOWED)
        return
    session.pending_user = command.text
    await session.conn.send(replies.OK)


async def pass_(session: Session, command: Command) -> None:
    if not session.plaintext_allowed:
        await session.conn.send(replies.PLAINTEXT_DISALLOWED)
        return
    if session.pending_user is None:
        await session.reject(replies.NEED_USER)
        return
    address, session.pending_user = session.pending_user, None
    await login(session, address, command.text)


async def apop(session: Session, command: Command) -> None:
    await session.conn.send(replies.APOP_UNSUPPORTED)


async def auth(session: Session, command: Command) -> None:
    """RFC 5034 §4: AUTH PLAIN with or without an initial response. A bare AUTH lists
    the mechanisms, as clients built for the older RFC 1734 servers expect."""
    if not command.args:
        await session.conn.send(replies.OK, *replies.SASL_MECHANISMS, ".")
        return
    if not session.plaintext_allowed:
        await session.conn.send(replies.PLAINTEXT_DISALLOWED)
        return
    if command.args[0].upper() not in replies.SASL_MECHANISMS:
        await session.conn.send(replies.UNKNOWN_MECHANISM)
        return
    response = command.args[1] if len(command.args) > 1 else await _sasl_response(session)
    if response is None:
        return
    try:
        authzid, authcid, password = decode_sasl_plain(response)
    except CommandError as error:
        await session.conn.send(error.reply)
        return
    if authzid and authzid != authcid:  # no acting as someone else
        await session.conn.send(replies.AUTH_FAILED)
        return
    await login(session, authcid, password)


async def _sasl_response(session: Session) -> str | None:
    """The client's answer to the empty PLAIN challenge; None after a reply was sent."""
    await session.conn.send(replies.CONTINUE)
    try:
        line = await session.conn.read_line()
    except LineTooLong:
        await session.reject(replies.LINE_TOO_LONG)
        return None
    if line is None:
        raise ConnectionResetError("client left during AUTH")
    response = line.rstrip(b"\r\n").decode("ascii", "replace")
    if response == "*":  # RFC 5034 §4: the client cancels
        await session.conn.send(replies.AUTH_CANCELLED)
        return None
    return response


async def login(session: Session, address: str, password: str) -> None:
    """Check the password with the shared throttle, then open the maildrop."""
    result = await in_thread(accounts.login, address, password, session.conn.peer_ip)
    if result.blocked:
        await session.conn.send(replies.THROTTLED)
        return
    if result.user is None:
        log.info("POP3 login failed for %r from %s", address, session.conn.peer_ip)
        await asyncio.sleep(result.delay)
        await session.conn.send(replies.AUTH_FAILED)
        return
    await session.open_maildrop(result.user.pk)
