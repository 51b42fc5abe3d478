"""Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE PLAIN with SASL-IR.

RFC 9051 §6.2. Passwords are taken only over TLS (RFC 9051 §11.1; LOGINDISABLED is
advertised before), and every check goes through the shared failed-login throttle.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging

from apps.accounts import services as accounts
from apps.imap import responses
from apps.imap.parser import Authenticate, Command, Login
from apps.imap.reader import LineTooLong, read_line
from apps.imap.session import CommandError, Reply, Session
from mailhost.threads import in_thread

log = logging.getLogger(__name__)
# RFC 4616: the one mechanism offered; the password travels inside TLS.
MECHANISMS = ("PLAIN",)
# RFC 4616 §2: authzid, authcid, passwd each at most 255 octets of UTF-8.
MAX_SASL_RESPONSE = 2048


async def starttls(session: Session, command: Command) -> None:
    """RFC 9051 §6.2.1. Anything pipelined after STARTTLS came in the clear and could have
    been injected (CVE-2011-0411), so such a client is cut off rather than served."""
    if session.conn.is_tls:
        session.write(responses.tagged(command.tag, "BAD", "TLS is already active"))
        await session.flush()
        return
    if session.conn.has_buffered_input():
        await session.bye("Commands pipelined after STARTTLS")
        return
    session.conn.hold_input()
    session.write(responses.tagged(command.tag, "OK", "Begin TLS negotiation now"))
    await session.flush()
    await session.conn.start_tls(session.tls)


async def login(session: Session, command: Command) -> Reply:
    assert isinstance(command.args, Login)
    return await authenticate_user(session, command.args.username, command.args.password)


async def authenticate(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.2.2 with RFC 4959 SASL-IR; only PLAIN (RFC 4616)."""
    args = command.args
    assert isinstance(args, Authenticate)
    if args.mechanism not in MECHANISMS:
        raise CommandError("Unsupported authentication mechanism", "CANNOT")
    if not session.login_allowed:
        raise CommandError("Authentication needs TLS first", "PRIVACYREQUIRED")
    response = args.initial_response
    if response is None:
        response = await _sasl_response(session)
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise CommandError("Malformed PLAIN response", status="BAD")
    authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
    if authzid and authzid.lower() != authcid.lower():  # no acting as someone else
        raise CommandError("Authorization identity refused", "AUTHORIZATIONFAILED")
    return await authenticate_user(session, authcid, password)


async def _sasl_response(session: Session) -> bytes:
    """RFC 9051 §6.2.2: an empty challenge, then one base64 line; "*" cancels (BAD)."""
    session.write(b"+ \r\n")
    await session.flush()
    try:
        line = await asyncio.wait_for(
            read_line(session.conn.reader, max_line=MAX_SASL_RESPONSE),
            session.limits.login_timeout,
        )
    except LineTooLong:
        raise CommandError("Authentication response too long", status="BAD") from None
    if line.strip() == b"*":
        raise CommandError("Authentication cancelled", status="BAD")
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("Invalid base64 in authentication response", status="BAD") from None


async def authenticate_user(session: Session, address: str, password: str) -> Reply:
    if not session.login_allowed:
        raise CommandError("Login needs TLS first (use STARTTLS or port 993)", "PRIVACYREQUIRED")
    result = await in_thread(accounts.login, address, password, session.conn.peer_ip)
    if result.blocked:
        raise CommandError("Too many failed logins; try again later", "UNAVAILABLE")
    if result.user is None:
        log.info("IMAP login failed for %r from %s", address, session.conn.peer_ip)
        await asyncio.sleep(result.delay)
        session.failed_logins += 1
        if session.failed_logins >= session.limits.max_failed_logins:
            session.closing = "Too many failed logins"
        raise CommandError("Invalid credentials", "AUTHENTICATIONFAILED")
    if not session.listener.admit_user(result.user.pk):
        raise CommandError("Too many connections for this user", "LIMIT")
    session.logged_in(result.user)
    return Reply("OK", "Logged in", f"CAPABILITY {session.capability_text()}")
