"""Commands valid in any state, and the session-wide switches: CAPABILITY, NOOP, CHECK,
LOGOUT, ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342), COMPRESS (RFC 4978)."""

from __future__ import annotations

from apps.imap import capabilities, responses
from apps.imap.parser import Command, Compress, Enable, Id
from apps.imap.render import imap_string
from apps.imap.session import Reply, Session, State

# RFC 2971 §3.3: what the server says about itself.
SERVER_ID = (("name", "Mailhost"), ("vendor", "Mailhost"))


async def capability(session: Session, command: Command) -> Reply:
    session.untagged(f"CAPABILITY {session.capability_text()}")
    return Reply()


async def noop(session: Session, command: Command) -> Reply:
    """RFC 9051 §6.1.2: the way to poll; always look at the store (CHECK does the same,
    RFC 3501 §6.4.1, now that it has nothing else to do)."""
    await session.sync(expunge=True, force=True)
    return Reply()


async def logout(session: Session, command: Command) -> None:
    """RFC 9051 §6.1.3: BYE, then the tagged OK, then close."""
    session.untagged("BYE Logging out")
    session.write(responses.tagged(command.tag, "OK", "LOGOUT completed"))
    await session.flush()
    session.state = State.LOGOUT


async def id_(session: Session, command: Command) -> Reply:
    """RFC 2971 §3.1: answer with our own identification."""
    assert isinstance(command.args, Id)
    pairs = b" ".join(imap_string(k) + b" " + imap_string(v) for k, v in SERVER_ID)
    session.write(b"* ID (" + pairs + b")\r\n")
    return Reply()


async def enable(session: Session, command: Command) -> Reply:
    """RFC 5161 §3.1: ENABLED lists what this command newly switched on; unknown names are
    ignored. QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)."""
    assert isinstance(command.args, Enable)
    newly: list[str] = []
    for name in command.args.capabilities:
        if name in capabilities.ENABLEABLE and name not in session.enabled:
            session.enabled.add(name)
            newly.append("IMAP4rev2" if name == "IMAP4REV2" else name)
    if session.enabled & {"CONDSTORE", "QRESYNC"}:
        session.enable_condstore()
    session.untagged(" ".join(["ENABLED", *newly]))
    return Reply()


async def namespace(session: Session, command: Command) -> Reply:
    """RFC 2342 §5 / RFC 9051 §6.3.10: one personal namespace, no others."""
    session.untagged('NAMESPACE (("" "/")) NIL NIL')
    return Reply()


async def compress(session: Session, command: Command) -> None:
    """RFC 4978 §3: OK uncompressed, then DEFLATE both ways from the next octet on."""
    assert isinstance(command.args, Compress)
    if session.conn.compressed:
        session.write(
            responses.tagged(command.tag, "NO", "DEFLATE already active", "COMPRESSIONACTIVE")
        )
    elif command.args.mechanism != "DEFLATE":
        session.write(responses.tagged(command.tag, "NO", "Unknown compression mechanism"))
    else:
        session.write(responses.tagged(command.tag, "OK", "DEFLATE active"))
        await session.flush()
        session.conn.start_compression(session.limits.max_line)
        return
    await session.flush()
